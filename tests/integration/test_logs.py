"""`logs` through the CLI, on the record of a container made by a real `run`, with its json.log
written by LogWriter in the test (standing in for the detached container's monitor)."""

import json
import os
import subprocess
import time

import pytest

from conftest import assert_one_error, needs_userns
from rootless_box.ops.logwriter import LogWriter, format_time

pytestmark = needs_userns

OLD = 1546341071111111111  # 2019-01-01T11:11:11.111111111Z


def record_of(cli, name):
    top = os.path.join(cli.root, "containers")
    for cid in os.listdir(top):
        with open(os.path.join(top, cid, "container.json")) as f:
            record = json.load(f)
        if record["Name"] == name:
            return record
    raise AssertionError("no container %s" % name)


def log_file(cli, name):
    record = record_of(cli, name)
    return record.get("LogPath") or os.path.join(cli.root, "containers", record["Id"],
                                                 "json.log")


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        self.now += 1000
        return self.now


@pytest.fixture(scope="module")
def logged(cli, image):
    """Container `logged`: two old entries (2019), then recent ones, stdout and stderr."""
    cli.ok("run", "--name", "logged", image, "true")
    path = log_file(cli, "logged")
    with LogWriter(path, clock=Clock(OLD)) as w:
        w.write("stdout", b"old out\n")
        w.write("stderr", b"old err\n")
    with LogWriter(path) as w:  # reopened: appends, as a restarted container's monitor
        w.write("stdout", b"new out 1\nnew out 2\n")
        w.write("stderr", b"new err\n")
        w.write("stdout", b"no newline")
    return "logged"


def test_stdout_and_stderr_apart(cli, logged):
    proc = cli.ok("logs", logged)
    assert proc.out == "old out\nnew out 1\nnew out 2\nno newline"
    assert proc.err == "old err\nnew err\n"
    assert cli.ok("container", "logs", logged).out == proc.out


def test_order_kept_across_streams(cli, logged):
    # both streams into one pipe: the entries' order, as Docker prints them
    proc = subprocess.run(cli.argv("logs", logged), env=cli.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=True)
    assert proc.stdout.decode() == ("old out\nold err\nnew out 1\nnew out 2\nnew err\n"
                                    "no newline")


def test_tail(cli, logged):
    # lines of both streams count, as Docker counts them
    two = cli.ok("logs", "--tail", "2", logged)
    assert (two.out, two.err) == ("no newline", "new err\n")
    assert cli.ok("logs", "-n", "1", logged).out == "no newline"
    three = cli.ok("logs", "--tail=3", logged)
    assert (three.out, three.err) == ("new out 2\nno newline", "new err\n")
    assert cli.ok("logs", "--tail", "all", logged).out.startswith("old out\n")
    none = cli.ok("logs", "--tail", "0", logged)
    assert (none.out, none.err) == ("", "")


def test_timestamps(cli, logged):
    lines = cli.ok("logs", "-t", logged).out.splitlines()
    assert lines[0] == "2019-01-01T11:11:11.111112111Z old out"
    for line in lines[1:]:
        stamp, _, text = line.partition(" ")
        assert len(stamp) == 30 and stamp.endswith("Z") and stamp[19] == "."  # nine digits
        assert text.startswith(("new out", "no newline"))
    details = cli.ok("logs", "--details", "--tail", "1", logged).out
    assert details == " no newline"  # Docker: the (empty) attrs, a space, the line


def test_since_and_until(cli, logged):
    recent = cli.ok("logs", "--since", "10m", logged)
    assert (recent.out, recent.err) == ("new out 1\nnew out 2\nno newline", "new err\n")
    assert cli.ok("logs", "--since", "2020-01-01T00:00:00Z", logged).out == recent.out
    assert cli.ok("logs", "--since", "1577836800", logged).out == recent.out
    assert cli.ok("logs", "--since", "1577836800.5", logged).out == recent.out
    old = cli.ok("logs", "--until", "2020-01-01", logged)
    assert (old.out, old.err) == ("old out\n", "old err\n")
    # inclusive at both ends, to the nanosecond: only the first entry
    first = format_time(OLD + 1000)
    assert cli.ok("logs", "--since", first, "--until", first, logged).out == "old out\n"
    assert cli.ok("logs", "--until", "1h30m", logged).out == "old out\n"
    bad = cli("logs", "--since", "yesterday", logged)
    assert_one_error(bad)


def test_missing_container(cli, image):
    proc = cli("logs", "no-such-container")
    assert_one_error(proc, code=1)
    assert "no such container: no-such-container" in proc.err
    assert proc.out == ""


def test_container_without_a_log(cli, image):
    cli.ok("run", "--name", "quiet", image, "sh", "-c", "echo to the terminal")
    assert not os.path.exists(log_file(cli, "quiet"))
    proc = cli.ok("logs", "quiet")
    assert (proc.out, proc.err) == ("", "")
    assert cli.ok("logs", "-f", "quiet").out == ""  # exited: nothing to wait for


def test_logs_right_after_a_start_have_the_short_commands_output(cli, image):
    cli.ok("create", "--name", "brief", image, "echo", "said")
    for _ in range(3):
        cli.ok("start", "brief")
        assert cli.ok("logs", "brief").out.count("said\n") >= 1
    assert cli.ok("logs", "brief").out == "said\n" * 3
    cli.ok("rm", "brief")


def test_log_driver_none_shows_the_output_and_keeps_none_to_read(cli, image):
    """Docker's --log-driver none: the output still reaches an attached client; `logs`
    answers Docker's error, exit 1; inspect says none."""
    proc = cli.ok("run", "--log-driver", "none", "--name", "nolog", image, "echo", "shown")
    assert proc.out == "shown\n"
    cli.ok("run", "-d", "--log-driver", "none", "--name", "nolog-d", image, "echo", "kept")
    cli.ok("wait", "nolog-d")
    for name in ("nolog", "nolog-d"):
        proc = cli("logs", name)
        assert_one_error(proc, code=1)
        assert "configured logging driver does not support reading" in proc.err
        assert proc.out == ""
    assert cli.ok("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", "nolog-d").out == "none\n"
    proc = cli("run", "--log-driver", "syslog", image, "true")
    assert_one_error(proc, code=125)
    cli.ok("rm", "nolog", "nolog-d")


def test_follow_until_the_container_stops(cli, image, tmp_path):
    cli.ok("run", "--name", "followed", image, "true")
    record = record_of(cli, "followed")
    path = log_file(cli, "followed")
    # make the record look like a running container whose process is `sleep`: the running
    # state comes from a live pid and its start time, as for a real one
    keeper = subprocess.Popen(["sleep", "60"])
    with open("/proc/%d/stat" % keeper.pid, "rb") as f:
        stat = f.read()
    start = int(stat[stat.rindex(b")") + 2:].split()[19])
    record["State"].update({"Status": "running", "Running": True, "Pid": keeper.pid,
                            "PidStartTime": start, "MonitorPid": 0})
    record_path = os.path.join(cli.root, "containers", record["Id"], "container.json")
    with open(record_path + ".tmp", "w") as f:
        json.dump(record, f)
    os.rename(record_path + ".tmp", record_path)
    w = LogWriter(path, max_size=300, max_files=3)
    w.write("stdout", b"before\n")
    follower = subprocess.Popen(cli.argv("logs", "-f", "-t", "followed"), env=cli.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        assert follower.poll() is None, follower.communicate()
        for i in range(12):  # several rotations while followed
            w.write("stderr" if i % 4 == 3 else "stdout", b"line %d\n" % i)
            time.sleep(0.02)
        w.close()
        time.sleep(0.3)
        assert follower.poll() is None  # still running: -f waits
    finally:
        keeper.kill()
        keeper.wait()
    out, err = follower.communicate(timeout=10)
    assert follower.returncode == 0, err
    out_lines = [line.split(" ", 1)[1] for line in out.decode().splitlines()]
    err_lines = [line.split(" ", 1)[1] for line in err.decode().splitlines()]
    assert out_lines == ["before"] + ["line %d" % i for i in range(12) if i % 4 != 3]
    assert err_lines == ["line 3", "line 7", "line 11"]
    assert os.path.exists(path + ".2")
