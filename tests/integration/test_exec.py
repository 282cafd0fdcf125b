"""`exec` end to end: a command joins a running container's namespaces and root, for real."""

import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import needs_subuid, needs_userns, run_in_pty

pytestmark = needs_userns

DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
# traps TERM so the fixture can end it (pid 1 ignores signals it has no handler for)
KEEPER = ("trap 'exit 0' TERM; echo hello > /tmp/made; echo ready; "
          "while :; do sleep 0.1; done")


def _record(cli, name):
    top = os.path.join(cli.root, "containers")
    for cid in os.listdir(top):
        try:
            with open(os.path.join(top, cid, "container.json")) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if record.get("Name") == name:
            return record
    return None


def start_container(cli, name, *run_args, env=None):
    """A foreground `run` in the background, returned once its command runs and its record
    says running."""
    full_env = dict(cli.env, **(env or {}))
    proc = subprocess.Popen(cli.argv("run", "--name", name, *run_args), env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    assert ready and proc.stdout.readline() == b"ready\n", proc.stderr.read1()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        record = _record(cli, name)
        if record and record["State"].get("Status") == "running":
            return proc
        time.sleep(0.05)
    raise AssertionError("container %s never recorded as running" % name)


def stop_container(cli, name, proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    cli("rm", "-f", name)


@pytest.fixture(scope="module")
def box(cli, image):
    proc = start_container(cli, "box", "--hostname", "boxhost", "-e", "FROM_RUN=run",
                           "-e", "BOTH=run", "-w", "/srv", image, "sh", "-c", KEEPER)
    yield "box"
    stop_container(cli, "box", proc)


# -- status, output, errors ---------------------------------------------------------------------

def test_exit_status_and_output_pass_through(cli, box):
    proc = cli("exec", box, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (proc.returncode, proc.out, proc.err) == (7, "out\n", "err\n")
    assert cli("container", "exec", box, "true").returncode == 0


def test_command_not_found_is_127(cli, box):
    proc = cli("exec", box, "no-such-cmd")
    assert proc.returncode == 127
    assert 'exec: "no-such-cmd": executable file not found in $PATH' in proc.err
    assert "Traceback" not in proc.err
    denied = cli("exec", box, "/etc/passwd")
    assert denied.returncode == 126 and "permission denied" in denied.err


def test_stopped_or_unknown_container_fails_as_docker_does(cli, image):
    cli("run", "--name", "stopped", image, "true")
    cid = _record(cli, "stopped")["Id"]
    proc = cli("exec", "stopped", "true")
    assert proc.returncode == 1
    assert proc.err.startswith("rootless-box: error: container %s is not running\n" % cid)
    missing = cli("exec", "no-such-box", "true")
    assert missing.returncode == 1 and "no such container: no-such-box" in missing.err
    cli.ok("rm", "stopped")


def test_usage_errors(cli, box):
    assert cli("exec", box).returncode == 1  # no command: Docker's arity error, 1
    priv = cli("exec", "--privileged", box, "true")
    assert priv.returncode == 1 and "--privileged is not supported" in priv.err
    keys = cli("exec", "--detach-keys", "ctrl-a,x", box, "true")
    assert keys.returncode == 1 and "--detach-keys is not supported for exec" in keys.err
    notty = cli("exec", "-it", box, "true", input=b"")
    assert notty.returncode == 1 and "the input device is not a TTY" in notty.err


# -- what the process sees ----------------------------------------------------------------------

def test_sees_the_containers_files_processes_and_hostname(cli, box):
    assert cli.ok("exec", box, "cat", "/tmp/made").out == "hello\n"
    out = cli.ok("exec", box, "sh", "-c",
                 "hostname; echo $$; tr '\\0' ' ' < /proc/1/cmdline; echo").out.splitlines()
    assert out[0] == "boxhost"
    assert out[1] != "1" and int(out[1]) < 1000  # a pid of the container's namespace
    assert "trap 'exit 0' TERM" in out[2]
    pids = cli.ok("exec", box, "ps", "-o", "pid,args").out
    assert "while :" in pids or "sleep" in pids  # the container's own processes
    assert "pytest" not in pids  # and none of the host's


def test_a_file_written_by_exec_is_seen_by_the_container(cli, box):
    cli.ok("exec", box, "sh", "-c", "echo from-exec > /tmp/by-exec")
    assert cli.ok("exec", box, "cat", "/tmp/by-exec").out == "from-exec\n"


def test_environment_is_the_containers_plus_e(cli, box, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=1\nBOTH=file\n")
    out = cli.ok("exec", "--env-file", env_file, "-e", "BOTH=exec", "-e", "PASSED",
                 "-e", "NEW=x", box, "env", env={"PASSED": "from-host"}).out
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["FROM_RUN"] == "run" and env["BOTH"] == "exec" and env["FROM_FILE"] == "1"
    assert env["PASSED"] == "from-host" and env["NEW"] == "x"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOSTNAME"] == "boxhost" and env["HOME"] == "/root"
    assert "XDG_DATA_HOME" not in env and "TERM" not in env  # never the host's


def test_workdir_defaults_to_the_containers_and_is_not_created(cli, box):
    assert cli.ok("exec", box, "pwd").out == "/srv\n"
    assert cli.ok("exec", "-w", "/tmp", box, "pwd").out == "/tmp\n"
    missing = cli("exec", "-w", "/no/such/dir", box, "pwd")
    assert missing.returncode == 126 and 'chdir to cwd ("/no/such/dir")' in missing.err
    assert cli("exec", "-w", "relative", box, "pwd").returncode == 1


def test_capabilities_and_no_new_privs_are_the_containers(cli, box):
    status = cli.ok("exec", box, "cat", "/proc/self/status").out
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert int(fields["CapEff"], 16) == DOCKER_DEFAULT_CAPS
    assert int(fields["CapBnd"], 16) == DOCKER_DEFAULT_CAPS
    assert fields["NoNewPrivs"].strip() == "1"


@needs_subuid
def test_user_by_name_uid_and_group(cli, box):
    assert cli.ok("exec", "-u", "app", box, "sh", "-c",
                  "id -u; id -g; echo $HOME").out.split() == ["1000", "1000", "/home/app"]
    assert cli.ok("exec", "-u", "1234:5678", box, "sh", "-c",
                  "id -u; id -g").out.split() == ["1234", "5678"]
    caps = cli.ok("exec", "-u", "app", box, "grep", "CapEff", "/proc/self/status")
    assert int(caps.out.split()[1], 16) == 0
    unknown = cli("exec", "-u", "nobody-here", box, "true")
    assert unknown.returncode == 1 and "unable to find user nobody-here" in unknown.err


def test_single_mapping_container(cli, image, tmp_path):
    empty = tmp_path / "subid"
    empty.write_text("")
    env = {"RBX_SUBUID_FILE": str(empty), "RBX_SUBGID_FILE": str(empty)}
    proc = start_container(cli, "single", image, "sh", "-c", KEEPER, env=env)
    try:
        out = cli.ok("exec", "single", "sh", "-c", "id -u; cat /proc/self/uid_map").out
        assert out.split()[:4] == ["0", "0", str(os.getuid()), "1"]
        # another user's ids are answered by the fake root's supervisor (issue 22)
        assert cli.ok("exec", "-u", "1000", "single", "id", "-u").out == "1000\n"
    finally:
        stop_container(cli, "single", proc)


# -- stdin, tty, detach, signals ----------------------------------------------------------------

def test_stdin_only_with_interactive(cli, box):
    assert cli.ok("exec", "-i", box, "cat", input=b"data\n").out == "data\n"
    assert cli.ok("exec", box, "cat", input=b"data\n").out == ""


def test_tty(cli, box):
    text, status = run_in_pty(cli, ("exec", "-it", box, "sh", "-c",
                                     "tty; stty size; echo $TERM; exit 5"), 33, 111)
    assert "/dev/pts/" in text and "33 111" in text and "xterm" in text, text
    assert status == 5


def test_detached_returns_at_once_and_runs_on(cli, box):
    started = time.monotonic()
    proc = cli("exec", "-d", box, "sh", "-c",
               "sleep 1; grep PPid /proc/$$/status > /tmp/detached", timeout=10)
    assert (proc.returncode, proc.out, proc.err) == (0, "", "")
    assert time.monotonic() - started < 5
    assert cli("exec", box, "test", "-e", "/tmp/detached").returncode == 1
    deadline = time.monotonic() + 10
    while cli("exec", box, "test", "-e", "/tmp/detached").returncode != 0:
        assert time.monotonic() < deadline, "the detached command never ran"
        time.sleep(0.2)
    # its parent is outside the container (PPid 0 there), as under Docker's shim: the joiner
    # that waits for it on the host
    assert cli.ok("exec", box, "cat", "/tmp/detached").out.split() == ["PPid:", "0"]
    assert cli("exec", "-d", box, "no-such-cmd").returncode == 127


def test_a_detached_command_is_reaped_under_an_init_that_does_not_reap(cli, image):
    cli.ok("run", "-d", "--name", "noreap", image, "busybox", "sleep", "300")
    init = json.loads(cli.ok("inspect", "noreap").out)[0]["State"]["Pid"]
    # and `$(exec -d ...)` returns at once: nothing keeps the caller's stdout open
    proc = subprocess.run(cli.argv("exec", "-d", "noreap", "busybox", "sleep", "1"),
                          env=cli.env, capture_output=True, timeout=10)
    assert proc.returncode == 0
    time.sleep(2)
    with open("/proc/%d/task/%d/children" % (init, init)) as f:
        assert f.read().split() == []  # no zombie left under the container's init
    assert cli.ok("exec", "noreap", "busybox", "ps").out.count("\n") == 3  # header, init, ps
    cli("rm", "-f", "noreap")


def test_sigterm_reaches_the_command(cli, box):
    proc = subprocess.Popen(cli.argv("exec", box, "sh", "-c",
                                     "trap 'echo got-term; exit 9' TERM; echo ready; "
                                     "while :; do sleep 0.1; done"),
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    assert ready and proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=10)
    assert proc.returncode == 9 and out == b"got-term\n"
    # the container is untouched
    assert cli.ok("exec", box, "cat", "/tmp/made").out == "hello\n"


def _peek(path):
    with open(path) as f:
        return [f.read(), os.getuid()]


def test_run_in_target_works_in_the_containers_root(cli, box):
    """The helper `cp` builds on: a function run as root of the container's user namespace,
    seeing its mounts."""
    from rootless_box.userns import join
    pid = _record(cli, box)["State"]["Pid"]
    target = join.open_target(pid)
    try:
        assert join.run_in_target(target, _peek, "/tmp/made") == ["hello\n", 0]
    finally:
        target.close()
    assert join.open_target(pid, lambda: False) is None  # a recycled pid is refused


# -- what exec takes from the container ---------------------------------------------------------

def test_ulimits_are_the_containers(cli, image):
    """Docker's exec runs with the container's process spec: its --ulimit values too."""
    cli.ok("run", "-d", "--name", "limited", "--ulimit", "nofile=1000:2000", image,
           "sleep", "300")
    try:
        assert cli.ok("exec", "limited", "sh", "-c", "ulimit -n; ulimit -Hn").out.split() == \
            ["1000", "2000"]
    finally:
        cli("rm", "-f", "limited")


def test_exec_into_an_init_container_run_as_another_user(cli, image):
    """`run --init -u 1000`: pid 1 is the init program exec'd as that user (as Docker's
    docker-init), so exec enters it, and its environment is the container's, not the one of
    the CLI that started it."""
    cli.ok("run", "-d", "--name", "inited", "--init", "-u", "1000", image, "sleep", "300",
           env={"RBX_TEST_HOST_SECRET": "host-only"})
    try:
        assert cli.ok("exec", "inited", "id", "-u").out == "1000\n"
        assert cli.ok("exec", "-u", "2000", "inited", "id", "-u").out == "2000\n"
        environ = cli.ok("exec", "inited", "cat", "/proc/1/environ").out.split("\0")
        assert any(e.startswith("PATH=") for e in environ)
        assert not [e for e in environ if "host-only" in e]
    finally:
        cli("rm", "-f", "inited")
    out = cli.ok("run", "--rm", "--init", image, "sh", "-c",
                 "tr '\\0' '\\n' < /proc/1/environ", env={"RBX_TEST_HOST_SECRET": "host-only"})
    assert "PATH=" in out.out and "host-only" not in out.out
