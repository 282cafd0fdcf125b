"""True owners without /etc/subuid: under a single-id mapping every file on disk is the
user's, and the owner an image asked for lives in the `user.rootlesscontainers` xattr; every
tar the tool writes (export, commit, build) must still say what the image said, as the same
steps under a subuid mapping do."""

import io
import os
import tarfile

import pytest

from conftest import Cli, needs_subuid, needs_userns
from test_images import rootfs_plus
from test_layers import layer_tar

pytestmark = needs_userns

SINGLE = {"RBX_USERNS": "single"}
SUBUID = {"RBX_USERNS": "subuid"}

# (uid, gid, mode) the image says, for the entries this test adds to the base rootfs
WANTED = {
    "home/user": (1000, 1000, 0o750),
    "home/user/notes": (1000, 1000, 0o640),
    "home/user/group-only": (0, 1000, 0o640),
    "usr/bin/su-like": (0, 0, 0o4755),
    "usr/bin/sg-like": (0, 50, 0o2755),
    "srv": (1000, 1001, 0o755),
    "srv/data": (1000, 1001, 0o644),
    "rootfile": (0, 0, 0o644),
}


def _owned_rootfs(rootfs_tar):
    entries = []
    for name, (uid, gid, mode) in WANTED.items():
        is_dir = name in ("home/user", "srv")
        info = {"name": name, "uid": uid, "gid": gid, "mode": mode}
        if is_dir:
            info["type"] = tarfile.DIRTYPE
        entries.append((info, None if is_dir else b"content of " + name.encode()))
    return rootfs_plus(rootfs_tar, entries)


def _owners(data, names=WANTED):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    for member in members.values():
        assert not any("rootlesscontainers" in key for key in member.pax_headers), member.name
    return {name: (members[name].uid, members[name].gid, members[name].mode & 0o7777)
            for name in names if name in members}


def _export(cli, tmp_path, name, env):
    out = tmp_path / (name + ".tar")
    cli.ok("export", "-o", out, name, env=env)
    return out.read_bytes()


def _import(cli, tmp_path, rootfs_tar, tag, env):
    path = tmp_path / "owned.tar"
    path.write_bytes(_owned_rootfs(rootfs_tar))
    cli.ok("import", path, tag, env=env)


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_single_mapping_export_and_commit_keep_the_image_owners(tmp_path, rootfs_tar, driver):
    env = dict(SINGLE, RBX_STORAGE_DRIVER=driver)
    cli = Cli(str(tmp_path / "data"), env=env)
    _import(cli, tmp_path, rootfs_tar, "owned:1", env)
    cli.ok("run", "--name", "c1", "owned:1", "sh", "-c",
           "echo more >> /home/user/notes; echo new > /srv/new; chmod 600 /srv/data")
    assert _owners(_export(cli, tmp_path, "c1", env)) == dict(WANTED, **{
        "srv/data": (1000, 1001, 0o600)})
    committed = cli.ok("commit", "c1", "owned:committed").out.strip()
    layer = _owners(layer_tar(cli, committed),
                    ["home/user", "home/user/notes", "srv", "srv/data", "srv/new"])
    # a copied-up file keeps the owner its layer gave it; a new file is root's
    assert layer["home/user/notes"] == (1000, 1000, 0o640)
    assert layer["srv/data"] == (1000, 1001, 0o600)
    assert layer["srv/new"][:2] == (0, 0)
    # the committed image, run and exported again, still says the same
    cli.ok("run", "--name", "c2", "owned:committed", "true")
    again = _owners(_export(cli, tmp_path, "c2", env), list(WANTED) + ["srv/new"])
    assert again.pop("srv/new")[:2] == (0, 0)
    expected = dict(WANTED, **{"srv/data": (1000, 1001, 0o600)})
    if driver == "copy":
        # the copy driver's commit leaves unchanged parents out of the layer (home/user), and
        # the parent unpack makes for them then shows as 0755 over the lower one: a mode
        # problem of implicit parents, not of owners
        assert again.pop("home/user")[:2] == expected.pop("home/user")[:2]
    assert again == expected


@needs_subuid
def test_single_and_subuid_mappings_write_the_same_owners(tmp_path, rootfs_tar):
    results = {}
    for mode, env in (("single", SINGLE), ("subuid", SUBUID)):
        cli = Cli(str(tmp_path / ("data-" + mode)), env=env)
        _import(cli, tmp_path, rootfs_tar, "owned:2", env)
        cli.ok("run", "--name", "c", "owned:2", "sh", "-c", "echo x >> /srv/data")
        exported = _owners(_export(cli, tmp_path, "c", env))
        committed = cli.ok("commit", "c", "owned:c").out.strip()
        results[mode] = (exported, _owners(layer_tar(cli, committed)))
    assert results["single"] == results["subuid"]
    assert results["single"][0] == WANTED


def test_copy_chown_under_a_single_mapping_writes_the_owner(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"), env=SINGLE)
    cli.ok("import", rootfs_tar, "base:latest")
    ctx = tmp_path / "ctx"
    (ctx / "dir").mkdir(parents=True)
    (ctx / "dir" / "a").write_text("a")
    (ctx / "b").write_text("b")
    os.symlink("a", ctx / "dir" / "link")
    (ctx / "Dockerfile").write_text(
        "FROM base:latest\n"
        "COPY --chown=1000:1000 dir /opt/dir/\n"
        "COPY --chown=1000:1000 b /opt/b\n"
        "COPY b /opt/root-b\n"
        "COPY --chown=1000:1000 <<EOF /opt/heredoc\nhello\nEOF\n")
    image_id = cli.ok("build", "-q", "-t", "copied:1", str(ctx)).out.strip()
    got = {}
    for index in (-4, -3, -2, -1):
        got.update(_owners(layer_tar(cli, image_id, index),
                           ["opt/dir", "opt/dir/a", "opt/dir/link", "opt/b", "opt/root-b",
                            "opt/heredoc"]))
    assert got["opt/dir/a"][:2] == (1000, 1000)
    assert got["opt/b"][:2] == (1000, 1000)
    assert got["opt/heredoc"][:2] == (1000, 1000)
    assert got["opt/root-b"][:2] == (0, 0)
    # a symlink cannot carry the record (xattr(7)): root's, as umoci and Podman leave it
    assert got["opt/dir/link"][:2] == (0, 0)
    # a RUN step after it sees the file and the layer it writes leaves the owner alone
    (ctx / "Dockerfile").write_text("FROM copied:1\nRUN echo more >> /opt/b\n")
    again = cli.ok("build", "-q", str(ctx)).out.strip()
    assert _owners(layer_tar(cli, again), ["opt/b"])["opt/b"][:2] == (1000, 1000)


def test_cp_archive_under_a_single_mapping_keeps_the_owner_both_ways(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"), env=SINGLE)
    _import(cli, tmp_path, rootfs_tar, "owned:cp", SINGLE)
    cli.ok("create", "--name", "box", "owned:cp", "true")
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, uid in (("kept", 1000), ("rooted", 0)):
            info = tarfile.TarInfo(name)
            info.uid = info.gid = uid
            info.size = 2
            tar.addfile(info, io.BytesIO(b"k\n"))
    cli.ok("cp", "-a", "-", "box:/tmp", input=stream.getvalue())
    cli.ok("cp", "-", "box:/srv", input=stream.getvalue())  # without -a: root's (Docker)
    names = ["tmp/kept", "tmp/rooted", "srv/kept", "srv/data"]
    got = _owners(_export(cli, tmp_path, "box", SINGLE), names)
    assert {name: ids[:2] for name, ids in got.items()} == {
        "tmp/kept": (1000, 1000), "tmp/rooted": (0, 0), "srv/kept": (0, 0),
        "srv/data": (1000, 1001)}
    out = cli.ok("cp", "box:/srv/data", "-").stdout
    assert _owners(out, ["data"])["data"][:2] == (1000, 1001)


RUN_CHOWNS = ("FROM owned:3\n"
              "RUN mkdir -p /opt/app/sub && touch /opt/app/sub/f /opt/app/g /opt/s && "
              "chown -R 1000:1001 /opt/app && chown 0:50 /opt/app/g && "
              "chmod 4755 /opt/s && chown 1002:1003 /opt/s && chown 0:0 /srv/data && "
              "ln -s g /opt/app/l && chown -h 1000:1000 /opt/app/l\n")
RUN_NAMES = ["opt/app", "opt/app/sub", "opt/app/sub/f", "opt/app/g", "opt/s", "srv/data",
             "opt/app/l"]


def _run_chowns(cli, tmp_path, rootfs_tar, env):
    _import(cli, tmp_path, rootfs_tar, "owned:3", env)
    ctx = tmp_path / "ctx-run"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(RUN_CHOWNS)
    image_id = cli.ok("build", "-q", str(ctx), env=env).out.strip()
    return _owners(layer_tar(cli, image_id), RUN_NAMES)


def test_run_step_chown_under_a_single_mapping_writes_the_owner(tmp_path, rootfs_tar):
    """The chown supervisor (issue 8): a RUN step's own chown reaches the layer; a symlink
    cannot carry the record and stays root's (xattr(7))."""
    cli = Cli(str(tmp_path / "data"), env=SINGLE)
    got = _run_chowns(cli, tmp_path, rootfs_tar, SINGLE)
    assert {name: owner[:2] for name, owner in got.items()} == {
        "opt/app": (1000, 1001), "opt/app/sub": (1000, 1001), "opt/app/sub/f": (1000, 1001),
        "opt/app/g": (0, 50), "opt/s": (1002, 1003), "srv/data": (0, 0), "opt/app/l": (0, 0)}
    # chown(2) clears the set-user-ID bit, for root too: the supervisor as well
    assert got["opt/s"][2] == 0o755


@needs_subuid
def test_run_step_chown_writes_the_same_owners_under_both_mappings(tmp_path, rootfs_tar):
    results = {}
    for mode, env in (("single", SINGLE), ("subuid", SUBUID)):
        cli = Cli(str(tmp_path / ("data-" + mode)), env=env)
        results[mode] = _run_chowns(cli, tmp_path, rootfs_tar, env)
    # a symlink's owner is the single mapping's documented loss
    assert results["subuid"].pop("opt/app/l")[:2] == (1000, 1000)
    assert results["single"].pop("opt/app/l")[:2] == (0, 0)
    assert results["single"] == results["subuid"]
