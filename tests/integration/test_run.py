"""`run` end to end: real user namespaces, overlayfs, a real pty, signals, exit codes."""

import os
import select
import shutil
import signal
import struct
import subprocess
import time

import pytest

from conftest import Cli, needs_subuid, needs_userns, run_in_pty

pytestmark = needs_userns

DOCKER_DEFAULT_CAPS = 0x00000000A80425FB


def containers(cli):
    path = os.path.join(cli.root, "containers")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


# -- the command, its status ------------------------------------------------------------------

def test_output_and_exit_status(cli, image):
    proc = cli("run", "--rm", image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.out, proc.err) == (3, "out\n", "err\n")


def test_command_is_pid_1_in_fresh_namespaces(cli, image):
    out = cli.ok("run", "--rm", "--hostname", "box", image, "sh", "-c",
                 "echo $$; hostname; ls /proc | grep -c '^[0-9]'").out.split()
    assert out[0] == "1" and out[1] == "box"
    assert int(out[2]) <= 3  # sh, ls, grep: the host's processes are invisible


def test_not_found_and_not_executable(cli, image, tmp_path):
    missing = cli("run", "--rm", image, "no-such-cmd")
    assert missing.returncode == 127
    assert 'exec: "no-such-cmd": executable file not found in $PATH' in missing.err
    script = tmp_path / "noexec"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    denied = cli("run", "--rm", "-v", "%s:/noexec" % script, image, "/noexec")
    assert denied.returncode == 126 and "permission denied" in denied.err
    assert "Traceback" not in missing.err + denied.err


def test_image_cmd_entrypoint_and_override(cli, image):
    assert cli.ok("run", "--rm", image, "echo", "a b").out == "a b\n"
    assert cli.ok("run", "--rm", "--entrypoint", "echo", image, "x").out == "x\n"
    # The image's CMD is ["sh"]; with -i, sh reads its script from stdin.
    assert cli.ok("run", "--rm", "-i", image, input=b"echo from-cmd\n").out == "from-cmd\n"


def test_stdin_only_with_interactive(cli, image):
    assert cli.ok("run", "--rm", "-i", image, "cat", input=b"data\n").out == "data\n"
    assert cli.ok("run", "--rm", image, "cat", input=b"data\n").out == ""


# -- environment, user, working directory ------------------------------------------------------

def test_environment(cli, image, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# c\nFILE=1\nBOTH=file\n")
    out = cli.ok("run", "--rm", "--env-file", env_file, "-e", "BOTH=cli", "-e", "PASSED",
                 "--hostname", "h1", image, "env", env={"PASSED": "from-host"}).out
    env = dict(line.split("=", 1) for line in out.splitlines())
    assert env["FILE"] == "1" and env["BOTH"] == "cli" and env["PASSED"] == "from-host"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert env["HOME"] == "/root" and env["HOSTNAME"] == "h1"
    assert "XDG_DATA_HOME" not in env  # never the host's environment


def test_workdir_is_created(cli, image):
    assert cli.ok("run", "--rm", "-w", "/new/dir", image, "pwd").out == "/new/dir\n"
    bad = cli("run", "--rm", "-w", "relative", image, "pwd")
    assert bad.returncode == 125 and "absolute path" in bad.err


@needs_subuid
def test_user_by_name_uid_and_group(cli, image):
    assert cli.ok("run", "--rm", "-u", "app", image, "sh", "-c",
                  "id -u; id -g; echo $HOME").out.split() == ["1000", "1000", "/home/app"]
    assert cli.ok("run", "--rm", "-u", "1234:5678", image, "sh", "-c",
                  "id -u; id -g; echo $HOME").out.split() == ["1234", "5678", "/"]
    caps = cli.ok("run", "--rm", "-u", "app", image, "grep", "CapEff", "/proc/self/status")
    assert int(caps.out.split()[1], 16) == 0  # a non-root user has no capabilities


def test_unknown_user_is_refused_and_leaves_nothing(cli, image):
    before = containers(cli)
    proc = cli("run", "-u", "nobody-here", image, "true")
    assert proc.returncode == 125
    assert "unable to find user nobody-here" in proc.err
    assert proc.err.count("rootless-box: error:") == 1 and "Traceback" not in proc.err
    assert containers(cli) == before


# -- security: capabilities, /proc, /sys, isolation ---------------------------------------------

def test_capabilities_and_no_new_privs(cli, image):
    status = cli.ok("run", "--rm", image, "cat", "/proc/self/status").out
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert int(fields["CapEff"], 16) == DOCKER_DEFAULT_CAPS
    assert int(fields["CapBnd"], 16) == DOCKER_DEFAULT_CAPS
    assert fields["NoNewPrivs"].strip() == "1"


def test_proc_and_sys_are_protected(cli, image):
    masked = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
              if os.path.exists(p)]
    assert masked, "the host has none of the masked /proc files"
    out = cli.ok("run", "--rm", image, "sh", "-c",
                 "for f in %s; do wc -c < $f; done; "
                 "echo x > /proc/sys/kernel/domainname && echo WROTE; "
                 "touch /sys/x 2>/dev/null && echo SYSRW; echo done" % " ".join(masked))
    assert out.out.split() == ["0"] * len(masked) + ["done"]
    assert "Read-only file system" in out.err
    if os.path.isdir("/sys/firmware"):
        assert cli.ok("run", "--rm", image, "ls", "-A", "/sys/firmware").out == ""


def test_dev_is_minimal_and_works(cli, image):
    out = cli.ok("run", "--rm", image, "sh", "-c",
                 "ls /dev | sort | tr '\\n' ' '; echo; head -c 4 /dev/urandom | wc -c; "
                 "echo x > /dev/null && echo null-ok; echo s > /dev/shm/f && cat /dev/shm/f")
    names = out.out.split("\n")[0].split()
    for node in ("null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"):
        assert node in names
    assert "sda" not in names and "kmsg" not in names
    assert out.out.split("\n")[1:4] == ["4", "null-ok", "s"]


def test_writes_never_reach_the_image_or_the_host(cli, image):
    layers = os.path.join(cli.root, "layers")
    snapshot = {d: sorted(os.listdir(os.path.join(layers, d))) for d in os.listdir(layers)}
    cli.ok("run", "--rm", image, "sh", "-c", "echo x > /written; rm -rf /bin/ls /etc; "
                                             "touch /tmp/t")
    assert cli.ok("run", "--rm", image, "sh", "-c", "ls /written /etc/passwd 2>&1; "
                                                   "ls /bin/ls").out.count("No such") == 1
    assert {d: sorted(os.listdir(os.path.join(layers, d))) for d in os.listdir(layers)} == \
        snapshot


def test_host_paths_are_not_reachable(cli, image):
    marker = "/tmp/rbx-host-only-%d" % os.getpid()
    open(marker, "w").close()
    try:
        out = cli("run", "--rm", image, "sh", "-c", "ls %s; ls /home; cat /proc/1/mounts"
                  % marker)
        assert "No such file" in out.err
        assert os.path.expanduser("~") not in out.out.replace(cli.data_home, "")
    finally:
        os.unlink(marker)


def test_rm_removes_the_container_and_its_writes(cli, image):
    before = containers(cli)
    cli.ok("run", "--rm", image, "sh", "-c", "dd if=/dev/zero of=/big bs=1k count=64 "
                                             "2>/dev/null")
    assert containers(cli) == before


def test_rm_rootfs_is_mounted_volatile_a_kept_one_synced(cli, image):
    """Issue 19: a `run --rm` rootfs goes when it ends, so its unmount skips the sync of the
    upper file system (overlayfs' `volatile`); a kept container's stays synced, its restart
    included."""
    def root_options(*args):
        out = cli.ok(*args).out
        fields = next(line.split() for line in out.splitlines() if line.split()[1] == "/")
        if fields[2] != "overlay":
            pytest.skip("the storage driver here is not kernel overlayfs")
        return fields[3].split(",")

    assert any("volatile" in o for o in root_options("run", "--rm", image, "cat",
                                                     "/proc/mounts"))
    name = "kept-synced"
    assert not any("volatile" in o for o in root_options("run", "--name", name, image, "cat",
                                                         "/proc/mounts"))
    assert not any("volatile" in o for o in root_options("start", "-a", name))
    cli.ok("rm", name)


# -- volumes, tmpfs, read-only, network ---------------------------------------------------------

def test_bind_volume_rw_and_ro(cli, image, tmp_path):
    (tmp_path / "in").write_text("from host")
    out = cli.ok("run", "--rm", "-v", "%s:/data" % tmp_path, image, "sh", "-c",
                 "cat /data/in; echo from container > /data/out")
    assert out.out == "from host"
    written = tmp_path / "out"
    assert written.read_text() == "from container\n"
    # container root is the invoking user: what it writes belongs to the user
    assert written.stat().st_uid == os.getuid()
    ro = cli("run", "--rm", "-v", "%s:/data:ro" % tmp_path, image, "sh", "-c",
             "echo x > /data/nope")
    assert ro.returncode != 0 and "Read-only file system" in ro.err
    assert not (tmp_path / "nope").exists()


def test_named_volume_persists(cli, image):
    cli.ok("run", "--rm", "-v", "keep:/k", image, "sh", "-c", "echo 1 > /k/f")
    assert cli.ok("run", "--rm", "-v", "keep:/k", image, "cat", "/k/f").out == "1\n"


@pytest.mark.parametrize("spec,message", [
    ("/definitely/not/here:/x", "bind source path does not exist"),
    ("/tmp:relative", "must be absolute"),
    ("/tmp:/x:bogus", "unknown option bogus"),
])
def test_bad_volume_specs(cli, image, spec, message):
    before = containers(cli)
    proc = cli("run", "--rm", "-v", spec, image, "true")
    assert proc.returncode == 125 and message in proc.err
    assert proc.err.startswith("rootless-box: error:") and "Traceback" not in proc.err
    assert containers(cli) == before


def test_tmpfs_and_read_only_root(cli, image):
    out = cli("run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", image, "sh", "-c",
              "echo ok > /scratch/f && cat /scratch/f; touch /nope; "
              "grep ' /scratch ' /proc/mounts")
    assert out.out.startswith("ok\n")
    assert "Read-only file system" in out.err
    assert "size=1024k" in out.out and "noexec" in out.out


def test_network_none_has_only_loopback(cli, image):
    out = cli.ok("run", "--rm", "--network", "none", image, "cat", "/proc/net/dev").out
    interfaces = [line.split(":")[0].strip() for line in out.splitlines()[2:]]
    assert interfaces == ["lo"]
    assert "UP" in cli.ok("run", "--rm", "--network", "none", image, "ip", "link", "show",
                          "lo").out
    host = cli.ok("run", "--rm", image, "cat", "/proc/net/dev").out
    assert host.count("\n") == open("/proc/net/dev").read().count("\n")
    assert cli("run", "--rm", "--network", "bridge0", image, "true").returncode == 125


def test_etc_files_are_provided(cli, image):
    out = cli.ok("run", "--rm", "--network", "none", "--hostname", "h2", image, "sh", "-c",
                 "cat /etc/hostname; grep h2 /etc/hosts; grep -c nameserver "
                 "/etc/resolv.conf || true").out.split("\n")
    assert out[0] == "h2" and "127.0.0.1\th2" in out[1]


# -- records: ps -a, rm, names -------------------------------------------------------------------

def test_stopped_container_is_listed_and_removed(cli, image):
    cli("run", "--name", "keeper", image, "sh", "-c", "exit 4")
    listing = cli.ok("ps", "-a").out
    line = [l for l in listing.splitlines() if l.endswith("keeper")][0]
    assert "Exited (4)" in line
    assert "keeper" not in cli.ok("ps").out
    dup = cli("run", "--name", "keeper", image, "true")
    assert dup.returncode == 125 and "already in use" in dup.err
    cid = cli.ok("ps", "-aq", "--no-trunc").out.split()[0]
    assert cli.ok("rm", "keeper").out == "keeper\n"
    assert cid not in containers(cli)
    assert cli("rm", "keeper").returncode == 1


# -- signals, --init, pty ------------------------------------------------------------------------

def _start(cli, *args):
    return subprocess.Popen(cli.argv(*args), env=cli.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _wait_for_output(proc, timeout=10):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the container printed nothing"
    return proc.stdout.readline()


def test_sigterm_reaches_the_container(cli, image):
    proc = _start(cli, "run", "--rm", image, "sh", "-c",
                  "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done")
    assert _wait_for_output(proc) == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 7 and out == b"got-term\n"


def test_signal_death_is_128_plus_n_and_init_forwards(cli, image):
    proc = _start(cli, "run", "--rm", "--init", image, "sh", "-c", "echo $$; exec sleep 30")
    assert _wait_for_output(proc) != b"1\n"  # with --init the command is not pid 1
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGINT


def test_init_reaps_zombies(cli, image):
    out = cli.ok("run", "--rm", "--init", image, "sh", "-c",
                 "(sleep 0.1 &) ; sleep 0.5; ps -o stat | grep -c Z || true").out
    assert out.strip() == "0"


def test_pty_with_window_size(cli, image):
    text, status = run_in_pty(cli, ("run", "--rm", "-it", image, "sh", "-c",
                                     "tty; stty size; echo $TERM; exit 5"), 33, 111)
    assert "/dev/pts/0" in text and "33 111" in text and "xterm" in text
    assert status == 5


def test_window_size_follows_the_terminal(cli, image):
    import fcntl
    import termios
    answered = []

    def resize_then_answer(master, data):
        if b"ready" in data and not answered:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 132, 0, 0))
            time.sleep(0.3)
            os.write(master, b"\n")
            answered.append(True)

    text, _status = run_in_pty(cli, ("run", "--rm", "-it", image, "sh", "-c",
                                      "stty size; echo ready; read x; stty size"), 20, 70,
                                resize_then_answer)
    assert "20 70" in text and "45 132" in text


# -- ELF diagnostics ----------------------------------------------------------------------------

def test_wrong_architecture_is_explained(cli, image, tmp_path):
    binary = tmp_path / "foreign"
    data = bytearray(open("/bin/true", "rb").read())
    machine = 183 if os.uname().machine != "aarch64" else 62
    data[18:20] = machine.to_bytes(2, "little")
    binary.write_bytes(bytes(data))
    binary.chmod(0o755)
    proc = cli("run", "--rm", "-v", "%s:/foreign" % binary, image, "/foreign")
    assert proc.returncode == 126
    assert "exec format error" in proc.err
    assert ("aarch64" if machine == 183 else "x86_64") in proc.err


def test_missing_dynamic_loader_is_explained(cli, image, tmp_path):
    dynamic = shutil.which("ls", path="/usr/bin:/bin")
    from rootless_box.userns.elf import inspect
    if inspect(dynamic)[1] is None:
        pytest.skip("ls is static here")
    binary = tmp_path / "dyn"
    shutil.copy(dynamic, binary)
    empty = tmp_path / "empty"
    empty.mkdir()
    # hide the image's /lib and /lib64 so the loader is missing
    proc = cli("run", "--rm", "-v", "%s:/dyn" % binary, "-v", "%s:/lib" % empty, "-v",
               "%s:/lib64" % empty, image, "/dyn")
    assert proc.returncode == 127
    assert "dynamic loader" in proc.err and "missing from the image" in proc.err


# -- id mapping modes ---------------------------------------------------------------------------

def test_single_mapping_without_subuid(cli, image, tmp_path):
    empty = tmp_path / "subid"
    empty.write_text("")
    env = {"RBX_SUBUID_FILE": str(empty), "RBX_SUBGID_FILE": str(empty)}
    proc = cli("run", "--rm", image, "sh", "-c", "id -u; cat /proc/self/uid_map", env=env)
    assert proc.returncode == 0
    assert proc.out.split()[:4] == ["0", "0", str(os.getuid()), "1"]
    assert "single-id mapping" in proc.err and "usermod --add-subuids" in proc.err
    # a user other than root: uid 0 underneath, its ids answered by the fake root (issue 22)
    assert cli.ok("run", "--rm", "-u", "1000", image, "id", "-u", env=env).out == "1000\n"
    refused = cli("run", "--rm", "-u", "1000", "--security-opt", "seccomp=unconfined", image,
                  "id", env=env)
    assert refused.returncode == 125 and "subordinate id range" in refused.err


@needs_subuid
def test_subuid_mapping_covers_the_range(cli, image):
    out = cli.ok("run", "--rm", image, "cat", "/proc/self/uid_map").out.split()
    assert out[:3] == ["0", str(os.getuid()), "1"] and out[3] == "1" and int(out[5]) >= 1000


def test_unknown_image(cli):
    proc = cli("run", "--rm", "--pull", "never", "no-such-image:v9", "true")
    assert proc.returncode == 125 and "no such image" in proc.err
    assert len(proc.err.strip().splitlines()) == 2  # the error and its hint
    # by default it is looked for in the registry (the tests' docker.io answers nowhere)
    proc = cli("run", "--rm", "no-such-image:v9", "true")
    lines = proc.err.strip().splitlines()
    assert proc.returncode == 125 and "Traceback" not in proc.err
    assert lines[0] == "Unable to find image 'no-such-image:v9' locally"
    assert lines[-2].startswith("rootless-box: error: cannot reach 127.0.0.1:9")


def test_debug_shows_a_traceback_only_on_request(cli):
    plain = cli("run", "no-such-image")
    debug = cli("--debug", "run", "no-such-image")
    assert "Traceback" not in plain.err and "Traceback" in debug.err
    assert debug.returncode == plain.returncode == 125


def test_help_and_usage_errors(tmp_path):
    cli = Cli(str(tmp_path))
    assert "--volume" in cli.ok("run", "--help").out
    bad = cli("run", "--no-such-flag", "x")
    assert bad.returncode == 125 and "unknown flag: --no-such-flag" in bad.err
    assert cli("run").returncode == 125


@pytest.mark.parametrize("driver", ["copy", "overlay"])
def test_storage_drivers_keep_the_image_intact(cli, image, driver):
    env = {"RBX_STORAGE_DRIVER": driver}
    cli.ok("run", "--name", "drv-" + driver, image, "sh", "-c",
           "echo changed > /etc/motd; rm /bin/cat", env=env)
    assert cli.ok("run", "--rm", image, "sh", "-c", "ls /etc/motd 2>/dev/null; "
                                                   "ls /bin/cat", env=env).out == "/bin/cat\n"
    inspect = cli.ok("inspect", "drv-" + driver).out
    assert '"Driver": "%s"' % driver in inspect
    cli.ok("rm", "drv-" + driver)


def test_info_reports_what_it_detected(cli, image):
    out = cli.ok("info").out
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line and
                  not line.startswith(" "))
    assert fields["idmap_mode"].strip() in ("subuid", "single")
    assert fields["storage_driver"].strip() in ("overlay", "fuse-overlayfs", "copy")
    assert fields["user_namespaces"].strip() == "usable"
    assert fields["data_root"].strip() == cli.root
    if fields["idmap_mode"].strip() == "subuid":
        assert "bind bypass" in fields["published_ports"]
    empty_env = {"RBX_SUBUID_FILE": "/dev/null", "RBX_SUBGID_FILE": "/dev/null"}
    single = cli.ok("info", env=empty_env).out
    assert "idmap_mode:" in single and "usermod --add-subuids" in single
    # the fake root's chown supervisor holds the one seccomp listener: ports are relayed
    assert "published_ports:        relayed by the forwarder (the single-id" in single
    relayed = cli.ok("info", env={"RBX_PORT_BYPASS": "0"}).out
    assert "relayed by the forwarder (RBX_PORT_BYPASS=0)" in relayed


def test_anonymous_volume_goes_with_rm_and_rm_v(cli, image):
    volumes = os.path.join(cli.root, "volumes")
    before = set(os.listdir(volumes)) if os.path.isdir(volumes) else set()
    cli.ok("run", "--rm", "-v", "/anon", image, "sh", "-c", "echo x > /anon/f")
    assert set(os.listdir(volumes)) == before
    cli.ok("run", "--name", "with-anon", "-v", "/anon", image, "touch", "/anon/f")
    assert len(set(os.listdir(volumes)) - before) == 1
    cli.ok("rm", "-v", "with-anon")
    assert set(os.listdir(volumes)) == before


@needs_subuid
def test_a_refused_id_map_is_a_clean_error(cli, image, tmp_path):
    """newuidmap checks /etc/subuid itself: a range we believe in but it refuses must give one
    error line, not a hang."""
    import pwd
    fake = tmp_path / "subid"
    fake.write_text("%s:1:50\n" % pwd.getpwuid(os.getuid()).pw_name)
    before = containers(cli)
    proc = cli("run", "--rm", image, "true", timeout=30,
               env={"RBX_SUBUID_FILE": str(fake), "RBX_SUBGID_FILE": str(fake),
                    "RBX_STORAGE_DRIVER": "overlay"})
    assert proc.returncode == 125
    assert "newuidmap failed" in proc.err and "Traceback" not in proc.err
    assert containers(cli) == before
