"""`top CONTAINER [ps OPTIONS]`: the processes of a running container, as Docker shows them.

Owns: the verb and its table. Without ps options the columns are `ps -ef`'s (UID PID PPID C
STIME TTY TIME CMD) computed from /proc here, so no procps is needed; with options the host's
`ps` runs with them and its lines are kept by the PID column, as Docker's daemon does. PIDs
are host pids (Docker's too).
Must not: find processes itself (ops/procstats.py does).
"""

import sys

from ..cliparse import Command
from ..errors import BoxError, Conflict, UsageError
from ..ops import containers as container_ops
from ..ops import procstats
# the rows are made in ops/top.py (the Engine API's top makes them too)
from ..ops.top import TITLES, cpu_time, default_rows, ps_rows, start_time, tty_name  # noqa: F401
from ..ops.storage import open_store
from ._common import report


def command(verb, summary):
    return Command(verb, "top CONTAINER [ps OPTIONS]", summary, (), min_args=1,
                   interspersed=False)


def write_table(titles, rows):
    """Docker's top table: tabwriter with a minimum cell width of 20 and padding 3."""
    widths = [max([20] + [len(r[i]) + 3 for r in [titles] + rows if i < len(r)])
              for i in range(len(titles))]
    out = []
    for cells in [titles] + rows:
        out.append("".join(c.ljust(widths[i]) for i, c in enumerate(cells[:-1])) + cells[-1])
    sys.stdout.write("\n".join(out) + "\n")


def main(parsed):
    name, options = parsed.args[0], parsed.args[1:]
    store = open_store()
    try:
        record = container_ops.find(store, name)
        pids = procstats.container_pids(record)
        if not pids:
            raise Conflict("container %s is not running" % name,
                           "start it first (rootless-box start %s)" % name)
        if options:
            titles, rows = ps_rows(pids, options)
        else:
            titles, rows = TITLES, default_rows(pids)
    except UsageError:
        raise
    except BoxError as exc:  # the daemon's errors: Docker's CLI exits 1
        report(exc)
        return 1
    write_table(titles, rows)
    return 0
