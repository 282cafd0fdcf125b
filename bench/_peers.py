"""Private podman/buildah stores for the benchmarks, set up the fair way.

Owns: one private containers-storage root per peer as BASELINES.md says a fair comparison needs
(the native overlay driver via a storage.conf, cgroupfs, a private tmp_dir so the store gets a
pause process of its own), the environment and argv prefixes that point podman or buildah at
it, the check that podman really uses that root with overlay, removing trees whose files belong
to subordinate ids, and ending the pause process podman leaves behind. Also the two subprocess
helpers the benchmarks share (`check`, `timed`), which turn a failure into `PeerFailed`, and
`BuildPeer`, the build side of both peers.
Must not: touch the user's own stores, run as root, or end any process but this store's pause
process (found by its pid file).
"""

import os
import shutil
import signal
import subprocess
import time


class PeerFailed(Exception):
    """A tool could not be set up or failed a timed run: its row says so."""


def check(cmd, env, what):
    """Run cmd; its output, or PeerFailed with the last line of its error output."""
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise PeerFailed("%s exited %d: %s" % (what, proc.returncode,
                                               detail[-1] if detail else "no output"))
    return proc


def timed(cmd, env, what, cpu=None):
    """Seconds cmd took; PeerFailed when it failed. cpu: a list that gets the CPU seconds
    (user+sys) of cmd and of the descendants it waited for (far less noisy than wall time
    on a shared machine; a daemon it leaves running is not counted)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        detail = err.decode("utf-8", "replace").strip().splitlines()
        raise PeerFailed("%s exited %d: %s" % (what, proc.returncode,
                                               detail[-1] if detail else "no output"))
    if cpu is not None:
        cpu.append(usage.ru_utime + usage.ru_stime)
    return elapsed


class PodmanStore:
    """A private store under top/name for tool ("podman" or "buildah").

    Attributes: root, graph, run, env, base ([tool, --root, --runroot]), podman (the same for
    podman, which imports images and enters the user namespace for either tool).
    runtime_dir: give the tool an XDG_RUNTIME_DIR of its own (runuser/su sessions have none,
    and buildah then writes its locks into a shared /tmp directory)."""

    def __init__(self, top, name="podman", tool="podman", runtime_dir=False):
        self.tool = tool
        self.root = os.path.join(top, name)
        self.graph = os.path.join(self.root, "graph")
        self.run = os.path.join(self.root, "run")
        subs = ("data", "config", "tmp") + (("xdg",) if runtime_dir else ())
        for sub in subs:
            os.makedirs(os.path.join(self.root, sub), mode=0o700)
        os.chmod(self.root, 0o700)
        storage = os.path.join(self.root, "storage.conf")
        containers = os.path.join(self.root, "containers.conf")
        with open(storage, "w") as f:
            # Without driver = "overlay", rootless podman may pick vfs, 50x slower to start a
            # large image (BASELINES.md); the kernel's own overlay works in a user namespace.
            # Rootless podman ignores graphroot in favour of rootless_storage_path, and runroot
            # in favour of $XDG_RUNTIME_DIR, so both are also given as --root/--runroot.
            f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                    'rootless_storage_path = "%s"\n' % (self.graph, self.run, self.graph))
        with open(containers, "w") as f:
            # cgroupfs: there is no systemd user session under runuser/su, and podman would
            # otherwise try systemd and fall back on every run. A private tmp_dir gives this
            # store its own pause process, which end_pause() can then end.
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'events_logfile_path = "%s/events.log"\ntmp_dir = "%s/tmp"\n'
                    % (self.root, self.root))
        self.env = dict(os.environ)
        self.env["CONTAINERS_STORAGE_CONF"] = storage
        self.env["CONTAINERS_CONF"] = containers
        # podman keeps a blob-info cache under $XDG_DATA_HOME even with --root: keep it here.
        self.env["XDG_DATA_HOME"] = os.path.join(self.root, "data")
        self.env["XDG_CONFIG_HOME"] = os.path.join(self.root, "config")
        if runtime_dir:
            self.env["XDG_RUNTIME_DIR"] = os.path.join(self.root, "xdg")
        self.podman = ["podman", "--root", self.graph, "--runroot", self.run]
        self.base = [tool, "--root", self.graph, "--runroot", self.run]

    def check_overlay(self):
        """PeerFailed unless podman runs this store's root with the overlay driver."""
        info = check(self.podman + ["info", "--format",
                                    "{{.Store.GraphDriverName}} {{.Store.GraphRoot}}"],
                     self.env, "podman info").stdout.split()
        if info[:1] != ["overlay"]:
            raise PeerFailed("podman uses the %r storage driver, not overlay" % info[:1])
        if info[1:2] != [self.graph]:
            raise PeerFailed("podman's graph root is %r, not the private %s"
                             % (info[1:2], self.graph))

    def remove(self, path):
        """rm -rf inside podman's user namespace, where subordinate-id owners are deletable."""
        subprocess.run(self.podman + ["unshare", "rm", "-rf", path], env=self.env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def end_pause(self):
        # podman leaves a pause process holding its user namespace; it is ours to end.
        pid_file = os.path.join(self.root, "tmp", "pause.pid")
        try:
            with open(pid_file) as f:
                pid = int(f.read().strip())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def close(self):
        """Remove the whole store and end its pause process."""
        # The graph and run dirs first, through `podman unshare` (which may start the pause
        # process again); its pid file lives in root/tmp, so end it before root goes.
        self.remove(self.graph)
        self.remove(self.run)
        self.end_pause()
        shutil.rmtree(self.root, ignore_errors=True)


class BuildPeer(PodmanStore):
    """podman build or buildah bud on a private overlay store under top/tool, with base_tar
    imported as `name` (the same base the rootless-box figure builds on)."""

    def __init__(self, tool, top, base_tar, name="localhost/bench-base"):
        super().__init__(top, name=tool, tool=tool, runtime_dir=True)
        check(self.podman + ["--runtime", "runc", "import", "-q", base_tar, name], self.env,
              "%s import" % tool)

    def build(self, ctx, tag, no_cache=False, cpu=None):
        """Seconds the build took; PeerFailed when it failed. cpu: see timed."""
        if self.tool == "podman":
            cmd = self.base + ["--runtime", "runc", "build", "--network", "host", "-t", tag]
        else:
            cmd = self.base + ["bud", "--runtime", "runc", "--network", "host", "--layers",
                               "-t", tag]
        return timed(cmd + (["--no-cache"] if no_cache else []) + [ctx], self.env,
                     "%s build" % self.tool, cpu)



def wait_for_trash(data_home, bound=300.0):
    """rootless-box deletes what a build set aside (each step's directory; on a --no-cache
    rebuild, the duplicate of a layer it has) in a process of its own after the build has
    answered: the bench waits for it before the next timed command, so that its I/O lands
    in no tool's figure (the peers leave their own clean-up to later commands too)."""
    trash = os.path.join(data_home, "rootless-box", "trash")
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            if not os.listdir(trash):
                return
        except FileNotFoundError:
            return
        time.sleep(0.01)


def make_rootfs_tar(path):
    """A busybox rootfs tarball from the host's busybox (as build.py's base): the tests'
    conftest does the same, but make bench installs no pytest to import it with."""
    from rootless_box.ops.fromhost import write_rootfs_tar
    binary = shutil.which("busybox") or "/bin/busybox"
    with open(path, "wb") as out:
        write_rootfs_tar([binary], out)
    return path
