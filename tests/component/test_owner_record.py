"""owners: the `user.rootlesscontainers` xattr (github.com/rootless-containers/proto) on real
temporary files, byte vectors from the spec's wire format and from umoci, hostile values, and
the owners unpack records and the layer writer reads back under a single-id mapping (here:
no user namespace at all, where the user's own ids are root's in the container, as they are
under a single mapping)."""

import io
import os
import tarfile

import pytest

from rootless_box.errors import BadArchive
from rootless_box.layers import owners
from rootless_box.layers.diff import write_tree
from rootless_box.layers.unpack import unpack

# What `umoci unpack --rootless` (0.4) wrote for tar entries owned 1000:1000, 0:1000, 1000:0 and
# 4294967294:5 (run here once by hand): umoci spells an unchanged id as NoopID, not as 0.
UMOCI = {(1000, 1000): "08e80710e807", (owners.NOOP_ID, 1000): "08ffffffff0f10e807",
         (1000, owners.NOOP_ID): "08e80710ffffffff0f", (4294967294, 5): "08feffffff0f1005"}


def test_encode_is_the_proto3_wire_format():
    assert owners.encode(1000, 1000).hex() == "08e80710e807"
    assert owners.encode(1, 2) == b"\x08\x01\x10\x02"
    # proto3 leaves zero fields out; the spec reads a missing field as 0
    assert owners.encode(0, 1000).hex() == "10e807"
    assert owners.encode(0, 0) == b""
    assert owners.encode(owners.NOOP_ID, 7).hex() == "08ffffffff0f1007"
    with pytest.raises(ValueError):
        owners.encode(1 << 32, 0)
    with pytest.raises(ValueError):
        owners.encode(-1, 0)


@pytest.mark.parametrize("ids,hexed", sorted(UMOCI.items()))
def test_umoci_values_decode_and_encode_back(ids, hexed):
    assert owners.decode(bytes.fromhex(hexed)) == ids
    assert owners.encode(*ids).hex() == hexed


def test_decode_follows_protobuf_rules():
    assert owners.decode(b"") == (0, 0)
    assert owners.decode(b"\x10\x05\x08\x03") == (3, 5)  # any field order
    assert owners.decode(b"\x08\x01\x08\x02") == (2, 0)  # the last value wins
    # unknown fields of every wire type are skipped
    unknown = b"\x18\x07" + b"\x21" + b"\0" * 8 + b"\x2a\x02ab" + b"\x35" + b"\0" * 4
    assert owners.decode(unknown + b"\x08\x09") == (9, 0)
    # a non-minimal varint is still a varint
    assert owners.decode(b"\x08\x81\x00") == (1, 0)


@pytest.mark.parametrize("hexed", [
    "08",                      # truncated varint
    "08ff",                    # truncated varint
    "08ffffffffffffffffffff01",  # longer than 10 bytes
    "088080808010",            # 2**32: does not fit uint32
    "0d01000000",              # uid as fixed32: wrong wire type
    "0a0101",                  # uid as bytes: wrong wire type
    "2a05ab",                  # unknown length-delimited field runs past the end
    "1b",                      # wire type 3 (groups) is not supported
    "00",                      # field number 0
])
def test_decode_refuses_malformed_values(hexed):
    with pytest.raises(ValueError):
        owners.decode(bytes.fromhex(hexed))


def test_record_read_and_remove_on_files_and_directories(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    d = tmp_path / "d"
    d.mkdir()
    for path in (f, d):
        assert owners.read(str(path), os.lstat(path)) == (0, 0)
        assert owners.record(str(path), 1000, 1001)
        assert os.getxattr(path, owners.XATTR) == owners.encode(1000, 1001)
        assert owners.read(str(path), os.lstat(path)) == (1000, 1001)
        fd = os.open(path, os.O_RDONLY)
        try:
            assert owners.read(fd, os.fstat(fd)) == (1000, 1001)
            assert owners.record(fd, 5, 6)
            assert owners.read(fd, os.fstat(fd)) == (5, 6)
        finally:
            os.close(fd)
        # root needs no record: 0:0 removes it, twice without complaint
        assert owners.record(str(path), 0, 0)
        assert owners.record(str(path), 0, 0)
        assert owners.XATTR not in os.listxattr(path)
        assert owners.read(str(path), os.lstat(path)) == (0, 0)


def test_noop_id_keeps_the_stat_owner(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.setxattr(f, owners.XATTR, bytes.fromhex(UMOCI[(owners.NOOP_ID, 1000)]))
    assert owners.read(str(f), os.lstat(f)) == (0, 1000)


def test_symlinks_cannot_carry_a_record(tmp_path):
    link = tmp_path / "l"
    os.symlink("target", link)
    # xattr(7): user.* on a symlink is EPERM; the record is skipped, as umoci and Podman do
    assert owners.record(str(link), 1000, 1000) is False
    assert owners.chown(str(link), os.geteuid(), os.getegid()) is True
    assert owners.read(str(link), os.lstat(link)) == (0, 0)


def test_a_malformed_record_is_reported_not_guessed(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.setxattr(f, owners.XATTR, b"\x08")
    with pytest.raises(BadArchive, match="malformed user.rootlesscontainers"):
        owners.read(str(f), os.lstat(f))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may chown to any id")
def test_chown_records_what_the_id_map_cannot_give(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"")
    # outside a user namespace an unprivileged chown is EPERM, not EINVAL: not ours to hide
    with pytest.raises(PermissionError):
        owners.chown(str(f), 1000 if os.geteuid() != 1000 else 1001, 0)


def _tar(*members):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw.seek(0)
    return raw


def _entry(name, uid, gid, mode=0o644, kind=tarfile.REGTYPE, data=b"", **extra):
    info = tarfile.TarInfo(name)
    info.type, info.uid, info.gid, info.mode, info.mtime = kind, uid, gid, mode, 1_600_000_000
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in extra.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


@pytest.mark.skipif(os.geteuid() == 0, reason="needs an unprivileged user")
def test_unpack_records_owners_and_the_writer_reads_them_back(tmp_path):
    dest = tmp_path / "layer"
    dest.mkdir()
    forged = owners.encode(4242, 4242).decode("utf-8", "surrogateescape")
    stats = unpack(_tar(
        _entry("d", 1000, 1000, 0o755, tarfile.DIRTYPE),
        _entry("d/user", 1000, 1000),
        _entry("d/root", 0, 0),
        _entry("d/su", 0, 0, 0o4755, data=b"#!/bin/sh\n"),
        _entry("d/sg", 0, 50, 0o2755),
        _entry("d/forged", 7, 7, pax_headers={"SCHILY.xattr." + owners.XATTR: forged}),
        _entry("d/link", 1000, 1000, 0o777, tarfile.SYMTYPE, linkname="user"),
    ), str(dest), keep_owners=False, record_owners=True)
    # outside a user namespace chown says EPERM, as the unmapped case does; only the symlink
    # has nowhere to keep its owner
    assert stats.unmapped_owners == 1
    assert os.stat(dest / "d/su").st_mode & 0o7777 == 0o4755
    assert owners.XATTR not in os.listxattr(dest / "d/root")
    assert os.getxattr(dest / "d/forged", owners.XATTR) == owners.encode(7, 7)
    out = io.BytesIO()
    write_tree(str(dest), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        got = {m.name: (m.uid, m.gid, m.mode, sorted(m.pax_headers)) for m in tar}
    assert got["d"][:3] == (1000, 1000, 0o755)
    assert got["d/user"][:2] == (1000, 1000)
    assert got["d/root"][:2] == (0, 0)
    assert got["d/su"][:3] == (0, 0, 0o4755)
    assert got["d/sg"][:3] == (0, 50, 0o2755)
    assert got["d/forged"][:2] == (7, 7)
    assert got["d/link"][:2] == (0, 0)
    assert not any(owners.XATTR in key for entry in got.values() for key in entry[3])


def test_claim_new_gives_what_a_step_made_to_its_user(tmp_path):
    """diff.claim_new after a step run as a non-root user under the single-id mapping: new
    entries (and what is below a new or opaque directory) become the user's unless a chown
    recorded an owner; a NoopID field is filled; copied-up entries keep theirs."""
    from rootless_box.layers.diff import claim_new
    from rootless_box.layers.unpack import OPAQUE_XATTR
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "home" / "app", lower / "old" / "gone"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "swapped").mkdir()
    owners.record(str(lower / "home" / "app"), 1000, 1000)
    # the step: copied up /etc/passwd and /home/app, made new files, recreated /old
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "passwd").write_text("root\napp\n")
    (upper / "etc" / "new.conf").write_text("x")
    (upper / "home" / "app" / "proj" / "sub").mkdir(parents=True)
    owners.record(str(upper / "home" / "app"), 1000, 1000)  # copy-up keeps the xattr
    (upper / "home" / "app" / "proj" / "sub" / "f").write_text("x")
    (upper / "home" / "app" / "chowned").write_text("x")
    owners.record(str(upper / "home" / "app" / "chowned"), 1001, 1002)
    (upper / "home" / "app" / "half").write_text("x")
    owners.write_raw(str(upper / "home" / "app" / "half"), 1003, owners.NOOP_ID)
    (upper / "old").mkdir()
    os.setxattr(str(upper / "old"), OPAQUE_XATTR, b"y")
    (upper / "swapped").write_text("a file where a directory was")
    os.symlink("new.conf", str(upper / "etc" / "link"))
    assert claim_new(str(upper), [str(lower)], 1000, 1000) == 7

    def owner(rel):
        return owners.read(str(upper / rel), os.lstat(str(upper / rel)))
    assert owner("etc") == (0, 0) and owner("etc/passwd") == (0, 0)
    assert owner("etc/new.conf") == (1000, 1000)
    assert owner("home") == (0, 0) and owner("home/app") == (1000, 1000)
    for rel in ("home/app/proj", "home/app/proj/sub", "home/app/proj/sub/f", "old",
                "swapped"):
        assert owner(rel) == (1000, 1000), rel
    assert owner("home/app/chowned") == (1001, 1002)
    assert owner("home/app/half") == (1003, 1000)
    assert owner("etc/link") == (0, 0)  # a symlink carries no record


def test_claim_new_in_a_copy_driver_rootfs(tmp_path):
    """With the copy driver the rootfs holds the layers' files too: only what they lack is
    new."""
    from rootless_box.layers.diff import claim_new
    lower, rootfs = tmp_path / "lower", tmp_path / "rootfs"
    for top in (lower, rootfs):
        (top / "etc").mkdir(parents=True)
        (top / "etc" / "passwd").write_text("root\n")
    (rootfs / "etc" / "made").write_text("x")
    (rootfs / "opt" / "app").mkdir(parents=True)
    assert claim_new(str(rootfs), [str(lower)], 1000, 1000, upper=False) == 3
    assert owners.recorded(str(rootfs / "etc" / "passwd")) is None
    assert owners.recorded(str(rootfs / "etc")) is None
    for rel in ("etc/made", "opt", "opt/app"):
        assert owners.recorded(str(rootfs / rel)) == (1000, 1000), rel
