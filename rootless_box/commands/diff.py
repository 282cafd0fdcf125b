"""`diff CONTAINER`: the container's changes against its image, one `A|C|D /path` line each
(Docker's format). Owns nothing but the printing: ops/commit.diff finds them."""

import sys

from ..cliparse import Command
from ..ops.commit import diff
from ..ops.storage import open_store
from ..userns import idmap as idmaps


def command(verb, summary):
    return Command(verb, "diff CONTAINER", summary, (), min_args=1, max_args=1)


def main(parsed):
    idmap = idmaps.plan()
    store = open_store(idmap)
    sys.stdout.write("".join("%s %s\n" % change for change in diff(store, idmap,
                                                                   parsed.args[0])))
    return 0
