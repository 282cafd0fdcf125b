"""`kill [-s SIG] CONTAINER...`: a signal (SIGKILL by default) to each; prints each name."""

import sys

from ..cliparse import VALUE, Command, Opt
from ._common import for_each


def command(verb, summary):
    return Command(verb, "kill [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("-s,--signal", VALUE, "Signal to send to the container", default="KILL"),
    ), min_args=1)


def main(parsed):
    from ..ops import lifecycle
    from ..ops.storage import open_store
    store = open_store()

    def kill_one(name):
        lifecycle.kill(store, name, parsed.signal)
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, kill_one)
