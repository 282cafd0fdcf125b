"""layers/tarwrite.py through diff.TreeWriter: the tars read back with Python's tarfile (and GNU
tar) exactly as the tree was: names of any length and charset, links, fifos, modes with set-id
bits, user xattrs text and binary, mtimes past ustar's field, data of every size."""

import io
import os
import subprocess
import tarfile

import pytest

from rootless_box.layers.diff import TreeWriter, walk
from rootless_box.layers.tarwrite import RECORD, REGTYPE, TarWriter


def _tree(top):
    long_dir = os.path.join(top, "d", "x" * 120)
    os.makedirs(long_dir)
    with open(os.path.join(long_dir, "y" * 90), "w") as f:
        f.write("long")
    with open(os.path.join(top, "é-ü"), "w") as f:
        f.write("utf8")
    with open(os.path.join(top, "big"), "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))
    open(os.path.join(top, "empty"), "w").close()
    os.symlink("t" * 150, os.path.join(top, "longlink"))
    os.symlink("../x", os.path.join(top, "d", "short"))
    with open(os.path.join(top, "h1"), "w") as f:
        f.write("hard")
    os.link(os.path.join(top, "h1"), os.path.join(top, "h2"))
    os.mkfifo(os.path.join(top, "fifo"))
    os.chmod(os.path.join(top, "h1"), 0o4755)
    os.setxattr(os.path.join(top, "big"), "user.text", b"hello")
    os.setxattr(os.path.join(top, "empty"), "user.bin", b"\xff\x00\xfe")
    os.utime(os.path.join(top, "big"), (1, 2 ** 33 + 5))


def _members(data):
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            body = tar.extractfile(m).read() if m.isreg() else None
            out[m.name] = (m, body)
    return out


def test_a_tree_reads_back_as_it_was(tmp_path):
    top = str(tmp_path / "t")
    os.mkdir(top)
    try:
        _tree(top)
    except OSError as exc:  # a file system without user xattrs
        pytest.skip("cannot build the tree here: %s" % exc)
    buf = io.BytesIO()
    writer = TreeWriter(buf)
    for rel, path, st in walk(top):
        writer.add(path, rel, st)
    writer.add_marker("d/.wh.gone")
    writer.close()
    data = buf.getvalue()
    assert writer.size == len(data) and len(data) % RECORD == 0
    got = _members(data)
    long_name = "d/" + "x" * 120 + "/" + "y" * 90
    assert got[long_name][1] == b"long"
    assert got["é-ü"][1] == b"utf8"
    with open(os.path.join(top, "big"), "rb") as f:
        assert got["big"][1] == f.read()
    assert got["big"][0].mtime == 2 ** 33 + 5
    assert got["big"][0].pax_headers["SCHILY.xattr.user.text"] == "hello"
    binary = got["empty"][0].pax_headers["SCHILY.xattr.user.bin"]
    assert binary.encode("utf-8", "surrogateescape") == b"\xff\x00\xfe"
    assert got["longlink"][0].issym() and got["longlink"][0].linkname == "t" * 150
    assert got["d/short"][0].linkname == "../x"
    first, second = sorted(("h1", "h2"), key=lambda n: got[n][0].islnk())  # walk's order
    assert got[first][0].mode == 0o4755 and got[first][1] == b"hard"
    assert got[second][0].islnk() and got[second][0].linkname == first
    assert got["fifo"][0].isfifo()
    assert got["d"][0].isdir() and got["d/" + "x" * 120][0].isdir()
    assert got["d/.wh.gone"][0].isreg() and got["d/.wh.gone"][0].size == 0
    # GNU tar agrees on the listing, names of every length included
    listing = subprocess.run(["tar", "-tf", "-"], input=data, capture_output=True,
                             check=True).stdout.decode().split("\n")
    assert long_name in listing and "longlink" in listing and "d/" in listing


def test_a_file_that_shrank_or_grew_keeps_the_tar_whole(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    buf = io.BytesIO()
    tar = TarWriter(buf)
    for name, size in (("shrank", 10), ("grew", 2)):
        fd = os.open(str(path), os.O_RDONLY)
        try:
            tar.entry(name, REGTYPE, size=size)
            tar.file(fd, size)
        finally:
            os.close(fd)
    tar.close()
    got = _members(buf.getvalue())
    assert got["shrank"][1] == b"abc" + bytes(7)
    assert got["grew"][1] == b"ab"


def test_big_ids_go_to_pax_records():
    buf = io.BytesIO()
    tar = TarWriter(buf)
    tar.entry("f", REGTYPE, uid=4000000, gid=5000000)
    tar.close()
    member = _members(buf.getvalue())["f"][0]
    assert (member.uid, member.gid) == (4000000, 5000000)
