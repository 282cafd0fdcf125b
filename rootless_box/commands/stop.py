"""`stop [-t N] CONTAINER...`: the stop signal, SIGKILL after the timeout; prints each name."""

import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import UsageError
from ._common import for_each


def command(verb, summary):
    return Command(verb, "stop [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("-t,--time", VALUE, "Seconds to wait before killing the container", metavar="int"),
        Opt("-s,--signal", VALUE, "Signal to send to the container"),
    ), min_args=1)


def timeout_of(parsed):
    if parsed.time is None:
        return None
    try:
        return int(parsed.time)
    except ValueError:
        raise UsageError('invalid argument "%s" for "-t, --time" flag' % parsed.time) from None


def main(parsed):
    from ..ops import lifecycle
    from ..ops.storage import open_store
    store = open_store()
    timeout = timeout_of(parsed)

    def stop_one(name):
        lifecycle.stop(store, name, timeout, parsed.signal)
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, stop_one)
