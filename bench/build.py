"""Benchmark: `build` of an 8-step Dockerfile, cold and fully cached, beside podman build and
buildah bud (when installed) on the same context and the same busybox base.

Owns: timing the build figures of issue 4 (a COPY of 5,000 small files and a 50 MB file, a RUN
that creates 1,000 files; then a rebuild where every step is cached). The peers get a private
store set up the fair way (BASELINES.md: native overlay via storage.conf, runc, host network).
Must not: run as root, touch the user's own stores, or leave processes or files behind.

Usage: .venv/bin/python bench/build.py [--runs 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from _peers import BuildPeer, PeerFailed, make_rootfs_tar, timed, wait_for_trash  # noqa: E402
from _report import row  # noqa: E402

DOCKERFILE = """FROM {base}
ENV APP=/app
WORKDIR /app
COPY small/ /app/small/
COPY big.bin /app/big.bin
RUN mkdir /app/gen && cd /app/gen && i=0; while [ $i -lt 1000 ]; do echo $i > f$i; i=$((i+1)); done
LABEL bench=build
CMD ["ls", "/app"]
"""


def log(msg):
    print("build: " + msg, file=sys.stderr, flush=True)


def _context(top):
    ctx = os.path.join(top, "ctx")
    small = os.path.join(ctx, "small")
    os.makedirs(small)
    for i in range(5000):
        with open(os.path.join(small, "f%04d" % i), "w") as f:
            f.write("file %d\n" % i)
    block = os.urandom(1 << 20)
    with open(os.path.join(ctx, "big.bin"), "wb") as f:
        for _ in range(50):
            f.write(block)
    return ctx


def _timed(cmd, env, cpu=None):
    return timed(cmd, env, " ".join(cmd[:3]), cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless builds")
        return 2
    top = tempfile.mkdtemp(prefix="rbx-bench-build-")
    peers = []
    try:
        log("making the context (5,000 files and 50 MB)")
        ctx = _context(top)
        base_tar = make_rootfs_tar(os.path.join(top, "base.tar"))
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(top, "rbx"),
                   PYTHONPATH=os.path.dirname(HERE))
        # the installed command, as a user calls it (runpy's start-up is no part of it)
        rbx = [sys.executable, os.path.join(os.path.dirname(HERE), "bin", "rootless-box")]
        subprocess.run(rbx + ["import", base_tar, "localhost/bench-base"], env=env,
                       check=True, capture_output=True)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE.format(base="localhost/bench-base"))
        tools = {"rootless-box": None}
        for tool in ("podman", "buildah"):
            if shutil.which(tool) and shutil.which("runc"):
                try:
                    tools[tool] = BuildPeer(tool, top, base_tar)
                    peers.append(tools[tool])
                except (PeerFailed, OSError) as exc:
                    log("%s cannot be set up: %s" % (tool, exc))
        cold = {name: [] for name in tools}
        cached = {name: [] for name in tools}
        cpu = {name: [] for name in tools}
        failed = {}
        names = list(tools)
        for run in range(args.runs):
            # each run starts with another tool: none always follows the same one (whose
            # leftovers, writeback or freed inodes, the next build pays for)
            for name in names[run % len(names):] + names[:run % len(names)]:
                peer = tools[name]
                if name in failed:
                    continue
                try:
                    if peer is None:
                        cold[name].append(_timed(rbx + ["build", "--no-cache", "-t", "b",
                                                        ctx], env, cpu[name]))
                        wait_for_trash(env["XDG_DATA_HOME"])
                        cached[name].append(_timed(rbx + ["build", "-t", "b", ctx], env))
                    else:
                        cold[name].append(peer.build(ctx, "b", no_cache=True, cpu=cpu[name]))
                        cached[name].append(peer.build(ctx, "b"))
                    log("run %d, %s: cold %.2f s (CPU %.2f s), cached %.2f s"
                        % (run + 1, name, cold[name][-1], cpu[name][-1], cached[name][-1]))
                except PeerFailed as exc:
                    failed[name] = str(exc)
                    log("%s failed: %s" % (name, exc))
        _table(args, cold, cached, cpu, failed)
    finally:
        for peer in peers:
            peer.close()
        from rootless_box.store import remove_tree
        if not remove_tree(top):
            subprocess.run(["podman", "unshare", "rm", "-rf", top], capture_output=True)
    return 0


def _table(args, cold, cached, cpu, failed):
    def med(values):
        return statistics.median(values) if values else None

    ours_cold, ours_cached = med(cold["rootless-box"]), med(cached["rootless-box"])
    print("An 8-step Dockerfile (busybox base, COPY of 5,000 small files and a 50 MB file, a "
          "RUN creating 1,000 files); %d runs, tools alternating, each run starting with "
          "another; medians. CPU: user+sys of the build and the processes it waited for."
          % args.runs)
    print()
    print("| figure | rootless-box | peer | ratio |")
    print("|---|---|---|---|")
    for tool in ("podman", "buildah"):
        if tool not in cold:
            continue
        for label, ours, theirs in (("cold build", ours_cold, med(cold[tool])),
                                    ("fully cached rebuild", ours_cached, med(cached[tool]))):
            goal = " (goal: 0.6x)" if label == "cold build" and tool == "podman" else ""
            row("%s of an 8-step Dockerfile%s" % (label, goal), ours, theirs, "`%s`" % (
                "podman build" if tool == "podman" else "buildah bud"), "s",
                why=None if theirs is not None and ours is not None
                else failed.get(tool, failed.get("rootless-box", "failed")))
            if theirs is None or ours is None:
                print("| %s, beside %s | %s | n/a (%s) | - |" % (
                    label, tool, "%.2f s" % ours if ours else "failed",
                    failed.get(tool, "failed")))
            else:
                print("| %s, beside %s | %.2f s | %.2f s | %.2f |"
                      % (label, tool, ours, theirs, ours / theirs))
        ours_cpu, theirs_cpu = med(cpu["rootless-box"]), med(cpu[tool])
        if ours_cpu is not None and theirs_cpu is not None:
            row("cold build of an 8-step Dockerfile, CPU (user+sys)", ours_cpu, theirs_cpu,
                "`%s`" % ("podman build" if tool == "podman" else "buildah bud"), "s")
            print("| cold build, CPU (user+sys), beside %s | %.2f s | %.2f s | %.2f |"
                  % (tool, ours_cpu, theirs_cpu, ours_cpu / theirs_cpu))
    if len(cold) == 1:
        print("| cold build | %.2f s | n/a | - |" % ours_cold)
        print("| fully cached rebuild | %.2f s | n/a | - |" % ours_cached)
        for label, ours in (("cold build", ours_cold), ("fully cached rebuild", ours_cached)):
            row("%s of an 8-step Dockerfile" % label, ours, None, "podman, buildah", "s",
                why="not installed")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
