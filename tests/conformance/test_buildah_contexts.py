"""buildah's build contexts (../shared/conformance/buildah-contexts) that need only busybox or
scratch: each builds (the self-checking ones fail their own RUN on a wrong layout), fails where
buildah-contexts.md says it must, and gives the facts it states. The local busybox image
stands in for mirror.gcr.io/busybox."""

import json
import os
import shutil

import pytest

from conftest import SHARED, Cli, needs_userns

pytestmark = needs_userns

CONTEXTS = os.path.join(SHARED, "conformance", "buildah-contexts")
if not os.path.isdir(CONTEXTS):
    pytest.skip("the conformance corpus is not beside the repository: %s" % CONTEXTS,
                allow_module_level=True)

SINGLE_FILES = ["copyfrom_%d" % i for i in range(1, 14)] + [
    "copyfrom_3_1", "run.args", "exposedefault", "edgecases", "heredoc-quoting"]
DIRECTORIES = [
    ("dir", "Dockerfile"), ("overlapdirwithslash", "Dockerfile"),
    ("overlapdirwithoutslash", "Dockerfile"), ("wildcard", "Dockerfile"),
    ("volume", "Dockerfile"), ("volumerun", "Dockerfile"), ("chown-volume", "Dockerfile"),
    ("env/precedence", "Dockerfile"), ("tar-g", "Dockerfile"),
    ("add/dir-not-dir", "Dockerfile"), ("add/not-dir-dir", "Dockerfile"),
    ("add/populated-dir-not-dir", "Dockerfile"), ("add/parent-clean", "Dockerfile"),
    ("add/parent-dangling", "Dockerfile"), ("add/parent-symlink", "Dockerfile"),
    ("dockerignore/integration2", "Dockerfile"), ("dockerignore/empty", "Dockerfile"),
    ("copyblahblub", "Dockerfile"), ("copyblahblub", "Dockerfile2"),
    ("copyblahblub", "Dockerfile3"), ("subdir", "subdir/Dockerfile"),
    ("heredoc", "Dockerfile.heredoc_copy")] + [
    ("dockerignore/minimal_test", "Dockerfile")] + [
    ("add/archive", "Dockerfile.%d" % i) for i in range(1, 8)] + [
    ("replace/symlink-with-directory", name) for name in
    ("Dockerfile", "Dockerfile.2", "Dockerfile.3", "Dockerfile.4")]


@pytest.fixture(scope="module")
def bcli(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("buildah-data")))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "mirror.gcr.io/busybox")
    return cli


# The corpus's 9 symlinks (buildah-contexts.md, "Gotchas"). A copy of the corpus made by a tool
# that does not keep links holds each as a small file with the target's text: made links again.
SYMLINKS = {
    "copysymlink/file-link.tar.gz": "file.tar.gz",
    "replace/symlink-with-directory/tree1/maybe-directory": "directory",
    "dockerignore/populated/subdir-c/file-b.txt": "../file-a.txt",
    "dockerignore/populated/subdir-c/file-c.txt": "../file-b.txt",
    "dockerignore/populated/subdir-e/file-a.txt": "../file-a.txt",
    "dockerignore/populated/subdir-e/file-b.txt": "../file-b.txt",
    "dockerignore/populated/subdir-e/subdir-f/file-a.txt": "../../file-a.txt",
    "dockerignore/populated/subdir-e/subdir-f/file-n.txt": "../file-n.txt",
    "dockerignore/populated/subdir-e/subdir-f/subdir-g/subdir-b": "../../../subdir-b",
}


def _restore_links(dest, rel):
    for path, target in SYMLINKS.items():
        if not path.startswith(rel + "/"):
            continue
        full = os.path.join(dest, path[len(rel) + 1:])
        if not os.path.islink(full) and os.path.isfile(full):
            with open(full) as f:
                flattened = f.read() == target
            if flattened:
                os.remove(full)
                os.symlink(target, full)


def _copy(tmp_path, rel):
    """A private copy of a context (the corpus is read-only; symlinks kept)."""
    dest = tmp_path / "ctx"
    shutil.copytree(os.path.join(CONTEXTS, rel), dest, symlinks=True)
    # the corpus may be read-only (CI lays it out without write bits): the copy is ours
    for top, dirs, files in os.walk(dest):
        for name in dirs + files:
            path = os.path.join(top, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o200)
    os.chmod(dest, 0o755)
    _restore_links(str(dest), rel)
    return str(dest)


def _single(tmp_path, name):
    ctx = tmp_path / "single"
    ctx.mkdir()
    shutil.copy(os.path.join(CONTEXTS, "Dockerfile." + name), ctx / "Dockerfile")
    return str(ctx)


def _top_layer(cli, image_id):
    from rootless_box.userns.idmap import plan
    layers = json.loads(cli.ok("inspect", image_id).out)[0]["RootFS"]["Layers"]
    return os.path.join(cli.root, "layers", plan().key, layers[-1][7:])


@pytest.mark.parametrize("name", SINGLE_FILES)
def test_single_file_contexts_build(bcli, tmp_path, name):
    bcli.ok("build", "-q", _single(tmp_path, name), timeout=120)


@pytest.mark.parametrize("rel,dockerfile", DIRECTORIES)
def test_context_directories_build(bcli, tmp_path, rel, dockerfile):
    ctx = _copy(tmp_path, rel)
    bcli.ok("build", "-q", "-f", os.path.join(ctx, dockerfile), ctx, timeout=120)


@pytest.mark.parametrize("source", ["**/*.txt", "**/sub/*.txt", "e/**/*sub/*.txt",
                                    "e/**/**/*sub/*.txt"])
def test_copyglob(bcli, tmp_path, source):
    ctx = _copy(tmp_path, "copyglob")
    image_id = bcli.ok("build", "-q", "--build-arg", "SOURCE=" + source, ctx).out.strip()
    copied = os.listdir(_top_layer(bcli, image_id))
    assert copied and all(name.endswith(".txt") for name in copied)


def test_env_fails_at_line_12(bcli, tmp_path):
    proc = bcli("build", _single(tmp_path, "env"))
    assert proc.returncode == 1 and "Dockerfile:12:" in proc.err


def test_expose_default_protocol(bcli, tmp_path):
    image_id = bcli.ok("build", "-q", _single(tmp_path, "exposedefault")).out.strip()
    config = json.loads(bcli.ok("inspect", image_id).out)[0]["Config"]
    assert config["ExposedPorts"] == {"3469/tcp": {}}


def test_dockerignore_integration3_manifest(bcli, tmp_path):
    ctx = _copy(tmp_path, "dockerignore/integration3")
    lines = open(os.path.join(ctx, "Dockerfile")).read().splitlines()
    failing = bcli("build", ctx)
    assert failing.returncode == 1 and "Dockerfile:4:" in failing.err  # COPY of an excluded
    prefix = tmp_path / "Dockerfile.prefix"
    prefix.write_text("\n".join(lines[:3] + ["RUN find /upload | sort > /listing"]) + "\n")
    image_id = bcli.ok("build", "-q", "-f", str(prefix), ctx).out.strip()
    listing = bcli.ok("run", "--rm", image_id, "cat", "/listing").out.split()
    expected = open(os.path.join(ctx, "manifest")).read().split()
    assert listing == expected


def test_allowlist_exception_for_a_missing_file_fails(bcli, tmp_path):
    ctx = _copy(tmp_path, "dockerignore/allowlist/subdir-nofile")
    proc = bcli("build", ctx)
    assert proc.returncode == 1 and "Dockerfile:2:" in proc.err


def test_tar_global_header_is_not_a_file(bcli, tmp_path):
    ctx = _copy(tmp_path, "tar-g")
    image_id = bcli.ok("build", "-q", ctx).out.strip()
    for _top, dirs, files in os.walk(_top_layer(bcli, image_id)):
        assert not [n for n in dirs + files if "global" in n.lower() or n.startswith("PaxH")]


def test_archive_symlink_cannot_escape_the_destination(bcli, tmp_path):
    ctx = _copy(tmp_path, "add/parent-symlink")
    image_id = bcli.ok("build", "-q", ctx).out.strip()
    top = _top_layer(bcli, image_id)
    assert not os.path.exists(os.path.join(top, "etc", "myfile"))
    assert os.path.isdir(os.path.join(top, "testsubdir"))


POPULATED = [
    # (case, Dockerfile body after FROM scratch, .dockerignore or None, must succeed)
    ("from-scratch-simple-file", "COPY file-a.txt /", None, True),
    ("copy-multiple-some-missing", "COPY file-a.txt subdir-a file-z.txt subdir-z subdir/",
     None, False),
    ("copy-multiple-missing-file-with-glob", "COPY file-z.txt subdir-* subdir/", None, False),
    ("copy-multiple-missing-file-with-nomatch-on-glob", "COPY missing* subdir/", None, False),
    ("dockerignore-exceptions-dot", "COPY . subdir/", "**/*-a\n!**/*-c\n", True),
    ("dockerignore-extensions-star", "COPY * subdir/", "**/*-a\n!**/*-c\n", True),
    ("dockerignore-includes-dot", "COPY . subdir/", "!**/*-c\n", True),
    ("dockerignore-exclude-plain-dot", "COPY . subdir/", "subdir-c\n", True),
    ("dockerignore-exclude-wildcard-star", "COPY * subdir/", "subdir-*\n", True),
    ("dockerignore-exclude-deep-wildcard-dot", "COPY . subdir/", "**/subdir-*\n", True),
    ("dockerignore-exclude-deep-subdir-dot", "COPY . subdir/", "**/subdir-f\n", True),
    ("dockerignore-exclude-kind-of-deep-subdir-dot", "COPY . subdir/",
     "**/subdir-e\n!**/subdir-f\n", True),
    ("copy--exclude-includes-subdir-slash", "COPY --exclude=**/*-c / subdir/", None, True),
    ("add--exclude-includes-dot", "ADD --exclude=*-c . subdir/", None, True),
    ("copy-multiple-some-missing-glob", "COPY file-a.txt subdir-* file-?.txt missing* subdir/",
     None, True),
    ("dockerignore-includes-star", "COPY * subdir/", "!**/*-c\n", True),
    ("dockerignore-exclude-plain-star", "COPY * subdir/", "subdir-c\n", True),
    ("dockerignore-exclude-plain-dot-2", "COPY . subdir/", "**/subdir-c\n", True),
    ("dockerignore-exclude-plain-star-2", "COPY * subdir/", "**/subdir-c\n", True),
    ("dockerignore-exclude-wildcard-dot", "COPY . subdir/", "subdir-*\n", True),
    ("dockerignore-exclude-deep-wildcard-star", "COPY * subdir/", "**/subdir-*\n", True),
    ("dockerignore-exclude-deep-subdir-star", "COPY * subdir/", "**/subdir-f\n", True),
    ("dockerignore-exclude-not-so-deep-subdir-dot", "COPY . subdir/", "**/subdir-b\n", True),
    ("dockerignore-exclude-not-so-deep-subdir-star", "COPY * subdir/", "**/subdir-b\n", True),
    ("dockerignore-exclude-kind-of-deep-subdir-star", "COPY * subdir/",
     "**/subdir-e\n!**/subdir-f\n", True),
    ("dockerignore-exclude-deep-subdir-dot-2", "COPY . subdir/", "**/subdir-f\n!**/subdir-g\n",
     True),
    ("dockerignore-exclude-deep-subdir-star-2", "COPY * subdir/",
     "**/subdir-f\n!**/subdir-g\n", True),
    ("add--exclude-includes-star", "ADD --exclude=**/*-c ./ subdir/", None, True),
    ("add--exclude-includes-slash", "ADD --exclude=*.txt / subdir/", None, True),
    ("copy--exclude-includes-dot-slash", "COPY --exclude='!**/*-c' ./ subdir/", None, True),
    ("copy--exclude-includes-slash", "COPY --exclude='!**/*-c' . subdir/", None, True),
]


@pytest.mark.parametrize("case,body,ignore,succeeds", POPULATED,
                         ids=[c[0] for c in POPULATED])
def test_dockerignore_populated_cases(bcli, tmp_path, case, body, ignore, succeeds):
    ctx = _copy(tmp_path, "dockerignore/populated")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM scratch\n" + body + "\n")
    if ignore is not None:
        with open(os.path.join(ctx, ".dockerignore"), "w") as f:
            f.write(ignore)
    proc = bcli("build", "-q", ctx)
    if not succeeds:
        assert proc.returncode == 1 and "Dockerfile:2:" in proc.err, proc.err
        return
    assert proc.returncode == 0, proc.err
    top = _top_layer(bcli, proc.out.strip())
    copied = [os.path.relpath(os.path.join(d, n), top) for d, dirs, files in os.walk(top)
              for n in dirs + files]
    assert copied
    excluded_suffix = "-a" if ignore and ignore.startswith("**/*-a") else None
    if excluded_suffix:
        assert not [p for p in copied if p.endswith(excluded_suffix)]
    if "--exclude=**/*-c" in body:
        assert not [p for p in copied if p.endswith("-c")]


@pytest.mark.parametrize("source,expected", [
    ("./x/./y/*.txt", ["parents/y/a.txt", "parents/y/b.txt"]),
    ("./x/y/./*.txt", ["parents/a.txt", "parents/b.txt"]),
    ("./x/y/*.txt", ["parents/x/y/a.txt", "parents/x/y/b.txt"]),
])
def test_copy_parents_pivot(bcli, tmp_path, source, expected):
    ctx = _copy(tmp_path, "copy-parents")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY --parents %s /parents/\n" % source)
    top = _top_layer(bcli, bcli.ok("build", "-q", ctx).out.strip())
    files = sorted(os.path.relpath(os.path.join(d, n), top) for d, _dirs, names in
                   os.walk(top) for n in names)
    assert files == expected


def test_exclude_is_relative_to_the_source_directory(bcli, tmp_path):
    ctx = _copy(tmp_path, "dockerignore/exclude_subdir_under_source")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY --exclude=storage/views app/ app/\n")
    top = _top_layer(bcli, bcli.ok("build", "-q", ctx).out.strip())
    assert os.path.exists(os.path.join(top, "app/storage/cache/cache_file"))
    assert not os.path.exists(os.path.join(top, "app/storage/views"))


def _files(top):
    """Every entry below a directory, as sorted relpaths."""
    return sorted(os.path.relpath(os.path.join(d, n), top) for d, dirs, names in os.walk(top)
                  for n in dirs + names)


def _rootfs(cli, image_id):
    """The image's entries as (relpath -> layer dir of the topmost one holding it)."""
    from rootless_box.userns.idmap import plan
    layers = json.loads(cli.ok("inspect", image_id).out)[0]["RootFS"]["Layers"]
    seen = {}
    for diff in layers:
        top = os.path.join(cli.root, "layers", plan().key, diff[7:])
        for rel in _files(top):
            seen[rel] = top
    return seen


def test_copy_escape_glob(bcli, tmp_path):
    ctx = _copy(tmp_path, "copy-escape-glob")
    # the runtime tweak: names Windows cannot hold, so they are not in the repository
    for name, text in (("jkl?", "another"), ("n?pe", "and also"), ("st*uv", "and yet")):
        os.mkdir(os.path.join(ctx, "app", name), 0o700)
        path = os.path.join(ctx, "app", name, "file.txt")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(text)
    image_id = bcli.ok("build", "-q", ctx).out.strip()
    files = _rootfs(bcli, image_id)

    def read(rel):
        with open(os.path.join(files[rel], rel)) as f:
            return f.read()
    assert read("app/file.txt") == "a file\n"
    assert read("app2/file.txt") == "also a file\n"
    assert read("app4/file.txt") == "and also"  # n\?pe: the literal `?`, not nope
    assert read("app5/file.txt") == "and yet"  # st\*uv: the literal `*`, not strauv
    # ./app/* copies each directory's contents into /app3: a name present in several is
    # written by each in turn, the last match (Go's sorted order) winning
    assert [f for f in files if f.startswith("app3/")] == ["app3/[abc]", "app3/[abc]/file.txt",
                                                           "app3/file.txt"]
    assert read("app3/file.txt") == "not this one\n"  # strauv sorts after st*uv


@pytest.mark.parametrize("rel,expected", [
    ("dockerignore/allowlist/nothing-dot", ["file"]),
    ("dockerignore/allowlist/nothing-slash", ["file"]),
    ("dockerignore/allowlist/subdir-file", ["f1", "f1/file1"]),
    ("dockerignore/allowlist/subsubdir-file",
     ["file", "folder", "folder/subfolder", "folder/subfolder/file"]),
    ("dockerignore/allowlist/subsubdir-nofile", ["file"]),
    ("dockerignore/allowlist/subsubdir-nosubdir", ["file"]),
    ("dockerignore/allowlist/alternating",
     ["file", "subdir1", "subdir1/subdir2", "subdir1/subdir2/subdir3",
      "subdir1/subdir2/subdir3/subdir4", "subdir1/subdir2/subdir3/subdir4/subdir5",
      "subdir1/subdir2/subdir3/subdir4/subdir5/file",
      "subdir2", "subdir2/subdir3", "subdir2/subdir3/subdir4",
      "subdir2/subdir3/subdir4/subdir5", "subdir2/subdir3/subdir4/subdir5/file",
      "subdir3", "subdir3/subdir4", "subdir3/subdir4/subdir5", "subdir3/subdir4/subdir5/file",
      "subdir4", "subdir4/subdir5", "subdir4/subdir5/file", "subdir5", "subdir5/file"]),
])
def test_dockerignore_allowlist_builds_only_what_is_allowed(bcli, tmp_path, rel, expected):
    """`**` excludes everything, the Dockerfile and .dockerignore included; only the
    exceptions (and the directories holding them) reach the image."""
    ctx = _copy(tmp_path, rel)
    image_id = bcli.ok("build", "-q", ctx).out.strip()
    assert sorted(_rootfs(bcli, image_id)) == expected


@pytest.mark.parametrize("rel", ["dockerignore/allowlist/alternating-nothing",
                                 "dockerignore/allowlist/alternating-other"])
def test_dockerignore_allowlist_without_the_deepest_exception_fails_at_line_7(bcli, tmp_path,
                                                                              rel):
    proc = bcli("build", _copy(tmp_path, rel))
    assert proc.returncode == 1 and "Dockerfile:7:" in proc.err and "not found" in proc.err
    assert "Traceback" not in proc.err


# The ENV lines of Dockerfile.env, each after `FROM scratch / COPY script .` in context `copy`,
# with the values BuildKit gives them.
ENV_CASES = [
    ("env-whitespace", "ENV name value", {"name": "value"}),
    ("env-simple", "ENV name=value", {"name": "value"}),
    ("env-unquoted-list", "ENV name=value name2=value2", {"name": "value", "name2": "value2"}),
    ("env-dquoted-list", 'ENV name="value value1"', {"name": "value value1"}),
    ("env-escaped-value", "ENV name=value\\ value2", {"name": "value value2"}),
    ("env-squote-in-dquote", "ENV name=\"value'quote space'value2\"",
     {"name": "value'quote space'value2"}),
    ("env-dquote-in-squote", "ENV name='value\"double quote\"value2'",
     {"name": 'value"double quote"value2'}),
    ("env-escaped-list", "ENV name=value\\ value2 name2=value2\\ value3",
     {"name": "value value2", "name2": "value2 value3"}),
    ("env-eddquote", 'ENV name="a\\"b"', {"name": 'a"b'}),
    ("env-esdquote", "ENV name=\"a\\'b\"", {"name": "a\\'b"}),
    ("env-essquote", "ENV name='a\\'b''", {"name": "a\\b"}),
    ("env-edsquote", "ENV name='a\\\"b'", {"name": 'a\\"b'}),
    ("env-empty-squote-in-empty-dquote", "ENV name=\"''\"", {"name": "''"}),
]


def _env_of(cli, image_id):
    env = json.loads(cli.ok("inspect", image_id).out)[0]["Config"]["Env"] or []
    return dict(e.split("=", 1) for e in env)


def _copy_context(tmp_path, dockerfile):
    ctx = _copy(tmp_path, "copy")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    return ctx


@pytest.mark.parametrize("case,line,expected", ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_copy_context_env_cases(bcli, tmp_path, case, line, expected):
    ctx = _copy_context(tmp_path, "FROM scratch\nCOPY script .\n%s\n" % line)
    image_id = bcli.ok("build", "-q", ctx).out.strip()
    assert _env_of(bcli, image_id) == expected
    assert "script" in _rootfs(bcli, image_id)


def test_copy_context_env_multiline(bcli, tmp_path):
    with open(os.path.join(CONTEXTS, "Dockerfile.env")) as f:
        text = f.read()
    # the last ENV of Dockerfile.env, ending in a continuation at EOF
    multiline = text[text.rindex("ENV name=value \\"):]
    ctx = _copy_context(tmp_path, "FROM scratch\nCOPY script .\n" + multiline)
    env = _env_of(bcli, bcli.ok("build", "-q", ctx).out.strip())
    assert env["name"] == "value" and env["name1"] == "value1"
    assert env["name2"].startswith("value2a ") and env["name2"].endswith("value2b")
    assert env["name3"] == 'value3a\\n"value3b"' and env["name4"] == "value4a\\nvalue4b"


def test_copy_context_env_invalid_single_quote_fails_at_line_3(bcli, tmp_path):
    proc = bcli("build", _copy_context(tmp_path, "FROM scratch\nCOPY script .\n"
                                                 "ENV name='a\\'b'\n"))
    assert proc.returncode == 1 and "Dockerfile:3:" in proc.err and "Traceback" not in proc.err


@pytest.mark.parametrize("chown,owner", [("", (0, 0)), ("--chown=1:1 ", (1, 1))])
def test_copy_for_user(bcli, tmp_path, chown, owner):
    """USER does not change who owns copied files: 0:0 unless --chown (Docker). The case
    uses alpine upstream; the local busybox stands in (the rule does not depend on the base)."""
    ctx = _copy_context(tmp_path, "FROM mirror.gcr.io/busybox\nUSER 66:66\n"
                                  "COPY %s/script /script\n" % chown)
    image_id = bcli.ok("build", "-q", ctx).out.strip()
    out = bcli.ok("run", "--rm", "-u", "0", image_id, "stat", "-c", "%u:%g %a",
                  "/script").out.split()
    assert out == ["%d:%d" % owner, "%o" % (os.stat(os.path.join(ctx, "script")).st_mode
                                            & 0o777)]


def test_copy_from_a_stage_ignores_its_workdir(bcli, tmp_path):
    """file-in-workdir-in-other-stage: `COPY --from=base . .` copies base's root, not its
    WORKDIR, into this stage's WORKDIR."""
    ctx = _copy(tmp_path, "dockerignore/populated")
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM scratch AS base\nCOPY . /subdir/\nWORKDIR /subdir\n"
                "FROM base\nCOPY --from=base . .\n")
    files = _rootfs(bcli, bcli.ok("build", "-q", ctx).out.strip())
    assert "subdir/subdir/file-a.txt" in files and "subdir/file-a.txt" in files


def _files_of_build(cli, ctx, dockerfile):
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    root = _rootfs(cli, cli.ok("build", "-q", ctx).out.strip())
    return sorted(rel for rel, top in root.items()
                  if not os.path.isdir(os.path.join(top, rel)))


X_TREE = ["x/a.txt", "x/y/a.txt", "x/y/b.txt", "x/z/a.txt", "x/z/b.txt"]


@pytest.mark.parametrize("body,expected", [
    ("COPY ./x/a.txt ./y/a.txt /no_parents/\nCOPY --parents ./x/a.txt ./y/a.txt /parents/",
     ["no_parents/a.txt", "parents/x/a.txt", "parents/y/a.txt"]),
    ("COPY --parents ./x /parents/", ["parents/" + p for p in X_TREE]),
    ("COPY --parents ./ /parents/",
     ["parents/" + p for p in ["Dockerfile"] + X_TREE + ["y/a.txt", "y/b.txt"]]),
    ("COPY --parents ./x/y/ /parents/", ["parents/x/y/a.txt", "parents/x/y/b.txt"]),
    ("COPY --parents ./x/*/a.txt ./*/b.txt /parents/",
     ["parents/x/y/a.txt", "parents/x/z/a.txt", "parents/y/b.txt"]),
    ("COPY --parents ./x/* /parents/", ["parents/" + p for p in X_TREE]),
    ("COPY --parents ./x/./ /parents/", ["parents/" + p[2:] for p in X_TREE]),
    ("COPY --parents ./x/./* /parents/", ["parents/" + p[2:] for p in X_TREE]),
], ids=["no-parents-and-parents", "dir", "root", "dir-slash", "globs", "dir-star",
        "pivot-dir", "pivot-star"])
def test_copy_parents_cases(bcli, tmp_path, body, expected):
    ctx = _copy(tmp_path, "copy-parents")
    assert _files_of_build(bcli, ctx, "FROM scratch\n%s\n" % body) == expected


def test_copydir_file_from_a_subdir_to_a_new_directory(bcli, tmp_path):
    ctx = _copy(tmp_path, "copydir")
    assert _files_of_build(bcli, ctx, "FROM scratch\nCOPY dir/file /subdir/\n") == \
        ["subdir/file"]


def test_minimal_test_keeps_only_the_exception(bcli, tmp_path):
    ctx = _copy(tmp_path, "dockerignore/minimal_test")
    assert _files_of_build(bcli, ctx, "FROM scratch\nCOPY stuff /tmp/stuff\n") == \
        ["tmp/stuff/huge/usr/bin/file1", "tmp/stuff/huge/usr/bin/file2"]


@pytest.mark.parametrize("dockerfile,expected", [
    ("FROM scratch as base\nCOPY . .\nFROM scratch\n"
     "COPY --from=base --exclude=storage/views app/ app/\n", ["app/storage/cache/cache_file"]),
    ("FROM scratch\nCOPY --exclude=storage/views/test_file "
     "--exclude=!storage/views/exception app/ app/\n",
     ["app/storage/cache/cache_file", "app/storage/views/exception"]),
], ids=["from-stage", "exception-through-exclude"])
def test_exclude_subdir_under_source_cases(bcli, tmp_path, dockerfile, expected):
    proc_ctx = _copy(tmp_path, "dockerignore/exclude_subdir_under_source")
    assert _files_of_build(bcli, proc_ctx, dockerfile) == expected
