"""Container logs in Docker's json-file format: the readers behind `logs` (all of it, the last
N lines, following), over the files ops/logwriter.py writes.

Owns: the bytes of a log line exactly as moby's json-file driver writes them
(daemon/logger/jsonfilelog: `{"log":"...","stream":"stdout","time":"<RFC3339Nano>"}` + "\\n",
its string escaping, invalid UTF-8 as U+FFFD), the copier's line splitting (a line longer than
16 KiB is cut into partial entries whose "log" lacks the "\\n"), size rotation with Docker's
names (`json.log`, `json.log.1` ... `json.log.<max_files-1>`, rotated before an entry is written
to a file that reached max_size), and reading those files back across rotations.
Must not: import anything beyond os, time and fastjson (the monitor that imports this module
stays resident per container: ~10 MiB RSS budget), touch namespaces, print, or let an I/O error
out of LogWriter (a full disk drops entries, it never kills the monitor).
"""

import os
import time

from .. import fastjson

_READ_BLOCK = 64 * 1024

def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm): no
    datetime import on this path."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_time(text):
    """RFC 3339 `YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)` -> epoch nanoseconds.
    ValueError when it is not that."""
    if len(text) < 20 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt" or \
            text[13] != ":" or text[16] != ":":
        raise ValueError("not an RFC 3339 time: %r" % text)
    fields = (text[0:4], text[5:7], text[8:10], text[11:13], text[14:16], text[17:19])
    if not all(f.isdigit() and f.isascii() for f in fields):
        raise ValueError("not an RFC 3339 time: %r" % text)
    year, month, day, hour, minute, second = map(int, fields)
    pos, frac = 19, 0
    if text[19] == ".":
        end = 20
        while end < len(text) and "0" <= text[end] <= "9":
            end += 1
        digits = text[20:end]
        if not digits:
            raise ValueError("not an RFC 3339 time: %r" % text)
        frac = int((digits + "00000000")[:9])
        pos = end
    zone = text[pos:]
    if zone in ("Z", "z"):
        offset = 0
    elif len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and \
            (zone[1:3] + zone[4:6]).isdigit():
        offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * (1 if zone[0] == "+" else -1)
    else:
        raise ValueError("not an RFC 3339 time: %r" % text)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("not an RFC 3339 time: %r" % text)
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (secs - offset) * 1000000000 + frac


class Entry:
    """One log entry: stream ("stdout"/"stderr"), log (text, with its "\\n" unless partial),
    time (as stored) and ns (epoch nanoseconds)."""

    __slots__ = ("stream", "log", "time", "ns")

    def __init__(self, stream, log, time_text, ns):
        self.stream, self.log, self.time, self.ns = stream, log, time_text, ns

    def __repr__(self):
        return "Entry(%r, %r, %r)" % (self.stream, self.log, self.time)


def _decode(line):
    """A json-file line -> Entry, or None for a line that is not one (a foreign or damaged
    file: skipped, as the rest is still worth showing)."""
    try:
        obj = fastjson.loads(line)
        stamp = obj.get("time", "")
        return Entry(obj.get("stream", ""), obj.get("log", ""), stamp, parse_time(stamp))
    except (ValueError, AttributeError, TypeError, IndexError):
        return None


def _scan(path, stop_ino=None):
    """Open the current log and its rotated files, newest first, as [(fd, inode)], stopping
    before the file whose inode is stop_ino. A walk that a rotation crossed is walked again:
    the writer renames path.(N-2) -> path.(N-1) ... path -> path.1, so two rotations during
    one walk would show a newer file under a higher number than an older one already opened."""
    for _attempt in range(_SCAN_TRIES - 1):
        files, settled = _walk(path, stop_ino)
        if settled:
            return files
        for fd, _ino in files:
            os.close(fd)
        time.sleep(0.001)
    return _walk(path, stop_ino)[0]  # a log rotating without pause: the last walk, as is


_SCAN_TRIES = 200


def _walk(path, stop_ino):
    """One walk: (files newest first, settled). Settled when no rotation crossed it: path
    still names the file opened as path (or is still missing), and no gap in the numbers
    was a rename in flight (a file beyond the gap)."""
    files, seen = [], set()
    index = 0
    first = None  # the inode opened as path; None while path is missing
    settled = True
    while True:
        name = path if index == 0 else "%s.%d" % (path, index)
        index += 1
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if index == 1:
                continue  # rotated this instant: the numbered files are still there
            if os.path.lexists("%s.%d" % (path, index)):
                settled = False  # path.k moved to path.(k+1) and path.(k-1) not yet to path.k
            break
        except OSError:
            break
        ino = os.fstat(fd).st_ino
        if index == 1:
            first = ino
        if ino == stop_ino:
            os.close(fd)
            break
        if ino in seen:
            os.close(fd)
            continue
        seen.add(ino)
        files.append((fd, ino))
    try:
        now = os.stat(path).st_ino
    except FileNotFoundError:
        now = None
    except OSError:
        now = first
    return files, settled and now == first


def _tail_start(fd, end, count):
    """Offset where the last `count` newline-terminated lines of fd[:end] begin, and how many
    lines there are from there (fewer than count when the file runs out)."""
    if count <= 0 or end <= 0:
        return end, 0
    # the newline that ends the last line is not a boundary to look for
    need = count
    pos = end - 1
    while pos > 0:
        lo = max(0, pos - _READ_BLOCK)
        block = os.pread(fd, pos - lo, lo)
        found = block.count(b"\n")
        if found < need:
            need -= found
            pos = lo
            continue
        cut = len(block)
        for _ in range(need):
            cut = block.rindex(b"\n", 0, cut)
        return lo + cut + 1, count
    return 0, count - need + 1


def _complete_end(fd, size):
    """End of the last complete line: a line still being written is not read yet."""
    pos = size
    while pos > 0:
        lo = max(0, pos - _READ_BLOCK)
        block = os.pread(fd, pos - lo, lo)
        nl = block.rfind(b"\n")
        if nl >= 0:
            return lo + nl + 1
        pos = lo
    return 0


class _Reader:
    """The log's files held open (oldest first), so a rotation while reading moves names,
    not the data under the reader."""

    def __init__(self, path):
        self.path = path
        self.files = _scan(path)[::-1]

    def close(self):
        for fd, _ino in self.files:
            try:
                os.close(fd)
            except OSError:
                pass
        self.files = []

    def starts(self, tail):
        """[(fd, start offset, end offset)] for every file, oldest first; tail None = all."""
        spans = []
        for fd, _ino in self.files:
            size = os.fstat(fd).st_size
            spans.append([fd, 0, _complete_end(fd, size)])
        if tail is not None:
            need = tail
            for span in reversed(spans):
                if need <= 0:
                    span[1] = span[2]
                    continue
                span[1], got = _tail_start(span[0], span[2], need)
                need -= got
        return spans


def _lines(fd, start, end):
    pos, rest = start, b""
    while pos < end:
        data = os.pread(fd, min(_READ_BLOCK, end - pos), pos)
        if not data:
            break
        pos += len(data)
        parts = (rest + data).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def _filtered(entries, since, until):
    for entry in entries:
        if since is not None and entry.ns < since:
            continue
        if until is not None and entry.ns > until:
            return
        yield entry


def _entries_of(spans):
    for fd, start, end in spans:
        for line in _lines(fd, start, end):
            entry = _decode(line)
            if entry is not None:
                yield entry


def read_entries(path, since=None, until=None):
    """Every entry of the log and its rotated files, oldest first. since/until: epoch ns,
    inclusive (Docker skips entries before since and stops at the first after until)."""
    reader = _Reader(path)
    try:
        yield from _filtered(_entries_of(reader.starts(None)), since, until)
    finally:
        reader.close()


def tail(path, n):
    """The last n entries (lines, as Docker counts them), across rotated files; reads the
    files backwards by blocks, so the cost follows n, not the size of the log."""
    reader = _Reader(path)
    try:
        return list(_entries_of(reader.starts(max(0, n))))
    finally:
        reader.close()


def follow(path, is_running, tail=None, since=None, until=None, interval=0.1):
    """The log's entries (all, or the last `tail`; tail=0: none of the old ones), then each new
    one as it is appended, across rotations, until is_running() is false and everything is
    read. is_running must stay true while anything may still write the log (the monitor
    closes its LogWriter before it records the exit): it is called before each final read,
    so an entry written before it turns false is never missed. Polls every `interval` s."""
    reader = _Reader(path)
    try:
        while not reader.files:
            # no log yet: wait for the writer to create it, or for the end
            running = is_running()
            reader = _Reader(path)
            if reader.files:
                tail = None  # all of it is new
                break
            if not running:
                return
            time.sleep(interval)
        spans = reader.starts(tail)
        for entry in _entries_of(spans[:-1]):
            if until is not None and entry.ns > until:
                return
            if since is None or entry.ns >= since:
                yield entry
        fd, start, _end = spans[-1]
        ino = reader.files[-1][1]
        os.lseek(fd, start, os.SEEK_SET)
        rest = [b""]

        def drain():
            while True:
                data = os.read(fd, _READ_BLOCK)
                if not data:
                    return
                parts = (rest[0] + data).split(b"\n")
                rest[0] = parts.pop()
                for line in parts:
                    entry = _decode(line)
                    if entry is not None:
                        yield entry

        while True:
            running = is_running()
            got = False
            for entry in drain():
                got = True
                if until is not None and entry.ns > until:
                    return
                if since is None or entry.ns >= since:
                    yield entry
            newer = _newer_files(path, ino)
            if newer is None:
                if not got:
                    if not running:
                        return
                    time.sleep(interval)
                continue
            # rotated away: ours is read to its end (the writer closed it before renaming;
            # a torn last line of it is dropped), the files written since follow, and the
            # newest is the one followed from now on
            for entry in drain():
                if until is not None and entry.ns > until:
                    return
                if since is None or entry.ns >= since:
                    yield entry
            rest[0] = b""
            reader.files.remove((fd, ino))
            os.close(fd)
            reader.files.extend(newer)
            for entry in _entries_of([(f, 0, os.fstat(f).st_size) for f, _i in newer[:-1]]):
                if until is not None and entry.ns > until:
                    return
                if since is None or entry.ns >= since:
                    yield entry
            fd, ino = newer[-1]
    finally:
        reader.close()


def _newer_files(path, ino):
    """None while path is still the file followed (inode ino). Else the files written after
    it, oldest first, opened: path.(k-1) ... path.1, path when path.k is ours now (every file
    there when ours is already deleted)."""
    try:
        if os.stat(path).st_ino == ino:
            return None
    except FileNotFoundError:
        pass  # between the rename and the new file: the numbered files tell
    newer = _scan(path, stop_ino=ino)
    if not newer:
        return None
    return newer[::-1]
