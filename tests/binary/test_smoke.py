"""The one-file binary (dist/rootless-box, `make binary`) end to end, as the unprivileged user.

What a user of the binary relies on: it runs with no Python on the machine and does what the
package does (import, run with a pty, build, save/load, run -d with logs/exec/stop, restart
policies and --rm through the frozen monitor); the first call unpacks it once under the user's
cache and never under TMPDIR (a noexec TMPDIR changes nothing); the container's pid 1 is the
container's command; neither a container nor a host helper sees the bundle's LD_LIBRARY_PATH or
the bootloader's variables; the watcher of a detached container is one small process.

RBX_TEST_BINARY names another binary; without one the module skips, saying how to build it.
"""

import os
import shutil
import subprocess
import time

import pytest

from conftest import REPO, Cli, needs_userns, run_in_pty

BINARY = os.environ.get("RBX_TEST_BINARY") or os.path.join(REPO, "dist", "rootless-box")

pytestmark = [
    pytest.mark.skipif(not os.access(BINARY, os.X_OK),
                       reason="%s is absent: run `make binary` (PyInstaller from PyPI)" % BINARY),
    needs_userns,
]

# What a PyInstaller bootloader puts in its process's environment (config.unbundled_env).
BUNDLER_VARS = ("LD_LIBRARY_PATH_ORIG", "_MEIPASS", "_MEIPASS2", "_PYI_")


class BinCli(Cli):
    """The binary as a user runs it: no PYTHONPATH, its own cache directory."""

    def __init__(self, data_home, cache_home, env=None):
        super().__init__(data_home, env)
        self.env.pop("PYTHONPATH", None)
        self.env["XDG_CACHE_HOME"] = cache_home

    def argv(self, *args):
        return [BINARY] + [str(a) for a in args]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def rbx(tmp_path_factory, cache_home):
    return BinCli(str(tmp_path_factory.mktemp("data")), cache_home)


@pytest.fixture(scope="module")
def image(rbx, rootfs_tar):
    rbx.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return "base:latest"


@pytest.fixture
def detached(rbx, image):
    """Names of detached containers to remove after the test."""
    names = []
    yield names
    for name in names:
        rbx("rm", "-f", name)


def unpacked(cache_home):
    base = os.path.join(cache_home, "rootless-box")
    return sorted(os.listdir(base)) if os.path.isdir(base) else []


def env_lines(text):
    return [line for line in text.splitlines() if "=" in line]


def assert_no_bundler_paths(lines, cache_home):
    for line in lines:
        key = line.split("=", 1)[0]
        assert not key.startswith(BUNDLER_VARS), line
        assert os.path.join(cache_home, "rootless-box") not in line, line  # the bundle
        assert "_MEI" not in line, line


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# -- the file itself --------------------------------------------------------------------------

def test_one_file_unpacked_once_into_the_cache(rbx, cache_home, tmp_path):
    dist = os.path.dirname(BINARY)
    if dist == os.path.join(REPO, "dist"):
        assert os.listdir(dist) == ["rootless-box"]
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir)}
    first = rbx.ok("version", env=env)
    assert "frozen" in first.out.lower(), first.out
    trees = unpacked(cache_home)
    assert len(trees) == 1 and not trees[0].startswith(".tmp"), trees
    exe = os.path.join(cache_home, "rootless-box", trees[0], "rootless-box")
    stamp = os.stat(exe).st_mtime_ns
    started = time.monotonic()
    for _ in range(3):
        rbx.ok("version", env=env)
    later = (time.monotonic() - started) / 3
    # reused, not unpacked again; nothing under TMPDIR (no _MEI directories)
    assert unpacked(cache_home) == trees and os.stat(exe).st_mtime_ns == stamp
    assert os.listdir(str(tmpdir)) == []
    # PyInstaller's one-file mode costs ~800 ms a call here; the cached tree ~40 ms
    assert later < 0.5, later


def test_runs_without_python_and_with_a_noexec_tmpdir(tmp_path, rootfs_tar):
    """In a user and mount namespace: TMPDIR on a noexec tmpfs (checked: a copied /bin/true
    cannot run there), the host's Python hidden under empty tmpfs mounts, an empty cache, so
    the first call unpacks under these conditions; then a container runs."""
    if shutil.which("unshare") is None:
        pytest.skip("util-linux unshare is not installed")
    noexec = tmp_path / "noexec"
    noexec.mkdir()
    cache = tmp_path / "cache"
    data = tmp_path / "data"
    hide = " ".join("mount -t tmpfs tmpfs %s &&" % d for d in
                    sorted({"/usr/lib/python3", "/usr/local/lib/python3"} |
                           {os.path.join("/usr/lib", n) for n in os.listdir("/usr/lib")
                            if n.startswith("python3.")})
                    if os.path.isdir(d))
    script = (
        'mount -t tmpfs -o noexec,nosuid,nodev tmpfs "$NX" && %s '
        'cp /bin/true "$NX/true" && '
        'if "$NX/true" 2>/dev/null; then echo "noexec not in force"; exit 97; fi && '
        'if python3 -c "import encodings" 2>/dev/null; then echo "python visible"; exit 98; '
        'fi && '
        'TMPDIR="$NX" "$BIN" version && '
        'TMPDIR="$NX" "$BIN" import -c \'CMD ["sh"]\' "$TAR" base:latest >/dev/null && '
        'TMPDIR="$NX" "$BIN" run --rm base:latest sh -c "echo ran in a container" && '
        'ls -A "$NX"' % hide)
    env = dict(os.environ, NX=str(noexec), BIN=BINARY, TAR=rootfs_tar,
               XDG_CACHE_HOME=str(cache), XDG_DATA_HOME=str(data), RBX_USERNS="single",
               PATH="/usr/bin:/bin")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    assert "ran in a container" in lines
    assert lines[-1] == "true", lines  # nothing but the probe was written under TMPDIR
    assert len(unpacked(str(cache))) == 1


# -- containers -------------------------------------------------------------------------------

def test_pid_1_is_the_command(rbx, image):
    out = rbx.ok("run", "--rm", image, "cat", "/proc/1/cmdline").out
    assert out.split("\0")[:2] == ["cat", "/proc/1/cmdline"], repr(out)


def test_run_with_a_pty(rbx, image):
    out, status = run_in_pty(rbx, ["run", "--rm", "-it", image, "sh", "-c",
                                   "tty; echo pid=$$; exit 3"])
    assert status == 3, out
    assert "/dev/pts/" in out and "pid=1" in out, out


def test_container_env_free_of_bundler_paths(rbx, image, cache_home):
    plain = env_lines(rbx.ok("run", "--rm", image, "env").out)
    assert not [line for line in plain if line.startswith("LD_LIBRARY_PATH")], plain
    assert_no_bundler_paths(plain, cache_home)
    # -e NAME copies the user's own value, never the one the bootloader made
    mine = env_lines(rbx.ok("run", "--rm", "-e", "LD_LIBRARY_PATH", image, "env",
                            env={"LD_LIBRARY_PATH": "/opt/user-libs"}).out)
    assert "LD_LIBRARY_PATH=/opt/user-libs" in mine, mine
    assert_no_bundler_paths(mine, cache_home)
    unset = env_lines(rbx.ok("run", "--rm", "-e", "LD_LIBRARY_PATH", image, "env").out)
    assert not [line for line in unset if line.startswith("LD_LIBRARY_PATH")], unset


def test_build_two_stages(rbx, image, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "greeting").write_text("hello from the context\n")
    (ctx / "Dockerfile").write_text(
        "FROM %s AS first\n"
        "COPY greeting /greeting\n"
        "RUN echo built-in-first >> /greeting && env > /build-env\n"
        "FROM %s\n"
        "COPY --from=first /greeting /build-env /out/\n"
        'CMD ["cat", "/out/greeting"]\n' % (image, image))
    rbx.ok("build", "-q", "-t", "two:stages", str(ctx), timeout=120)
    assert rbx.ok("run", "--rm", "two:stages").out == \
        "hello from the context\nbuilt-in-first\n"
    # a RUN step's environment is the image's too
    build_env = env_lines(rbx.ok("run", "--rm", "two:stages", "cat", "/out/build-env").out)
    assert_no_bundler_paths(build_env, rbx.env["XDG_CACHE_HOME"])
    assert not [line for line in build_env if line.startswith("LD_LIBRARY_PATH")]


def test_save_and_load(rbx, image, tmp_path):
    rbx.ok("tag", image, "saved:one")
    archive = tmp_path / "saved.tar"
    rbx.ok("save", "-o", str(archive), "saved:one")
    rbx.ok("rmi", "saved:one")
    assert "saved:one" in rbx.ok("load", "-i", str(archive)).out
    assert rbx.ok("run", "--rm", "saved:one", "echo", "loaded").out == "loaded\n"


def test_detached_logs_exec_stop(rbx, image, detached, cache_home):
    detached.append("bg")
    rbx.ok("run", "-d", "--name", "bg", "-e", "LD_LIBRARY_PATH", image, "sh", "-c",
           "echo started; env; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done",
           env={"LD_LIBRARY_PATH": "/opt/user-libs"})
    deadline = time.monotonic() + 10
    while "started" not in rbx.ok("logs", "bg").out and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = rbx.ok("logs", "bg").out
    assert "started" in logs
    assert "LD_LIBRARY_PATH=/opt/user-libs" in env_lines(logs)
    assert_no_bundler_paths(env_lines(logs), cache_home)
    assert rbx.ok("exec", "bg", "sh", "-c", "echo from-exec; env").out.startswith("from-exec\n")
    assert_no_bundler_paths(env_lines(rbx.ok("exec", "bg", "env").out), cache_home)

    # the keeper: the frozen watcher, one process, the unpacked executable itself (no
    # bootloader parent, no shell), its environment the user's
    import json
    state = json.loads(rbx.ok("inspect", "bg").out)[0]["State"]
    keeper, init = state["MonitorPid"], state["Pid"]
    with open("/proc/%d/cmdline" % keeper, "rb") as f:
        argv = f.read().split(b"\0")
    assert argv[1] == b"__watch", argv
    exe = os.readlink("/proc/%d/exe" % keeper)
    assert exe.startswith(os.path.join(cache_home, "rootless-box") + "/"), exe
    with open("/proc/%d/stat" % init) as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) == keeper  # init's parent
    # /proc/PID/environ is what the one-dir bootloader re-executed itself with (its own
    # LD_LIBRARY_PATH and the user's value in _ORIG), so it shows what the monitor handed the
    # watcher: the user's value, not a bundle path stacked twice
    with open("/proc/%d/environ" % keeper, "rb") as f:
        keeper_env = [e.decode(errors="replace") for e in f.read().split(b"\0") if e]
    assert "LD_LIBRARY_PATH_ORIG=/opt/user-libs" in keeper_env, keeper_env
    # bench/lifecycle.py's figure; PyInstaller's one-file mode would be two processes, ~24 MiB
    assert rss_kib(keeper) < 12 * 1024, rss_kib(keeper)

    rbx.ok("stop", "-t", "5", "bg")
    assert "bye" in rbx.ok("logs", "bg").out
    assert rbx.ok("inspect", "-f", "{{.State.ExitCode}}", "bg").out.strip() == "0"


def test_restart_policy_and_rm_through_the_frozen_monitor(rbx, image, detached):
    # the watcher re-executes the binary's __monitor mode for both
    detached.append("again")
    rbx.ok("run", "-d", "--name", "again", "--restart", "on-failure:2", image, "sh", "-c",
           "exit 3")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if rbx.ok("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "again").out.split() \
                == ["2", "exited"]:
            break
        time.sleep(0.1)
    assert rbx.ok("inspect", "-f", "{{.RestartCount}} {{.State.Status}}",
                  "again").out.split() == ["2", "exited"]

    rbx.ok("run", "-d", "--rm", "--name", "gone", image, "true")
    deadline = time.monotonic() + 10
    while "gone" in rbx.ok("ps", "-a", "--format", "{{.Names}}").out and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert "gone" not in rbx.ok("ps", "-a", "--format", "{{.Names}}").out


def test_host_helper_env(rbx, image, detached, tmp_path, cache_home):
    """A host program the tool runs (here `ps`, for `top` with ps options; newuidmap,
    fuse-overlayfs and credential helpers get the same os.environ) sees the user's
    environment, not the bundle's."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "ps-env"
    real_ps = shutil.which("ps")
    if real_ps is None:
        pytest.skip("procps is not installed")
    wrapper = bindir / "ps"
    wrapper.write_text('#!/bin/sh\nenv > "%s"\nexec "%s" "$@"\n' % (record, real_ps))
    wrapper.chmod(0o755)
    detached.append("tp")
    rbx.ok("run", "-d", "--name", "tp", image, "sleep", "30")
    rbx.ok("top", "tp", "-o", "pid,comm",
           env={"PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin")),
                "LD_LIBRARY_PATH": "/opt/user-libs"})
    seen = env_lines(record.read_text())
    assert "LD_LIBRARY_PATH=/opt/user-libs" in seen
    assert_no_bundler_paths(seen, cache_home)


def test_generate_systemd_names_the_one_file(rbx, image, detached):
    """A unit must outlive the unpacked cache (cleared, or replaced by a newer build): it
    names the file the user copied, not its cache copy."""
    rbx.ok("create", "--name", "unit", image, "true")
    detached.append("unit")
    unit = rbx.ok("generate", "systemd", "unit").out
    start = [l for l in unit.splitlines() if l.startswith("ExecStart=")][0]
    assert start.split("=", 1)[1].split()[0] == os.path.abspath(BINARY)
