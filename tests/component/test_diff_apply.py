"""Layer tars from directories (whiteouts back to OCI form) and the copy driver's stacking, on
real directories. Overlay whiteouts are 0/0 character devices, which a plain user may create
on Linux 5.8+; the opaque marker is a user xattr."""

import io
import os
import stat
import tarfile

import pytest

from rootless_box.layers.apply import populate
from rootless_box.layers.diff import write_changes, write_tree, write_upper
from rootless_box.layers.unpack import OPAQUE_XATTR


def _can_whiteout(tmp_path):
    try:
        os.mknod(tmp_path / "probe", stat.S_IFCHR | 0o600, os.makedev(0, 0))
        os.setxattr(tmp_path, "user.probe", b"1")
    except OSError:
        return False
    os.unlink(tmp_path / "probe")
    return True


@pytest.fixture
def tree(tmp_path):
    if not _can_whiteout(tmp_path):
        pytest.skip("this kernel or filesystem refuses 0/0 devices or user xattrs")

    def make(name, spec):
        root = tmp_path / name
        root.mkdir()
        for rel, kind, value in spec:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "file":
                path.write_text(value)
            elif kind == "dir":
                path.mkdir(exist_ok=True)
            elif kind == "link":
                os.symlink(value, path)
            elif kind == "whiteout":
                os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
            elif kind == "opaque":
                path.mkdir(exist_ok=True)
                os.setxattr(path, OPAQUE_XATTR, b"y")
        return str(root)
    return make


def names_of(writer, *args):
    buf = io.BytesIO()
    writer(*args[:1], buf, *args[1:])
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_upper_dir_whiteouts_and_opaque_dirs_become_oci_entries(tree):
    upper = tree("upper", [("etc/new", "file", "n"), ("bin/vi", "whiteout", None),
                           ("var/cache", "opaque", None), ("var/cache/keep", "file", "k"),
                           ("etc/hosts", "file", ""), ("data", "dir", None)])
    names = names_of(write_upper, upper, ["etc/hosts", "data"])
    assert "bin/.wh.vi" in names and "bin/vi" not in names
    assert "var/cache/.wh..wh..opq" in names and "var/cache/keep" in names
    assert names["etc/new"].isfile()
    assert "etc/hosts" not in names and "data" not in names  # empty mount placeholders
    assert not any("overlay" in k for m in names.values() for k in m.pax_headers)


def test_directories_made_or_copied_up_only_for_mountpoints_are_left_out(tree):
    lower = tree("lower", [("etc/passwd", "file", "p"), ("root", "dir", None)])
    os.chmod(os.path.join(lower, "etc"), 0o755)
    upper = tree("upper", [("etc/hosts", "file", ""), ("run/secrets/id", "file", ""),
                           ("root/.cache/pip", "dir", None), ("var/x/keep", "file", "k"),
                           ("var/x/mnt", "dir", None)])
    os.chmod(os.path.join(upper, "etc"), 0o755)
    names = names_of(write_upper, upper, ["etc/hosts", "run/secrets/id", "root/.cache/pip",
                                          "var/x/mnt"], [lower])
    # the copied-up etc/ and the new run/, root/.cache/ only held placeholders
    assert sorted(names) == ["var", "var/x", "var/x/keep"]
    # a copied-up directory whose mode changed is a change
    os.chmod(os.path.join(upper, "etc"), 0o700)
    assert "etc" in names_of(write_upper, upper, ["etc/hosts"], [lower])
    # so is a placeholder directory that got content
    with open(os.path.join(upper, "root", ".cache", "pip", "f"), "w") as f:
        f.write("x")
    assert "root/.cache/pip/f" in names_of(write_upper, upper, ["root/.cache/pip"], [lower])


def test_hard_links_and_symlinks_are_kept(tree):
    upper = tree("upper", [("a", "file", "x"), ("s", "link", "/a")])
    os.link(os.path.join(upper, "a"), os.path.join(upper, "b"))
    names = names_of(write_upper, upper)
    linked = [n for n in ("a", "b") if names[n].islnk()]
    assert len(linked) == 1 and names[linked[0]].linkname in ("a", "b")
    assert names["s"].issym() and names["s"].linkname == "/a"


def test_tree_export_leaves_whiteouts_out(tree):
    root = tree("root", [("x", "file", "1"), ("gone", "whiteout", None)])
    assert set(names_of(write_tree, root)) == {"x"}


def test_copy_driver_stacking_applies_deletions_and_hides_below_opaque(tree):
    lower = tree("lower", [("bin/vi", "file", "vi"), ("bin/sh", "file", "sh"),
                           ("etc/a", "file", "a"), ("etc/b", "file", "b")])
    upper = tree("upper2", [("bin/vi", "whiteout", None), ("etc", "opaque", None),
                            ("etc/c", "file", "c")])
    root = tree("rootfs", [])
    populate([upper, lower], root)
    assert sorted(os.listdir(os.path.join(root, "bin"))) == ["sh"]
    assert sorted(os.listdir(os.path.join(root, "etc"))) == ["c"]


def test_copy_driver_never_writes_through_a_planted_symlink(tree, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    lower = tree("lower", [("escape", "link", str(outside))])
    upper = tree("upper2", [("escape/pwned", "file", "x")])
    root = tree("rootfs", [])
    populate([upper, lower], root)
    assert list(outside.iterdir()) == []
    assert os.path.isdir(os.path.join(root, "escape")) and \
        not os.path.islink(os.path.join(root, "escape"))
    assert open(os.path.join(root, "escape", "pwned")).read() == "x"


def test_copy_driver_diff_finds_changes_and_deletions(tree):
    lower = tree("lower", [("keep", "file", "same"), ("change", "file", "old"),
                           ("gone", "file", "g"), ("dir/sub/f", "file", "f")])
    root = tree("rootfs", [])
    populate([lower], root)
    with open(os.path.join(root, "change"), "w") as f:
        f.write("new content")
    os.unlink(os.path.join(root, "gone"))
    os.unlink(os.path.join(root, "dir/sub/f"))
    os.rmdir(os.path.join(root, "dir/sub"))
    with open(os.path.join(root, "added"), "w") as f:
        f.write("+")
    names = names_of(lambda top, out: write_changes(top, [lower], out), root)
    assert {"change", "added", ".wh.gone", "dir/.wh.sub"} <= set(names)
    assert "keep" not in names and "dir/sub/.wh.f" not in names


def test_copy_driver_diff_never_lists_the_host_through_a_layer_symlink(tree, tmp_path):
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "host-only-name").write_text("h")
    lower = tree("lower", [("x", "link", str(host))])
    root = tree("rootfs", [])
    populate([lower], root)
    os.unlink(os.path.join(root, "x"))
    os.mkdir(os.path.join(root, "x"))
    names = names_of(lambda top, out: write_changes(top, [lower], out), root)
    assert not any("host-only-name" in n for n in names)
