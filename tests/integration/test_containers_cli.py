"""Container listing and housekeeping through the real CLI: ps (filters, -n/-l/-q/-s, formats),
rename, container prune, inspect's Docker shape, top and stats --no-stream.

What a user relies on: the same rows, filters and texts Docker's CLI gives, so scripts written
for `docker ps --filter ... --format ...` work; a renamed container's old name is free at once;
prune removes stopped containers only; top and stats see the container's processes as host
pids. Real namespaces, the real CLI, an unprivileged user.
"""

import fcntl
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import Cli, assert_one_error, needs_userns

pytestmark = needs_userns


@pytest.fixture
def user(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    cli.ok("import", "-c", 'CMD ["sh"]', "-c", "LABEL tier=base", rootfs_tar, "base:latest")
    procs = []
    cli.procs = procs
    yield cli
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def running(cli, name, *command):
    """A foreground run in the background, returned once ps shows it running."""
    proc = subprocess.Popen(cli.argv("run", "--name", name, "base:latest",
                                     *(command or ("sleep", "60"))),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=cli.env)
    cli.procs.append(proc)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if name in cli.ok("ps", "--format", "{{.Names}}").out.split():
            return proc
        time.sleep(0.05)
    raise AssertionError("container %s did not start" % name)


def inspect(cli, name):
    return json.loads(cli.ok("inspect", "--type", "container", name).out)[0]


def names(proc):
    return proc.out.split()


def test_ps_lists_running_and_all_with_docker_columns(user):
    user.ok("run", "--name", "done", "base:latest", "true")
    user("run", "--name", "failed", "base:latest", "sh", "-c", "exit 3")
    running(user, "live")
    out = user.ok("ps").out.splitlines()
    assert re.split(r"\s{2,}", out[0]) == ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
                                           "STATUS", "PORTS", "NAMES"]
    assert len(out) == 2 and out[1].endswith("live") and '"sleep 60"' in out[1]
    assert re.search(r"Up (Less than a second|\d+ seconds?)", out[1])
    every = user.ok("ps", "-a", "--format", "{{.Names}}|{{.State}}|{{.Status}}").out
    rows = [line.split("|") for line in every.splitlines()]
    # newest first, as Docker lists them
    assert [r[0] for r in rows] == ["live", "failed", "done"]
    assert rows[1][1] == "exited" and re.match(r"Exited \(3\) .* ago$", rows[1][2])
    assert rows[2][2].startswith("Exited (0) ")
    ids = user.ok("ps", "-a", "-q").out.split()
    assert len(ids) == 3 and all(len(i) == 12 for i in ids)
    full = user.ok("ps", "-a", "-q", "--no-trunc").out.split()
    assert [f[:12] for f in full] == ids and all(len(f) == 64 for f in full)
    # -n and -l include every state
    assert names(user.ok("ps", "-n", "2", "--format", "{{.Names}}")) == ["live", "failed"]
    assert names(user.ok("ps", "-l", "--format", "{{.Names}}")) == ["live"]
    user.ok("run", "--name", "later", "base:latest", "true")
    assert names(user.ok("ps", "--latest", "--format", "{{.Names}}")) == ["later"]


def test_ps_filters(user):
    user.ok("run", "--name", "zero", "base:latest", "true")
    user("run", "--name", "three", "base:latest", "sh", "-c", "exit 3")
    running(user, "web-1")

    def listed(*filters):
        args = ["ps", "-a", "--format", "{{.Names}}"]
        for f in filters:
            args += ["--filter", f]
        return sorted(names(user.ok(*args)))
    assert listed("status=exited") == ["three", "zero"]
    # several status filters are OR'ed; a status filter lists every state without -a
    assert listed("status=exited", "status=running") == ["three", "web-1", "zero"]
    assert sorted(names(user.ok("ps", "--filter", "status=exited", "--format",
                                "{{.Names}}"))) == ["three", "zero"]
    assert listed("status=created") == []
    assert listed("exited=3") == ["three"]
    assert listed("exited=0") == ["zero"]
    # name: a regular expression search, as Docker's
    assert listed("name=web") == ["web-1"]
    assert listed("name=^t") == ["three"]
    assert listed("name=^/zero$") == ["zero"]
    assert listed("name=e") == ["three", "web-1", "zero"]
    cid = inspect(user, "three")["Id"]
    assert listed("id=" + cid[:8]) == ["three"]
    # different keys are AND'ed
    assert listed("name=e", "status=running") == ["web-1"]
    assert listed("label=tier=base", "exited=3") == ["three"]
    assert listed("label=tier=other") == []
    assert listed("label=tier") == ["three", "web-1", "zero"]
    # ancestor: the image by name or ID, and images built on it
    assert listed("ancestor=base:latest") == ["three", "web-1", "zero"]
    image_id = inspect(user, "zero")["Image"]
    assert listed("ancestor=" + image_id[7:19]) == ["three", "web-1", "zero"]
    user.ok("commit", "zero", "child:1")
    user.ok("run", "--name", "kid", "child:1", "true")
    assert listed("ancestor=child:1") == ["kid"]
    assert "kid" in listed("ancestor=base:latest")
    assert listed("ancestor=nosuch:image") == []
    # before/since: by creation, relative to a named container
    assert listed("before=three") == ["zero"]
    assert listed("since=three") == ["kid", "web-1"]
    assert listed("since=zero", "before=web-1") == ["three"]


def test_ps_bad_filters_are_one_error(user):
    for bad in ("status=sleeping", "exited=x", "colour=red", "name"):
        assert_one_error(user("ps", "--filter", bad))
    assert_one_error(user("ps", "-n", "many"))
    assert_one_error(user("ps", "-a", "--filter", "before=nosuch"))


def test_ps_formats(user):
    user.ok("run", "--name", "fmt", "-v", "/data", "base:latest", "sh", "-c",
            "echo hello > /greeting")
    table = user.ok("ps", "-a", "--format",
                    "table {{.Names}}\t{{.Label \"tier\"}}\t{{.Networks}}").out.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["NAMES", "LABEL", "NETWORKS"]
    assert re.split(r"\s{2,}", table[1]) == ["fmt", "base", "host"]
    row = json.loads(user.ok("ps", "-a", "--format", "json").out)
    assert set(row) == {"Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes",
                        "Mounts", "Names", "Networks", "Ports", "RunningFor", "Size",
                        "State", "Status"}
    assert row["Names"] == "fmt" and row["Image"] == "base:latest"
    assert row["Command"] == '"sh -c echo hello > …"'
    assert row["Labels"] == "tier=base" and row["LocalVolumes"] == "1"
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+$", row["CreatedAt"])
    assert row["RunningFor"].endswith(" ago")
    long = user.ok("ps", "-a", "--no-trunc", "--format", "{{.Command}}").out.strip()
    assert long == '"sh -c echo hello > /greeting"'
    # -s: the writable layer's size, and the image's added as virtual
    sized = user.ok("ps", "-a", "-s").out.splitlines()
    assert sized[0].rstrip().endswith("SIZE")
    assert re.search(r"\d+(\.\d+)?k?B \(virtual \d+(\.\d+)?[kM]B\)$", sized[1])
    assert user.ok("ps", "-a", "--format", "{{.Size}}").out.strip() != "0B"
    assert_one_error(user("ps", "--format", "{{.Names"))


def test_rename(user):
    user.ok("run", "--name", "old", "base:latest", "true")
    cid = inspect(user, "old")["Id"]
    assert user.ok("rename", "old", "new").out == ""
    assert inspect(user, "new")["Id"] == cid
    assert inspect(user, cid)["Name"] == "/new"
    # the old name is free at once
    user.ok("run", "--name", "old", "base:latest", "true")
    proc = user("rename", "old", "new")
    assert_one_error(proc, 1)
    assert "already in use" in proc.err
    assert_one_error(user("rename", "nosuch", "other"), 1)
    assert_one_error(user("rename", "new", "bad name!"), 1)
    assert_one_error(user("rename", "new", "new"), 1)
    assert_one_error(user("rename", "new"))
    # by ID prefix, and a running container too
    user.ok("rename", cid[:12], "newer")
    running(user, "busy")
    user.ok("rename", "busy", "still-busy")
    assert names(user.ok("ps", "--format", "{{.Names}}")) == ["still-busy"]
    # names of removed containers are reusable at once
    user.ok("rm", "newer")
    user.ok("run", "--name", "newer", "base:latest", "true")
    user.ok("container", "rename", "newer", "newest")


def test_container_prune(user):
    user.ok("run", "--name", "a", "base:latest", "true")
    user.ok("run", "--name", "b", "base:latest", "sh", "-c", "echo data > /file")
    running(user, "keep")
    ids = {n: inspect(user, n)["Id"] for n in ("a", "b")}
    # no -f: Docker's question, the answer read from stdin; anything but y is a no
    cancelled = user.ok("container", "prune", input=b"n\n")
    assert cancelled.out == ("WARNING! This will remove all stopped containers.\n"
                             "Are you sure you want to continue? [y/N] ")
    assert sorted(names(user.ok("ps", "-a", "--format", "{{.Names}}"))) == ["a", "b", "keep"]
    # a label filter that matches nothing removes nothing
    none = user.ok("container", "prune", "-f", "--filter", "label=tier=other")
    assert none.out == "Total reclaimed space: 0B\n"
    out = user.ok("container", "prune", input=b"y\n").out
    head, _, report = out.partition("[y/N] ")
    lines = report.splitlines()
    assert lines[0] == "Deleted Containers:"
    assert sorted(lines[1:3]) == sorted(ids.values())
    assert lines[3] == "" and re.match(r"Total reclaimed space: \d+(\.\d+)?k?B$", lines[4])
    assert names(user.ok("ps", "-a", "--format", "{{.Names}}")) == ["keep"]
    # the names are free again
    user.ok("run", "--name", "a", "base:latest", "true")
    assert user.ok("container", "prune", "-f", "--filter", "until=1h").out == \
        "Total reclaimed space: 0B\n"
    assert_one_error(user("container", "prune", "-f", "--filter", "until=soon"))
    assert_one_error(user("container", "prune", "-f", "--filter", "colour=red"))


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return f.read().split()
    except OSError:
        return []


def _record_named(cli, name):
    """The container's record as it is on disk (read without the store's lock, which the
    stopped `run` may hold)."""
    top = os.path.join(cli.root, "containers")
    for cid in os.listdir(top):
        try:
            with open(os.path.join(top, cid, "container.json")) as f:
                record = json.load(f)
        except OSError:
            continue
        if record.get("Name") == name:
            return record
    return None


def _store_lock_free(cli):
    with open(os.path.join(cli.root, "store.lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def test_system_prune_leaves_a_container_that_run_is_starting(user):
    """`run` creates the container (record and directories) under the store's lock, then
    starts it; a prune in between must leave it (before: `system prune` removed the
    'created' container while its init was being set up in its directories, and the run
    failed). The race is forced: the `run` is stopped (SIGSTOP) as soon as it has forked the
    container's first process, while its record still says created, and prune runs then."""
    user.ok("run", "--rm", "base:latest", "true")  # the driver probed: no child before
    for attempt in range(30):
        name = "racer%d" % attempt
        proc = subprocess.Popen(user.argv("run", "--name", name, "base:latest", "echo",
                                          "started"),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=user.env)
        deadline = time.monotonic() + 30
        while not _children(proc.pid) and proc.poll() is None:
            assert time.monotonic() < deadline, "run never started a container"
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            record = _record_named(user, name)
            caught = record is not None and record["State"]["Status"] == "created" and \
                _store_lock_free(user)
            if caught:
                pruned = user.ok("system", "prune", "-f")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
        if not caught:
            continue  # it was past the window (or inside the lock): try again
        assert record["Id"] not in pruned.out
        assert (proc.returncode, out, err) == (0, b"started\n", b"")
        assert inspect(user, name)["State"]["Status"] == "exited"
        break
    else:
        raise AssertionError("the run was never caught between create and start")
    # once nothing starts it, the stopped container is pruned as any other
    assert record["Id"] in user.ok("system", "prune", "-f").out


def test_inspect_is_docker_shaped(user):
    user("run", "--name", "ran", "base:latest", "sh", "-c", "exit 2")
    data = inspect(user, "ran")
    for key in ("Id", "Created", "Path", "Args", "State", "Image", "Name", "RestartCount",
                "Driver", "Mounts", "Config", "HostConfig", "LogPath"):
        assert key in data, key
    assert data["Name"] == "/ran" and data["Path"] == "sh" and data["Args"] == ["-c", "exit 2"]
    assert data["Image"].startswith("sha256:") and len(data["Image"]) == 71
    state = data["State"]
    assert set(state) == {"Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead",
                          "Pid", "ExitCode", "Error", "StartedAt", "FinishedAt", "MonitorPid"}
    assert state["Status"] == "exited" and state["ExitCode"] == 2 and state["Pid"] == 0
    assert state["OOMKilled"] is False and state["Dead"] is False
    # this tool's bookkeeping stays out of Docker's State
    assert "PidStartTime" in data["RootlessBox"]
    assert data["HostConfig"]["NetworkMode"] == "host"
    assert data["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    assert data["Config"]["Labels"] == {} or isinstance(data["Config"]["Labels"], dict)
    assert user.ok("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}} {{.Name}}",
                   "ran").out == "exited 2 /ran\n"
    user.ok("create", "--name", "fresh", "base:latest", "true")
    fresh = inspect(user, "fresh")["State"]
    assert fresh["Status"] == "created" and fresh["StartedAt"] == "0001-01-01T00:00:00Z"
    running(user, "up")
    pid = int(user.ok("inspect", "-f", "{{.State.Pid}}", "up").out)
    assert pid > 1 and user.ok("inspect", "-f", "{{.State.Running}}", "up").out == "true\n"


def test_top(user):
    running(user, "tp", "sh", "-c", "sleep 60 & sleep 61; wait")
    init = inspect(user, "tp")["State"]["Pid"]
    deadline = time.monotonic() + 10
    while True:
        out = user.ok("top", "tp").out.splitlines()
        if len(out) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert out[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [line.split(None, 7) for line in out[1:]]
    pids = {int(r[1]) for r in rows}
    assert init in pids  # host pids, as Docker shows them
    cmds = sorted(r[7] for r in rows)
    assert cmds == ["sh -c sleep 60 & sleep 61; wait", "sleep 60", "sleep 61"]
    assert all(int(r[2]) == init for r in rows if int(r[1]) != init)
    assert all(re.match(r"\d\d:\d\d:\d\d$", r[6]) for r in rows)
    custom = user.ok("container", "top", "tp", "-o", "pid,comm").out.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in custom[1:]) == ["sh", "sleep", "sleep"]
    user.ok("run", "--name", "stopped", "base:latest", "true")
    assert_one_error(user("top", "stopped"), 1)
    assert_one_error(user("top", "nosuch"), 1)


def test_stats_no_stream(user):
    running(user, "st", "sh", "-c", "while :; do :; done")
    user.ok("run", "--name", "idle", "base:latest", "true")
    out = user.ok("stats", "--no-stream").out.splitlines()
    assert re.split(r"\s{2,}", out[0]) == ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT",
                                           "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    assert len(out) == 2  # running containers only
    cells = re.split(r"\s{2,}", out[1])
    assert cells[1] == "st"
    assert float(cells[2].rstrip("%")) > 20  # a busy loop
    assert re.match(r"[\d.]+(B|KiB|MiB) / [\d.]+GiB$", cells[3])
    assert cells[5] == "--" and cells[7] == "1"
    fmt = user.ok("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.NetIO}}",
                  "st", "idle").out
    assert fmt == "st 1 --\nidle 0 --\n"
    row = json.loads(user.ok("stats", "--no-stream", "--format", "json", "st").out)
    assert row["Name"] == "st" and row["PIDs"] == "1" and row["CPUPerc"].endswith("%")
    proc = user("stats", "--no-stream", "nosuch")
    assert_one_error(proc, 1)
