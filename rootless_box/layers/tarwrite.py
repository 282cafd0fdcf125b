"""A streaming POSIX.1-2001 (pax) tar writer, for layers written from directories.

Owns: the 512-byte ustar headers (built by hand: the standard `tarfile` spends tens of
microseconds a member on TarInfo objects, its checks and its encodings, which was most of a
10,000-file commit), the pax extended headers an entry needs (a name or link target longer
than ustar holds or not ASCII, ids or sizes past its octal fields, `SCHILY.xattr.*` records,
with `hdrcharset=BINARY` when a value is not UTF-8, as GNU tar and Python's tarfile write
them), file data padded to blocks, and the end-of-archive blocks padded to a 10 KiB record as
tarfile pads it. Output goes out in large writes through one buffer.
Must not: walk trees, read owners or decide what goes into a layer (diff.py does), or import
anything lazily: `cp` runs it chrooted inside a container.
"""

import os

BLOCK = 512
RECORD = 20 * BLOCK
_FLUSH_AT = 1 << 20
_CHUNK = 1 << 20

REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = b"0123456"
_PAX = b"x"
_MAX_8 = 0o7777777          # an 8-byte octal field: 7 digits and a NUL
_MAX_12 = 0o77777777777     # a 12-byte octal field: 11 digits and a NUL
_ZEROS = bytes(RECORD)


def _octal(value, width):
    return b"%0*o\0" % (width - 1, value)


def _pax_records(records):
    """Each record is "LEN KEY=VALUE\n", LEN counting its own digits."""
    out = []
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        length = len(body) + 1
        while len(b"%d" % length) + len(body) != length:
            length += 1
        out.append(b"%d" % length + body)
    return b"".join(out)


def _header(name, mode, uid, gid, size, mtime, kind, linkname=b"", major=0, minor=0):
    head = b"".join((
        name.ljust(100, b"\0"), _octal(mode, 8), _octal(uid, 8), _octal(gid, 8),
        _octal(size, 12), _octal(mtime, 12), b"        ", kind, linkname.ljust(100, b"\0"),
        b"ustar\x0000", bytes(64), _octal(major, 8), _octal(minor, 8), bytes(167)))
    checksum = b"%06o\0 " % sum(head)
    return head[:148] + checksum + head[156:]


def _encode(text):
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text


class TarWriter:
    """Entries out to fileobj (anything with write), in order. `size` is what was written."""

    def __init__(self, fileobj):
        self._out = fileobj
        self._buf = bytearray()
        self.size = 0

    def _write(self, data):
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self.flush()

    def flush(self):
        if self._buf:
            self._out.write(bytes(self._buf))
            self.size += len(self._buf)
            self._buf = bytearray()

    def entry(self, name, kind, mode=0o644, uid=0, gid=0, size=0, mtime=0, linkname="",
              major=0, minor=0, xattrs=None):
        """The header(s) of one entry; a regular file's data follows with data()/file()."""
        name, linkname = _encode(name), _encode(linkname)
        mtime = max(0, int(mtime))
        pax = []
        if len(name) > 100 or not name.isascii():
            pax.append((b"path", name))
            name = name[:100]
        if len(linkname) > 100 or not linkname.isascii():
            pax.append((b"linkpath", linkname))
            linkname = linkname[:100]
        for key, value, limit in ((b"uid", uid, _MAX_8), (b"gid", gid, _MAX_8),
                                  (b"size", size, _MAX_12), (b"mtime", mtime, _MAX_12)):
            if value > limit:
                pax.append((key, b"%d" % value))
        if uid > _MAX_8:
            uid = 0
        if gid > _MAX_8:
            gid = 0
        if xattrs:
            binary = False
            for key in sorted(xattrs):
                value = xattrs[key]
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    binary = True
                pax.append((b"SCHILY.xattr." + _encode(key), value))
            if binary:  # tarfile and GNU tar: raw bytes, said so before the records
                pax.insert(0, (b"hdrcharset", b"BINARY"))
        if pax:
            records = _pax_records(pax)
            self._write(_header(b"././@PaxHeader", 0, 0, 0, len(records), 0, _PAX))
            self._write(records)
            self._pad(len(records))
        self._write(_header(name, mode & 0o7777, uid, gid, min(size, _MAX_12),
                            min(mtime, _MAX_12), bytes((kind,)), linkname, major, minor))

    def _pad(self, length):
        rest = length % BLOCK
        if rest:
            self._write(_ZEROS[:BLOCK - rest])

    def file(self, fd, size):
        """size bytes of file data from fd, padded: a file that shrank meanwhile (a running
        container's) is padded with zeros, one that grew is cut, so the tar stays whole."""
        left = size
        while left > 0:
            chunk = os.read(fd, min(left, _CHUNK))
            if not chunk:
                break
            self._write(chunk)
            left -= len(chunk)
        while left > 0:
            zeros = min(left, RECORD)
            self._write(_ZEROS[:zeros])
            left -= zeros
        self._pad(size)

    def close(self):
        """The two zero blocks that end an archive, padded to a whole record; flushed."""
        self._write(_ZEROS[:2 * BLOCK])
        total = self.size + len(self._buf)
        if total % RECORD:
            self._write(_ZEROS[:RECORD - total % RECORD])
        self.flush()
