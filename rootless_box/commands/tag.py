"""`tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]`."""

from ..cliparse import Command
from ..ops import images as image_ops
from ..ops.storage import open_store


def command(verb, summary):
    return Command(verb, "tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", summary, (), min_args=2,
                   max_args=2)


def main(parsed):
    image_ops.tag(open_store(), parsed.args[0], parsed.args[1])
    return 0
