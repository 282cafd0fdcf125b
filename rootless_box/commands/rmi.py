"""`rmi [OPTIONS] IMAGE [IMAGE...]`: untag and remove images (and what only they used)."""

import sys

from ..cliparse import FLAG, Command, Opt
from ..ops import images as image_ops
from ..ops.storage import open_store
from ._common import for_each


def command(verb, summary):
    return Command(verb, "rmi [OPTIONS] IMAGE [IMAGE...]", summary, (
        Opt("-f,--force", FLAG, "Force removal of the image"),
    ), min_args=1)


def main(parsed):
    store = open_store()

    def remove(name):
        for line in image_ops.remove(store, name, force=parsed.force):
            sys.stdout.write(line + "\n")

    return for_each(parsed.args, remove)
