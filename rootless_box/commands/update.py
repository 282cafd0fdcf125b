"""`update [OPTIONS] CONTAINER...`: a container's restart policy and, where a delegated cgroup
v2 subtree exists, its resource limits; prints each name. The rules are ops/update.py's."""

import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import UsageError
from . import runflags
from ._common import for_each, warn


def command(verb, summary):
    return Command(verb, "update [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("--restart", VALUE, "Restart policy to apply when a container exits"),
    ) + runflags.LIMIT_OPTS, min_args=1)


def main(parsed):
    from ..ops import update as update_ops
    from ..ops.storage import open_store
    opts = update_ops.UpdateOptions(parsed.restart, **runflags.limits(parsed))
    if not parsed.given - {"help"}:
        raise UsageError("you must provide one or more flags when using this command",
                         "see 'rootless-box update --help'")
    store = open_store()

    def update_one(name):
        for text in update_ops.update(store, name, opts):
            warn(text)
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, update_one)
