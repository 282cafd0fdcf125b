"""`restart [-t N] CONTAINER...`: stop (as `stop` does), then start again; prints each name."""

import sys

from ..cliparse import VALUE, Command, Opt
from ._common import for_each
from .stop import timeout_of


def command(verb, summary):
    return Command(verb, "restart [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("-t,--time", VALUE, "Seconds to wait before killing the container", metavar="int"),
        Opt("-s,--signal", VALUE, "Signal to send to the container"),
    ), min_args=1)


def main(parsed):
    from ..ops import lifecycle
    from ..ops.storage import open_store
    from ..userns import idmap as idmaps
    idmap = idmaps.plan()
    store = open_store(idmap)
    timeout = timeout_of(parsed)

    def restart_one(name):
        lifecycle.restart(store, idmap, name, timeout, parsed.signal)
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, restart_one)
