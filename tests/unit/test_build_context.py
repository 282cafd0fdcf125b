"""dockerfile.context on real temporary directories: ignore-file precedence, the walk, COPY sources,
symlinks that point out of the context, and content keys."""

import os

import pytest

from rootless_box.dockerfile.context import (ContextError, content_key, load_ignore,
                                        resolve_copy_sources, resolve_source, walk)
from rootless_box.dockerfile.dockerignore import Matcher


def make(root, entries):
    """entries: relpath -> text (a file), None (a directory) or ("link", target)."""
    for relpath, content in entries.items():
        path = os.path.join(root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content is None:
            os.makedirs(path, exist_ok=True)
        elif isinstance(content, tuple):
            os.symlink(content[1], path)
        else:
            with open(path, "w") as f:
                f.write(content)


@pytest.fixture
def ctx(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    return str(root)


# --- the ignore file -----------------------------------------------------------------------

def test_dockerfile_dockerignore_wins(ctx):
    make(ctx, {".dockerignore": "a\n", "sub/app.Dockerfile": "FROM scratch\n",
               "sub/app.Dockerfile.dockerignore": "b\n"})
    matcher = load_ignore(ctx, os.path.join(ctx, "sub", "app.Dockerfile"))
    assert matcher.matches("b") and not matcher.matches("a")


def test_context_dockerignore_without_a_dockerfile_one(ctx):
    make(ctx, {".dockerignore": "a\n", "Dockerfile": "FROM scratch\n"})
    matcher = load_ignore(ctx, os.path.join(ctx, "Dockerfile"))
    assert matcher.matches("a") and not matcher.matches("b")


def test_no_ignore_file_excludes_nothing(ctx):
    assert not load_ignore(ctx, None).matches("anything")


def test_dockerignore_symlink_out_of_context_is_not_followed(ctx, tmp_path):
    (tmp_path / "outside").write_text("secret\n")
    make(ctx, {".dockerignore": ("link", str(tmp_path / "outside"))})
    assert not load_ignore(ctx, None).matches("secret")  # resolved inside: absent


# --- the walk ------------------------------------------------------------------------------

def test_walk_reincludes_files_inside_excluded_directory(ctx):
    make(ctx, {"keep": "k", "logs/a.log": "a", "logs/keep.log": "k", "logs/deep/x.log": "x",
               "logs/deep/keep.log": "k2"})
    matcher = Matcher(["logs", "!logs/keep.log", "!**/deep/keep.log"])
    assert [p for p, _ in walk(ctx, matcher)] == [
        "keep", "logs", "logs/deep", "logs/deep/keep.log", "logs/keep.log"]


def test_walk_is_sorted_depth_first(ctx):
    make(ctx, {"b": "", "a.txt": "", "a/z": "", "a/b/c": ""})
    assert [p for p, _ in walk(ctx)] == ["a", "a/b", "a/b/c", "a/z", "a.txt", "b"]


def test_walk_does_not_follow_symlinks(ctx, tmp_path):
    make(str(tmp_path), {"outside/secret": "s"})
    make(ctx, {"out": ("link", str(tmp_path / "outside")), "rel": ("link", "../outside")})
    entries = dict(walk(ctx))
    assert sorted(entries) == ["out", "rel"]
    assert all(os.path.islink(os.path.join(ctx, p)) for p in entries)


def test_walk_under_a_directory(ctx):
    make(ctx, {"src/a": "", "src/b/c": "", "other": ""})
    assert [p for p, _ in walk(ctx, Matcher(["src/b"]), "src")] == ["src/a"]


# --- COPY / ADD sources --------------------------------------------------------------------

def test_sources_with_wildcards(ctx):
    make(ctx, {"a.txt": "", "b.txt": "", "c.md": "", ".h.txt": "", "d/e.txt": "",
               "d/f/g.txt": ""})
    assert resolve_source(ctx, "*.txt") == [".h.txt", "a.txt", "b.txt"]
    assert resolve_source(ctx, "?.md") == ["c.md"]
    assert resolve_source(ctx, "[ab].txt") == ["a.txt", "b.txt"]
    assert resolve_source(ctx, "*/*.txt") == ["d/e.txt"]
    assert resolve_source(ctx, "d") == ["d"]


def test_sources_respect_the_ignore_file(ctx):
    make(ctx, {"a.txt": "", "b.txt": "", "dir/x": "", "dir/keep": ""})
    matcher = Matcher(["b.txt", "dir", "!dir/keep"])
    assert resolve_source(ctx, "*.txt", matcher) == ["a.txt"]
    assert resolve_source(ctx, "dir", matcher) == ["dir"]  # re-included content keeps it
    with pytest.raises(ContextError, match='"/b.txt": not found'):
        resolve_source(ctx, "b.txt", matcher)


@pytest.mark.parametrize("source", ["../x", "a/../../x", "/../x"])
def test_parent_refused(ctx, source):
    with pytest.raises(ContextError) as err:
        resolve_source(ctx, source)
    assert str(err.value) == f"COPY failed: forbidden path outside the build context: {source}"
    assert err.value.exit_code == 1


def test_absolute_source_is_relative_to_context(ctx):
    make(ctx, {"etc/passwd": "mine"})
    assert resolve_source(ctx, "/etc/passwd") == ["etc/passwd"]
    assert resolve_source(ctx, "/") == resolve_source(ctx, ".") == ["."]


def test_missing_source_message(ctx):
    with pytest.raises(ContextError) as err:
        resolve_source(ctx, "/nope")
    assert str(err.value) == 'failed to compute cache key: "/nope": not found'
    with pytest.raises(ContextError, match='"/nope\\*": not found'):
        resolve_source(ctx, "nope*")


def test_symlink_out_of_context_is_not_followed(ctx, tmp_path):
    make(str(tmp_path), {"outside/secret": "s"})
    make(ctx, {"out": ("link", str(tmp_path / "outside")), "up": ("link", "../outside"),
               "inside/secret": "mine"})
    # The link itself is the source: copied as a symlink, never read through.
    assert resolve_source(ctx, "out") == ["out"]
    # Through a parent component, an absolute target is re-rooted in the context.
    with pytest.raises(ContextError, match="not found"):
        resolve_source(ctx, "up/secret")
    os.symlink("/inside", os.path.join(ctx, "abs"))
    assert resolve_source(ctx, "abs/secret") == ["inside/secret"]
    assert resolve_source(ctx, "abs/*") == ["inside/secret"]
    key_before = content_key(ctx, ["out"])
    os.remove(tmp_path / "outside" / "secret")
    assert content_key(ctx, ["out"]) == key_before  # the key never looked outside


def test_a_source_that_is_a_symlink_is_followed_inside_the_context(ctx):
    make(ctx, {"data/real.txt": "r", "link.txt": ("link", "data/real.txt"),
               "abs.txt": ("link", "/data/real.txt"), "hop": ("link", "link.txt"),
               "dirlink": ("link", "data"), "data/inner": ("link", "real.txt")})
    assert resolve_copy_sources(ctx, "link.txt") == [("link.txt", "data/real.txt")]
    # an absolute target starts at the context's root; links to links are followed
    assert resolve_copy_sources(ctx, "abs.txt") == [("abs.txt", "data/real.txt")]
    assert resolve_copy_sources(ctx, "hop") == [("hop", "data/real.txt")]
    assert resolve_copy_sources(ctx, "dirlink") == [("dirlink", "data")]
    # a wildcard's matches are followed too; a plain entry names itself
    assert resolve_copy_sources(ctx, "*.txt") == [("abs.txt", "data/real.txt"),
                                                  ("link.txt", "data/real.txt")]
    assert resolve_copy_sources(ctx, "data") == [("data", "data")]


@pytest.mark.parametrize("target", ["../outside", "data/../../outside", "/../../x/.."])
def test_a_source_symlink_out_of_the_context_is_an_error(ctx, tmp_path, target):
    make(str(tmp_path), {"outside": "host"})
    make(ctx, {"data/x": "", "link": ("link", target)})
    with pytest.raises(ContextError, match="outside the build context|not found") as err:
        resolve_copy_sources(ctx, "link")
    assert "host" not in str(err.value)


def test_in_an_image_root_a_source_symlink_climbing_above_it_stays_at_its_root(ctx):
    make(ctx, {"bin/busybox": "b", "bin/sh": ("link", "../../../bin/busybox")})
    assert resolve_copy_sources(ctx, "/bin/sh", image_root=True) == [("bin/sh",
                                                                      "bin/busybox")]


def test_a_source_symlink_to_something_missing_excluded_or_looping(ctx):
    make(ctx, {"secret": "s", "gone": ("link", "nothing"), "hidden": ("link", "secret"),
               "loop1": ("link", "loop2"), "loop2": ("link", "loop1")})
    with pytest.raises(ContextError, match="not found"):
        resolve_copy_sources(ctx, "gone")
    with pytest.raises(ContextError, match="excluded"):
        resolve_copy_sources(ctx, "hidden", Matcher(["secret"]))
    with pytest.raises(ContextError, match="too many levels"):
        resolve_copy_sources(ctx, "loop1")


# --- content keys --------------------------------------------------------------------------

@pytest.fixture
def tree(ctx):
    make(ctx, {"app/main.py": "print(1)\n", "app/lib/util.py": "x = 1\n", "app/cache.pyc": "junk",
               "app/link": ("link", "main.py")})
    return ctx


def test_content_key_ignores_mtime(tree):
    before = content_key(tree, ["app"])
    for path in ("app/main.py", "app/lib", "app"):
        os.utime(os.path.join(tree, path), (1, 1))
    assert content_key(tree, ["app"]) == before


def test_content_key_changes_with_content(tree):
    before = content_key(tree, ["app"])
    with open(os.path.join(tree, "app/lib/util.py"), "w") as f:
        f.write("x = 2\n")
    assert content_key(tree, ["app"]) != before


def test_content_key_changes_with_mode(tree):
    before = content_key(tree, ["app"])
    os.chmod(os.path.join(tree, "app/main.py"), 0o755)
    assert content_key(tree, ["app"]) != before


def test_content_key_changes_with_name_and_link_target(tree):
    before = content_key(tree, ["app"])
    os.rename(os.path.join(tree, "app/main.py"), os.path.join(tree, "app/main2.py"))
    renamed = content_key(tree, ["app"])
    assert renamed != before
    os.remove(os.path.join(tree, "app/link"))
    os.symlink("main2.py", os.path.join(tree, "app/link"))
    assert content_key(tree, ["app"]) != renamed


def test_content_key_leaves_excluded_files_out(tree):
    matcher = Matcher(["**/*.pyc"])
    before = content_key(tree, ["app"], matcher)
    with open(os.path.join(tree, "app/cache.pyc"), "w") as f:
        f.write("other junk")
    assert content_key(tree, ["app"], matcher) == before
    assert content_key(tree, ["app"]) != content_key(tree, ["app"], matcher)


def test_content_key_same_for_a_copy_of_the_tree(tree, tmp_path):
    import shutil
    clone = str(tmp_path / "clone")
    shutil.copytree(tree, clone, symlinks=True)  # new inodes and mtimes, same content and modes
    assert content_key(clone, ["app"]) == content_key(tree, ["app"])


def test_content_key_of_large_file_in_chunks(ctx):
    data = os.urandom(3 * (1 << 20) + 5)
    with open(os.path.join(ctx, "big"), "wb") as f:
        f.write(data)
    before = content_key(ctx, ["big"])
    with open(os.path.join(ctx, "big"), "r+b") as f:
        f.seek(2 * (1 << 20) + 1)
        f.write(b"\0" if data[2 * (1 << 20) + 1] else b"\1")
    assert content_key(ctx, ["big"]) != before


def test_content_key_of_whole_context(tree):
    assert content_key(tree, ["."]) == content_key(tree, [""])
    assert content_key(tree, ["."]).startswith("sha256:")


def test_known_digests_skip_rereading_but_never_hide_a_change(tmp_path):
    from rootless_box.dockerfile.context import content_key
    (tmp_path / "a").write_text("one")
    (tmp_path / "b").write_text("two")
    known = {}
    first = content_key(str(tmp_path), ["."], None, known)
    assert set(known) == {"a", "b"}
    # a poisoned cache entry with a stale signature is not trusted
    known["a"][0] += 1
    assert content_key(str(tmp_path), ["."], None, known) == first
    (tmp_path / "a").write_text("ONE")
    assert content_key(str(tmp_path), ["."], None, known) != first
    assert content_key(str(tmp_path), ["."], None, {}) == content_key(str(tmp_path), ["."])
