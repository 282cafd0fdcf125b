"""`pause CONTAINER...` and `unpause CONTAINER...` (the cgroup v2 freezer; ops/pause.py)."""

import sys

from ..cliparse import Command
from ._common import for_each


def command(verb, summary):
    return Command(verb, "%s CONTAINER [CONTAINER...]" % verb, summary, (), min_args=1)


def main(parsed):
    from ..ops import pause as pause_ops
    from ..ops.storage import open_store
    store = open_store()
    action = pause_ops.unpause if parsed.command.name.endswith("unpause") else pause_ops.pause

    def one(name):
        action(store, name)
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, one)
