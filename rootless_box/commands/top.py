"""`top CONTAINER [ps OPTIONS]`: the processes of a running container, as Docker shows them.

Owns: the verb and its table. Without ps options the columns are `ps -ef`'s (UID PID PPID C
STIME TTY TIME CMD) computed from /proc here, so no procps is needed; with options the host's
`ps` runs with them and its lines are kept by the PID column, as Docker's daemon does. PIDs
are host pids (Docker's too).
Must not: find processes itself (ops/procstats.py does).
"""

import sys
import time

from ..cliparse import Command
from ..errors import BoxError, Conflict, UsageError
from ..ops import containers as container_ops
from ..ops import procstats
from ..ops.storage import open_store
from ._common import report

TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


def command(verb, summary):
    return Command(verb, "top CONTAINER [ps OPTIONS]", summary, (), min_args=1,
                   interspersed=False)


def _user(uid, cache={}):
    if uid not in cache:
        import pwd
        try:
            cache[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            cache[uid] = str(uid)
    return cache[uid]


def tty_name(tty_nr):
    """ps's TTY column from stat's tty_nr (major in bits 8-15 and 20-31)."""
    if not tty_nr:
        return "?"
    major = (tty_nr >> 8) & 0xfff
    minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00)
    if 136 <= major <= 143:
        return "pts/%d" % (minor + (major - 136) * 256)
    if major == 4 and minor < 64:
        return "tty%d" % minor
    return "?"


def cpu_time(seconds):
    """ps's TIME: [DD-]HH:MM:SS."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    text = "%02d:%02d:%02d" % (rest // 3600, rest % 3600 // 60, rest % 60)
    return ("%d-" % days + text) if days else text


def start_time(epoch, now=None):
    """ps's STIME: HH:MM today, MonDD this year, else the year."""
    now = time.time() if now is None else now
    then, today = time.localtime(epoch), time.localtime(now)
    if now - epoch < 86400 and then.tm_yday == today.tm_yday:
        return time.strftime("%H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%b%d", then)
    return time.strftime("%Y", then)


def default_rows(pids):
    return [[_user(p["uid"]), str(p["pid"]), str(p["ppid"]), str(p["c"]),
             start_time(p["start"]), tty_name(p["tty"]), cpu_time(p["cpu"]), p["cmd"]]
            for p in procstats.processes(pids)]


def ps_rows(pids, options):
    """Docker's parsePSOutput: the host's ps, lines kept whose PID column is one of pids."""
    import subprocess
    try:
        proc = subprocess.run(["ps"] + options, capture_output=True, text=True)
    except OSError as exc:
        raise BoxError("cannot run ps: %s" % exc.strerror,
                       "install procps, or run top without ps options") from None
    if proc.returncode != 0:
        raise BoxError("ps %s failed: %s" % (" ".join(options), proc.stderr.strip()),
                       "give options the host's ps accepts, e.g. aux or -o pid,comm")
    lines = proc.stdout.splitlines()
    titles = lines[0].split() if lines else []
    if "PID" not in titles:
        raise BoxError("couldn't find PID field in ps output",
                       "include the pid, e.g. -o pid,comm")
    index, wanted = titles.index("PID"), {str(p) for p in pids}
    rows = []
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > index and fields[index] in wanted:
            rows.append(fields[:len(titles) - 1] + [" ".join(fields[len(titles) - 1:])])
    return titles, rows


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
