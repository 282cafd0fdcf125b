"""`cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-` and `cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH`.

Owns: the verb's flags and Docker's progress line ("Successfully copied SIZE to DEST" on
stderr, only when stderr is a terminal and -q was not given). Must not: decide how or where
files are copied (ops/cp.py does).
"""

import sys

from ..cliparse import FLAG, Command, Opt
from ..ops import cp as cp_ops

OPTS = (
    Opt("-a,--archive", FLAG, "Archive mode (copy all uid/gid information)"),
    Opt("-L,--follow-link", FLAG, "Always follow symbol link in SRC_PATH"),
    Opt("-q,--quiet", FLAG, "Suppress progress output during copy. Progress output is "
                            "automatically suppressed if no terminal is attached"),
)


def command(verb, summary):
    return Command(verb, "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
                         "\trootless-box cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
                   summary, OPTS, min_args=2, max_args=2)


def human_size(size):
    """go-units' HumanSize: decimal units, four significant digits (2.048kB)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    value, i = float(size), 0
    while value >= 1000 and i < len(units) - 1:
        value /= 1000.0
        i += 1
    return "%.4g%s" % (value, units[i])


def main(parsed):
    source, destination = parsed.args
    result = cp_ops.copy(cp_ops.CpOptions(source, destination, archive=parsed.archive,
                                          follow_link=parsed.follow_link))
    if not parsed.quiet and result["to"] != "-" and sys.stderr.isatty():
        sys.stderr.write("Successfully copied %s to %s\n" % (human_size(result["size"]),
                                                             result["to"]))
    return 0
