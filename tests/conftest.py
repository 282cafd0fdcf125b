"""Shared fixtures and helpers: an isolated store per test module, the CLI as a user runs it
(also on a pty), a base image made from this machine's busybox (or its own binaries) with no
download, a Debian one from the debootstrap tar `make test` makes as root (RBX_TEST_DEBIAN_TAR),
and the store inspections and timed kills the image, archive and layer tests share.

Integration tests need real user namespaces and an unprivileged user: as root they skip (CI
runs them as the unprivileged test user; see scripts/ci-root.sh).
"""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from registry_server import *  # noqa: F401,F403  (the registry fixtures: see its __all__)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")


def _userns_reason():
    if os.getuid() == 0:
        return "run as an unprivileged user (a rootless tool tested as root proves nothing)"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux unshare is not installed"
    probe = subprocess.run([unshare, "--user", "--map-root-user", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        return "unprivileged user namespaces are not usable here: %s" % (
            probe.stderr.decode().strip())
    return None


USERNS_SKIP = _userns_reason()
needs_userns = pytest.mark.skipif(USERNS_SKIP is not None, reason=USERNS_SKIP or "")


def has_subuid():
    import pwd
    user = pwd.getpwuid(os.getuid()).pw_name
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                if not any(line.split(":")[0] in (user, str(os.getuid()))
                           for line in f if line.strip()):
                    return False
        except OSError:
            return False
    return bool(shutil.which("newuidmap") and shutil.which("newgidmap"))


needs_subuid = pytest.mark.skipif(not has_subuid(),
                                  reason="needs /etc/subuid and /etc/subgid ranges and the "
                                         "uidmap package (newuidmap)")


def _offline_registries():
    """A registries.conf that sends docker.io to a closed loopback port: a test that pulls a
    Docker Hub name by accident fails at once instead of waiting on a network CI lacks."""
    import tempfile
    fd, path = tempfile.mkstemp(prefix="rbx-offline-", suffix=".conf")
    os.write(fd, b'[[registry]]\nprefix = "docker.io"\nlocation = "127.0.0.1:9"\n')
    os.close(fd)
    import atexit
    atexit.register(os.unlink, path)
    return path


OFFLINE_REGISTRIES = _offline_registries()


class Cli:
    """Runs `python -m rootless_box` as a user would, against one data root."""

    def __init__(self, data_home, env=None):
        self.data_home = data_home
        self.env = dict(os.environ)
        self.env.update({"XDG_DATA_HOME": data_home, "PYTHONPATH": REPO,
                         "RBX_REGISTRIES_CONF": OFFLINE_REGISTRIES})
        self.env.pop("RBX_DEBUG", None)
        if env:
            self.env.update(env)

    @property
    def root(self):
        return os.path.join(self.data_home, "rootless-box")

    def argv(self, *args):
        return [sys.executable, "-m", "rootless_box"] + [str(a) for a in args]

    def __call__(self, *args, input=None, env=None, timeout=60, check=None):
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        proc = subprocess.run(self.argv(*args), input=input, capture_output=True,
                              env=full_env, timeout=timeout)
        proc.out = proc.stdout.decode(errors="replace")
        proc.err = proc.stderr.decode(errors="replace")
        if check is not None and proc.returncode != check:
            raise AssertionError("rootless-box %s: exit %d, expected %d\nstdout: %s\n"
                                 "stderr: %s" % (" ".join(map(str, args)), proc.returncode,
                                                 check, proc.out, proc.err))
        return proc

    def ok(self, *args, **kw):
        return self(*args, check=0, **kw)


def run_in_pty(cli, args, rows=24, cols=80, on_output=None, timeout=20, send=None):
    """Run the CLI on a new pty of size rows x cols; returns (output text, exit status).
    on_output(master, data so far) may answer the container; send: bytes typed at once
    (for a program that prints nothing until it hears something, as `attach`)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time
    # a terminal has a type: CI may run with TERM unset or "dumb", which tells programs
    # (rich among them) that the terminal cannot take escape sequences
    env = dict(cli.env)
    if env.get("TERM", "dumb") == "dumb":
        env["TERM"] = "xterm"
    pid, master = pty.fork()
    if pid == 0:
        os.execve(cli.argv()[0], cli.argv(*args), env)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    if send:
        os.write(master, send)
    data = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if on_output:
            on_output(master, data)
    else:
        os.kill(pid, signal.SIGKILL)  # timed out: the test fails instead of hanging
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return data.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def busybox_path():
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            return path
    return None


def make_rootfs_tar(path):
    """A base rootfs tarball made from host binaries (static busybox when installed)."""
    from rootless_box.ops.fromhost import write_rootfs_tar
    binaries = [busybox_path()] if busybox_path() else [
        p for p in ("/bin/sh", "/bin/ls", "/bin/cat", "/usr/bin/id", "/bin/echo",
                    "/usr/bin/env", "/bin/sleep", "/bin/touch", "/bin/mkdir")
        if os.path.exists(p)]
    with open(path, "wb") as out:
        write_rootfs_tar(binaries, out)
    return path


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory):
    return make_rootfs_tar(str(tmp_path_factory.mktemp("rootfs") / "rootfs.tar"))


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    return Cli(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def image(cli, rootfs_tar):
    """`base:latest`, imported once per module, with CMD ["sh"]."""
    if USERNS_SKIP:
        pytest.skip(USERNS_SKIP)
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return "base:latest"


DEBIAN_TAR = os.environ.get("RBX_TEST_DEBIAN_TAR") or None


def _debian_reason():
    if DEBIAN_TAR is None:
        return ("no Debian base tarball: set RBX_TEST_DEBIAN_TAR to a rootfs tar (as root, "
                "`make test` makes one with debootstrap, see scripts/ci-root.sh)")
    if not os.access(DEBIAN_TAR, os.R_OK):
        return "RBX_TEST_DEBIAN_TAR=%s cannot be read" % DEBIAN_TAR
    return None


@pytest.fixture(scope="module")
def debian_image(cli):
    """`debian:bookworm`, the debootstrap rootfs named by RBX_TEST_DEBIAN_TAR, imported once per
    module (owners as root made them: a real Debian needs root:adm, _apt and the like)."""
    if USERNS_SKIP:
        pytest.skip(USERNS_SKIP)
    reason = _debian_reason()
    if reason:
        pytest.skip(reason)
    cli.ok("import", "-c", 'CMD ["bash"]', DEBIAN_TAR, "debian:bookworm", timeout=300)
    yield "debian:bookworm"
    # Its layers belong to subordinate ids pytest cannot remove; left, each run would keep a
    # few hundred MB in /tmp.
    cli("system", "prune", "-a", "-f", timeout=300)


def tar_bytes(entries):
    """entries: list of (TarInfo kwargs dict, data bytes or None) -> tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info_kw, data in entries:
            info = tarfile.TarInfo(info_kw.pop("name"))
            for key, value in info_kw.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


# -- store inspection and kills, shared by the image, archive and layer tests ---------------

def store_dir(cli, *parts):
    return os.path.join(cli.root, *parts)


def layer_dir(cli, *parts):
    """Where this user's layers are unpacked: one directory per id mapping."""
    from rootless_box.userns.idmap import plan
    key = "single" if cli.env.get("RBX_USERNS") == "single" else plan().key
    return os.path.join(cli.root, "layers", key, *parts)


def listing(cli):
    """What a failed import must not change: temporaries, layer directories, blobs."""
    result = {}
    for part in ("tmp", "layers", "blobs/sha256"):
        path = layer_dir(cli) if part == "layers" else store_dir(cli, *part.split("/"))
        result[part] = sorted(os.listdir(path)) if os.path.isdir(path) else []
    return result


def inspect1(cli, name, *opts):
    data = json.loads(cli.ok("inspect", *opts, name).out)
    assert isinstance(data, list) and len(data) == 1, data
    return data[0]


def docker_failure_code(args):
    """What Docker's CLI exits with when the command args ran and failed (not a bad flag,
    which is 125 everywhere): 125 for run and create, 1 for every other command."""
    words = [str(a) for a in args]
    if "rootless_box" in words:
        words = words[words.index("rootless_box") + 1:]
    words = [w for w in words if not w.startswith("-")][:2]
    if words[:1] == ["container"]:
        words = words[1:]
    return 125 if words[:1] in (["run"], ["create"]) else 1


def assert_one_error(proc, code=None):
    """The exit status (default: Docker's for a failed command, docker_failure_code; 125
    for a bad flag or argument count, 126/127 for a command that cannot run), one
    `rootless-box: error:` line, an optional hint, no traceback."""
    if code is None:
        code = docker_failure_code(proc.args)
    assert proc.returncode == code, (proc.returncode, proc.out, proc.err)
    assert "Traceback" not in proc.err, proc.err
    lines = [line for line in proc.err.splitlines()
             if not line.startswith("rootless-box: warning:")]
    assert lines and lines[0].startswith("rootless-box: error: "), proc.err
    assert len(lines) <= 2, proc.err
    if len(lines) == 2:
        assert lines[1].startswith("hint: "), proc.err


def find_named(top, name):
    """Every path called `name` under top (not following symlinks)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        found += [os.path.join(dirpath, n) for n in dirnames + filenames if n == name]
    return found


class cpu_burners:
    """`with cpu_burners(2):` two CPU-bound processes beside the block (what a busy CI
    machine gives), gone when it ends, whatever happens in it."""

    def __init__(self, count=2):
        self.count = count
        self.procs = []

    def __enter__(self):
        for _ in range(self.count):
            self.procs.append(subprocess.Popen(["sh", "-c", "while :; do :; done"]))
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()
        return False


def wait_gone(marker, timeout=10.0):
    """Wait until no process of ours carries marker in its environment (the killed import and
    any helper it forked into a user namespace, which PR_SET_PDEATHSIG kills)."""
    deadline = time.monotonic() + timeout
    needle = ("RBX_TEST_MARK=%s" % marker).encode()
    while time.monotonic() < deadline:
        alive = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if needle in f.read().split(b"\0"):
                        alive = True
                        break
            except OSError:
                continue
        if not alive:
            return
        time.sleep(0.02)
    raise AssertionError("processes of the killed import are still alive")


def kill_when(proc, ready, tmp_dir, timeout=20.0):
    """SIGKILL proc as soon as ready(names of its temporaries) holds; -> whether it held while
    proc was still running."""
    prefix = "%d-" % proc.pid
    deadline = time.monotonic() + timeout
    held = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            mine = [n for n in os.listdir(tmp_dir) if n.startswith(prefix)]
        except FileNotFoundError:
            mine = []
        if ready(mine):
            held = proc.poll() is None
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return held


def unpacking(tmp_dir):
    def ready(names):
        for name in names:
            if "-layer-" in name:
                try:
                    if os.listdir(os.path.join(tmp_dir, name)):
                        return True
                except OSError:
                    pass
        return False
    return ready


_REMOVE_AS_NS_ROOT = """
import sys
from rootless_box.ops.storage import _rmtree_inside
from rootless_box.userns import idmap
from rootless_box.userns.launcher import run_in_userns
plan = idmap.plan()
for path in sys.argv[1:]:
    run_in_userns(_rmtree_inside, plan, path)
"""


def pytest_sessionfinish(session, exitstatus):
    """The stores the tests made hold files owned by subordinate ids, which pytest's removal
    of old base directories cannot delete: they piled up under /tmp/pytest-of-USER, gigabytes
    a run. Remove the ones pytest gave up on (garbage-*), and this run's when all passed, as
    the tool itself removes such trees: from inside a user namespace."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if USERNS_SKIP or factory is None or getattr(factory, "_basetemp", None) is None:
        return
    base = str(factory.getbasetemp())
    parent = os.path.dirname(base)
    doomed = [os.path.join(parent, name) for name in os.listdir(parent)
              if name.startswith("garbage-")] \
        if os.path.basename(parent).startswith("pytest-of-") else []
    if exitstatus == 0:
        doomed.append(base)
    if doomed:
        subprocess.run([sys.executable, "-c", _REMOVE_AS_NS_ROOT] + doomed, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=REPO), timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(predicate, timeout=30.0, what="condition"):
    """Poll predicate until it returns something true (which is returned), at most timeout
    seconds: tests wait for conditions, never for a time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)
