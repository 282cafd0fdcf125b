"""compression: magic-byte detection, streaming decompression from pipes, hashing reader."""

import bz2
import gzip
import hashlib
import io
import lzma
import os
import threading

import pytest

from rootless_box.errors import BadArchive
from rootless_box.layers.compression import HashingReader, detect, open_stream

zstandard = pytest.importorskip("zstandard")

# Compressible and incompressible parts, larger than the 1 MiB read size.
DATA = b"layer tar bytes " * 100_000 + os.urandom(300_000)

COMPRESSORS = {
    "gzip": gzip.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "none": lambda data: data,
}


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_detect(name):
    assert detect(COMPRESSORS[name](DATA)[:6]) == name


@pytest.mark.parametrize("head", [b"", b"\x1f", b"BZ", b"\xfd7zXZ", b"ustar\x00"])
def test_detect_short_or_unknown_heads_are_none(head):
    assert detect(head) == "none"


def feed_pipe(data, pieces=(1, 1, 1, 2, 3)):
    """A pipe's read end whose writer hands out the first bytes in tiny writes, then the rest."""
    read_fd, write_fd = os.pipe()

    def write():
        with open(write_fd, "wb", buffering=0) as pipe:
            offset = 0
            for size in pieces:
                pipe.write(data[offset:offset + size])
                offset += size
            pipe.write(data[offset:])

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return open(read_fd, "rb", buffering=0), writer


@pytest.mark.parametrize("name", sorted(COMPRESSORS))
def test_open_stream_on_a_pipe(name):
    pipe, writer = feed_pipe(COMPRESSORS[name](DATA))
    with pipe:
        stream, found = open_stream(pipe)
        assert found == name
        assert stream.read() == DATA
    writer.join()


def test_open_stream_reads_concatenated_members_and_frames():
    gz = gzip.compress(b"one ") + gzip.compress(b"two")
    assert open_stream(io.BytesIO(gz))[0].read() == b"one two"
    zstd = zstandard.ZstdCompressor().compress(b"one ") + zstandard.ZstdCompressor().compress(b"two")
    assert open_stream(io.BytesIO(zstd))[0].read() == b"one two"


def test_open_stream_of_empty_input():
    stream, name = open_stream(io.BytesIO(b""))
    assert name == "none"
    assert stream.read() == b""


@pytest.mark.parametrize("name", ["gzip", "bzip2", "xz"])
def test_truncated_stream_is_bad_archive(name):
    data = COMPRESSORS[name](DATA)
    stream, _ = open_stream(io.BytesIO(data[:len(data) // 2]))
    with pytest.raises(BadArchive, match=f"{name} stream"):
        stream.read()


@pytest.mark.parametrize("name", ["gzip", "zstd", "bzip2", "xz"])
def test_corrupt_stream_is_bad_archive(name):
    data = bytearray(COMPRESSORS[name](DATA))
    data[20:220] = bytes(200)  # past the magic, inside the first compressed block
    stream, found = open_stream(io.BytesIO(bytes(data)))
    assert found == name
    with pytest.raises(BadArchive, match=f"cannot decompress layer: {name} stream"):
        stream.read()


def test_gzip_with_a_bad_crc_is_bad_archive():
    data = bytearray(gzip.compress(DATA))
    data[-8] ^= 0xFF  # the CRC32 in the trailer (RFC 1952)
    stream, _ = open_stream(io.BytesIO(bytes(data)))
    with pytest.raises(BadArchive):
        stream.read()


def test_hashing_reader_digest_and_size():
    reader = HashingReader(io.BytesIO(DATA))
    assert reader.read(10) == DATA[:10]
    assert reader.size == 10
    assert reader.digest() == "sha256:" + hashlib.sha256(DATA[:10]).hexdigest()
    reader.read()
    assert reader.size == len(DATA)
    assert reader.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_hashing_reader_drain_covers_what_the_consumer_left():
    reader = HashingReader(io.BytesIO(DATA))
    reader.read(100)
    assert reader.drain() == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert reader.size == len(DATA)


def test_hashing_reader_of_empty_stream():
    reader = HashingReader(io.BytesIO(b""))
    assert reader.drain() == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert reader.size == 0


def test_diff_id_through_decompression():
    """The use it exists for: the digest of the decompressed stream of a compressed blob."""
    compressed = gzip.compress(DATA)
    blob = HashingReader(io.BytesIO(compressed))
    stream, _ = open_stream(blob)
    diff = HashingReader(stream)
    diff.read(1000)
    assert diff.drain() == "sha256:" + hashlib.sha256(DATA).hexdigest()
    assert blob.digest() == "sha256:" + hashlib.sha256(compressed).hexdigest()
