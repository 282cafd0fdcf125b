"""Reproducible builds (issue 20): the same Dockerfile, context, base and build args give the
same image ID and layer digests in two fresh stores, one with a subuid range and one under a
single-id mapping, whatever the files' mtimes, creation order or the caller's umask;
SOURCE_DATE_EPOCH clamps the new layers' mtimes and --timestamp sets them."""

import json
import os
import subprocess
import tarfile
import time

import pytest

from conftest import Cli, assert_one_error, needs_subuid, needs_userns

pytestmark = [needs_userns, needs_subuid]

DOCKERFILE = """FROM base:latest
ARG SOURCE_DATE_EPOCH
COPY . /app/
COPY --chown=10:20 --chmod=640 b.txt /owned/b.txt
ADD arch.tar /x/
WORKDIR /work
RUN mkdir -p /out/d && echo fixed > /out/a && hostname > /out/h && chown 1000:1000 /out/a \\
    && ln /out/a /out/b && echo "$SOURCE_DATE_EPOCH" > /out/sde && rm /app/gone.txt
"""
FILES = {"a.txt": b"a\n", "b.txt": b"b\n", "sub/c.txt": b"c\n", "sub/deep/d.txt": b"d\n",
         "gone.txt": b"x\n"}


@pytest.fixture(scope="module")
def stores(tmp_path_factory, rootfs_tar):
    """(subuid store, single-id store), each holding the same base image (one import, saved
    and loaded: the same image ID)."""
    sub = Cli(str(tmp_path_factory.mktemp("sub")))
    single = Cli(str(tmp_path_factory.mktemp("single")), env={"RBX_USERNS": "single"})
    sub.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    saved = str(tmp_path_factory.mktemp("saved") / "base.tar")
    sub.ok("save", "-o", saved, "base:latest")
    single.ok("load", "-i", saved)
    return sub, single


def make_context(top, order, age, mode=0o644):
    """The same files, created in the given order, all with mtime now - age seconds."""
    os.makedirs(top)
    with open(os.path.join(top, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)
    for name in order:
        path = os.path.join(top, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(FILES[name])
        os.chmod(path, mode)
    with tarfile.open(os.path.join(top, "arch.tar"), "w") as tar:
        info = tarfile.TarInfo("in/tarred.txt")
        info.size, info.mtime, info.mode = 3, 1234567890, 0o644  # the same bytes each time
        import io
        tar.addfile(info, io.BytesIO(b"t!\n"))
    stamp = time.time() - age
    for dirpath, dirs, names in os.walk(top):
        for name in dirs + names:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))
        os.utime(dirpath, (stamp, stamp))
    for path in [os.path.join(dirpath, d) for dirpath, dirs, _ in os.walk(top) for d in dirs]:
        os.chmod(path, 0o755)
    return top


def build(cli, ctx, *args, umask=None):
    argv = cli.argv("build", "-q", *args, ctx)
    if umask is not None:
        argv = ["sh", "-c", "umask %s && exec \"$@\"" % umask, "sh"] + argv
    proc = subprocess.run(argv, env=cli.env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


def inspect(cli, image_id):
    return json.loads(cli.ok("inspect", image_id).out)[0]


def config_blob(cli, image_id):
    with open(os.path.join(cli.root, "blobs", "sha256", image_id[7:]), "rb") as f:
        return json.loads(f.read())


def layer_members(cli, diff_id):
    with tarfile.open(os.path.join(cli.root, "blobs", "sha256", diff_id[7:])) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_two_stores_and_mappings_give_the_same_image(stores, tmp_path):
    sub, single = stores
    order = sorted(FILES)
    first = build(sub, make_context(str(tmp_path / "one"), order, 60), umask="022")
    # another creation order (inode order), an hour older, another umask for the tool
    second = build(single, make_context(str(tmp_path / "two"), order[::-1], 3600),
                   umask="077")
    assert first == second
    assert inspect(sub, first)["RootFS"] == inspect(single, second)["RootFS"]
    # what the image holds: the RUN's chown (recorded under the single mapping), COPY
    # --chown, a new directory's mode whatever the umask, the sandbox's fixed host name (run
    # in the subuid store: under a single mapping stat shows every owner as root)
    out = sub.ok("run", "--rm", second, "sh", "-c",
                    "cat /out/h /out/sde; stat -c '%u:%g %a %n' /out/a /owned/b.txt /out/d "
                    "/work /app/sub; ls /app").out
    assert out.split("\n") == ["buildkitsandbox", "315532800", "1000:1000 644 /out/a",
                               "10:20 640 /owned/b.txt", "0:0 755 /out/d", "0:0 755 /work",
                               "0:0 755 /app/sub", "Dockerfile", "a.txt", "arch.tar",
                               "b.txt", "sub", ""]
    # no wall-clock time, no host name: the fixed default epoch
    config = config_blob(sub, first)
    assert config["created"] == "1980-01-01T00:00:00Z"
    assert {h["created"] for h in config["history"][1:]} == {"1980-01-01T00:00:00Z"}
    assert os.uname().nodename.encode() not in open(os.path.join(
        sub.root, "blobs", "sha256", first[7:]), "rb").read()
    for diff_id in config["rootfs"]["diff_ids"][1:]:
        members = layer_members(sub, diff_id)
        assert members and all(m.mtime <= 315532800 for m in members.values())
        assert not any(k.startswith("SCHILY.xattr.user.") for m in members.values()
                       for k in m.pax_headers)


def test_changing_only_mtimes_changes_nothing(stores, tmp_path):
    sub, _single = stores
    ctx = make_context(str(tmp_path / "ctx"), sorted(FILES), 60)
    first = build(sub, ctx)
    stamp = time.time() - 7200
    for dirpath, dirs, names in os.walk(ctx):
        for name in names:
            os.utime(os.path.join(dirpath, name), (stamp, stamp))
    assert build(sub, ctx) == first  # the cache, which ignores mtimes
    assert build(sub, ctx, "--no-cache") == first  # and the layers themselves


def test_source_date_epoch_clamps_and_is_the_arg(stores, tmp_path):
    sub, _single = stores
    ctx = make_context(str(tmp_path / "ctx"), sorted(FILES), 60)
    old = 1000000000  # older than the epoch: kept, as BuildKit's clamp keeps it
    os.utime(os.path.join(ctx, "a.txt"), (old, old))
    epoch = 1700000000
    by_flag = build(sub, ctx, "--source-date-epoch", str(epoch))
    by_env = subprocess.run(sub.argv("build", "-q", ctx), capture_output=True, check=True,
                            env=dict(sub.env, SOURCE_DATE_EPOCH=str(epoch))).stdout.strip()
    by_arg = build(sub, ctx, "--build-arg", "SOURCE_DATE_EPOCH=%d" % epoch)
    assert by_flag == by_env.decode() == by_arg
    config = config_blob(sub, by_flag)
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in config["history"][1:]} == {"2023-11-14T22:13:20Z"}
    copied = layer_members(sub, config["rootfs"]["diff_ids"][1])
    assert copied["app/a.txt"].mtime == old
    assert copied["app/b.txt"].mtime == epoch
    assert sub.ok("run", "--rm", by_flag, "cat", "/out/sde").out == "%d\n" % epoch
    assert by_flag != build(sub, ctx)


def test_timestamp_sets_every_mtime(stores, tmp_path):
    sub, _single = stores
    ctx = make_context(str(tmp_path / "ctx"), sorted(FILES), 60)
    os.utime(os.path.join(ctx, "a.txt"), (1000000000, 1000000000))
    image = build(sub, ctx, "--timestamp", "1600000000")
    config = config_blob(sub, image)
    assert config["created"] == "2020-09-13T12:26:40Z"
    for diff_id in config["rootfs"]["diff_ids"][1:]:
        assert {m.mtime for m in layer_members(sub, diff_id).values()} == {1600000000}
    # every RUN is told the time its layer's files get (so that Python writes .pyc files
    # that do not depend on mtimes): --timestamp's too
    assert sub.ok("run", "--rm", image, "cat", "/out/sde").out == "1600000000\n"


def test_run_steps_see_the_epoch_their_files_get(stores, tmp_path):
    """Without SOURCE_DATE_EPOCH the layers' mtimes are clamped to the default epoch, and
    RUN steps see it as SOURCE_DATE_EPOCH (the image's own environment does not)."""
    sub, _single = stores
    ctx = make_context(str(tmp_path / "ctx"), sorted(FILES), 60)
    image = build(sub, ctx)
    assert sub.ok("run", "--rm", image, "cat", "/out/sde").out == "315532800\n"
    assert "SOURCE_DATE_EPOCH" not in sub.ok("run", "--rm", image, "env").out


@pytest.mark.parametrize("args", [("--timestamp", "soon"), ("--source-date-epoch", "-5"),
                                  ("--build-arg", "SOURCE_DATE_EPOCH=1.5"),
                                  ("--timestamp", "1", "--source-date-epoch", "1")])
def test_bad_epochs_are_one_line(stores, tmp_path, args):
    sub, _single = stores
    ctx = make_context(str(tmp_path / "ctx"), sorted(FILES), 60)
    assert_one_error(sub("build", *args, ctx))


def _pyc(flags, mtime, size):
    """A .pyc header (PEP 552: magic, flags, then the source's mtime and size or a hash) and
    a body that stands for the code."""
    import struct
    return b"\xa7\r\r\n" + struct.pack("<III", flags, mtime, size) + b"code"


def test_pyc_headers_follow_the_clamp(stores, tmp_path):
    """A timestamp-checked .pyc whose source is in the same layer records the mtime the
    clamp gives the source (else every import finds it stale and compiles again); a hash-
    checked one, and one that was stale already, are left as they are."""
    sub, _single = stores
    ctx = str(tmp_path / "ctx")
    cache = os.path.join(ctx, "pkg", "__pycache__")
    os.makedirs(cache)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM base:latest\nCOPY pkg /app/pkg/\n")
    source = b"x = 1\n"
    stamp = int(time.time()) - 60
    for name in ("mod", "hashed", "stale"):
        with open(os.path.join(ctx, "pkg", name + ".py"), "wb") as f:
            f.write(source)
        os.utime(os.path.join(ctx, "pkg", name + ".py"), (stamp, stamp))
    headers = {"mod": _pyc(0, stamp, len(source)), "hashed": _pyc(1, 12345, 678),
               "stale": _pyc(0, stamp - 5, len(source))}
    for name, data in headers.items():
        with open(os.path.join(cache, name + ".cpython-311.pyc"), "wb") as f:
            f.write(data)
    image = build(sub, ctx)
    config = config_blob(sub, image)
    path = os.path.join(sub.root, "blobs", "sha256", config["rootfs"]["diff_ids"][-1][7:])
    with tarfile.open(path) as tar:
        assert tar.getmember("app/pkg/mod.py").mtime == 315532800
        got = {name: tar.extractfile("app/pkg/__pycache__/%s.cpython-311.pyc" % name).read()
               for name in headers}
    assert got == dict(headers, mod=_pyc(0, 315532800, len(source)))
    # the layer's directory holds what its tar does: a container reads the same header
    assert sub.ok("run", "--rm", image, "od", "-An", "-tu4", "-j8", "-N4",
                  "/app/pkg/__pycache__/mod.cpython-311.pyc").out.split() == ["315532800"]
