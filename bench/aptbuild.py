"""Benchmark: a Dockerfile that runs `apt-get install` on a Debian base, cold, beside
`buildah bud` with a subuid mapping on the same Debian image (issue 8's speed figure).

Owns: timing that build with rootless-box under a subuid range and under a single-id mapping
(the seccomp fake root), and with buildah (private store set up by bench/_peers.py). The base
is the debootstrap minbase tarball `make test` caches as root (RBX_TEST_DEBIAN_TAR, else
/var/cache/rootless-box-ci/debian-bookworm-minbase.tar); apt fetches from the image's own
mirror, so every figure includes the same downloads.
Must not: run as root, touch the user's own stores, or leave processes or files behind.

Usage: .venv/bin/python bench/aptbuild.py [--runs 2] [--package hello]
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

from _peers import BuildPeer, PeerFailed, timed  # noqa: E402
from _report import row  # noqa: E402

DEFAULT_TAR = "/var/cache/rootless-box-ci/debian-bookworm-minbase.tar"
DOCKERFILE = """FROM localhost/bench-debian
RUN apt-get update && apt-get install -y --no-install-recommends {package} && {package} --version
"""


def log(msg):
    print("aptbuild: " + msg, file=sys.stderr, flush=True)


def _ours(top, ctx, base_tar, mode, runs):
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(top, "rbx-" + mode), RBX_USERNS=mode)
    rbx = [sys.executable, "-m", "rootless_box"]
    timed(rbx + ["import", base_tar, "localhost/bench-debian"], env, "import")
    return [timed(rbx + ["build", "--no-cache", "-q", "-t", "apt", ctx], env,
                  "rootless-box build (%s)" % mode) for _ in range(runs)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--package", default="hello")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless builds")
        return 2
    base_tar = os.environ.get("RBX_TEST_DEBIAN_TAR") or DEFAULT_TAR
    print("`RUN apt-get update && apt-get install -y %s` on a debootstrap minbase bookworm "
          "base, cold (--no-cache), %d runs each, medians; downloads from the image's "
          "mirror are part of every figure." % (args.package, args.runs))
    print()
    print("| figure | rootless-box | buildah bud (subuid) | ratio |")
    print("|---|---|---|---|")
    if not os.access(base_tar, os.R_OK):
        why = "no Debian base tarball (%s): run `make test` as root once" % base_tar
        print("| apt-get build | n/a | n/a | - |\n\n%s" % why)
        row("cold apt-get build", None, None, "`buildah bud`", why=why)
        return 0
    top = tempfile.mkdtemp(prefix="rbx-bench-apt-")
    peer = None
    try:
        ctx = os.path.join(top, "ctx")
        os.mkdir(ctx)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE.format(package=args.package))
        theirs, why = None, None
        if shutil.which("buildah") and shutil.which("runc"):
            try:
                peer = BuildPeer("buildah", top, base_tar, "localhost/bench-debian")
                theirs = statistics.median(peer.build(ctx, "apt", no_cache=True)
                                           for _ in range(args.runs))
            except PeerFailed as exc:
                why = str(exc)
        else:
            why = "buildah or runc is not installed"
        for mode, label in (("subuid", "subuid range"), ("single", "single id, fake root")):
            try:
                ours = statistics.median(_ours(top, ctx, base_tar, mode, args.runs))
            except PeerFailed as exc:
                ours, detail = None, str(exc)
            else:
                detail = why
            row("cold apt-get build, rootless-box with a %s" % label, ours, theirs,
                "`buildah bud` (subuid)", why=detail if ours is None or theirs is None else None)
            print("| cold build, %s | %s | %s | %s |" % (
                label, "%.2f s" % ours if ours else "failed (%s)" % detail,
                "%.2f s" % theirs if theirs else "n/a (%s)" % why,
                "%.2f" % (ours / theirs) if ours and theirs else "-"))
    finally:
        if peer is not None:
            peer.close()
        from rootless_box.store import remove_tree
        if not remove_tree(top):
            subprocess.run([sys.executable, "-m", "rootless_box", "system", "prune", "-a", "-f"],
                           env=dict(os.environ, XDG_DATA_HOME=os.path.join(top, "rbx-subuid")),
                           capture_output=True)
            subprocess.run(["podman", "unshare", "rm", "-rf", top], capture_output=True)
            shutil.rmtree(top, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
