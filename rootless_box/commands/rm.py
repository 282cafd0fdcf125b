"""`rm [OPTIONS] CONTAINER [CONTAINER...]`."""

import sys

from ..cliparse import FLAG, Command, Opt
from ..errors import BoxError
from ..ops import containers as container_ops
from ..ops.storage import open_store
from ._common import report


def command(verb, summary):
    return Command(verb, "rm [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("-f,--force", FLAG, "Force the removal of a running container (uses SIGKILL)"),
        Opt("-v,--volumes", FLAG, "Remove anonymous volumes associated with the container"),
    ), min_args=1)


def main(parsed):
    store = open_store()
    status = 0
    for name in parsed.args:
        try:
            record = container_ops.find(store, name)
            container_ops.remove(store, record, force=parsed.force)
            sys.stdout.write(name + "\n")
        except BoxError as exc:
            report(exc)
            status = 1
    return status
