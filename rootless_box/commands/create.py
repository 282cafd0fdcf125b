"""`create [OPTIONS] IMAGE [COMMAND] [ARG...]`: `run`'s options; the container is made and
its ID printed, to be started with `start`. Owns nothing beyond that wiring."""

import sys

from ..cliparse import Command
from ..ops import run as run_ops
from ._common import warn
from .run import OPTS, options_from, puller


def command(verb, summary):
    opts = tuple(o for o in OPTS if "--detach" not in o.names and "--rm" not in o.names and
                 "--detach-keys" not in o.names) + \
        tuple(o for o in OPTS if "--rm" in o.names)
    return Command(verb, "create [OPTIONS] IMAGE [COMMAND] [ARG...]", summary, opts,
                   min_args=1, interspersed=False)


def main(parsed):
    opts = options_from(parsed)
    pull = puller(parsed.pull, parsed.platform, parsed.quiet)
    record = run_ops.create(opts, warn=warn, pull=pull)
    sys.stdout.write(record["Id"] + "\n")
    return 0
