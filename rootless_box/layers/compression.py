"""Layer stream compression: detect it by magic bytes, decompress it as a stream, hash what is read.

Owns: the magic numbers of gzip, zstd, bzip2 and xz, opening a decompressed view of a (possibly
non-seekable) stream, turning every decompressor failure into BadArchive, and the running sha256
that gives a blob's digest or a layer's diff ID.
Must not: seek, read a whole stream into memory, touch the filesystem, or import zstandard before
a zstd stream is actually seen (`run` must start without it: DESIGN.md).
"""

import bz2
import gzip
import hashlib
import io
import lzma
import zlib

from ..errors import BadArchive, BoxError

CHUNK_SIZE = 1 << 20

# Magic numbers: RFC 1952 (gzip), RFC 8878 (zstd frame), bzip2's "BZh", and the xz file format's
# stream header. The longest, xz's, sets how much must be peeked.
_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
_HEAD_SIZE = max(len(magic) for magic, _ in _MAGIC)

# What the standard decompressors raise on bad or truncated input: gzip raises BadGzipFile (an
# OSError) or zlib.error, bz2 OSError, lzma LZMAError, and all of them EOFError when cut short.
_DECODE_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError)


def detect(head: bytes) -> str:
    """Name the compression of a stream from its first bytes: gzip, zstd, bzip2, xz or none."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


def open_stream(fileobj):
    """Return (readable decompressed stream, compression name) for a readable binary stream.

    Only reads forward, so a pipe or an HTTP response will do. A corrupt stream, or a gzip,
    bzip2 or xz one cut short, raises BadArchive when the bad part is read; a zstd stream cut
    short just ends early (see _open_zstd).
    """
    head = _read_head(fileobj)
    source = _Replay(head, fileobj)
    name = detect(head)
    if name == "none":
        return io.BufferedReader(source, CHUNK_SIZE), name
    reader, errors = _OPENERS[name](source)
    return io.BufferedReader(_Checked(reader, name, _DECODE_ERRORS + errors), CHUNK_SIZE), name


class HashingWriter:
    """A writable file that keeps the sha256 and size of what went through it (a layer tar
    being written: its digest is its diff ID)."""

    def __init__(self, fileobj):
        self._fileobj = fileobj
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self._sha256.update(data)
        self.size += len(data)
        return self._fileobj.write(data)

    def flush(self):
        self._fileobj.flush()

    def digest(self):
        return "sha256:" + self._sha256.hexdigest()


class HashingReader:
    """A readable stream that keeps the sha256 and the size of every byte read through it."""

    def __init__(self, stream):
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size=-1):
        data = self._stream.read(size)
        self._sha256.update(data)
        self.size += len(data)
        return data

    def drain(self):
        """Read to the end, so the digest covers bytes a consumer left (tar's end padding)."""
        while self.read(CHUNK_SIZE):
            pass
        return self.digest()

    def hexdigest(self):
        """The bare hex sha256 of the bytes read so far."""
        return self._sha256.hexdigest()

    def digest(self):
        """The OCI digest, 'sha256:<hex>', of the bytes read so far."""
        return "sha256:" + self.hexdigest()


class _Replay(io.RawIOBase):
    """The source stream with the head already read from it put back in front."""

    def __init__(self, head, rest):
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._head:
            data, self._head = self._head[:len(buffer)], self._head[len(buffer):]
        else:
            data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class _Checked(io.RawIOBase):
    """A decompressing reader whose failures surface as BadArchive rather than library errors."""

    def __init__(self, reader, name, errors):
        super().__init__()
        self._reader = reader
        self._name = name
        self._errors = errors

    def readable(self):
        return True

    def readinto(self, buffer):
        try:
            return self._reader.readinto(buffer)
        except self._errors as err:
            raise BadArchive(f"cannot decompress layer: {self._name} stream: "
                             f"{err or type(err).__name__}") from err


def _read_head(fileobj):
    """Up to the first _HEAD_SIZE bytes: a pipe may hand them over in several short reads."""
    head = b""
    while len(head) < _HEAD_SIZE:
        data = fileobj.read(_HEAD_SIZE - len(head))
        if not data:
            break
        head += data
    return head


def _open_zstd(source):
    try:
        import zstandard  # lazily: see the module docstring
    except ImportError as err:
        raise BoxError("cannot decompress layer: zstd stream: the zstandard module is missing",
                       "install python3-zstandard (or `pip install zstandard`)") from err
    # zstandard's reader ends quietly on a stream cut inside a frame; the digests checked over
    # the whole stream (blob digest, diff ID) are what catch that truncation.
    reader = zstandard.ZstdDecompressor().stream_reader(source)
    return reader, (zstandard.ZstdError,)


_OPENERS = {
    "gzip": lambda source: (gzip.GzipFile(fileobj=source, mode="rb"), ()),
    "bzip2": lambda source: (bz2.BZ2File(source), ()),
    "xz": lambda source: (lzma.LZMAFile(source), ()),
    "zstd": _open_zstd,
}
