"""`rmi [OPTIONS] IMAGE [IMAGE...]`: untag and remove images (and what only they used)."""

import sys

from ..cliparse import FLAG, Command, Opt
from ..errors import BoxError
from ..ops import images as image_ops
from ..ops.storage import open_store
from ._common import report


def command(verb, summary):
    return Command(verb, "rmi [OPTIONS] IMAGE [IMAGE...]", summary, (
        Opt("-f,--force", FLAG, "Force removal of the image"),
    ), min_args=1)


def main(parsed):
    store = open_store()
    status = 0
    for name in parsed.args:
        try:
            for line in image_ops.remove(store, name, force=parsed.force):
                sys.stdout.write(line + "\n")
        except BoxError as exc:
            # Docker goes on with the other names and fails at the end.
            report(exc)
            status = exc.exit_code if exc.exit_code != 125 else 1
    return status
