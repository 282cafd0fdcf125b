"""`image prune [OPTIONS]`: remove dangling images (every unused one with -a), as Docker does.

Owns: Docker's confirmation prompt (shared with `system prune`), the filters this verb accepts,
and the `Deleted Images:` / `Total reclaimed space:` report.
Must not: choose or remove anything itself (ops/prune.py does, under the store lock).
"""

import sys

from ..cliparse import FLAG, LIST, Command, Opt
from ..ops import prune as prune_ops
from ..ops.storage import open_store
from ._common import human_size
from .images import parse_filters

WARNING = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
WARNING_ALL = ("WARNING! This will remove all images without at least one container associated "
               "to them.\nAre you sure you want to continue?")


def command(verb, summary):
    return Command(verb, "image prune [OPTIONS]", summary, (
        Opt("-a,--all", FLAG, "Remove all unused images, not just dangling ones"),
        Opt("--filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\", "
                              "\"label=<key>=<value>\")"),
        Opt("-f,--force", FLAG, "Do not prompt for confirmation"),
    ), max_args=0)


def confirm(message):
    """Docker's prompt: the message, ` [y/N] ` on stdout, one line from stdin; only y or Y
    goes on (end of input is a no)."""
    sys.stdout.write(message + " [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip() in ("y", "Y")


def deleted_images_text(items):
    """Docker's section for removed images: `untagged: NAME` / `deleted: sha256:...`."""
    if not items:
        return ""
    return "Deleted Images:\n" + "".join("%s: %s\n" % item for item in items)


def write_report(sections, reclaimed):
    # Docker prints each non-empty section followed by a blank line (Fprintln of text that
    # already ends in a newline), then the total
    sys.stdout.write("".join(text + "\n" for text in sections if text) +
                     "Total reclaimed space: %s\n" % human_size(reclaimed))


def main(parsed):
    accepts = prune_ops.image_filter(parse_filters(parsed.filter, prune_ops.PRUNE_FILTERS))
    store = open_store()
    if not parsed.force and not confirm(WARNING_ALL if parsed.all else WARNING):
        return 0  # cancelled: nothing removed, nothing more said (Docker's cancelledErr)
    result = prune_ops.prune_images(store, all_images=parsed.all, accepts=accepts)
    write_report([deleted_images_text(result["items"])], result["reclaimed"])
    return 0
