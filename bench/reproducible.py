"""Benchmark: what reproducibility costs a build (issue 20's goal: at most 1.05x).

Owns: timing bench/build.py's 8-step Dockerfile (a COPY of 5,000 small files and a 50 MB file,
a RUN creating 1,000 files), cold, as rootless-box builds it (reproducible by default: mtimes
clamped to the epoch, .pyc headers kept valid, no wall clock in configs) beside the same build
with all of that turned off (bench/_keep_times.py: what builds did before issue 20), the two
alternating in one store, every build --no-cache; then the two alternating again, each build
in a fresh store (where no layer exists already, so the reproducible build has no duplicate
of one to remove). The peer is rootless-box itself.
Must not: run as root, touch the user's own stores, or leave processes or files behind.

Usage: .venv/bin/python bench/reproducible.py [--runs 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _peers import make_rootfs_tar, timed, wait_for_trash  # noqa: E402
from rootless_box.store import remove_tree  # noqa: E402
from _report import row  # noqa: E402
from build import DOCKERFILE, _context  # noqa: E402


def log(msg):
    print("reproducible: " + msg, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless builds")
        return 2
    top = tempfile.mkdtemp(prefix="rbx-bench-repro-")
    try:
        log("making the context (5,000 files and 50 MB)")
        ctx = _context(top)
        base_tar = make_rootfs_tar(os.path.join(top, "base.tar"))
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(top, "rbx"),
                   PYTHONPATH=os.path.dirname(HERE))
        rbx = [sys.executable, os.path.join(os.path.dirname(HERE), "bin", "rootless-box")]
        keep = [sys.executable, os.path.join(HERE, "_keep_times.py")]
        subprocess.run(rbx + ["import", base_tar, "localhost/bench-base"], env=env,
                       check=True, capture_output=True)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE.format(base="localhost/bench-base"))
        times = {"reproducible": [], "keep": []}
        cpu = {"reproducible": [], "keep": []}
        for run in range(args.runs):
            # alternate which goes first, so a drift of the machine's load hits both alike
            order = ("reproducible", "keep") if run % 2 == 0 else ("keep", "reproducible")
            for name in order:
                cmd = (rbx if name == "reproducible" else keep) + [
                    "build", "--no-cache", "-q", "-t", "r-" + name, ctx]
                times[name].append(timed(cmd, env, "build (%s)" % name, cpu[name]))
                wait_for_trash(env["XDG_DATA_HOME"])
            log("run %d: reproducible %.2f s (CPU %.2f s), keeping times %.2f s (CPU %.2f s)"
                % (run + 1, times["reproducible"][-1], cpu["reproducible"][-1],
                   times["keep"][-1], cpu["keep"][-1]))
        # the same, each build in a fresh store (a CI build): no layer is there already, so
        # the reproducible build removes no duplicate of one (what the rebuilds above pay;
        # the keeping-mtimes build makes new layers each time and leaves them)
        fresh = {"reproducible": [], "keep": []}
        fresh_cpu = {"reproducible": [], "keep": []}
        for run in range(args.runs):
            order = ("keep", "reproducible") if run % 2 == 0 else ("reproducible", "keep")
            for name in order:
                store_env = dict(env, XDG_DATA_HOME=os.path.join(top, "fresh-%d-%s" % (
                    run, name)))
                subprocess.run(rbx + ["import", base_tar, "localhost/bench-base"],
                               env=store_env, check=True, capture_output=True)
                cmd = (rbx if name == "reproducible" else keep) + [
                    "build", "-q", "-t", "r-" + name, ctx]
                fresh[name].append(timed(cmd, store_env, "build (%s, fresh store)" % name,
                                         fresh_cpu[name]))
                wait_for_trash(store_env["XDG_DATA_HOME"])
                remove_tree(store_env["XDG_DATA_HOME"])
            log("run %d, fresh stores: reproducible %.2f s (CPU %.2f s), keeping times %.2f s "
                "(CPU %.2f s)" % (run + 1, fresh["reproducible"][-1],
                                  fresh_cpu["reproducible"][-1], fresh["keep"][-1],
                                  fresh_cpu["keep"][-1]))
        ours, base = statistics.median(times["reproducible"]), statistics.median(times["keep"])
        ours_cpu, base_cpu = statistics.median(cpu["reproducible"]), statistics.median(cpu["keep"])
        ours_f, base_f = statistics.median(fresh["reproducible"]), statistics.median(fresh["keep"])
        ours_fc = statistics.median(fresh_cpu["reproducible"])
        base_fc = statistics.median(fresh_cpu["keep"])
        print("bench/build.py's 8-step Dockerfile, cold (--no-cache), %d runs each, alternating "
              "in one store; medians. CPU: user+sys of the build and its children. The steps' "
              "directories a build sets aside (on a rebuild, the duplicate of each layer) are "
              "deleted by a process of its own after the build answers; the next build waits "
              "for it, so that it is in neither figure." % args.runs)
        print()
        print("| figure | reproducible (default) | keeping mtimes and the clock | ratio |")
        print("|---|---|---|---|")
        print("| cold build (goal: 1.05x) | %.2f s | %.2f s | %.2f |" % (ours, base, ours / base))
        print("| cold build, CPU (user+sys) | %.2f s | %.2f s | %.2f |"
              % (ours_cpu, base_cpu, ours_cpu / base_cpu))
        print("| cold build, each in a fresh store | %.2f s | %.2f s | %.2f |"
              % (ours_f, base_f, ours_f / base_f))
        print("| cold build, each in a fresh store, CPU (user+sys) | %.2f s | %.2f s | %.2f |"
              % (ours_fc, base_fc, ours_fc / base_fc))
        row("cold build, reproducible by default (goal: 1.05x)", ours, base,
            "the same build keeping mtimes and the clock (before issue 20)", "s")
        row("cold build, reproducible by default, CPU (user+sys)", ours_cpu, base_cpu,
            "the same build keeping mtimes and the clock (before issue 20)", "s")
        row("cold build in a fresh store, reproducible by default", ours_f, base_f,
            "the same build keeping mtimes and the clock (before issue 20)", "s")
        row("cold build in a fresh store, reproducible by default, CPU (user+sys)", ours_fc,
            base_fc, "the same build keeping mtimes and the clock (before issue 20)", "s")
    finally:
        remove_tree(top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
