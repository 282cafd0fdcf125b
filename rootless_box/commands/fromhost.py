"""`image from-host [-t NAME] PATH...`: a base image from host binaries, with no download."""

import os
import sys

from ..cliparse import VALUE, Command, Opt
from ..ops import images as image_ops
from ..ops.fromhost import write_rootfs_tar
from ..ops.storage import open_store
from ..userns import idmap as idmaps
from ._common import warn


def command(verb, summary):
    return Command(verb, "image from-host [OPTIONS] PATH [PATH...]", summary, (
        Opt("-t,--tag", VALUE, "Name and optionally a tag (format: name:tag)"),
        Opt("-c,--change", VALUE, "Dockerfile instruction for the image (default: CMD "
                                  "[\"sh\"] when /bin/sh is included)"),
    ), min_args=1)


def main(parsed):
    idmap = idmaps.plan()
    if idmap.warning:
        warn(idmap.warning)
    store = open_store(idmap)
    tar_path = store.mktemp_path("fromhost")
    try:
        with open(tar_path, "wb") as out:
            written = write_rootfs_tar(parsed.args, out)
        changes = [parsed.change] if parsed.change else (
            ['CMD ["sh"]'] if any(p in ("/bin/sh", "bin/sh", "/usr/bin/sh") for p in written)
            else [])
        image_id, _report = image_ops.import_rootfs(
            store, idmap, tar_path, parsed.tag, changes,
            "from host: %s" % " ".join(parsed.args))
    finally:
        try:
            os.unlink(tar_path)
        except OSError:
            pass
    sys.stdout.write(image_id + "\n")
    return 0
