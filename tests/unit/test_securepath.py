"""securepath: container paths resolved inside a root, archive member names cleaned."""

import os

import pytest

from rootless_box.errors import BadArchive
from rootless_box.securepath import MAX_SYMLINKS, clean_member_name, resolve_in_root


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return str(path)


def inside(root, relative):
    return os.path.join(root, relative) if relative else root


@pytest.mark.parametrize("path, expected", [
    ("a/b/c", "a/b/c"),
    ("/a/b", "a/b"),
    ("a//b/./c/", "a/b/c"),
    ("", ""),
    ("/", ""),
    ("..", ""),
    ("../../etc/passwd", "etc/passwd"),
    ("a/../../../b", "b"),
    ("a/b/../c", "a/c"),
])
def test_lexical_paths_stay_under_root(root, path, expected):
    assert resolve_in_root(root, path) == inside(root, expected)


def test_absolute_symlink_is_re_rooted(root):
    os.symlink("/etc", os.path.join(root, "a"))
    assert resolve_in_root(root, "a/passwd") == inside(root, "etc/passwd")


def test_nested_absolute_symlink_starts_again_at_the_root(root):
    os.makedirs(os.path.join(root, "usr", "lib"))
    os.symlink("/etc/alternatives", os.path.join(root, "usr", "lib", "alt"))
    assert resolve_in_root(root, "usr/lib/alt/x") == inside(root, "etc/alternatives/x")


def test_symlink_to_slash_is_the_root(root):
    os.symlink("/", os.path.join(root, "a"))
    assert resolve_in_root(root, "a/etc/passwd") == inside(root, "etc/passwd")
    assert resolve_in_root(root, "a") == root


def test_relative_symlink_cannot_climb_out(root):
    os.mkdir(os.path.join(root, "d"))
    os.symlink("../../../../tmp/xyz", os.path.join(root, "d", "a"))
    assert resolve_in_root(root, "d/a/f") == inside(root, "tmp/xyz/f")


def test_relative_symlink_resolves_from_its_own_directory(root):
    os.makedirs(os.path.join(root, "usr", "lib"))
    os.symlink("usr/lib", os.path.join(root, "lib"))
    os.symlink("../lib/x", os.path.join(root, "usr", "y"))
    assert resolve_in_root(root, "lib/libc.so") == inside(root, "usr/lib/libc.so")
    # ../lib from usr/ is the root's lib, itself a link to usr/lib
    assert resolve_in_root(root, "usr/y") == inside(root, "usr/lib/x")


def test_dotdot_after_a_symlink_applies_to_its_target(root):
    os.makedirs(os.path.join(root, "x", "y"))
    os.symlink("x/y", os.path.join(root, "l"))
    assert resolve_in_root(root, "l/../z") == inside(root, "x/z")


def test_chain_of_symlinks(root):
    os.symlink("/b", os.path.join(root, "a"))
    os.symlink("c", os.path.join(root, "b"))
    os.symlink("../../d", os.path.join(root, "c"))
    assert resolve_in_root(root, "a/file") == inside(root, "d/file")


def test_follow_final_false_names_the_link_itself(root):
    os.symlink("/etc/passwd", os.path.join(root, "l"))
    assert resolve_in_root(root, "l") == inside(root, "etc/passwd")
    assert resolve_in_root(root, "l", follow_final=False) == inside(root, "l")


def test_follow_final_false_still_follows_parents(root):
    os.symlink("/real", os.path.join(root, "dir"))
    os.symlink("/elsewhere", os.path.join(root, "leaf"))
    assert resolve_in_root(root, "dir/x", follow_final=False) == inside(root, "real/x")


def test_missing_components_are_appended(root):
    open(os.path.join(root, "file"), "w").close()
    assert resolve_in_root(root, "missing/a/b") == inside(root, "missing/a/b")
    assert resolve_in_root(root, "file/under") == inside(root, "file/under")


def test_dangling_symlink_resolves_to_its_target_inside(root):
    os.symlink("/nowhere/deeper", os.path.join(root, "dangling"))
    assert resolve_in_root(root, "dangling/f") == inside(root, "nowhere/deeper/f")


@pytest.mark.parametrize("links", [{"a": "a"}, {"a": "b", "b": "a"}, {"a": "a/x"}])
def test_symlink_loop_is_refused(root, links):
    for name, target in links.items():
        os.symlink(target, os.path.join(root, name))
    with pytest.raises(BadArchive, match="symlinks"):
        resolve_in_root(root, "a/f")


def test_symlink_limit(root):
    def chain(prefix, length):
        for index in range(length):
            os.symlink(f"{prefix}{index + 1}", os.path.join(root, f"{prefix}{index}"))
    chain("ok", MAX_SYMLINKS)
    assert resolve_in_root(root, "ok0") == inside(root, f"ok{MAX_SYMLINKS}")
    chain("long", MAX_SYMLINKS + 1)
    with pytest.raises(BadArchive):
        resolve_in_root(root, "long0")


@pytest.mark.parametrize("target", [
    "/", "..", "../..", "/../../..", "../../../../../../etc", "/proc/self/root", "./../x"])
def test_hostile_targets_never_leave_root(root, target):
    os.symlink(target, os.path.join(root, "evil"))
    result = resolve_in_root(root, "evil/../evil/x/../..//y")
    assert result == root or result.startswith(root + os.sep)


def test_root_given_relative_or_with_slash(root, monkeypatch):
    monkeypatch.chdir(os.path.dirname(root))
    assert resolve_in_root("root", "a") == inside(root, "a")
    assert resolve_in_root(root + "/", "a") == inside(root, "a")


@pytest.mark.parametrize("name, expected", [
    ("a/b", "a/b"),
    ("./a/b", "a/b"),
    ("/etc/x", "etc/x"),
    ("a//b/./c", "a/b/c"),
    ("a/b/", "a/b"),
    ("a/../b", "b"),
    ("./a/./../b/..", None),
    (".", None),
    ("./", None),
    ("/", None),
    ("", None),
    ("...", "..."),
    (".wh..wh..opq", ".wh..wh..opq"),
])
def test_clean_member_name(name, expected):
    assert clean_member_name(name) == expected


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "/../etc/passwd", "./../x",
                                  "a/b/../../../c", "x\0y"])
def test_clean_member_name_refuses_climbing_out(name):
    with pytest.raises(BadArchive, match="unsafe archive entry"):
        clean_member_name(name)


# -- open_in_root: the same walk on descriptors (the chown supervisor's) ------------------------

def _opened(root, path, **kw):
    from rootless_box.securepath import open_in_root
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    start = kw.pop("start", None)
    start_fd = os.open(os.path.join(root, start), os.O_PATH | os.O_DIRECTORY) \
        if start is not None else None
    try:
        fd = open_in_root(root_fd, path, start_fd=start_fd, **kw)
    finally:
        os.close(root_fd)
        if start_fd is not None:
            os.close(start_fd)
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    finally:
        os.close(fd)


def test_open_in_root_stays_inside(root, tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("host")
    os.makedirs(os.path.join(root, "d/sub"))
    open(os.path.join(root, "d/sub/f"), "w").close()
    os.symlink(str(outside), os.path.join(root, "abs"))
    os.symlink("../../../../.." + str(outside), os.path.join(root, "d/rel"))
    os.symlink("/d/sub/f", os.path.join(root, "good"))
    os.symlink("loop", os.path.join(root, "loop"))
    assert _opened(root, "/d/sub/f") == os.path.join(root, "d/sub/f")
    assert _opened(root, "../../../d/sub/../sub/f") == os.path.join(root, "d/sub/f")
    assert _opened(root, "good") == os.path.join(root, "d/sub/f")
    assert _opened(root, "good", follow_final=False) == os.path.join(root, "good")
    assert _opened(root, "sub/f", start="d") == os.path.join(root, "d/sub/f")
    assert _opened(root, "../../../d", start="d") == os.path.join(root, "d")
    for hostile in ("abs", "d/rel", "/../.." + str(outside)):
        with pytest.raises(FileNotFoundError):
            _opened(root, hostile)
    with pytest.raises(OSError):
        _opened(root, "loop")
