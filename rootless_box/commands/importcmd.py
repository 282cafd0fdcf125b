"""`import [OPTIONS] file|- [REPOSITORY[:TAG]]`: a rootfs tarball becomes a one-layer image."""

import sys

from ..cliparse import LIST, VALUE, Command, Opt
from ..ops import images as image_ops
from ..ops.storage import open_store
from ..userns import idmap as idmaps
from ._common import warn, warn_unpack


def command(verb, summary):
    return Command(verb, "import [OPTIONS] file|- [REPOSITORY[:TAG]]", summary, (
        Opt("-c,--change", LIST, "Apply Dockerfile instruction to the created image",
            metavar="list"),
        Opt("-m,--message", VALUE, "Set commit message for imported image"),
    ), min_args=1, max_args=2)


def main(parsed):
    idmap = idmaps.plan()
    if idmap.warning:
        warn(idmap.warning)
    store = open_store(idmap)
    repository = parsed.args[1] if len(parsed.args) > 1 else None
    source = sys.stdin.buffer if parsed.args[0] == "-" else parsed.args[0]
    image_id, report = image_ops.import_rootfs(store, idmap, source, repository,
                                               parsed.change, parsed.message or "")
    warn_unpack(report)
    sys.stdout.write(image_id + "\n")
    return 0
