"""`commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]`: a container's changes become an image."""

import sys

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..ops.commit import commit
from ..ops.storage import open_store
from ..userns import idmap as idmaps


def command(verb, summary):
    return Command(verb, "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]", summary, (
        Opt("-a,--author", VALUE, 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")'),
        Opt("-c,--change", LIST, "Apply Dockerfile instruction to the created image",
            metavar="list"),
        Opt("-m,--message", VALUE, "Commit message"),
        Opt("-p,--pause", FLAG, "Pause container during commit (accepted; rootless-box "
                                "commits without pausing)", default=True),
    ), min_args=1, max_args=2)


def main(parsed):
    idmap = idmaps.plan()
    store = open_store(idmap)
    image_id = commit(store, idmap, parsed.args[0],
                      parsed.args[1] if len(parsed.args) > 1 else None, parsed.change,
                      parsed.message or "", parsed.author or "")
    sys.stdout.write(image_id + "\n")
    return 0
