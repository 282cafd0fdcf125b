"""Container logs in Docker's json-file format: the writer a detached container's monitor
feeds, and the readers behind `logs` (all of it, the last N lines, following).

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

# Docker's json-file driver rotates nothing by default (one unbounded file); Docker's own
# `local` driver defaults to max-size 20m and max-file 5 (daemon/logger/local/config.go). A
# monitor nobody configures must not fill the disk, so the bounded `local` defaults apply:
# at most 100 MiB of logs per container.
DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_MAX_FILES = 5
# moby's copier buffer (daemon/logger/copier.go bufSize): a line that fills it without a
# newline is logged as a partial entry of exactly this many bytes.
PARTIAL_LIMIT = 16 * 1024
_READ_BLOCK = 64 * 1024


def _escapes():
    """moby's ffjsonWriteJSONBytesAsString: \\n, \\r, \\" and \\\\ short, every other control
    byte and <, >, & as \\u00XX, U+2028/U+2029 escaped, other non-ASCII raw. Undecodable bytes
    arrive here as surrogateescape's U+DC80..U+DCFF, one per byte, as Go's DecodeRune yields one
    RuneError per invalid byte: each becomes \\ufffd."""
    table = {c: "\\u%04x" % c for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord('"'): '\\"', ord("\\"): "\\\\",
                  ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
                  0x2028: "\\u2028", 0x2029: "\\u2029"})
    table.update({c: "\\ufffd" for c in range(0xDC80, 0xDD00)})
    return table


_ESCAPES = _escapes()


def _json_bytes(data):
    return data.decode("utf-8", "surrogateescape").translate(_ESCAPES).encode("utf-8")


def format_time(ns, fixed=False):
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped, as the json-file
    "time" field has it), or with fixed=True RFC3339NanoFixed (nine digits always, as
    `logs -t` prints it)."""
    sec, frac = divmod(ns, 1000000000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    if fixed:
        return "%s.%09dZ" % (text, frac)
    if frac:
        text += "." + ("%09d" % frac).rstrip("0")
    return text + "Z"


def encode_entry(stream, log, ns):
    """One json-file line (with its final newline) for log bytes written at ns (epoch ns)."""
    return b'{"log":"%s","stream":"%s","time":"%s"}\n' % (
        _json_bytes(log), stream.encode(), format_time(ns).encode())


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


class LogWriter:
    """Appends a container's output to its json-file log.

    write(stream, data) takes raw bytes as they came from the container's "stdout" or
    "stderr" pipe; complete lines are written at once (one write(2) per call, so `logs -f`
    sees them), an unfinished line waits for its newline, or for PARTIAL_LIMIT bytes, or for
    close(). No method raises OSError: entries that cannot be written (ENOSPC, EFBIG from
    RLIMIT_FSIZE, EDQUOT, EIO) are dropped and counted in `dropped`, any bytes of them that
    did land are cut off again, and the next write tries again.
    """

    def __init__(self, path, max_size=DEFAULT_MAX_SIZE, max_files=DEFAULT_MAX_FILES,
                 clock=time.time_ns):
        self.path = path
        # Docker: max-size absent (here None or <= 0) means never rotate
        self.max_size = max_size if max_size and max_size > 0 else None
        self.max_files = max(1, int(max_files or 1))
        self.dropped = 0
        self._clock = clock
        self._pending = {}
        self._fd = -1
        self._size = 0
        self._closed = False
        self._open(truncate=False)

    def _open(self, truncate):
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        if truncate:
            flags |= os.O_TRUNC
        try:
            fd = os.open(self.path, flags, 0o640)
        except OSError:
            return False
        try:
            self._size = os.fstat(fd).st_size
        except OSError:
            self._size = 0
        self._fd = fd
        return True

    def write(self, stream, data):
        if self._closed or not data:
            return
        buf = self._pending.pop(stream, b"") + data
        entries = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0 or nl - start >= PARTIAL_LIMIT:
                if len(buf) - start < PARTIAL_LIMIT:
                    break
                entries.append(buf[start:start + PARTIAL_LIMIT])
                start += PARTIAL_LIMIT
                continue
            entries.append(buf[start:nl + 1])
            start = nl + 1
        if start < len(buf):
            self._pending[stream] = buf[start:]
        if entries:
            self._emit(stream, entries)

    def _emit(self, stream, logs):
        chunk = []
        chunk_size = 0
        for log in logs:
            line = encode_entry(stream, log, self._clock())
            if self.max_size is not None and self._size + chunk_size >= self.max_size:
                self._append(b"".join(chunk), len(chunk))
                chunk, chunk_size = [], 0
                self._rotate()
            chunk.append(line)
            chunk_size += len(line)
        self._append(b"".join(chunk), len(chunk))

    def _append(self, data, count):
        if not data:
            return
        if self._fd < 0 and not self._open(truncate=False):
            self.dropped += count
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            # A short write left part of a line: cut it off, or the next line would be glued
            # to it and both lost to the reader.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            self.dropped += count
            return
        self._size += len(data)

    def _rotate(self):
        """moby's loggerutils LogFile.rotate without compression: path.(N-2) -> path.(N-1) ...
        path -> path.1, then a new empty path; with max_files 1 the file is just started
        again. Readers holding the old files keep reading them (renames, not truncation)."""
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        try:
            if self.max_files > 1:
                for i in range(self.max_files - 1, 1, -1):
                    try:
                        os.rename("%s.%d" % (self.path, i - 1), "%s.%d" % (self.path, i))
                    except FileNotFoundError:
                        pass
                os.rename(self.path, self.path + ".1")
            else:
                os.unlink(self.path)
        except OSError:
            pass  # as Docker: the current file is truncated below anyway, size stays bounded
        if not self._open(truncate=True):
            self._size = 0

    def close(self):
        """Write the unfinished lines (as partial entries, Docker's end-of-stream), close."""
        if self._closed:
            return
        for stream in list(self._pending):
            rest = self._pending.pop(stream)
            if rest:
                self._emit(stream, [rest])
        self._closed = True
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- reading ---------------------------------------------------------------------------------

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
    before the file whose inode is stop_ino. Newest first and deduplicated by inode, so a
    rotation in between shows a file twice (skipped), never loses one."""
    files, seen = [], set()
    index = 0
    while True:
        name = path if index == 0 else "%s.%d" % (path, index)
        index += 1
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if index == 1:
                continue  # rotated this instant: the numbered files are still there
            break
        except OSError:
            break
        ino = os.fstat(fd).st_ino
        if ino == stop_ino:
            os.close(fd)
            break
        if ino in seen:
            os.close(fd)
            continue
        seen.add(ino)
        files.append((fd, ino))
    return files


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
