"""A running container's processes as `ps` shows them, for `top` and GET
/containers/{id}/top: `ps -ef`'s columns (UID PID PPID C STIME TTY TIME CMD) computed from
/proc (no procps needed), or the host's `ps` run with the user's options, its lines kept by
the PID column (moby's parsePSOutput).
Must not: print; find processes itself (ops/procstats.py does).
"""

import time

from ..errors import BoxError
from . import procstats

TITLES = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]


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
