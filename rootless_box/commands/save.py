"""`save [-o FILE] IMAGE [IMAGE...]`: images as one tarball, a docker-archive and an OCI layout.

Owns: the options and where the tar goes: a file (ops/archive.py lands it whole by rename) or
standard output, never a terminal (Docker refuses that too). Must not: build the archive
(ops/archive.py does).
"""

import os
import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import UsageError
from ..ops import archive
from ..ops.storage import open_store


def command(verb, summary):
    return Command(verb, "save [OPTIONS] IMAGE [IMAGE...]", summary, (
        Opt("-o,--output", VALUE, "Write to a file, instead of STDOUT"),
    ), min_args=1)


def main(parsed):
    if not parsed.output and os.isatty(1):
        raise UsageError("cowardly refusing to save to a terminal",
                         "use the -o flag or redirect")
    store = open_store()
    if parsed.output:
        archive.save_to_file(store, parsed.args, parsed.output)
    else:
        sys.stdout.flush()
        archive.save_to_stream(store, parsed.args, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    return 0
