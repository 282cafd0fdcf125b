"""`wait CONTAINER...`: block until each stops, then print its exit code (Docker's CLI waits
with not-running: a restart policy's restart does not hide an exit)."""

import sys

from ..cliparse import Command
from ._common import for_each


def command(verb, summary):
    return Command(verb, "wait CONTAINER [CONTAINER...]", summary, (), min_args=1)


def main(parsed):
    from ..ops import containers, lifecycle
    from ..ops.storage import open_store
    store = open_store()

    def wait_one(name):
        code = lifecycle.wait_condition(store, containers.find(store, name))
        sys.stdout.write("%d\n" % code)
        sys.stdout.flush()
    return for_each(parsed.args, wait_one)
