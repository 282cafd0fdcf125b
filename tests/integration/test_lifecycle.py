"""Detached containers with no daemon: run -d, create/start, stop, kill, wait, restart, restart
policies, --rm with -d, a dead monitor, and the races issue 6 names.

What a user relies on: `run -d` prints the ID at once even when its own stdout is a pipe that
stays open (the monitor holds none of the caller's stdio), the container outlives the CLI, its
output lands in `logs`, `stop` uses the stop signal then SIGKILL after the timeout, `wait`
prints the exit code, a restart policy restarts (and a stop ends it), a container whose monitor
was killed shows as exited and starts again, and concurrent runs, stops and removals leave every
record consistent. Real namespaces, the real CLI, an unprivileged user.
"""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import Cli, assert_one_error, needs_userns, wait_for

pytestmark = needs_userns


@pytest.fixture
def user(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    yield cli
    # nothing may outlive the test: a leftover monitor would hold the store
    for cid in cli.ok("ps", "-a", "-q", "--no-trunc").out.split():
        cli("rm", "-f", cid)


def state(cli, name):
    return json.loads(cli.ok("inspect", "--type", "container", name).out)[0]["State"]


def restarts(cli, name):
    cid = json.loads(cli.ok("inspect", "--type", "container", name).out)[0]["Id"]
    with open(os.path.join(cli.root, "containers", cid, "container.json")) as f:
        return json.load(f)["RestartCount"]


def test_run_detached_returns_at_once_with_pipes_held_open(user):
    # a caller that reads our stdout to its end (as $(...) does) must not wait for the
    # container: the monitor keeps none of the caller's pipes
    proc = subprocess.Popen(user.argv("run", "-d", "--name", "bg", "base:latest", "sleep",
                                      "30"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=user.env)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    cid = out.decode().strip()
    assert len(cid) == 64 and set(cid) <= set("0123456789abcdef")
    st = state(user, "bg")
    assert st["Status"] == "running" and st["Running"] and st["Pid"] > 0
    assert user.ok("ps", "-q").out.split() == [cid[:12]]
    # the keeper is in a session of its own: the caller's terminal and shell can go
    monitor = st["MonitorPid"]
    assert monitor and os.getsid(monitor) != os.getsid(0)


def test_output_goes_to_the_log_and_wait_prints_the_code(user):
    cid = user.ok("run", "-d", "base:latest", "sh", "-c",
                  "echo out; echo err >&2; exit 3").out.strip()
    assert user.ok("wait", cid).out == "3\n"
    st = state(user, cid)
    assert st["Status"] == "exited" and st["ExitCode"] == 3 and not st["Running"]
    logs = user.ok("logs", cid)
    assert logs.out == "out\n" and logs.err == "err\n"
    with open(os.path.join(user.root, "containers", cid, "json.log")) as f:
        first = json.loads(f.readline())
    assert set(first) == {"log", "stream", "time"}


def test_stop_uses_the_stop_signal_then_kills(user):
    user.ok("run", "-d", "--name", "polite", "base:latest", "sh", "-c",
            "trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.1; done")
    wait_for(lambda: "polite" in user.ok("ps").out, what="running")
    time.sleep(0.3)  # the shell has set its trap
    assert user.ok("stop", "polite").out == "polite\n"
    st = state(user, "polite")
    assert st["Status"] == "exited" and st["ExitCode"] == 0
    assert "got TERM" in user.ok("logs", "polite").out

    user.ok("run", "-d", "--name", "stubborn", "base:latest", "sh", "-c",
            "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(0.3)
    start = time.monotonic()
    user.ok("stop", "-t", "1", "stubborn")
    assert 0.9 < time.monotonic() - start < 8
    assert state(user, "stubborn")["ExitCode"] == 137  # SIGKILL, as Docker reports it
    # stopping a stopped container is fine, as in Docker
    user.ok("stop", "stubborn")


def test_stop_signal_from_run(user):
    user.ok("run", "-d", "--name", "usr1", "--stop-signal", "USR1", "base:latest", "sh",
            "-c", "trap 'exit 42' USR1; while :; do sleep 0.1; done")
    time.sleep(0.3)
    user.ok("stop", "usr1")
    assert state(user, "usr1")["ExitCode"] == 42



def test_wait_answers_at_the_exit_a_restart_policy_follows(user):
    # each run ends when /go appears (taking it): Docker's wait answers at the next exit,
    # where waiting for a stopped record would wait through every restart
    user.ok("run", "-d", "--name", "ra", "--restart", "always", "base:latest", "sh", "-c",
            "until [ -e /go ]; do sleep 0.02; done; rm /go; exit 3")
    waiter = subprocess.Popen(user.argv("wait", "ra"), env=user.env, stdout=subprocess.PIPE)
    try:
        def answered():
            user("exec", "ra", "touch", "/go")  # refused while it restarts: again then
            return waiter.poll() is not None
        wait_for(answered, timeout=60, what="wait's answer")
        assert waiter.communicate()[0] == b"3\n"
        wait_for(lambda: state(user, "ra")["Status"] == "running" and
                 restarts(user, "ra") >= 1, timeout=20, what="restarted")
    finally:
        waiter.kill()
        waiter.wait()
    user.ok("rm", "-f", "ra")

def test_kill_signals(user):
    user.ok("run", "-d", "--name", "k", "base:latest", "sh", "-c",
            "trap 'exit 5' USR1; while :; do sleep 0.1; done")
    time.sleep(0.3)
    assert user.ok("kill", "-s", "usr1", "k").out == "k\n"
    assert user.ok("wait", "k").out == "5\n"
    user.ok("start", "k")
    user.ok("kill", "k")  # SIGKILL by default
    assert user.ok("wait", "k").out == "137\n"
    proc = user("kill", "k")
    assert_one_error(proc, code=1)
    assert "is not running" in proc.err
    bad = user("kill", "-s", "NOPE", "k")
    assert_one_error(bad, code=1)


def test_create_then_start_then_restart(user):
    cid = user.ok("create", "--name", "later", "base:latest", "sh", "-c",
                  "echo started; sleep 30").out.strip()
    assert state(user, "later")["Status"] == "created"
    assert user.ok("start", "later").out == "later\n"
    wait_for(lambda: state(user, "later")["Status"] == "running", what="running")
    first_pid = state(user, "later")["Pid"]
    user.ok("restart", "-t", "1", "later")
    st = state(user, "later")
    assert st["Status"] == "running" and st["Pid"] != first_pid
    wait_for(lambda: user.ok("logs", cid).out.count("started") == 2, what="two starts")
    user.ok("stop", "-t", "0", "later")
    # a stopped container starts again with its filesystem as it was
    user.ok("start", "later")
    assert state(user, "later")["Status"] == "running"


def test_restart_policy_on_failure_counts_and_stop_ends_always(user):
    user.ok("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "base:latest", "sh",
            "-c", "echo try; exit 1")
    wait_for(lambda: state(user, "flaky")["Status"] == "exited" and
             user.ok("logs", "flaky").out.count("try") == 3, timeout=20, what="3 tries")
    assert restarts(user, "flaky") == 2 and state(user, "flaky")["ExitCode"] == 1

    user.ok("run", "-d", "--name", "forever", "--restart", "always", "base:latest", "sh", "-c",
            "sleep 0.2")
    wait_for(lambda: restarts(user, "forever") >= 2, timeout=20, what="restarts")
    user.ok("stop", "-t", "1", "forever")
    count = restarts(user, "forever")
    time.sleep(1.5)
    assert state(user, "forever")["Status"] == "exited" and restarts(user, "forever") == count


def _children(pid):
    found = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            found += [int(p) for p in f.read().split()]
    return found


def _zombies(pid):
    """pid's children that have exited and nobody reaped."""
    found = []
    for child in _children(pid):
        try:
            with open("/proc/%d/stat" % child) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    found.append(child)
        except OSError:
            pass  # reaped meanwhile
    return found


# fails until the 4th run, which stays (a count kept in a bind-mounted directory)
_FAIL_THRICE = "echo x >> /d/n; case $(cat /d/n) in *x*x*x*x*) exec sleep 300;; esac; exit 7"


def test_a_published_container_restarted_leaves_its_keeper_no_zombies(user, tmp_path):
    # the port forwarder (and its helpers) end with each run and come to the keeper, a
    # subreaper: it reaps them, and still records the container's own exit status
    (tmp_path / "d").mkdir()
    user.ok("run", "-d", "--name", "pz", "-p", "127.0.0.1::80", "--restart", "on-failure",
            "-v", "%s:/d" % (tmp_path / "d"), "base:latest", "sh", "-c", _FAIL_THRICE)
    wait_for(lambda: restarts(user, "pz") == 3 and state(user, "pz")["Running"],
             timeout=60, what="three restarts")
    keeper = state(user, "pz")["MonitorPid"]
    wait_for(lambda: not _zombies(keeper), timeout=20, what="the keeper's zombies reaped")
    until = "%d" % (time.time() + 1)
    dies = user.ok("events", "--since", "5m", "--until", until, "--filter", "container=pz",
                   "--filter", "event=die").out.splitlines()
    assert len(dies) == 3 and all("exitCode=7" in line for line in dies), dies
    user.ok("restart", "-t", "1", "pz")
    keeper = wait_for(lambda: state(user, "pz")["MonitorPid"], what="the new keeper")
    wait_for(lambda: not _zombies(keeper), timeout=20, what="no zombie after `restart`")


@pytest.mark.parametrize("zygote", ["1", "0"])
def test_the_keeper_holds_no_directory_of_the_callers(user, tmp_path, zygote):
    # Docker's daemon and conmon hold none: the directory `run -d` ran in can be unmounted
    # or removed while the container lives, and a relative bind mount given there still
    # mounts at each restart
    work = tmp_path / "work"
    (work / "d").mkdir(parents=True)
    proc = subprocess.run(user.argv("run", "-d", "--name", "cwd", "-p", "127.0.0.1::80",
                                    "--restart", "on-failure", "-v", "./d:/d", "base:latest",
                                    "sh", "-c", _FAIL_THRICE),
                          cwd=str(work), env=dict(user.env, RBX_ZYGOTE=zygote),
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: restarts(user, "cwd") == 3 and state(user, "cwd")["Running"],
             timeout=60, what="three restarts")
    assert (work / "d" / "n").read_text() == "x\n" * 4
    keeper = state(user, "cwd")["MonitorPid"]
    held = []
    for pid in [keeper] + _children(keeper):  # the forwarder, the container's init
        try:
            cwd = os.readlink("/proc/%d/cwd" % pid)
        except OSError:
            continue  # ended meanwhile
        if cwd == str(work) or cwd.startswith(str(work) + "/"):
            held.append(pid)
    assert held == []


def test_detached_rm_removes_the_container_when_it_exits(user):
    user.ok("run", "-d", "--rm", "--name", "gone", "base:latest", "true")
    wait_for(lambda: "gone" not in user.ok("ps", "-a").out, what="removal")
    # the name is free at once
    user.ok("run", "-d", "--rm", "--name", "gone", "base:latest", "true")


def test_dead_monitor_shows_exited_and_can_start_again(user):
    user.ok("run", "-d", "--name", "orphan", "base:latest", "sleep", "30")
    st = state(user, "orphan")
    os.kill(st["MonitorPid"], signal.SIGKILL)
    wait_for(lambda: state(user, "orphan")["Status"] == "exited", what="exited")
    # the container went with its monitor (parent-death signal), not left running unwatched
    wait_for(lambda: not os.path.exists("/proc/%d" % st["Pid"]) or
             open("/proc/%d/stat" % st["Pid"]).read().split()[2] == "Z", what="init gone")
    user.ok("start", "orphan")
    assert state(user, "orphan")["Status"] == "running"


def test_bad_command_in_detached_run(user):
    proc = user("run", "-d", "base:latest", "/no/such/command")
    assert_one_error(proc, code=127)
    assert user.ok("ps", "-q").out == ""


def test_start_attached_to_a_terminal_container_whose_first_run_ends_at_once(user):
    """`start -a` of a -t container with a restart policy whose run ends before the client
    reaches its terminal (the socket is then a restart's, or gone): the first run's output
    from the log and its status, as `run` does, not an error."""
    user.ok("create", "-t", "--name", "quick", "--restart", "on-failure:2", "base",
            "sh", "-c", "echo hi-from-quick; exit 4")
    proc = user("start", "-a", "quick")
    assert proc.returncode == 4, proc
    assert proc.out.count("hi-from-quick") == 1, proc.out
    wait_for(lambda: state(user, "quick")["Status"] == "exited" and
             restarts(user, "quick") == 2, timeout=60, what="the restarts over")
    user.ok("rm", "quick")


def test_attach_to_a_restarting_container_is_refused(user):
    """Docker's CLI: no attach to a container waiting out its restart delay (its stream
    would be of a run that ended); the delay doubles, so after five restarts it is 3.2 s."""
    user.ok("run", "-d", "--name", "loop", "--restart", "always", "base", "sh", "-c", "exit 1")
    wait_for(lambda: restarts(user, "loop") >= 5 and
             state(user, "loop")["Status"] == "restarting", timeout=120,
             what="a long restart delay")
    proc = user("attach", "loop")
    assert_one_error(proc, 1)
    assert "cannot attach to a restarting container" in proc.err, proc.err
    user.ok("rm", "-f", "loop")


def test_restart_needs_a_valid_policy_and_no_rm(user):
    assert_one_error(user("run", "-d", "--restart", "sometimes", "base:latest", "true"))
    # Docker's CLI: a container removed at its exit cannot be restarted (run and create,
    # with or without -d, exit 125), and nothing is made
    for args in (("run", "--rm"), ("run", "-d", "--rm"), ("create", "--rm")):
        proc = user(*args, "--restart", "on-failure:2", "base:latest", "true")
        assert_one_error(proc, code=125)
        assert "conflicting options: cannot specify both --restart and --rm" in proc.err
    assert user.ok("ps", "-a", "-q").out == ""
    user.ok("run", "--rm", "--restart", "no", "base:latest", "true")


def test_foreground_run_with_a_restart_policy_returns_at_the_first_exit(user):
    # as Docker's: the CLI shows the first run and returns its status; the container's
    # monitor goes on restarting it per the policy
    proc = user("run", "--name", "fg", "--restart", "on-failure:2", "base:latest", "sh", "-c",
                "echo try; exit 3")
    assert (proc.returncode, proc.out) == (3, "try\n"), proc.err
    wait_for(lambda: restarts(user, "fg") == 2 and state(user, "fg")["Status"] == "exited",
             timeout=20, what="two restarts, then exited")
    assert state(user, "fg")["ExitCode"] == 3
    assert user.ok("logs", "fg").out == "try\n" * 3

    # always: the first status (the second run finds the file the first left), and the
    # container runs again afterwards
    proc = user("run", "--name", "fa", "--restart", "always", "base:latest", "sh", "-c",
                "[ -e /ran ] && exec sleep 30; touch /ran; echo first; exit 7")
    assert (proc.returncode, proc.out) == (7, "first\n"), proc.err
    wait_for(lambda: state(user, "fa")["Status"] == "running" and restarts(user, "fa") == 1,
             timeout=20, what="running again")
    user.ok("rm", "-f", "fa")

    # a signal to the CLI goes to the container (sig-proxy), whose exit the policy follows
    proc = subprocess.Popen(user.argv("run", "--name", "fs", "--restart", "on-failure:1",
                                      "base:latest", "sh", "-c",
                                      "trap 'exit 9' TERM; echo ready; "
                                      "while :; do sleep 0.1; done"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=user.env)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 9
    wait_for(lambda: state(user, "fs")["Status"] == "running" and restarts(user, "fs") == 1,
             timeout=20, what="restarted after the signal")
    user.ok("rm", "-f", "fs")

    # start -a as well: the next exit, not the restart's
    user.ok("create", "--name", "sa", "--restart", "on-failure:1", "base:latest", "sh", "-c",
            "echo once; exit 2")
    proc = user("start", "-a", "sa")
    assert (proc.returncode, proc.out) == (2, "once\n"), proc.err
    wait_for(lambda: restarts(user, "sa") == 1 and state(user, "sa")["Status"] == "exited",
             timeout=20, what="one restart, then exited")


def test_foreground_terminal_with_a_restart_policy(user):
    from conftest import run_in_pty
    script = "echo ready; read x; echo got-$x; exit 4"

    def answer(word):
        def on_output(master, data):
            if b"ready" in data and word:
                os.write(master, word.pop().encode() + b"\r")
        return on_output
    text, status = run_in_pty(user, ["run", "-it", "--name", "ti", "--restart", "on-failure:1",
                                     "base:latest", "sh", "-c", script],
                              on_output=answer(["one"]), timeout=30)
    assert status == 4 and "got-one" in text, text
    # restarted behind the CLI: `attach` reaches the new run, whose exit is the last
    wait_for(lambda: state(user, "ti")["Status"] == "running" and restarts(user, "ti") == 1,
             timeout=20, what="restarted")
    text, status = run_in_pty(user, ["attach", "ti"], timeout=30, send=b"two\r")
    assert status == 4 and "got-two" in text, text
    assert state(user, "ti")["Status"] == "exited" and restarts(user, "ti") == 1

    # ctrl-p ctrl-q still detaches: the CLI returns 0, the container runs on
    def detach(master, data):
        if b"ready" in data and not sent:
            os.write(master, b"\x10\x11")
            sent.append(True)
    sent = []
    text, status = run_in_pty(user, ["run", "-it", "--name", "tk", "--restart", "always",
                                     "base:latest", "sh", "-c", script],
                              on_output=detach, timeout=30)
    assert status == 0 and sent, text
    assert state(user, "tk")["Status"] == "running" and restarts(user, "tk") == 0
    user.ok("rm", "-f", "tk")


def test_pause_says_why_it_cannot(user):
    user.ok("run", "-d", "--name", "p", "base:latest", "sleep", "30")
    proc = user("pause", "p")
    if proc.returncode == 0:
        assert state(user, "p")["Status"] == "paused"
        user.ok("unpause", "p")
        assert state(user, "p")["Status"] == "running"
    else:
        assert_one_error(proc, code=1)
        assert "cgroup" in proc.err


# -- faults and concurrency ----------------------------------------------------------------------

def test_concurrent_detached_runs_then_ps(user):
    procs = [subprocess.Popen(user.argv("run", "-d", "--name", "c%d" % i, "base:latest",
                                        "sleep", "30"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=user.env)
             for i in range(8)]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids.append(out.decode().strip())
    listed = user.ok("ps", "-q", "--no-trunc").out.split()
    assert sorted(listed) == sorted(ids)
    for cid in ids:
        assert state(user, cid)["Status"] == "running"


def test_concurrent_foreground_runs(user):
    procs = [subprocess.Popen(user.argv("run", "--rm", "base:latest", "echo", str(i)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=user.env)
             for i in range(16)]
    outs = sorted(int(p.communicate(timeout=120)[0]) for p in procs)
    assert outs == list(range(16))
    assert user.ok("ps", "-a", "-q").out == ""


def test_rm_force_racing_stop(user):
    for round_ in range(3):
        name = "race%d" % round_
        user.ok("run", "-d", "--name", name, "base:latest", "sh", "-c",
                "trap '' TERM; while :; do sleep 0.1; done")
        results = {}
        stopper = threading.Thread(target=lambda: results.setdefault(
            "stop", user("stop", "-t", "1", name)))
        stopper.start()
        time.sleep(0.1)
        removed = user("rm", "-f", name)
        stopper.join(30)
        assert removed.returncode == 0, removed.err
        assert results["stop"].returncode in (0, 1)
        # the record is gone, whole: no half-written leftovers, and the name is free
        assert name not in user.ok("ps", "-a").out
        assert not [d for d in os.listdir(os.path.join(user.root, "containers"))
                    if not os.path.exists(os.path.join(user.root, "containers", d,
                                                       "container.json"))]


def test_start_attach_streams_this_run_and_returns_its_status(user):
    user.ok("create", "--name", "att", "base:latest", "sh", "-c",
            "echo one; sleep 0.3; echo two >&2; exit 4")
    proc = user("start", "-a", "att")
    assert proc.returncode == 4
    assert proc.out == "one\n" and proc.err == "two\n"
    # a second start -a shows only the second run's output
    proc = user("start", "-a", "att")
    assert proc.out == "one\n"


def test_generate_systemd_unit_starts_and_stops(user, tmp_path):
    user.ok("create", "--name", "svc", "base:latest", "sleep", "30")
    unit = user.ok("generate", "systemd", "--name", "-t", "1", "svc").out
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and
                 not line.startswith("#"))
    assert lines["Type"] == "forking" and lines["WantedBy"] == "default.target"
    assert lines["ExecStart"].endswith(" start svc")
    assert lines["ExecStop"].endswith(" stop -t 1 svc")
    assert "Environment=RBX_ZYGOTE=0" in unit.splitlines()  # one keeper: nothing to share
    # what the unit runs works, and the PIDFile names the container's monitor
    env = dict(user.env)
    subprocess.run(lines["ExecStart"], shell=True, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    with open(lines["PIDFile"]) as f:
        assert int(f.read()) == state(user, "svc")["MonitorPid"]
    subprocess.run(lines["ExecStop"], shell=True, check=True, env=env,
                   stdout=subprocess.DEVNULL)
    assert state(user, "svc")["Status"] == "exited"


def test_attach_to_a_detached_terminal_and_detach(user):
    from conftest import run_in_pty
    user.ok("run", "-d", "-t", "--name", "term", "base:latest", "sh")
    wait_for(lambda: state(user, "term")["Status"] == "running", what="running")
    sent = []

    def detach(master, data):
        if "attached-42" in data.decode(errors="replace") and not sent:
            os.write(master, b"\x10\x11")  # ctrl-p ctrl-q
            sent.append("detach")
    text, status = run_in_pty(user, ["attach", "term"], on_output=detach, timeout=20,
                              send=b"echo attached-$((6*7))\r")
    # Docker's attach returns its EscapeError: printed, status 1
    assert status == 1 and "attached-42" in text and "read escape sequence" in text
    assert state(user, "term")["Status"] == "running"

    text, status = run_in_pty(user, ["attach", "term"], timeout=20, send=b"exit 3\r")
    assert status == 3
    assert state(user, "term")["Status"] == "exited"
    # what the terminal showed is in the log too
    assert "attached-42" in user.ok("logs", "term").out


def test_attach_sizes_the_terminal_as_the_client_and_follows_its_resizes(user):
    import fcntl
    import struct
    import termios
    from conftest import run_in_pty
    user.ok("run", "-d", "-t", "--name", "sized", "base:latest", "sh")
    wait_for(lambda: state(user, "sized")["Status"] == "running", what="running")
    steps = []

    def converse(master, data):
        text = data.decode(errors="replace")
        if "size:33 97" in text and not steps:
            steps.append("resized")
            # the attaching terminal changes size: attach gets SIGWINCH, the container's
            # terminal follows
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            time.sleep(0.3)
            os.write(master, b"echo size:$(stty size)\r")
        elif "size:40 120" in text and len(steps) == 1:
            steps.append("detach")
            os.write(master, b"\x10\x11")
    text, status = run_in_pty(user, ["attach", "sized"], rows=33, cols=97, on_output=converse,
                              timeout=20, send=b"echo size:$(stty size)\r")
    assert steps == ["resized", "detach"], text
    assert status == 1 and "read escape sequence" in text  # detached, as Docker's attach
    user.ok("rm", "-f", "sized")


def test_attach_refuses_a_stopped_container(user):
    user.ok("create", "--name", "idle", "base:latest", "true")
    proc = user("attach", "idle")
    assert_one_error(proc, code=1)
    assert "start it first" in proc.err


def test_start_attach_interactive_feeds_stdin(user):
    user.ok("create", "-i", "--name", "cat", "base:latest", "sh", "-c",
            "read line; echo got:$line; cat")
    proc = user("start", "-a", "-i", "cat", input=b"hello\nmore\n", timeout=30)
    assert proc.returncode == 0, proc.err
    assert proc.out == "got:hello\nmore\n"
    # a detached -i container reads what `attach` sends; its stdin closes when attach ends
    user.ok("run", "-d", "-i", "--name", "reader", "base:latest", "sh", "-c",
            "while read l; do echo seen:$l; done; echo eof")
    proc = user("attach", "reader", input=b"one\ntwo\n", timeout=30)
    assert proc.returncode == 0, proc.err
    assert proc.out == "seen:one\nseen:two\neof\n"


def test_input_the_container_does_not_read_never_stalls_its_output(user):
    # a -i container that never reads its stdin, and a client that sends far more than a
    # pipe holds: the watcher keeps logging the container's output meanwhile
    user.ok("run", "-d", "-i", "--name", "deaf", "base:latest", "sh", "-c",
            "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.05; done")
    client = subprocess.Popen(user.argv("attach", "deaf"), env=user.env,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    feeder = threading.Thread(target=lambda: _feed(client.stdin, 4 << 20), daemon=True)
    feeder.start()
    try:
        time.sleep(1.0)  # the client's input has filled the container's stdin pipe by now
        before = user.ok("logs", "deaf").out.count("tick")
        time.sleep(1.0)
        after = user.ok("logs", "deaf").out.count("tick")
        assert after >= before + 5, (before, after)
    finally:
        client.kill()
        client.wait()
    user.ok("rm", "-f", "deaf")


def _feed(pipe, size):
    try:
        pipe.write(b"x" * size)
        pipe.close()
    except OSError:
        pass


def test_one_keeper_process_per_detached_container(user):
    user.ok("run", "-d", "--name", "lean", "base:latest", "sleep", "30")
    st = state(user, "lean")
    with open("/proc/%d/stat" % st["Pid"]) as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    # the container's init is the monitor's own child: no process in between
    assert ppid == st["MonitorPid"]


@pytest.mark.skipif(not __import__("conftest").has_subuid(), reason="needs a subuid range")
def test_a_killed_run_takes_a_container_of_another_user_with_it(user):
    proc = subprocess.Popen(user.argv("run", "--name", "other", "-u", "1000", "base:latest",
                                      "sleep", "60"), env=user.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def started():
        proc_ = user("inspect", "--type", "container", "other")
        return proc_.returncode == 0 and json.loads(proc_.out)[0]["State"].get("Pid")
    pid = wait_for(started, what="started")
    proc.kill()
    proc.wait()
    # switching to uid 1000 clears the parent-death signal; it is armed again after
    wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
             open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] == "Z",
             what="the container's end")
