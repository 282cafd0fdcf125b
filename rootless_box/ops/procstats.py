"""A running container's processes and their resource use, read from /proc (rootless: no
cgroup statistics are needed, or readable, here).

Owns: finding a container's processes (every process whose pid namespace is that of the
container's init, by the /proc/PID/ns/pid links, so `exec`'d processes count too), one
process's facts as `ps -ef` shows them, and the counters `stats` samples (CPU ticks, PSS/RSS,
block I/O bytes, tasks).
Must not: print or format (commands/top.py and commands/stats.py do), or signal anything.
"""

import os

from . import containers as container_ops
from .psfilter import LIVE_STATES

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid):
    """Fields 3.. of /proc/PID/stat (after `(comm)`), and comm."""
    with open("/proc/%d/stat" % pid, "rb") as f:
        data = f.read()
    left, right = data.index(b"("), data.rindex(b")")
    return data[right + 2:].split(), data[left + 1:right].decode(errors="replace")


def _ns(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def container_pids(record):
    """Host pids of a live container's processes, init first; [] when it is not running
    (or its init is no longer the process that was started)."""
    state = record.get("State") or {}
    init = state.get("Pid") or 0
    if state.get("Status") not in LIVE_STATES or not init or \
            container_ops.proc_start_time(init) != state.get("PidStartTime"):
        return []
    target = _ns(init)
    if target is None:
        return []
    pids = [init]
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != init and _ns(int(name)) == target:
            pids.append(int(name))
    return pids


def boot_time():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    return 0


def _uptime():
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def process(pid, btime=None, uptime=None):
    """One process as `ps -ef` describes it: uid (effective), pid, ppid, start (epoch),
    cpu seconds, C (cpu % over its life), tty (tty_nr), cmd. None if it vanished."""
    try:
        fields, comm = _stat_fields(pid)
        with open("/proc/%d/status" % pid) as f:
            uid = next(int(line.split()[2]) for line in f if line.startswith("Uid:"))
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
    except (OSError, StopIteration, ValueError):
        return None
    btime = boot_time() if btime is None else btime
    uptime = _uptime() if uptime is None else uptime
    # stat(5): field 4 ppid, 7 tty_nr, 14 utime, 15 stime, 22 starttime (counting from 1)
    ticks = int(fields[11]) + int(fields[12])
    started = int(fields[19]) / CLK_TCK
    alive = max(uptime - started, 1e-9)
    cmd = " ".join(a.decode(errors="replace") for a in argv if a) or "[%s]" % comm
    return {"uid": uid, "pid": pid, "ppid": int(fields[1]), "tty": int(fields[4]),
            "start": btime + started, "cpu": ticks / CLK_TCK,
            "c": min(int(ticks / CLK_TCK * 100 / alive), 99), "cmd": cmd}


def processes(pids):
    btime, uptime = boot_time(), _uptime()
    return [p for p in (process(pid, btime, uptime) for pid in pids) if p]


def _memory(pid):
    """PSS when smaps_rollup is readable (shared pages counted once across the container's
    processes), else RSS."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _io(pid):
    read = write = 0
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "read_bytes":
                    read = int(value)
                elif key == "write_bytes":
                    write = int(value)
    except (OSError, ValueError):
        pass
    return read, write


def sample(pids):
    """Counters of a set of processes now: cpu ticks, memory bytes, block read/write bytes,
    tasks (threads, as a cgroup's pids.current counts them)."""
    total = {"ticks": 0, "memory": 0, "read": 0, "write": 0, "tasks": 0}
    for pid in pids:
        try:
            fields, _comm = _stat_fields(pid)
        except (OSError, ValueError):
            continue
        total["ticks"] += int(fields[11]) + int(fields[12])
        total["tasks"] += int(fields[17])
        total["memory"] += _memory(pid)
        read, write = _io(pid)
        total["read"] += read
        total["write"] += write
    return total


def memory_total():
    """MemTotal: the limit a container without a cgroup limit has, as Docker shows it."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
