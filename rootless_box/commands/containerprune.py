"""`container prune [OPTIONS]`: remove all stopped containers, as Docker does.

Owns: the verb's prompt text, its filters (until=, label=, label!=) and the
`Deleted Containers:` / `Total reclaimed space:` report.
Must not: choose or remove anything itself (ops/prune.py does, under the store lock).
"""

from ..cliparse import FLAG, LIST, Command, Opt
from ..ops import prune as prune_ops
from ..ops.storage import open_store
from .images import parse_filters
from .imageprune import confirm, write_report
from .systemprune import _section

WARNING = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"


def command(verb, summary):
    return Command(verb, "container prune [OPTIONS]", summary, (
        Opt("--filter", LIST, "Provide filter values (e.g. \"until=<timestamp>\", "
                              "\"label=<key>=<value>\")"),
        Opt("-f,--force", FLAG, "Do not prompt for confirmation"),
    ), max_args=0)


def main(parsed):
    accepts = prune_ops.image_filter(parse_filters(parsed.filter, prune_ops.PRUNE_FILTERS))
    store = open_store()
    if not parsed.force and not confirm(WARNING):
        return 0  # cancelled: nothing removed, nothing more said (Docker's cancelledErr)
    result = prune_ops.prune_containers(store, accepts=accepts)
    write_report([_section("Deleted Containers", result["deleted"])], result["reclaimed"])
    return 0
