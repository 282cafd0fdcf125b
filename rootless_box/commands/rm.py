"""`rm [OPTIONS] CONTAINER [CONTAINER...]`."""

import sys

from ..cliparse import FLAG, Command, Opt
from ..errors import UsageError
from ..ops import containers as container_ops
from ..ops.storage import open_store
from ._common import for_each


def command(verb, summary):
    return Command(verb, "rm [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("-f,--force", FLAG, "Force the removal of a running container (uses SIGKILL)"),
        Opt("-v,--volumes", FLAG, "Remove anonymous volumes associated with the container"),
        Opt("-l,--link", FLAG, "Remove the specified link (CONTAINER/ALIAS)"),
    ), min_args=1)


def main(parsed):
    store = open_store()

    def remove(name):
        if parsed.link:
            from ..ops.networks import remove_link
            ctr, _, alias = name.strip("/").rpartition("/")
            if not ctr:
                raise UsageError("invalid link %s: give CONTAINER/ALIAS" % name)
            remove_link(store, ctr, alias)
            sys.stdout.write(name + "\n")
            return
        record = container_ops.find(store, name)
        container_ops.remove(store, record, force=parsed.force, volumes=parsed.volumes)
        sys.stdout.write(name + "\n")

    return for_each(parsed.args, remove)
