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
    ("add/archive", "Dockerfile.%d" % i) for i in range(1, 8)] + [
    ("replace/symlink-with-directory", name) for name in
    ("Dockerfile", "Dockerfile.2", "Dockerfile.3", "Dockerfile.4")]


@pytest.fixture(scope="module")
def bcli(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("buildah-data")))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "mirror.gcr.io/busybox")
    return cli


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
