"""`load [-i FILE] [-q]`: images from a docker-archive, OCI layout tarball or oci-archive.

Owns: the options, the input (a file, or standard input but never a terminal, as Docker) and
printing Docker's `Loaded image: NAME` / `Loaded image ID: ID` lines. Must not: read the archive
itself (ops/archive.py does).
"""

import os
import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import UsageError
from ..ops import archive
from ..ops.storage import open_store
from ..userns import idmap as idmaps
from ._common import warn, warn_unpack


def command(verb, summary):
    return Command(verb, "load [OPTIONS]", summary, (
        Opt("-i,--input", VALUE, "Read from tar archive file, instead of STDIN"),
        # Docker's -q hides the progress bars; there are none here, the result lines stay
        Opt("-q,--quiet", FLAG, "Suppress the load output"),
    ), max_args=0)


def main(parsed):
    if not parsed.input and os.isatty(0):
        raise UsageError("requested load from stdin, but stdin is a terminal",
                         "use the -i flag or redirect an archive to stdin")
    idmap = idmaps.plan()
    if idmap.warning:
        warn(idmap.warning)
    store = open_store(idmap)
    result = archive.load(store, idmap, parsed.input or sys.stdin.buffer)
    warn_unpack(result)
    for line in result["lines"]:
        sys.stdout.write(line + "\n")
    return 0
