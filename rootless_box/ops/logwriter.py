"""The writer half of Docker's json-file logs: what a detached container's watcher imports.

Owns: the bytes of a log line exactly as moby's json-file driver writes them
(daemon/logger/jsonfilelog: `{"log":"...","stream":"stdout","time":"<RFC3339Nano>"}` + "\\n",
its string escaping, invalid UTF-8 as U+FFFD), the copier's line splitting (a line longer than
16 KiB is cut into partial entries whose "log" lacks the "\\n"), and size rotation with
Docker's names (`json.log`, `json.log.1` ... `json.log.<max_files-1>`, rotated before an entry
is written to a file that reached max_size). ops/logfile.py reads these files back.
Must not: import anything beyond os and time (the watcher that imports it stays resident per
container, within a ~10 MiB budget: the readers live apart for that reason), touch
namespaces, print, or let an I/O error out of LogWriter (a full disk drops entries, it never
kills the watcher).
"""

import os
import time

# Docker's json-file driver rotates nothing by default (one unbounded file); Docker's own
# `local` driver defaults to max-size 20m and max-file 5 (daemon/logger/local/config.go). A
# monitor nobody configures must not fill the disk, so the bounded `local` defaults apply:
# at most 100 MiB of logs per container.
DEFAULT_MAX_SIZE = 20 * 1024 * 1024
DEFAULT_MAX_FILES = 5
# moby's copier buffer (daemon/logger/copier.go bufSize): a line that fills it without a
# newline is logged as a partial entry of exactly this many bytes.
PARTIAL_LIMIT = 16 * 1024


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

    def _close_file(self):
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def _rotate(self):
        """moby's loggerutils LogFile.rotate without compression: path.(N-2) -> path.(N-1) ...
        path -> path.1, then a new empty path; with max_files 1 the file is just started
        again. Readers holding the old files keep reading them (renames, not truncation)."""
        self._close_file()
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
        self._close_file()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- reading ---------------------------------------------------------------------------------
