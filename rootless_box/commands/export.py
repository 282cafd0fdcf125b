"""`export [-o FILE] CONTAINER`: the container's filesystem as one tar archive."""

import os
import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import UsageError
from ..ops.commit import export
from ..ops.storage import open_store
from ..userns import idmap as idmaps


def command(verb, summary):
    return Command(verb, "export [OPTIONS] CONTAINER", summary, (
        Opt("-o,--output", VALUE, "Write to a file, instead of STDOUT"),
    ), min_args=1, max_args=1)


def main(parsed):
    idmap = idmaps.plan()
    store = open_store(idmap)
    if not parsed.output:
        if os.isatty(1):
            raise UsageError("cowardly refusing to save to a terminal",
                             "use the -o flag or redirect")
        sys.stdout.flush()
        export(store, idmap, parsed.args[0], 1)
        return 0
    target = os.path.abspath(parsed.output)
    tmp = "%s.tmp-%d" % (target, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        export(store, idmap, parsed.args[0], fd)
        os.close(fd)
        fd = None
        os.rename(tmp, target)
    finally:
        if fd is not None:
            os.close(fd)
            os.unlink(tmp)
    return 0
