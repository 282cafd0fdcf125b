"""Benchmark: the detached-container lifecycle beside podman: `run -d`, `exec`, `ps` with 50
containers, and what an idle detached container costs in memory and CPU.

Owns: timing `run -d IMAGE sleep 300` until the CLI returns, `exec CONTAINER true`, and `ps` /
`ps -a` with 50 running containers, the two tools alternating in one loop (the disk's and the
machine's speed drift here, BASELINES.md); and measuring, from /proc, the processes that keep an
idle detached container: for rootless-box the watcher (State.MonitorPid) and the processes
between it and the container's init (State.Pid), for podman its conmon. RSS and PSS come from
/proc/PID/smaps_rollup (PSS splits shared pages among their users, so it is the figure that adds
up across containers); idle CPU is utime+stime from /proc/PID/stat over a quiet 5 s window.
The rootfs is a static busybox made by rootless_box.ops.fromhost, imported into a private
rootless-box store and a private podman store set up the fair way (bench/_peers.py).
Must not: run as root, touch the user's own stores, or leave containers or processes behind:
every container either tool started is removed with `rm -f` even when a step fails, and a
rootless-box container whose removal failed has its init and watcher killed by pid.
Prints a Markdown table on stdout (and its rows as JSON lines on $BENCH_JSON_FD,
bench/_report.py); progress and errors go to stderr.

Usage: python bench/lifecycle.py [--runs 10] [--warmup 2] [--count 50] [--idle 5]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, TOP)
sys.path.insert(0, HERE)

from _peers import PeerFailed, PodmanStore, check  # noqa: E402
from _report import row as report_row  # noqa: E402

IMAGE = "bench:latest"
PODMAN_IMAGE = "localhost/bench:latest"
MIB = 1024 * 1024


def log(msg):
    print("lifecycle: " + msg, file=sys.stderr, flush=True)


def timed_output(cmd, env, what):
    """(seconds, stdout) of cmd; PeerFailed when it failed. `run -d` prints the ID we need
    later, so unlike _peers.timed the output is kept (a pipe, as a script calling it has)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()
        raise PeerFailed("%s exited %d: %s" % (what, proc.returncode,
                                               detail[-1] if detail else "no output"))
    return elapsed, proc.stdout.strip()


# -- /proc -------------------------------------------------------------------------------------

def _smaps(pid):
    """{"Rss": bytes, "Pss": bytes} of pid, from smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def _stat(pid):
    """(ppid, utime+stime in ticks) of pid."""
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    # the command name may hold spaces and parentheses: the fields start after the last ")"
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _between(top, bottom):
    """The pids strictly between top and its descendant bottom, by parent links."""
    chain = []
    pid = _stat(bottom)[0]
    while pid != top:
        if pid <= 1:
            raise PeerFailed("pid %d is not a descendant of %d" % (bottom, top))
        chain.append(pid)
        pid = _stat(pid)[0]
    return chain


def _cost(pids):
    """Summed RSS and PSS of pids, in bytes."""
    rss = pss = 0
    for pid in pids:
        figures = _smaps(pid)
        rss += figures["Rss"]
        pss += figures["Pss"]
    return rss, pss


def _ticks(pids):
    return sum(_stat(pid)[1] for pid in pids)


# -- the tools ---------------------------------------------------------------------------------

class _Ours:
    name = "rootless-box"

    def __init__(self, tmp, cache):
        self.env = dict(os.environ)
        self.env["XDG_DATA_HOME"] = os.path.join(tmp, "rbx-data")
        self.env["XDG_CONFIG_HOME"] = os.path.join(tmp, "rbx-config")
        self.env["PYTHONPATH"] = TOP
        # An installed package has its bytecode compiled; a source tree the bench user may not
        # write to would be compiled again on every run. (The watcher runs with -I and ignores
        # this: it reads the tree's own __pycache__, which `make bench` compiles.)
        self.env["PYTHONPYCACHEPREFIX"] = os.path.join(cache, "pycache")
        os.mkdir(self.env["XDG_DATA_HOME"], 0o700)
        # the installed command (bin/rootless-box), not `python -m`: runpy's start-up
        # (importlib.util and friends, ~5 ms) is no part of what a user's call costs; with the
        # -S of its #! line, as the installed command runs
        self.rbx = [sys.executable, "-S", os.path.join(TOP, "bin", "rootless-box")]
        self.root = os.path.join(self.env["XDG_DATA_HOME"], "rootless-box")
        self.started = []  # full IDs, for the clean-up whatever happens

    def setup(self, tar_path):
        check(self.rbx + ["import", tar_path, IMAGE], self.env, "rootless-box import")

    def run_d(self):
        elapsed, cid = timed_output(self.rbx + ["run", "-d", IMAGE, "sleep", "300"], self.env,
                                    "rootless-box run -d")
        self.started.append(cid)
        return elapsed, cid

    def exec_true(self, cid):
        return timed_output(self.rbx + ["exec", cid, "true"], self.env, "rootless-box exec")[0]

    def ps(self, all_=False):
        return timed_output(self.rbx + ["ps"] + (["-a"] if all_ else []), self.env,
                            "rootless-box ps")[0]

    def rm(self, cids):
        if cids:
            check(self.rbx + ["rm", "-f"] + list(cids), self.env, "rootless-box rm -f")
            for cid in cids:
                if cid in self.started:
                    self.started.remove(cid)

    def _record(self, cid):
        from rootless_box import fastjson
        with open(os.path.join(self.root, "containers", cid, "container.json"), "rb") as f:
            return fastjson.loads(f.read())

    def keepers(self, cid):
        """{"watcher": [pid], "middle": [pids]} of a running container."""
        state = self._record(cid).get("State") or {}
        watcher, init = state.get("MonitorPid"), state.get("Pid")
        if not watcher or not init:
            raise PeerFailed("container %s has no MonitorPid/Pid in its record" % cid[:12])
        return {"watcher": [watcher], "middle": _between(watcher, init)}

    def cleanup(self):
        """rm -f everything we started; kill by pid what rm -f could not remove."""
        # the store's own list of records, full IDs, also those a failed `run -d` left
        try:
            left = set(os.listdir(os.path.join(self.root, "containers"))) | set(self.started)
        except OSError:
            left = set(self.started)
        for cid in sorted(left):
            try:
                self.rm([cid])
            except PeerFailed as exc:
                log("rm -f %s failed (%s); killing its processes" % (cid[:12], exc))
                self._kill(cid)

    def _kill(self, cid):
        try:
            state = self._record(cid).get("State") or {}
        except (OSError, ValueError):
            return
        for key in ("Pid", "MonitorPid"):
            if state.get(key):
                try:
                    os.kill(state[key], signal.SIGKILL)
                except OSError:
                    pass


class _Podman(PodmanStore):
    name = "podman"

    def __init__(self, tmp):
        super().__init__(tmp)
        self.cmd = self.base + ["--runtime", "runc"]
        self.started = []

    def setup(self, tar_path):
        check(self.base + ["import", "-q", tar_path, PODMAN_IMAGE], self.env, "podman import")
        self.check_overlay()

    def run_d(self):
        elapsed, cid = timed_output(self.cmd + ["run", "-d", "--network", "host", PODMAN_IMAGE,
                                                "sleep", "300"], self.env, "podman run -d")
        self.started.append(cid)
        return elapsed, cid

    def exec_true(self, cid):
        return timed_output(self.cmd + ["exec", cid, "true"], self.env, "podman exec")[0]

    def ps(self, all_=False):
        return timed_output(self.cmd + ["ps"] + (["-a"] if all_ else []), self.env,
                            "podman ps")[0]

    def rm(self, cids):
        if cids:
            check(self.cmd + ["rm", "-f", "-t", "0"] + list(cids), self.env, "podman rm -f")
            for cid in cids:
                if cid in self.started:
                    self.started.remove(cid)

    def keepers(self, cid):
        out = check(self.cmd + ["inspect", "--format", "{{.State.ConmonPid}}", cid], self.env,
                    "podman inspect").stdout.strip()
        if not out.isdigit() or int(out) <= 0:
            raise PeerFailed("podman inspect gave no conmon pid for %s: %r" % (cid[:12], out))
        return {"conmon": [int(out)]}

    def cleanup(self):
        try:
            check(self.cmd + ["rm", "-f", "-a", "-t", "0"], self.env, "podman rm -f -a")
        except PeerFailed as exc:
            log("podman clean-up: %s" % exc)
        self.started = []


# -- the measurements --------------------------------------------------------------------------

class _Results:
    """Figures per row and tool; a tool that failed or is missing has a note instead."""

    def __init__(self):
        self.values = {}   # (row, tool) -> list of samples, or a single number
        self.notes = {}    # tool -> why it has no figures
        self.failures = []

    def fail(self, tool, exc):
        self.notes[tool.name] = "failed"
        self.failures.append("%s: %s" % (tool.name, exc))
        log("%s failed: %s" % (tool.name, exc))


def _alternate(tools, res, rounds, warmup, step):
    """step(tool) -> {row: seconds} for each round; tools alternate, warm-ups untimed."""
    for i in range(warmup + rounds):
        for tool in tools:
            if tool.name in res.notes:
                continue
            try:
                figures = step(tool)
            except PeerFailed as exc:
                res.fail(tool, exc)
                continue
            if i >= warmup:
                for row, value in figures.items():
                    res.values.setdefault((row, tool.name), []).append(value)


def _measure(args, tools, res):
    live = [t for t in tools]

    def run_d(tool):
        elapsed, cid = tool.run_d()
        tool.rm([cid])
        return {"run_d": elapsed}

    log("run -d: %d rounds after %d warm-ups" % (args.runs, args.warmup))
    _alternate(live, res, args.runs, args.warmup, run_d)

    # one sleeper each: exec into it, then its keepers' memory while it is the only container
    one = {}
    for tool in live:
        if tool.name not in res.notes:
            try:
                one[tool.name] = tool.run_d()[1]
            except PeerFailed as exc:
                res.fail(tool, exc)
    log("exec: %d rounds after %d warm-ups" % (args.runs, args.warmup))
    _alternate(live, res, args.runs, args.warmup,
               lambda tool: {"exec": tool.exec_true(one[tool.name])})
    time.sleep(0.5)  # let the new containers settle before /proc is read
    for tool in live:
        if tool.name in one and tool.name not in res.notes:
            try:
                keepers = tool.keepers(one[tool.name])
                for part, pids in keepers.items():
                    res.values[("one_" + part, tool.name)] = _cost(pids)
                res.values[("one", tool.name)] = _cost(sum(keepers.values(), []))
            except (PeerFailed, OSError) as exc:
                res.fail(tool, exc)

    log("starting %d detached sleepers per tool" % args.count)
    many = {t.name: [one[t.name]] for t in live if t.name in one}
    for n in range(args.count - 1):
        for tool in live:
            if tool.name in many and tool.name not in res.notes:
                try:
                    many[tool.name].append(tool.run_d()[1])
                except PeerFailed as exc:
                    res.fail(tool, exc)
    log("ps with %d: %d rounds after %d warm-ups" % (args.count, args.runs, args.warmup))
    _alternate(live, res, args.runs, args.warmup,
               lambda tool: {"ps": tool.ps(), "ps_a": tool.ps(all_=True)})

    log("memory of %d containers' keepers, then %d s of idleness" % (args.count, args.idle))
    keepers = {}
    for tool in live:
        if tool.name in many and tool.name not in res.notes:
            try:
                keepers[tool.name] = [tool.keepers(cid) for cid in many[tool.name]]
            except (PeerFailed, OSError) as exc:
                res.fail(tool, exc)
    for name, per in keepers.items():
        for part in per[0]:
            costs = [_cost(k[part]) for k in per]
            res.values[("avg_" + part, name)] = _mean_pair(costs)
        costs = [_cost(sum(k.values(), [])) for k in per]
        res.values[("avg", name)] = _mean_pair(costs)
        res.values[("count", name)] = len(per)
    zygotes = _zygotes(keepers.get("rootless-box") or [])
    if zygotes:
        res.values[("zygote", "rootless-box")] = _cost(zygotes)
    pids = {name: sum((sum(k.values(), []) for k in per), []) for name, per in keepers.items()}
    before = {name: _ticks(p) for name, p in pids.items()}
    time.sleep(args.idle)
    for name, p in pids.items():
        try:
            res.values[("idle_cpu", name)] = _ticks(p) - before[name]
        except OSError as exc:  # a keeper went away while idle: that is a failure too
            res.failures.append("%s: a keeper exited while idle (%s)" % (name, exc))


def _zygotes(keepers):
    """The warm processes our watchers were forked from (ops/zygote.py): one per user, as
    podman's pause process, and as it not in the keepers' figures; shown on a row of its own."""
    found = set()
    for k in keepers:
        for pid in k["watcher"]:
            try:
                parent = _stat(pid)[0]
                with open("/proc/%d/cmdline" % parent, "rb") as f:
                    if b"rootless_box.ops.zygote" in f.read():
                        found.add(parent)
            except (OSError, IndexError, ValueError):
                pass
    return sorted(found)


def _mean_pair(pairs):
    return (statistics.mean(p[0] for p in pairs), statistics.mean(p[1] for p in pairs))


def _floor():
    """RSS and PSS of a bare `python -S -I` blocked in a read: the least any Python keeper can
    weigh, for reading the figures above."""
    proc = subprocess.Popen([sys.executable, "-S", "-I", "-c", "import posix; posix.read(0, 1)"],
                            stdin=subprocess.PIPE)
    try:
        time.sleep(0.3)
        return _cost([proc.pid])
    finally:
        proc.stdin.close()
        proc.wait()


# -- the table ---------------------------------------------------------------------------------

def _ms(s):
    return "%.1f ms" % (s * 1000)


def _mib(b):
    return "%.2f MiB" % (b / MIB)


def _table(args, tmp, res, names, floor):
    print("Busybox `sleep 300` containers; latencies are medians of %d runs after %d warm-ups, "
          "the two tools alternating; memory from /proc/PID/smaps_rollup of rootless-box's "
          "watcher (and any process between it and the container's init: none since the "
          "monitor adopts init) and of podman's conmon (podman's pause process, one per "
          "user, not counted, nor our zygote, one per user, shown apart); idle CPU is "
          "utime+stime over %d s; stores on %s (%s); load average %s when done."
          % (args.runs, args.warmup, args.idle, os.path.dirname(tmp), _fs_type(tmp),
             "%.1f" % os.getloadavg()[0]))
    print()
    print("| figure | rootless-box | podman | ratio |")
    print("|---|---|---|---|")
    peer = "podman"

    def cell(name, row, fmt, pick):
        if name in res.notes or name not in names:
            return None, "n/a (%s)" % res.notes.get(name, "not run")
        value = res.values.get((row, name))
        if value is None:
            return None, "n/a (failed)"
        value = pick(value)
        return value, fmt(value)

    def line(label, row, fmt, pick, ours_only=False):
        a, a_text = cell("rootless-box", row, fmt, pick)
        if ours_only:
            b, b_text = None, "-"
        else:
            b, b_text = cell(peer, row, fmt, pick)
        ratio = "%.2f" % (a / b) if a is not None and b else "-"
        print("| %s | %s | %s | %s |" % (label, a_text, b_text, ratio))
        unit, scale = {_ms: ("ms", 1000.0), _mib: ("MiB", 1.0 / MIB)}.get(fmt, ("ticks", 1))
        if ours_only:  # RSS / PSS pairs of rootless-box alone: two rows
            for i, part in enumerate(("RSS", "PSS")):
                report_row(label.replace("RSS / PSS", part), a[i] / MIB if a else None,
                           unit="MiB", why=None if a else "failed")
            return
        why = None if a is not None and b is not None else \
            (b_text if a is not None else a_text)[len("n/a ("):-1]
        report_row(label, a * scale if a is not None else None,
                   b * scale if b is not None else None, peer, unit, why=why)

    median = statistics.median
    line("`run -d busybox sleep 300`, median (goal: 0.5x)", "run_d", _ms, median)
    line("`run -d`, min", "run_d", _ms, min)
    line("`exec CONTAINER true`, median (goal: 0.5x)", "exec", _ms, median)
    line("`exec`, min", "exec", _ms, min)
    line("`ps` with %d running, median (goal: 0.5x)" % args.count, "ps", _ms, median)
    line("`ps -a` with %d, median (goal: 0.5x)" % args.count, "ps_a", _ms, median)
    rss, pss = (lambda v: v[0]), (lambda v: v[1])
    line("keepers of one idle container, RSS", "one", _mib, rss)
    line("keepers of one idle container, PSS", "one", _mib, pss)
    line("keepers per container, mean of %d, RSS" % args.count, "avg", _mib, rss)
    line("keepers per container, mean of %d, PSS (goal: 2.5 MiB)" % args.count, "avg", _mib, pss)
    line("- of which the watcher, RSS / PSS (mean of %d)" % args.count, "avg_watcher",
         lambda v: "%s / %s" % (_mib(v[0]), _mib(v[1])), lambda v: v, ours_only=True)
    line("- of which processes between watcher and init, RSS / PSS (mean of %d)" % args.count,
         "avg_middle",
         lambda v: "%s / %s" % (_mib(v[0]), _mib(v[1])), lambda v: v, ours_only=True)
    if ("zygote", "rootless-box") in res.values:
        line("- the zygote they were forked from (one per user, not in the keepers' figures), "
             "RSS / PSS", "zygote",
             lambda v: "%s / %s" % (_mib(v[0]), _mib(v[1])), lambda v: v, ours_only=True)
    line("idle CPU of all %d containers' keepers over %d s" % (args.count, args.idle),
         "idle_cpu", lambda v: "%d ticks" % v, lambda v: v)
    if floor:
        print("| floor: a bare `python -S -I` blocked in read(), RSS / PSS | %s / %s | - | - |"
              % (_mib(floor[0]), _mib(floor[1])))
        for i, part in enumerate(("RSS", "PSS")):
            report_row("floor: a bare `python -S -I` blocked in read(), %s" % part,
                       floor[i] / MIB, unit="MiB")
    print()
    ours_avg = res.values.get(("avg", "rootless-box"))
    ours_cpu = res.values.get(("idle_cpu", "rootless-box"))
    verdicts = []
    if ours_avg:
        verdicts.append("RSS per container %s the 10 MiB target"
                        % ("meets" if ours_avg[0] <= 10 * MIB else "misses"))
    if ours_cpu is not None:
        verdicts.append("idle CPU %s the 0-tick target" % ("meets" if ours_cpu == 0 else "misses"))
    if verdicts:
        print("Targets (issue 6): " + "; ".join(verdicts) + ".")
    sys.stdout.flush()


def _fs_type(path):
    proc = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _remove(tmp):
    from rootless_box.store import remove_tree
    if not remove_tree(tmp):
        # layers and container dirs owned by subordinate ids
        from rootless_box.userns import idmap as idmaps
        from rootless_box.userns.launcher import run_in_userns
        run_in_userns(remove_tree, idmaps.plan(), tmp)
    if os.path.exists(tmp):
        log("could not remove %s entirely" % tmp)


def _terminate(signum, _frame):
    # make (or a user) stopping the run must still reach the clean-up in main's finally
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--count", type=int, default=50, help="containers for ps and memory")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idleness for CPU")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless containers")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    cache = os.path.join(cache, "rootless-box-bench", "lifecycle")
    os.makedirs(cache, exist_ok=True)

    tmp = tempfile.mkdtemp(prefix="rbx-bench-lifecycle-")
    res = _Results()
    tools = []
    podman = None
    try:
        tar_path = os.path.join(tmp, "busybox-rootfs.tar")
        from rootless_box.ops.fromhost import write_rootfs_tar
        with open(tar_path, "wb") as f:
            write_rootfs_tar(["/bin/busybox"], f)

        candidates = [_Ours(tmp, cache)]
        if shutil.which("podman") is None:
            res.notes["podman"] = "not installed"
        elif shutil.which("runc") is None:
            res.notes["podman"] = "runc not installed"
        else:
            podman = _Podman(tmp)
            candidates.append(podman)
        for tool in candidates:
            tools.append(tool)
            try:
                tool.setup(tar_path)
            except PeerFailed as exc:
                res.fail(tool, exc)
                res.notes[tool.name] = "set-up failed"
        _measure(args, tools, res)
        floor = _floor()
        _table(args, tmp, res, [t.name for t in tools], floor)
    finally:
        for tool in tools:
            tool.cleanup()
        if podman is not None:
            podman.close()
        _remove(tmp)
    for failure in res.failures:
        log("FAILED " + failure)
    return 1 if res.failures else 0


if __name__ == "__main__":
    sys.exit(main())
