"""Benchmark: what reproducibility costs a build (issue 20's goal: at most 1.05x).

Owns: timing bench/build.py's 8-step Dockerfile (a COPY of 5,000 small files and a 50 MB file,
a RUN creating 1,000 files), cold, as rootless-box builds it (reproducible by default: mtimes
clamped to the epoch, .pyc headers kept valid, no wall clock in configs) beside the same build
with all of that turned off (bench/_keep_times.py: what builds did before issue 20), the two
alternating in one store, every build --no-cache; then the two alternating again, each build
in a fresh store (where no layer exists already, so the reproducible build has no duplicate
of one to remove). The peer is rootless-box itself.

Where: both variants do the same file-system work (the same syscalls, only other mtimes), so
the goal's figures come from stores in memory (a tmpfs: /dev/shm when it is one, with room and
user xattrs), where the file system adds no noise of its own. The same builds are timed again
with the stores on the disk (TMPDIR) and shown beside them: on an ext4 that is nearly full and
shared, one build takes 0.9 s or 3.5 s as new inodes land, for either variant alike.
Must not: run as root, touch the user's own stores, or leave processes or files behind.

Usage: .venv/bin/python bench/reproducible.py [--runs 9] [--memory DIR] [--disk DIR]
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

BASELINE = "the same build keeping mtimes and the clock (before issue 20)"
VARIANTS = ("reproducible", "keep")


def log(msg):
    print("reproducible: " + msg, file=sys.stderr, flush=True)


def fs_type(path):
    """The type of the file system path is on, from /proc/self/mounts (the longest mount
    point that holds it)."""
    path, best, kind = os.path.realpath(path), "", "?"
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def memory_dir(candidate="/dev/shm", need=2 << 30):
    """candidate when it is a tmpfs this user can write, with need bytes free and user
    xattrs (the store records owners in them); else None."""
    if fs_type(candidate) != "tmpfs" or not os.access(candidate, os.W_OK | os.X_OK):
        return None
    st = os.statvfs(candidate)
    if st.f_bavail * st.f_frsize < need:
        return None
    try:
        with tempfile.NamedTemporaryFile(dir=candidate) as probe:
            os.setxattr(probe.name, "user.rbx-bench", b"1")
    except OSError:
        return None
    return candidate


def measure(parent, runs, ctx, base_tar, where):
    """{variant: {"one": [s], "one_cpu": [s], "fresh": [s], "fresh_cpu": [s]}} for stores
    under a new directory in parent."""
    top = tempfile.mkdtemp(prefix="rbx-bench-repro-", dir=parent)
    out = {name: {"one": [], "one_cpu": [], "fresh": [], "fresh_cpu": []} for name in VARIANTS}
    try:
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(top, "rbx"),
                   PYTHONPATH=os.path.dirname(HERE))
        rbx = [sys.executable, os.path.join(os.path.dirname(HERE), "bin", "rootless-box")]
        keep = [sys.executable, os.path.join(HERE, "_keep_times.py")]
        tools = {"reproducible": rbx, "keep": keep}
        subprocess.run(rbx + ["import", base_tar, "localhost/bench-base"], env=env,
                       check=True, capture_output=True)
        for run in range(runs):
            # alternate which goes first, so a drift of the machine's load hits both alike
            order = VARIANTS if run % 2 == 0 else VARIANTS[::-1]
            for name in order:
                cmd = tools[name] + ["build", "--no-cache", "-q", "-t", "r-" + name, ctx]
                out[name]["one"].append(timed(cmd, env, "build (%s)" % name,
                                              out[name]["one_cpu"]))
                wait_for_trash(env["XDG_DATA_HOME"])
            log("%s, run %d: reproducible %.2f s (CPU %.2f s), keeping times %.2f s "
                "(CPU %.2f s)" % (where, run + 1, out["reproducible"]["one"][-1],
                                  out["reproducible"]["one_cpu"][-1], out["keep"]["one"][-1],
                                  out["keep"]["one_cpu"][-1]))
        # the same, each build in a fresh store (a CI build): no layer is there already, so
        # the reproducible build removes no duplicate of one (what the rebuilds above pay;
        # the keeping-mtimes build makes new layers each time and leaves them)
        for run in range(runs):
            order = VARIANTS[::-1] if run % 2 == 0 else VARIANTS
            for name in order:
                store_env = dict(env, XDG_DATA_HOME=os.path.join(top, "fresh-%d-%s" % (
                    run, name)))
                subprocess.run(rbx + ["import", base_tar, "localhost/bench-base"],
                               env=store_env, check=True, capture_output=True)
                cmd = tools[name] + ["build", "-q", "-t", "r-" + name, ctx]
                out[name]["fresh"].append(timed(cmd, store_env, "build (%s, fresh store)"
                                                % name, out[name]["fresh_cpu"]))
                wait_for_trash(store_env["XDG_DATA_HOME"])
                remove_tree(store_env["XDG_DATA_HOME"])
            log("%s, run %d, fresh stores: reproducible %.2f s (CPU %.2f s), keeping times "
                "%.2f s (CPU %.2f s)" % (where, run + 1, out["reproducible"]["fresh"][-1],
                                         out["reproducible"]["fresh_cpu"][-1],
                                         out["keep"]["fresh"][-1], out["keep"]["fresh_cpu"][-1]))
    finally:
        remove_tree(top)
    return out


FIGURES = (("one", "cold build, reproducible by default"),
           ("one_cpu", "cold build, reproducible by default, CPU (user+sys)"),
           ("fresh", "cold build in a fresh store, reproducible by default"),
           ("fresh_cpu", "cold build in a fresh store, reproducible by default, CPU "
                         "(user+sys)"))


def report(out, where, goal):
    """Print the table's rows for one place and write them as figures."""
    for key, label in FIGURES:
        ours, base = (statistics.median(out[name][key]) for name in VARIANTS)
        spread = "%.2f-%.2f s | %.2f-%.2f s" % (min(out["reproducible"][key]),
                                                max(out["reproducible"][key]),
                                                min(out["keep"][key]), max(out["keep"][key]))
        figure = "%s, stores %s%s" % (label, where, " (goal: 1.05x)" if goal and key == "one"
                                      else "")
        print("| %s | %.2f s | %.2f s | %.2f | %s |" % (figure, ours, base, ours / base, spread))
        row(figure, ours, base, BASELINE, "s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--memory", help="a tmpfs for the goal's stores (default: /dev/shm "
                        "when it is a tmpfs with 2 GiB free and user xattrs)")
    parser.add_argument("--disk", default=tempfile.gettempdir(),
                        help="where the stores on the disk go (default: TMPDIR)")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless builds")
        return 2
    memory = args.memory or memory_dir()
    if memory is None:
        log("no tmpfs with room and user xattrs: the goal's figures come from the disk")
    src = tempfile.mkdtemp(prefix="rbx-bench-repro-src-", dir=args.disk)
    try:
        log("making the context (5,000 files and 50 MB)")
        ctx = _context(src)
        base_tar = make_rootfs_tar(os.path.join(src, "base.tar"))
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE.format(base="localhost/bench-base"))
        places = []
        if memory:
            places.append(("in memory (%s)" % fs_type(memory), memory, True))
        places.append(("on the disk (%s)" % fs_type(args.disk), args.disk, memory is None))
        results = [(where, measure(parent, args.runs, ctx, base_tar, where), goal)
                   for where, parent, goal in places]
    finally:
        remove_tree(src)
    print("bench/build.py's 8-step Dockerfile, cold (--no-cache), %d runs each, alternating "
          "in one store, then each build in a fresh store; medians, and the fastest and "
          "slowest run. CPU: user+sys of the build and its children. The two variants do the "
          "same file-system work (the same syscalls; only the mtimes written differ), so the "
          "goal is judged with the stores in memory, where the file system adds no noise; on "
          "the disk the same build's time swings with where ext4 places new inodes, alike for "
          "both. The steps' directories a build sets aside (on a rebuild, the duplicate of "
          "each layer) are deleted by a process of its own after the build answers; the next "
          "build waits for it, so that it is in neither figure." % args.runs)
    print()
    print("| figure | reproducible (default) | keeping mtimes and the clock | ratio | "
          "fastest-slowest, reproducible | fastest-slowest, keeping |")
    print("|---|---|---|---|---|---|")
    for where, out, goal in results:
        report(out, where, goal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
