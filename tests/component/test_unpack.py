"""unpack: hostile and ordinary layer tars extracted into real temporary directories.

Tars are built in memory and fed through a stream that cannot seek. Keeping owners needs a user
namespace: that test runs the unpack in a child under `unshare --user --map-root-user` and skips
where that is not permitted. Whiteouts (0/0 character devices) need Linux 5.8 or later.
"""

import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from rootless_box.errors import BadArchive
from rootless_box.layers.unpack import OPAQUE_XATTR, UnpackStats, unpack

REPO = Path(__file__).resolve().parents[2]
MTIME = 1_600_000_000


# --- building tars ---------------------------------------------------------------------------

def entry(name, kind=tarfile.REGTYPE, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def file_(name, data=b"", **attrs):
    return entry(name, tarfile.REGTYPE, data, **attrs)


def dir_(name, **attrs):
    return entry(name, tarfile.DIRTYPE, **attrs)


def symlink(name, target, **attrs):
    return entry(name, tarfile.SYMTYPE, linkname=target, **attrs)


def hardlink(name, target):
    return entry(name, tarfile.LNKTYPE, linkname=target)


def device(name, kind=tarfile.CHRTYPE, major=0, minor=0):
    return entry(name, kind, devmajor=major, devminor=minor)


def tar_bytes(*members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Unseekable:
    """A read-only stream with nothing but read(), like a pipe or an HTTP body."""

    def __init__(self, data):
        self._stream = io.BytesIO(data)

    def read(self, size=-1):
        return self._stream.read(size)


def run_unpack(dest, *members, keep_owners=False, whiteouts=False):
    return unpack(Unseekable(tar_bytes(*members)), str(dest), keep_owners=keep_owners,
                  whiteouts=whiteouts)


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / "dest"
    path.mkdir()
    yield path
    # archives make read-only directories; an unprivileged pytest could not remove them
    os.chmod(path, 0o700)
    for directory, subdirs, _ in os.walk(path):
        for child in (os.path.join(directory, name) for name in subdirs):
            if not os.path.islink(child):
                os.chmod(child, 0o700)


@pytest.fixture
def host(tmp_path):
    """A directory outside dest standing for the host: nothing may ever be written into it."""
    path = tmp_path / "host"
    path.mkdir()
    (path / "secret").write_bytes(b"HOST SECRET")
    return path


def under(dest, host_path):
    """Where an absolute host path lands when it is taken as a path of the container."""
    return dest / Path(host_path).relative_to("/")


def snapshot(path):
    """What must not change on the host side: every entry's type, mode, size, mtime and links."""
    result = {}
    for found in [path, *sorted(path.rglob("*"))]:
        info = os.lstat(found)
        result[str(found)] = (info.st_mode, info.st_size, info.st_mtime_ns, info.st_nlink)
    return result


# --- running in a user namespace ---------------------------------------------------------------

CHILD = """
import dataclasses, json, sys
from rootless_box.layers.unpack import unpack
with open(sys.argv[1], "rb") as stream:
    stats = unpack(stream, sys.argv[2], **json.loads(sys.argv[3]))
print(json.dumps(dataclasses.asdict(stats)))
"""


def _userns_works():
    try:
        probe = subprocess.run(["unshare", "--user", "--map-root-user", "true"],
                               capture_output=True, check=False)
    except FileNotFoundError:
        return False
    return probe.returncode == 0


needs_userns = pytest.mark.skipif(not _userns_works(),
                                  reason="unshare --user --map-root-user is not permitted here")


def unpack_in_userns(tmp_path, dest, *members, keep_owners=False, whiteouts=False):
    """Unpack in a child that is root of a user namespace mapping only the caller's own ids."""
    layer = tmp_path / "layer.tar"
    layer.write_bytes(tar_bytes(*members))
    child = subprocess.run(
        ["unshare", "--user", "--map-root-user", sys.executable, "-c", CHILD, str(layer),
         str(dest), json.dumps({"keep_owners": keep_owners, "whiteouts": whiteouts})],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.returncode == 0, child.stderr
    return UnpackStats(**json.loads(child.stdout))


def user_xattrs_work(path):
    probe = path / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.probe", b"1")
    except OSError:
        return False
    finally:
        probe.unlink()
    return True


def whiteouts_work(path):
    probe = path / ".whiteout-probe"
    try:
        os.mknod(probe, stat.S_IFCHR, os.makedev(0, 0))
    except PermissionError:
        return False
    probe.unlink()
    return True


def is_whiteout(path):
    info = os.lstat(path)
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(0, 0)


# --- ordinary trees ------------------------------------------------------------------------------

def test_ordinary_tree(dest):
    stats = run_unpack(
        dest,
        dir_("etc/"),
        file_("etc/hostname", b"box\n"),
        file_("usr/bin/tool", b"#!/bin/sh\n", mode=0o755),
        symlink("bin", "usr/bin"),
        symlink("etc/mtab", "/proc/self/mounts"),
        hardlink("usr/bin/tool2", "usr/bin/tool"),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o640),
        file_("empty"),
    )
    assert (dest / "etc" / "hostname").read_bytes() == b"box\n"
    assert os.readlink(dest / "bin") == "usr/bin"
    assert os.readlink(dest / "etc" / "mtab") == "/proc/self/mounts"
    tool = os.lstat(dest / "usr" / "bin" / "tool")
    assert os.lstat(dest / "usr" / "bin" / "tool2").st_ino == tool.st_ino
    assert tool.st_nlink == 2
    assert stat.S_ISFIFO(os.lstat(dest / "run" / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(dest / "run" / "fifo").st_mode) == 0o640
    assert (dest / "empty").read_bytes() == b""
    # parents the archive did not list are made 0755
    assert stat.S_IMODE(os.lstat(dest / "usr").st_mode) == 0o755
    assert stats == UnpackStats(entries=8, bytes=len(b"box\n#!/bin/sh\n"))


def test_modes_and_times(dest):
    run_unpack(
        dest,
        dir_("ro/", mode=0o555, mtime=MTIME + 1),
        file_("ro/a", b"a", mode=0o444),
        dir_("ro/sub/", mode=0o500, mtime=MTIME + 2),
        file_("ro/sub/b", b"b", mode=0o400),
        file_("suid", b"x", mode=0o4755, mtime=MTIME + 3),
        file_("sgid", b"x", mode=0o2711),
        dir_("tmp/", mode=0o1777),
        symlink("link", "suid", mtime=MTIME + 4),
        dir_("closed/", mode=0o000),
        dir_("closed/inner/", mode=0o750),
    )
    assert stat.S_IMODE(os.lstat(dest / "closed").st_mode) == 0o000
    os.chmod(dest / "closed", 0o700)  # to look inside as an unprivileged user
    modes = {name: stat.S_IMODE(os.lstat(dest / name).st_mode)
             for name in ("ro", "ro/a", "ro/sub", "ro/sub/b", "suid", "sgid", "tmp",
                          "closed/inner")}
    assert modes == {"ro": 0o555, "ro/a": 0o444, "ro/sub": 0o500, "ro/sub/b": 0o400,
                     "suid": 0o4755, "sgid": 0o2711, "tmp": 0o1777, "closed/inner": 0o750}
    # directory times are set after their content was written
    assert os.lstat(dest / "ro").st_mtime == MTIME + 1
    assert os.lstat(dest / "ro" / "sub").st_mtime == MTIME + 2
    assert os.lstat(dest / "suid").st_mtime == MTIME + 3
    assert os.lstat(dest / "link").st_mtime == MTIME + 4
    assert (dest / "ro" / "sub" / "b").read_bytes() == b"b"


def test_root_entry_sets_the_destination_metadata(dest):
    run_unpack(dest, dir_("./", mode=0o750, mtime=MTIME), file_("./a", b"a"))
    assert stat.S_IMODE(os.lstat(dest).st_mode) == 0o750
    assert os.lstat(dest).st_mtime == MTIME
    assert (dest / "a").read_bytes() == b"a"


def test_root_entry_of_another_type_is_skipped(dest):
    """A file named "" or "./" cannot replace the root: it is skipped and counted (buildah's
    add/dir-not-dir archive has one; Docker and buildah skip it too)."""
    stats = run_unpack(dest, file_("./", b"x"), file_("kept", b"k"))
    assert dest.is_dir() and (dest / "kept").read_bytes() == b"k"
    assert stats.skipped_entries == 1


def test_large_file_is_streamed(dest):
    data = os.urandom(3 * (1 << 20) + 7)
    stats = run_unpack(dest, file_("big", data))
    assert (dest / "big").read_bytes() == data
    assert stats.bytes == len(data)


def test_later_entries_replace_earlier_ones(dest, host):
    before = snapshot(host)
    run_unpack(
        dest,
        file_("x", b"file"),
        dir_("x/"),
        file_("x/y", b"y"),
        dir_("z/"),
        file_("z/child", b"c"),
        file_("z", b"now a file"),
        symlink("f", str(host / "secret")),
        file_("f", b"mine"),
        dir_("k/", mode=0o700),
        file_("k/kept", b"k"),
        dir_("k/", mode=0o750),
    )
    assert (dest / "x" / "y").read_bytes() == b"y"
    assert (dest / "z").read_bytes() == b"now a file"
    assert not os.path.islink(dest / "f")
    assert (dest / "f").read_bytes() == b"mine"
    assert (dest / "k" / "kept").read_bytes() == b"k"
    assert stat.S_IMODE(os.lstat(dest / "k").st_mode) == 0o750
    assert snapshot(host) == before


def test_parent_that_is_a_file_is_refused(dest):
    with pytest.raises(BadArchive, match="'f/x'.*Not a directory"):
        run_unpack(dest, file_("f", b"f"), file_("f/x", b"x"))


def test_unsupported_entry_type_is_refused(dest):
    with pytest.raises(BadArchive, match="unsupported entry type"):
        run_unpack(dest, entry("odd", b"Z"))


# --- hostile names and links ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../x", "a/../../x", "/../x", "./../x"])
def test_dotdot_escape_is_refused(tmp_path, dest, name):
    with pytest.raises(BadArchive, match=re.escape(f"unsafe archive entry: {name!r}")):
        run_unpack(dest, file_(name, b"escaped"))
    assert not (tmp_path / "x").exists()


def test_absolute_name_lands_inside(dest):
    run_unpack(dest, file_("/etc/x", b"inside"))
    assert (dest / "etc" / "x").read_bytes() == b"inside"


def test_symlink_to_slash_is_followed_inside_only(dest, host):
    before = snapshot(host)
    run_unpack(dest, symlink("a", "/"), file_("a" + str(host / "secret"), b"overwritten"))
    assert under(dest, host / "secret").read_bytes() == b"overwritten"
    assert (host / "secret").read_bytes() == b"HOST SECRET"
    assert snapshot(host) == before


def test_absolute_symlink_to_a_host_directory_is_re_rooted(dest, host):
    before = snapshot(host)
    run_unpack(dest, dir_("deep/"), symlink("deep/a", str(host)), file_("deep/a/planted", b"p"),
               dir_("deep/a/newdir/"))
    assert under(dest, host / "planted").read_bytes() == b"p"
    assert under(dest, host / "newdir").is_dir()
    assert snapshot(host) == before


def test_relative_symlink_climbing_out_stays_inside(dest, host):
    before = snapshot(host)
    climb = "../" * 30 + str(host).lstrip("/")
    run_unpack(dest, dir_("d/"), symlink("d/a", climb), file_("d/a/f", b"f"))
    assert under(dest, host / "f").read_bytes() == b"f"
    assert snapshot(host) == before


def test_symlink_replacing_a_directory_is_not_bypassed(dest, host):
    """The resolved-directory cache must forget `d` once `d` becomes a symlink."""
    os.chmod(host, 0o700)
    before = snapshot(host)
    run_unpack(
        dest,
        dir_("d/", mode=0o500),
        file_("d/x", b"x"),
        symlink("d", str(host)),
        file_("d/y", b"y"),
    )
    assert os.readlink(dest / "d") == str(host)
    assert under(dest, host / "y").read_bytes() == b"y"
    # d's deferred mode must not land on whatever d has become
    assert snapshot(host) == before


def test_symlink_loop_is_refused(dest):
    with pytest.raises(BadArchive, match="symlinks"):
        run_unpack(dest, symlink("a", "b"), symlink("b", "a"), file_("a/x", b"x"))


@pytest.mark.parametrize("target", ["../../etc/passwd", "a/../../etc/passwd", "/../etc/passwd"])
def test_hardlink_out_of_dest_is_refused(dest, target):
    with pytest.raises(BadArchive, match="unsafe archive entry"):
        run_unpack(dest, dir_("a/"), hardlink("h", target))
    assert not (dest / "h").exists()


def test_hardlink_through_a_symlinked_parent_cannot_reach_the_host(dest, host):
    with pytest.raises(BadArchive, match="not created"):
        run_unpack(dest, symlink("d", str(host)), hardlink("x", "d/secret"))
    assert os.lstat(host / "secret").st_nlink == 1
    assert not os.path.lexists(dest / "x")


def test_hardlink_to_a_symlink_links_the_symlink_not_its_target(dest, host):
    run_unpack(dest, symlink("evil", str(host / "secret")), hardlink("copy", "evil"))
    copy = os.lstat(dest / "copy")
    assert stat.S_ISLNK(copy.st_mode)
    assert copy.st_ino == os.lstat(dest / "evil").st_ino
    assert copy.st_ino != os.lstat(host / "secret").st_ino
    assert os.lstat(host / "secret").st_nlink == 1


def test_hardlink_to_itself_changes_nothing(dest):
    run_unpack(dest, file_("a", b"a"), hardlink("a", "a"))
    assert (dest / "a").read_bytes() == b"a"
    assert os.lstat(dest / "a").st_nlink == 1


def test_hardlink_to_a_missing_entry_is_refused(dest):
    with pytest.raises(BadArchive, match="not created"):
        run_unpack(dest, hardlink("h", "nothing"))


def test_devices_are_skipped(dest):
    stats = run_unpack(
        dest,
        dir_("dev/"),
        device("dev/null", tarfile.CHRTYPE, 1, 3),
        device("dev/sda", tarfile.BLKTYPE, 8, 0),
        device("dev/wh", tarfile.CHRTYPE, 0, 0),
    )
    assert os.listdir(dest / "dev") == []
    assert stats.skipped_devices == 3


def test_real_devices_are_skipped_even_with_whiteouts(dest):
    stats = run_unpack(dest, device("null", tarfile.CHRTYPE, 1, 3),
                       device("sda", tarfile.BLKTYPE, 0, 0), whiteouts=True)
    assert os.listdir(dest) == []
    assert stats.skipped_devices == 2


def test_whiteouts_are_ignored_by_default(dest):
    stats = run_unpack(dest, dir_("a/"), file_("a/.wh.b"), file_("a/.wh..wh..opq"),
                       file_(".wh.top"))
    assert os.listdir(dest) == ["a"]
    assert os.listdir(dest / "a") == []
    assert OPAQUE_XATTR not in os.listxattr(dest / "a")
    assert stats.ignored_whiteouts == 3


# --- whiteouts and owners ------------------------------------------------------------------------

def test_whiteouts_become_overlay_whiteouts(dest):
    if not user_xattrs_work(dest):
        pytest.skip("the filesystem of the temporary directory has no user xattrs")
    if not whiteouts_work(dest):
        pytest.skip("mknod of a whiteout is refused (unprivileged, it needs Linux 5.8+)")
    stats = run_unpack(
        dest,
        dir_("a/"),
        file_("a/.wh.gone"),
        file_("a/.wh..wh..opq"),
        file_("b/.wh.c"),              # its parent is made on the way
        file_("d/.wh.e"), dir_("d/e/"),  # a whiteout, then this layer's own directory
        file_("f/g", b"g"), file_("f/.wh.g"),  # this layer's own file stays
        dir_("p/q/"), file_("p/.wh.q"),        # this layer's own directory becomes opaque
        device("h", tarfile.CHRTYPE, 0, 0),    # overlay's own whiteout format
        file_(".wh..wh.plnk"),                 # aufs' bookkeeping: ignored
        whiteouts=True,
    )
    assert is_whiteout(dest / "a" / "gone")
    assert os.getxattr(dest / "a", OPAQUE_XATTR) == b"y"
    assert is_whiteout(dest / "b" / "c")
    assert (dest / "d" / "e").is_dir()
    assert os.getxattr(dest / "d" / "e", OPAQUE_XATTR) == b"y"
    assert OPAQUE_XATTR not in os.listxattr(dest / "d")
    assert (dest / "f" / "g").read_bytes() == b"g"
    assert os.getxattr(dest / "p" / "q", OPAQUE_XATTR) == b"y"
    assert is_whiteout(dest / "h")
    assert not os.path.lexists(dest / ".wh..wh.plnk")
    assert stats.ignored_whiteouts == 1
    assert stats.skipped_devices == 0


@needs_userns
def test_owners_kept_where_mapped_and_counted_where_not(tmp_path, dest):
    stats = unpack_in_userns(
        tmp_path, dest,
        file_("root-suid", b"x", mode=0o4755, uid=0, gid=0),
        file_("user-file", b"x", uid=1000, gid=1000),
        dir_("user-dir/", uid=1000, gid=1000, mode=0o2750),
        symlink("user-link", "root-suid", uid=1000, gid=1000),
        keep_owners=True,
    )
    assert stats.unmapped_owners == 3
    # uid 0 of the namespace is the caller; chown then chmod keeps the setuid bit
    suid = os.lstat(dest / "root-suid")
    assert (suid.st_uid, stat.S_IMODE(suid.st_mode)) == (os.geteuid(), 0o4755)
    assert stat.S_IMODE(os.lstat(dest / "user-dir").st_mode) == 0o2750
    assert os.lstat(dest / "user-file").st_uid == os.geteuid()


def test_owners_untouched_without_keep_owners(dest):
    stats = run_unpack(dest, file_("f", b"x", uid=4321, gid=4321), keep_owners=False)
    assert os.lstat(dest / "f").st_uid == os.geteuid()
    assert stats.unmapped_owners == 0


# --- xattrs --------------------------------------------------------------------------------

def test_user_xattrs_are_set_and_others_dropped(dest):
    if not user_xattrs_work(dest):
        pytest.skip("the filesystem of the temporary directory has no user xattrs")
    headers = {
        "SCHILY.xattr.user.mime_type": "text/plain",
        "SCHILY.xattr.user.overlay.opaque": "y",
        "SCHILY.xattr.user.overlay.redirect": "/etc",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.security.selinux": "system_u:object_r:etc_t:s0",
    }
    run_unpack(
        dest,
        file_("ro", b"x", mode=0o444, pax_headers=headers),
        dir_("d/", mode=0o555, pax_headers={"SCHILY.xattr.user.dir": "1"}),
    )
    assert os.listxattr(dest / "ro") == ["user.mime_type"]
    assert os.getxattr(dest / "ro", "user.mime_type") == b"text/plain"
    assert os.getxattr(dest / "d", "user.dir") == b"1"


# --- broken archives ---------------------------------------------------------------------------

def test_truncated_tar_is_bad_archive(dest):
    data = tar_bytes(file_("a", b"a" * 100_000), file_("b", b"b"))
    with pytest.raises(BadArchive, match="corrupt or truncated tar"):
        unpack(Unseekable(data[:50_000]), str(dest), keep_owners=False)


def test_tar_cut_inside_a_later_header_is_bad_archive(dest):
    data = tar_bytes(file_("a", b"a" * 1000), file_("b", b"b"))
    second_header = 512 + 1024  # after a's header and its two blocks of data
    with pytest.raises(BadArchive, match="corrupt or truncated tar"):
        unpack(Unseekable(data[:second_header + 100]), str(dest), keep_owners=False)


def test_garbled_later_header_is_bad_archive(dest):
    data = bytearray(tar_bytes(file_("a", b"a" * 1000), file_("b", b"b")))
    data[512 + 1024 + 148:512 + 1024 + 156] = b"garbage!"  # b's header checksum field
    with pytest.raises(BadArchive, match="corrupt or truncated tar"):
        unpack(Unseekable(bytes(data)), str(dest), keep_owners=False)


@pytest.mark.parametrize("data", [b"", b"not a tar at all" * 100, os.urandom(4096)])
def test_garbage_is_bad_archive(dest, data):
    with pytest.raises(BadArchive, match="corrupt or truncated tar"):
        unpack(Unseekable(data), str(dest), keep_owners=False)


def test_empty_archive_is_fine(dest):
    assert run_unpack(dest) == UnpackStats()
    assert os.listdir(dest) == []



def test_huge_sparse_file_keeps_its_holes(tmp_path):
    """A member that claims a terabyte of mostly holes is written as a sparse file, quickly,
    not as a terabyte of zeros."""
    import shutil as _shutil
    import subprocess as _subprocess
    if _shutil.which("tar") is None:
        pytest.skip("GNU tar is needed to make a sparse archive")
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 40)
        f.seek(5_000_000)
        f.write(b"data")
    archive = tmp_path / "sparse.tar"
    _subprocess.run(["tar", "--sparse", "-C", str(src), "-cf", str(archive), "big"], check=True)
    dest = tmp_path / "dest"
    dest.mkdir()
    with open(archive, "rb") as f:
        unpack(f, str(dest), keep_owners=False)
    out = dest / "big"
    assert out.stat().st_size == 1 << 40
    assert out.stat().st_blocks * 512 < 1 << 20
    with open(out, "rb") as f:
        f.seek(5_000_000)
        assert f.read(4) == b"data"
