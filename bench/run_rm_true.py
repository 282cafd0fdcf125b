"""Benchmark: `run --rm IMAGE true`, rootless-box beside podman, on the same rootfs.

Owns: timing the start-up and tear-down of a container that does nothing, which is the cost a
user pays on every `run`. The rootfs is a static busybox made by rootless_box.ops.fromhost, imported
into a private rootless-box store and, when podman is installed, into a private podman store set up
the fair way (BASELINES.md: --runtime runc, native overlay via storage.conf, --network host).
Runs of the two tools alternate in one loop on one filesystem, because the disk's speed here
drifts from minute to minute.
Must not: run as root (it measures rootless operation), touch the user's own stores, or leave
processes behind. Prints a Markdown table on stdout (and its rows as JSON lines on $BENCH_JSON_FD,
bench/_report.py); progress and errors go to stderr.

The one-file binary (dist/rootless-box, `make binary`) joins the loop as a third tool when it
exists: its rows say what a user of the binary pays.

Usage: .venv/bin/python bench/run_rm_true.py [--runs 30] [--warmup 3] [--rbx PATH]
       [--binary PATH|none]
As root, set BENCH_USER=NAME to re-run it as that user (who must be able to read this tree).
"""

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _peers import PeerFailed, PodmanStore, check, timed  # noqa: E402
from _report import row  # noqa: E402


def log(msg):
    print("run_rm_true: " + msg, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rbx", help="the rootless-box command (default: the one beside this "
                                      "python, e.g. .venv/bin/rootless-box)")
    parser.add_argument("--binary", help="the one-file binary (default: dist/rootless-box "
                                         "when it was built; 'none': leave it out)")
    args = parser.parse_args(argv)

    if os.geteuid() == 0:
        user = os.environ.get("BENCH_USER")
        if not user:
            log("refusing to run as root: this measures rootless containers; run it as a plain "
                "user, or set BENCH_USER=<user> to re-run it as that user")
            return 2
        log("re-running as %s" % user)
        os.execvp("runuser", ["runuser", "-u", user, "--", sys.executable,
                              os.path.abspath(__file__)] + (argv or sys.argv[1:]))

    rbx = [args.rbx] if args.rbx else _default_rbx()
    tmp = tempfile.mkdtemp(prefix="rbx-bench-rm-true-")
    podman = None
    failures = []
    try:
        tar_path = os.path.join(tmp, "busybox-rootfs.tar")
        from rootless_box.ops.fromhost import write_rootfs_tar
        with open(tar_path, "wb") as f:
            write_rootfs_tar(["/bin/busybox"], f)

        ours = _Ours(rbx, tmp)
        try:
            ours.setup(tar_path)
        except PeerFailed as e:
            failures.append("rootless-box: %s" % e)
            log("rootless-box cannot be measured: %s" % e)
            ours = None

        binary = _binary_path(args.binary)
        if binary:
            # its own store and the user's cache: the first call (a warm-up) unpacks it
            binary = _Ours([binary], tmp, name="rootless-box binary", data="rbx-bin-data")
            try:
                binary.setup(tar_path)
            except PeerFailed as e:
                failures.append("rootless-box binary: %s" % e)
                log("the binary cannot be measured: %s" % e)
                binary = None

        podman_note = None
        if shutil.which("podman") is None:
            podman_note = "not installed"
        elif shutil.which("runc") is None:
            podman_note = "runc not installed"
        else:
            podman = _Podman(tmp)
            try:
                podman.setup(tar_path)
            except PeerFailed as e:
                failures.append("podman: %s" % e)
                log("podman cannot be measured: %s" % e)
                podman_note = "failed"

        tools = [t for t in (ours, binary, podman if podman_note is None else None)
                 if t is not None]
        times = {id(t): [] for t in tools}
        for i in range(args.warmup + args.runs):
            for tool in tools:
                if tool.failed:
                    continue
                try:
                    elapsed = tool.run_true()
                except PeerFailed as e:
                    failures.append("%s: %s" % (tool.name, e))
                    log("%s failed: %s" % (tool.name, e))
                    tool.failed = True
                    continue
                if i >= args.warmup:
                    times[id(tool)].append(elapsed)
        _print_table(args, tmp, ours, podman, podman_note, times, binary)
    finally:
        if podman is not None:
            podman.teardown()
        _remove(tmp, podman)
    if failures:
        for f in failures:
            log("FAILED " + f)
        return 1
    return 0


def _default_rbx():
    beside = os.path.join(os.path.dirname(sys.executable), "rootless-box")
    if os.access(beside, os.X_OK):
        return [beside]
    return [sys.executable, "-m", "rootless_box"]


def _binary_path(arg):
    if arg == "none":
        return None
    path = arg or os.path.join(os.path.dirname(HERE), "dist", "rootless-box")
    return path if os.access(path, os.X_OK) else None


class _Ours:
    def __init__(self, rbx, tmp, name="rootless-box", data="rbx-data"):
        self.rbx = rbx
        self.name = name
        self.failed = False
        self.env = dict(os.environ)
        # A private store; the runtime dir stays the user's, as in real use.
        self.env["XDG_DATA_HOME"] = os.path.join(tmp, data)
        os.mkdir(self.env["XDG_DATA_HOME"], 0o700)

    def setup(self, tar_path):
        check(self.rbx + ["import", tar_path, "bench:latest"], self.env, "rootless-box import")

    def run_true(self):
        return timed(self.rbx + ["run", "--rm", "bench:latest", "true"], self.env,
                      "rootless-box run")


class _Podman(PodmanStore):
    """podman on a private store under tmp/podman (bench/_peers.py)."""

    name = "podman"

    def __init__(self, tmp):
        super().__init__(tmp)
        self.failed = False

    def setup(self, tar_path):
        check(self.base + ["import", "-q", tar_path, "localhost/bench:latest"], self.env,
               "podman import")
        self.check_overlay()

    def run_true(self):
        return timed(self.base + ["--runtime", "runc", "run", "--rm", "--network", "host",
                                   "localhost/bench:latest", "true"], self.env, "podman run")

    def teardown(self):
        self.end_pause()


def _remove(tmp, podman):
    # Layers unpacked in a user namespace belong to subordinate ids the user cannot delete
    # directly; podman unshare enters the same mapping.
    if podman is not None:
        for entry in os.listdir(tmp):
            if entry != "podman":
                podman.remove(os.path.join(tmp, entry))
        podman.remove(podman.graph)
        # `podman unshare` started a pause process again; its pid file is in tmp, so end it
        # before the pid file goes.
        podman.teardown()
    shutil.rmtree(tmp, ignore_errors=True)
    if os.path.exists(tmp):
        log("could not remove %s entirely" % tmp)


def _ms(seconds):
    return "%.1f ms" % (seconds * 1000)


def _p90(values):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def _fs_type(path):
    proc = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _print_table(args, tmp, ours, podman, podman_note, times, binary=None):
    def figures(tool):
        values = times.get(id(tool)) if tool is not None else None
        if not values or tool.failed:
            return None
        return statistics.median(values), _p90(values), min(values)

    ours_f = figures(ours)
    pod_f = figures(podman) if podman_note is None else None
    print("`run --rm busybox true`: %d runs after %d warm-ups, the tools alternating, "
          "stores on %s (%s)." % (args.runs, args.warmup, os.path.dirname(tmp), _fs_type(tmp)))
    print()
    print("| figure | rootless-box | podman | ratio |")
    print("|---|---|---|---|")
    for i, label in enumerate(("median", "p90", "min")):
        a = _ms(ours_f[i]) if ours_f else "failed"
        if pod_f:
            b = _ms(pod_f[i])
        else:
            b = "n/a (%s)" % (podman_note or "failed")
        ratio = "%.2f" % (ours_f[i] / pod_f[i]) if ours_f and pod_f else "-"
        goal = " (goal: 0.25x)" if label == "median" else ""
        print("| `run --rm true`, %s%s | %s | %s | %s |" % (label, goal, a, b, ratio))
        row("`run --rm busybox true`, %s%s" % (label, goal), ours_f[i] * 1000 if ours_f else None,
            pod_f[i] * 1000 if pod_f else None, "podman", "ms",
            why=None if pod_f else (podman_note or "failed"))
    if binary is not None:
        bin_f = figures(binary)
        for i, label in enumerate(("median", "p90", "min")):
            a = _ms(bin_f[i]) if bin_f else "failed"
            b = _ms(pod_f[i]) if pod_f else "n/a (%s)" % (podman_note or "failed")
            ratio = "%.2f" % (bin_f[i] / pod_f[i]) if bin_f and pod_f else "-"
            print("| `run --rm true`, the one-file binary, %s | %s | %s | %s |"
                  % (label, a, b, ratio))
            row("`run --rm busybox true`, the one-file binary, %s" % label,
                bin_f[i] * 1000 if bin_f else None, pod_f[i] * 1000 if pod_f else None,
                "podman", "ms", why=None if pod_f else (podman_note or "failed"))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
