"""`builder prune [OPTIONS]`: remove the build cache, as `docker builder prune` does.

Owns: Docker's confirmation prompt for it and the `Deleted build cache objects:` /
`Total reclaimed space:` report.
Must not: choose or remove anything itself (ops/prune.py does, under the store lock).
"""

from ..cliparse import FLAG, Command, Opt
from ..ops import prune as prune_ops
from ..ops.storage import open_store
from .imageprune import confirm, write_report

WARNING = "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
WARNING_ALL = "WARNING! This will remove all build cache. Are you sure you want to continue?"


def command(verb, summary):
    return Command(verb, "builder prune [OPTIONS]", summary, (
        Opt("-a,--all", FLAG, "Remove all unused build cache, not just dangling ones"),
        Opt("-f,--force", FLAG, "Do not prompt for confirmation"),
    ), max_args=0)


def main(parsed):
    """Without -a: RUN --mount cache directories and kept API build contexts no build uses
    now, and the dangling images builds leave; with -a also the step cache (the next build
    runs every step again)."""
    store = open_store()
    if not parsed.force and not confirm(WARNING_ALL if parsed.all else WARNING):
        return 0
    result = prune_ops.prune_build_cache(store, everything=parsed.all)
    deleted = result["deleted"]
    write_report(["Deleted build cache objects:\n" + "".join(d + "\n" for d in deleted)
                  if deleted else ""], result["reclaimed"])
    return 0
