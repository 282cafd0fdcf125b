"""Benchmark: the Engine API, the docker CLI against `rootless-box system service` beside the
same CLI against `podman system service`, same machine, same run.

Owns: timing, through the docker CLI, `run --rm busybox true`, `ps -a` with 50 containers,
`exec CONTAINER true` and a fully cached `build` (the classic builder: DOCKER_BUILDKIT=0, as
the CLI falls back to when no buildx plugin is there), the two services alternating in one loop
(the machine's speed drifts, BASELINES.md); then, for each service, the first answer after
socket activation (a listening socket made here, handed over as systemd does: fd 3,
LISTEN_FDS=1, LISTEN_PID the service's own pid; timed from the exec to a `/_ping` answered on a
connection queued before the service ran) and an idle service's RSS (/proc/PID/smaps_rollup;
ours has two processes, the server and its fork server, both counted).
Both services get private stores: ours an XDG_DATA_HOME under a temporary directory, podman's
the fair set-up of bench/_peers.py (runc, native overlay, cgroupfs) with `--network host` for
its containers (no tun device for plain users); the same static busybox rootfs is imported
into both as `busybox:latest`. Every container and build is given `--network host` on both,
so the commands are identical.
Must not: run as root, touch the user's own stores or sockets, or leave anything behind:
containers are removed, both services stopped, podman's lingering exec conmons (found by
their store's path) ended, the stores and sockets deleted, even when a step fails.
Prints a Markdown table on stdout (and its rows as JSON lines on $BENCH_JSON_FD,
bench/_report.py); progress and errors go to stderr.

Usage: python bench/api.py [--runs 10] [--warmup 2] [--count 50] [--activations 5]
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, TOP)
sys.path.insert(0, HERE)

from _peers import PeerFailed, PodmanStore, check, make_rootfs_tar, timed  # noqa: E402
from _report import row as report_row  # noqa: E402

MIB = 1024 * 1024
DOCKERFILE = "FROM busybox\nCOPY . /ctx\nRUN echo built > /built\nENV A=1\nCMD [\"true\"]\n"


def log(msg):
    print("api: " + msg, file=sys.stderr, flush=True)


def _ping(path, timeout=30.0):
    """Connect and GET /_ping (the connection may wait in the listener's backlog); -> the
    moment the answer's first bytes came."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
        conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        first = conn.recv(64)
        if not first.startswith(b"HTTP/1."):
            raise PeerFailed("no HTTP answer on %s: %r" % (path, first[:40]))
        return time.perf_counter()
    except OSError as exc:
        raise PeerFailed("no answer on %s: %s" % (path, exc)) from None
    finally:
        conn.close()


def _mem(pid, key="Rss"):
    """Rss or Pss of pid in bytes (Pss splits the pages a process shares with its fork
    server or parent among them: the figure that adds up)."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _end(proc):
    """SIGTERM (a service's clean exit), SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Tool:
    """One service and the docker CLI pointed at it."""

    name = None
    argv = None  # the service's command without its URI
    env = None

    def start(self, tmp):
        self.sock = os.path.join(tmp, self.name + ".sock")
        self.proc = subprocess.Popen(self.argv + ["unix://" + self.sock], env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise PeerFailed("%s's service did not start: %s" % (
                    self.name, self.proc.stderr.read().decode(errors="replace").strip()[-300:]
                    if self.proc.poll() is not None else "timeout"))
            time.sleep(0.02)
        _ping(self.sock)
        self.cli = dict(os.environ, DOCKER_HOST="unix://" + self.sock, DOCKER_BUILDKIT="0",
                        DOCKER_CONFIG=os.path.join(tmp, self.name + "-docker"))
        os.makedirs(self.cli["DOCKER_CONFIG"], exist_ok=True)

    def stop(self):
        proc = getattr(self, "proc", None)
        if proc is not None:
            _end(proc)
            proc.stderr.close()

    def docker(self, *args):
        return check(["docker"] + list(args), self.cli, "docker %s (%s)" % (args[0], self.name))

    def timed(self, *args):
        return timed(["docker"] + list(args), self.cli, "docker %s (%s)" % (args[0], self.name))

    def service_pids(self):
        return [self.proc.pid]

    def cleanup(self):
        if getattr(self, "cli", None) is None or self.proc.poll() is not None:
            return
        try:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *ids)
        except PeerFailed as exc:
            log("%s clean-up: %s" % (self.name, exc))


class _Ours(_Tool):
    name = "rootless-box"

    def __init__(self, tmp, cache):
        self.env = dict(os.environ)
        self.env["XDG_DATA_HOME"] = os.path.join(tmp, "rbx-data")
        self.env["XDG_CONFIG_HOME"] = os.path.join(tmp, "rbx-config")
        self.env["PYTHONPATH"] = TOP
        self.env["PYTHONPYCACHEPREFIX"] = os.path.join(cache, "pycache")
        # an installed tool has its bytecode: a start that compiles is not what users pay
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        os.mkdir(self.env["XDG_DATA_HOME"], 0o700)
        # the installed command's way (#! with -S), not `python -m` (bench/lifecycle.py)
        self.rbx = [sys.executable, "-S", os.path.join(TOP, "bin", "rootless-box")]
        self.argv = self.rbx + ["system", "service", "--time", "0"]

    def setup(self, tar_path):
        # the bytecode first, as an installed tool has it: a service that compiles the tree
        # at its first start (after any change of the code) keeps that heap, ~6 MiB more
        # in the idle figure than a user's installed service has
        check([sys.executable, "-m", "compileall", "-q", os.path.join(TOP, "rootless_box")],
              self.env, "compileall")
        check(self.rbx + ["import", tar_path, "busybox:latest"], self.env, "rootless-box import")

    def service_pids(self):
        # the server and its fork server (workers come and go; none is there when idle)
        return [self.proc.pid] + _children(self.proc.pid)


class _Podman(_Tool, PodmanStore):
    name = "podman"

    def __init__(self, tmp):
        PodmanStore.__init__(self, tmp)
        self.argv = self.podman + ["--runtime", "runc", "system", "service", "--time", "0"]

    def end_conmons(self):
        """podman's exec sessions leave a conmon each, waiting 300 s (`--exit-delay`) after
        its exec ended: end those of this store (their command lines name its root)."""
        me = os.getuid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat("/proc/" + entry).st_uid != me:
                    continue
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == b"conmon" and \
                    any(self.root.encode() in arg for arg in argv):
                try:
                    os.kill(int(entry), signal.SIGTERM)
                except OSError:
                    pass

    def setup(self, tar_path):
        check(self.podman + ["import", "-q", tar_path, "docker.io/library/busybox:latest"],
              self.env, "podman import")
        self.check_overlay()


# -- the measurements --------------------------------------------------------------------------

def _alternate(tools, values, failures, rounds, warmup, step):
    for i in range(warmup + rounds):
        for tool in tools:
            if tool.name in failures:
                continue
            try:
                figures = step(tool)
            except PeerFailed as exc:
                failures[tool.name] = str(exc)
                log("%s failed: %s" % (tool.name, exc))
                continue
            if i >= warmup:
                for key, value in figures.items():
                    values.setdefault((key, tool.name), []).append(value)


def _context(tmp):
    ctx = os.path.join(tmp, "context")
    os.makedirs(os.path.join(ctx, "files"))
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    for i in range(200):
        with open(os.path.join(ctx, "files", "f%03d.txt" % i), "w") as f:
            f.write("file %d\n" % i * 20)
    with open(os.path.join(ctx, "blob"), "wb") as f:
        f.write(os.urandom(4 * MIB))
    return ctx


def _measure(args, tmp, tools, values, failures):
    live = list(tools)
    log("run --rm: %d rounds after %d warm-ups" % (args.runs, args.warmup))
    _alternate(live, values, failures, args.runs, args.warmup, lambda t: {
        "run": t.timed("run", "--rm", "--network", "host", "busybox", "true")})

    sleeper = {}
    for tool in live:
        if tool.name not in failures:
            try:
                sleeper[tool.name] = tool.docker("run", "-d", "--network", "host", "busybox",
                                                 "sleep", "300").stdout.strip()
            except PeerFailed as exc:
                failures[tool.name] = str(exc)
    log("exec: %d rounds after %d warm-ups" % (args.runs, args.warmup))
    _alternate(live, values, failures, args.runs, args.warmup, lambda t: {
        "exec": t.timed("exec", sleeper[t.name], "true")})

    log("creating %d containers per service" % args.count)
    for _ in range(args.count - 1):  # the sleeper is one
        for tool in live:
            if tool.name not in failures:
                try:
                    tool.docker("create", "--network", "host", "busybox", "true")
                except PeerFailed as exc:
                    failures[tool.name] = str(exc)
    log("ps -a: %d rounds after %d warm-ups" % (args.runs, args.warmup))
    _alternate(live, values, failures, args.runs, args.warmup, lambda t: {
        "ps": t.timed("ps", "-a")})

    ctx = _context(tmp)
    for tool in live:
        if tool.name not in failures:
            try:
                tool.docker("build", "--network", "host", "-t", "cached:1", ctx)
            except PeerFailed as exc:
                failures[tool.name] = str(exc)
    log("cached build: %d rounds after %d warm-ups" % (args.runs, args.warmup))
    _alternate(live, values, failures, args.runs, args.warmup, lambda t: {
        "build": t.timed("build", "--network", "host", "-t", "cached:1", ctx)})

    floor = []
    for _ in range(args.warmup + args.runs):
        floor.append(timed(["docker", "--version"], None, "docker --version"))
    values[("cli_floor", None)] = floor[args.warmup:]
    time.sleep(1.0)  # nothing in flight: the idle figure
    for tool in live:
        if tool.name not in failures:
            pids = tool.service_pids()
            values[("rss", tool.name)] = [sum(_mem(p) for p in pids)]
            values[("pss", tool.name)] = [sum(_mem(p, "Pss") for p in pids)]
            values[("rss_main", tool.name)] = [_mem(tool.proc.pid)]


def _activation(tool, tmp):
    """Seconds from the exec of a socket-activated service to its first answer."""
    path = os.path.join(tmp, "activated-%s.sock" % tool.name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    fd = listener.fileno()
    # as systemd execs a service: the socket as fd 3, LISTEN_PID the service's own pid (sh's
    # exec keeps its pid)
    script = 'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"' + (
        "" if fd == 3 else " 3<&%d %d<&-" % (fd, fd))
    start = time.perf_counter()
    proc = subprocess.Popen(["sh", "-c", script, "sh"] + tool.argv, env=tool.env,
                            pass_fds=(fd,), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    listener.close()
    try:
        return _ping(path) - start
    finally:
        _end(proc)
        try:
            os.unlink(path)
        except OSError:
            pass


def _activations(args, tmp, tools, values, failures):
    log("socket activation: %d rounds" % args.activations)
    for _ in range(args.activations):
        for tool in tools:
            if tool.name in failures:
                continue
            try:
                values.setdefault(("activation", tool.name), []).append(_activation(tool, tmp))
            except PeerFailed as exc:
                failures["activation " + tool.name] = str(exc)
                log("%s failed: %s" % (tool.name, exc))


# -- the table ---------------------------------------------------------------------------------

ROWS = [
    ("run", "`docker run --rm busybox true`, median (goal: 0.5x)", "ms", 0.5),
    ("ps", "`docker ps -a` with {count}, median (goal: 0.5x)", "ms", 0.5),
    ("exec", "`docker exec CTR true`, median (goal: 0.5x)", "ms", 0.5),
    ("build", "fully cached `docker build`, median (goal: 0.2x)", "ms", 0.2),
    ("activation", "first `/_ping` answered after socket activation, median (goal: 50 ms)",
     "ms", None),
    ("rss", "idle service RSS, all its processes (goal: 30 MiB)", "MiB", None),
    ("pss", "idle service PSS, all its processes", "MiB", None),
    ("rss_main", "idle service RSS, the server process alone", "MiB", None),
]


def _table(args, values, failures, names):
    print("The docker CLI %s against each service (DOCKER_HOST); medians of %d runs after %d "
          "warm-ups, the services alternating; `ps -a` lists %d containers (one running); the "
          "cached build: %d small files and a 4 MiB file, 5 steps, classic builder; socket "
          "activation: median of %d fresh starts; load average %.1f when done."
          % (_docker_version(), args.runs, args.warmup, args.count, 200, args.activations,
             os.getloadavg()[0]))
    print()
    print("| figure | rootless-box | podman | ratio |")
    print("|---|---|---|---|")
    verdicts = []
    for key, label, unit, goal in ROWS:
        label = label.format(count=args.count)
        scale = 1000.0 if unit == "ms" else 1.0 / MIB
        figures = {}
        for name in ("rootless-box", "podman"):
            if name not in names:
                figures[name] = (None, "not installed")
            elif name in failures or (key == "activation" and "activation " + name in failures):
                figures[name] = (None, "failed")
            elif not values.get((key, name)):
                figures[name] = (None, "failed")
            else:
                figures[name] = (statistics.median(values[(key, name)]) * scale, None)
        ours, peer = figures["rootless-box"][0], figures["podman"][0]
        text = ["%.1f %s" % (v, unit) if v is not None else "n/a (%s)" % why
                for v, why in (figures["rootless-box"], figures["podman"])]
        ratio = ours / peer if ours is not None and peer else None
        print("| %s | %s | %s | %s |" % (label, text[0], text[1],
                                         "%.2f" % ratio if ratio is not None else "-"))
        report_row(label, ours, peer, "podman", unit,
                   why=figures["rootless-box"][1] or figures["podman"][1])
        if goal is not None and ratio is not None:
            verdicts.append("%s %s" % (key, "meets" if ratio <= goal else "misses"))
        elif key == "activation" and ours is not None:
            verdicts.append("activation %s" % ("meets" if ours <= 50 else "misses"))
        elif key == "rss" and ours is not None:
            verdicts.append("RSS %s" % ("meets" if ours <= 30 else "misses"))
    floor = values.get(("cli_floor", None))
    if floor:
        label = "floor: `docker --version`, the CLI's own start in every figure above, median"
        print("| %s | %.1f ms | - | - |" % (label, statistics.median(floor) * 1000))
        report_row(label, statistics.median(floor) * 1000, unit="ms")
    print()
    if verdicts:
        print("Goals (issue 17): " + "; ".join(verdicts) + ".")
    sys.stdout.flush()


def _docker_version():
    try:
        out = subprocess.run(["docker", "--version"], capture_output=True, text=True).stdout
        return out.split(",")[0].replace("Docker version", "").strip() or "?"
    except OSError:
        return "?"


def _remove(tmp):
    from rootless_box.store import remove_tree
    if not remove_tree(tmp):
        from rootless_box.userns import idmap as idmaps
        from rootless_box.userns.launcher import run_in_userns
        run_in_userns(remove_tree, idmaps.plan(), tmp)
    if os.path.exists(tmp):
        log("could not remove %s entirely" % tmp)


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--count", type=int, default=50, help="containers for ps -a")
    parser.add_argument("--activations", type=int, default=5)
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless containers")
        return 2
    if shutil.which("docker") is None:
        print("No docker CLI on PATH: nothing drives the services, so no figures.")
        for _key, label, unit, _goal in ROWS:
            report_row(label.format(count=args.count), None, None, "podman", unit,
                       why="no docker CLI")
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    cache = os.path.join(cache, "rootless-box-bench", "api")
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="rbx-bench-api-")
    values, failures, tools = {}, {}, []
    podman = None
    try:
        tar_path = make_rootfs_tar(os.path.join(tmp, "busybox-rootfs.tar"))
        candidates = [_Ours(tmp, cache)]
        if shutil.which("podman") and shutil.which("runc"):
            podman = _Podman(tmp)
            candidates.append(podman)
        for tool in candidates:
            tools.append(tool)
            try:
                tool.setup(tar_path)
                tool.start(tmp)
            except PeerFailed as exc:
                failures[tool.name] = str(exc)
                log("%s set-up failed: %s" % (tool.name, exc))
        _measure(args, tmp, tools, values, failures)
        for tool in tools:
            tool.cleanup()
            tool.stop()
        _activations(args, tmp, tools, values, failures)
        _table(args, values, failures, [t.name for t in tools])
    finally:
        for tool in tools:
            tool.cleanup()
            tool.stop()
        if podman is not None:
            podman.end_conmons()
            podman.close()
        _remove(tmp)
    for name, why in failures.items():
        log("FAILED %s: %s" % (name, why))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
