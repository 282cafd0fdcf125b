"""The image side of issue 2, as a user relies on it: `import` (plain, gzip, zstd, xz, stdin),
content-addressed storage, `images`, `tag`, `rmi`, `inspect`, bad and hostile tarballs, a kill in
the middle of an import, and file owners under both id-mapping modes.

Everything goes through the real CLI (`python -m rootless_box`) on real user namespaces, as an
unprivileged user; the store is looked at on disk only where a user-visible promise is about it
(an image ID is the digest of its config; a tarball imported twice is stored once; `rmi` frees the
space; a failed or killed import leaves nothing behind).
"""

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import signal
import subprocess
import tarfile
import time
import uuid

import pytest

from conftest import Cli, assert_one_error, find_named, inspect1, kill_when, layer_dir, listing, \
    needs_subuid, needs_userns, store_dir, tar_bytes, unpacking, wait_gone

pytestmark = needs_userns

ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SHORT_RE = re.compile(r"^[0-9a-f]{12}$")


# -- helpers ------------------------------------------------------------------------------------

def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def rootfs_plus(rootfs_tar, entries):
    """The base rootfs (busybox, so `run` works) with extra entries appended, as tar bytes.
    entries: (TarInfo attributes, data or None), as for conftest.tar_bytes."""
    buf = io.BytesIO()
    with tarfile.open(rootfs_tar) as src, \
            tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        for info_kw, data in entries:
            info_kw = dict(info_kw)
            info = tarfile.TarInfo(info_kw.pop("name"))
            info.mode = 0o644
            for key, value in info_kw.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def marked_rootfs(rootfs_tar, text=None):
    """(tar bytes, marker text): the rootfs plus /marker holding a unique text, so that its
    layer (diff ID) belongs to one test only."""
    text = text or "marker-%s" % uuid.uuid4().hex
    return rootfs_plus(rootfs_tar, [({"name": "marker"}, text.encode())]), text


def write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return str(path)


def blob_names(cli):
    return set(os.listdir(store_dir(cli, "blobs", "sha256")))


def read_blob(cli, digest):
    with open(store_dir(cli, "blobs", "sha256", digest.partition(":")[2]), "rb") as f:
        return f.read()


def imported_id(proc):
    """The one line `import` prints: the image ID."""
    lines = proc.out.splitlines()
    assert len(lines) == 1, proc.out
    assert ID_RE.match(lines[0]), lines[0]
    return lines[0]


def image_rows(cli, *args):
    """`images` as rows of its five columns (cells are separated by 2+ spaces)."""
    lines = cli.ok("images", *args).out.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED",
                                                     "SIZE"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]
    for row in rows:
        assert len(row) == 5, row
    return rows


def walk_layers(cli, name):
    return find_named(layer_dir(cli), name)


# -- import: formats, the image ID, content -----------------------------------------------------

def _compress(kind, data):
    if kind == "plain":
        return data
    if kind == "gzip":
        return gzip.compress(data, compresslevel=1)
    if kind == "xz":
        return lzma.compress(data, preset=0)
    if kind == "zstd":
        zstandard = pytest.importorskip("zstandard")
        return zstandard.ZstdCompressor(level=1).compress(data)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["plain", "gzip", "zstd", "xz", "stdin"])
def test_import_prints_config_digest_and_files_are_there(cli, rootfs_tar, tmp_path, kind):
    plain, text = marked_rootfs(rootfs_tar)
    name = "fmt-%s:1" % kind
    if kind == "stdin":
        proc = cli.ok("import", "-", name, input=plain)
    else:
        src = write(tmp_path / ("rootfs." + kind), _compress(kind, plain))
        proc = cli.ok("import", src, name)
    image_id = imported_id(proc)
    # The image ID is the digest of the config blob, stored byte for byte.
    config_bytes = read_blob(cli, image_id)
    assert sha256(config_bytes) == image_id
    config = json.loads(config_bytes)
    # The diff ID is the digest of the uncompressed tar, whatever the tarball's compression.
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256(plain)]}
    assert inspect1(cli, name)["Id"] == image_id
    assert cli.ok("run", "--rm", name, "cat", "/marker").out == text


def test_import_without_name_is_dangling_and_usable_by_id(cli, rootfs_tar, tmp_path):
    plain, text = marked_rootfs(rootfs_tar)
    image_id = imported_id(cli.ok("import", write(tmp_path / "r.tar", plain)))
    short = image_id[7:19]
    rows = [r for r in image_rows(cli) if r[2] == short]
    assert rows == [["<none>", "<none>", short, rows[0][3], rows[0][4]]]
    assert inspect1(cli, short)["RepoTags"] == []
    assert cli.ok("run", "--rm", short, "cat", "/marker").out == text


# -- content addressing -------------------------------------------------------------------------

def test_same_tarball_twice_is_stored_once(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    plain, text = marked_rootfs(rootfs_tar)
    src = write(tmp_path / "r.tar", plain)
    id1 = imported_id(cli.ok("import", src, "twice:one"))
    id2 = imported_id(cli.ok("import", src, "twice:two"))
    one, two = inspect1(cli, "twice:one"), inspect1(cli, "twice:two")
    assert one["Id"] == id1 and two["Id"] == id2
    assert one["RepoTags"] == ["twice:one"] and two["RepoTags"] == ["twice:two"]
    assert one["RootFS"]["Layers"] == two["RootFS"]["Layers"] == [sha256(plain)]
    # one unpacked layer directory, one layer blob (the tarball itself)
    assert os.listdir(layer_dir(cli)) == [sha256(plain)[7:]]
    blobs = blob_names(cli)
    assert sha256(plain)[7:] in blobs
    layer_like = [b for b in blobs if len(read_blob(cli, "sha256:" + b)) == len(plain)]
    assert layer_like == [sha256(plain)[7:]]
    # both tags run
    for name in ("twice:one", "twice:two"):
        assert cli.ok("run", "--rm", name, "cat", "/marker").out == text
    # the same content compressed is the same layer: still one directory
    gz = write(tmp_path / "r.tar.gz", gzip.compress(plain, compresslevel=1))
    cli.ok("import", gz, "twice:gz")
    assert inspect1(cli, "twice:gz")["RootFS"]["Layers"] == [sha256(plain)]
    assert os.listdir(layer_dir(cli)) == [sha256(plain)[7:]]


# -- images -------------------------------------------------------------------------------------

def test_images_lists_short_names_quiet_and_filter(cli, image, rootfs_tar, tmp_path):
    base_id = inspect1(cli, image)["Id"]
    plain, _ = marked_rootfs(rootfs_tar)
    other_id = imported_id(cli.ok("import", write(tmp_path / "r.tar", plain),
                                  "example.com:5000/team/app:v1"))
    cli.ok("tag", "base:latest", "base:second")
    try:
        _check_listing(cli, base_id, other_id)
    finally:
        cli("rmi", "base:second")
    assert inspect1(cli, image)["RepoTags"] == ["base:latest"]


def _check_listing(cli, base_id, other_id):
    rows = image_rows(cli)
    by_name = {(r[0], r[1]): r for r in rows}
    assert by_name[("base", "latest")][2] == base_id[7:19]
    assert by_name[("base", "second")][2] == base_id[7:19]
    assert by_name[("example.com:5000/team/app", "v1")][2] == other_id[7:19]
    assert "docker.io" not in cli.ok("images").out and "library/" not in cli.ok("images").out
    for row in rows:
        assert SHORT_RE.match(row[2]), row
        assert re.match(r"^[0-9.]+(B|kB|MB|GB)$", row[4]), row
        assert row[3].endswith(" ago"), row

    quiet = cli.ok("images", "-q").out.split()
    assert all(SHORT_RE.match(q) for q in quiet), quiet
    assert {base_id[7:19], other_id[7:19]} <= set(quiet)
    assert cli.ok("images", "-q", "--no-trunc", "base").out.split()[0] == base_id

    assert sorted((r[0], r[1]) for r in image_rows(cli, "base")) == [
        ("base", "latest"), ("base", "second")]
    assert [(r[0], r[1]) for r in image_rows(cli, "base:second")] == [("base", "second")]
    assert [(r[0], r[1]) for r in image_rows(cli, "example.com:5000/team/app")] == [
        ("example.com:5000/team/app", "v1")]
    assert image_rows(cli, "nosuchrepo") == []
    assert cli.ok("images", "-q", "nosuchrepo").out == ""


def test_images_size_is_uncompressed(cli, rootfs_tar, tmp_path):
    """Docker's SIZE is the image's content, not the size of the tarball it came from."""
    plain, _ = marked_rootfs(rootfs_tar)
    cli.ok("import", write(tmp_path / "p.tar", plain), "sizes:plain")
    cli.ok("import", write(tmp_path / "g.tgz", gzip.compress(plain, 9)), "sizes:gz")
    sizes = {r[1]: r[4] for r in image_rows(cli, "sizes")}
    assert sizes["plain"] == sizes["gz"], sizes
    assert inspect1(cli, "sizes:gz")["Size"] == inspect1(cli, "sizes:plain")["Size"] \
        == len(plain)


# -- tag and rmi --------------------------------------------------------------------------------

def test_tag_then_rmi_untags_then_deletes_everything(cli, image, rootfs_tar, tmp_path):
    plain, text = marked_rootfs(rootfs_tar)
    before = blob_names(cli)
    layers_before = set(os.listdir(layer_dir(cli)))
    image_id = imported_id(cli.ok("import", write(tmp_path / "r.tar", plain), "rmitest:1"))
    new_blobs = blob_names(cli) - before
    new_layers = set(os.listdir(layer_dir(cli))) - layers_before
    # config, manifest, layer; one new layer directory
    assert image_id[7:] in new_blobs and sha256(plain)[7:] in new_blobs
    assert len(new_blobs) == 3, new_blobs
    assert new_layers == {sha256(plain)[7:]}

    assert cli.ok("tag", "rmitest:1", "rmitest:2").out == ""
    assert cli.ok("tag", image_id[7:19], "localhost:5000/rmi/test").out == ""
    assert sorted(inspect1(cli, "rmitest:2")["RepoTags"]) == [
        "localhost:5000/rmi/test:latest", "rmitest:1", "rmitest:2"]
    assert cli.ok("run", "--rm", "rmitest:2", "cat", "/marker").out == text

    # removing one tag of several only untags
    assert cli.ok("rmi", "rmitest:2").out == "Untagged: rmitest:2\n"
    assert cli("inspect", "--type", "image", "rmitest:2").returncode == 1
    assert inspect1(cli, "rmitest:1")["Id"] == image_id
    assert cli.ok("rmi", "localhost:5000/rmi/test").out == \
        "Untagged: localhost:5000/rmi/test:latest\n"
    assert all(os.path.exists(store_dir(cli, "blobs", "sha256", b)) for b in new_blobs)

    # the last tag deletes the image, its blobs and its layer directory
    out = cli.ok("rmi", "rmitest:1").out.splitlines()
    assert out == ["Untagged: rmitest:1", "Deleted: %s" % image_id]
    assert not any(os.path.exists(store_dir(cli, "blobs", "sha256", b)) for b in new_blobs)
    assert not os.path.exists(layer_dir(cli, sha256(plain)[7:]))
    assert set(os.listdir(layer_dir(cli))) == layers_before
    assert cli("inspect", image_id).returncode == 1
    assert image_id[7:19] not in cli.ok("images", "-q").out
    # what other images use is untouched
    assert cli.ok("run", "--rm", image, "true").returncode == 0


def test_rmi_by_id_with_several_tags_needs_force(cli, rootfs_tar, tmp_path):
    plain, _ = marked_rootfs(rootfs_tar)
    image_id = imported_id(cli.ok("import", write(tmp_path / "r.tar", plain), "multi:a"))
    cli.ok("tag", "multi:a", "multi:b")
    assert_one_error(cli("rmi", image_id[7:19]), code=1)
    assert inspect1(cli, "multi:a")["Id"] == image_id
    out = cli.ok("rmi", "-f", image_id[7:19]).out.splitlines()
    assert sorted(out) == sorted(["Untagged: multi:a", "Untagged: multi:b",
                                  "Deleted: %s" % image_id])
    assert not os.path.exists(layer_dir(cli, sha256(plain)[7:]))


def test_rmi_of_image_used_by_container_is_refused_and_forced(cli, rootfs_tar, tmp_path):
    plain, _ = marked_rootfs(rootfs_tar)
    image_id = imported_id(cli.ok("import", write(tmp_path / "r.tar", plain), "inuse:1"))
    name = "inuse-%s" % uuid.uuid4().hex[:8]
    cli.ok("run", "--name", name, "inuse:1", "true")

    refused = cli("rmi", "inuse:1")
    assert_one_error(refused, code=1)
    assert refused.err.splitlines()[1].startswith("hint: "), refused.err
    assert refused.out == ""
    assert inspect1(cli, "inuse:1")["Id"] == image_id
    assert os.path.isdir(layer_dir(cli, sha256(plain)[7:]))

    forced = cli("rmi", "-f", "inuse:1")
    assert forced.returncode == 0, forced.err
    assert "Untagged: inuse:1" in forced.out.splitlines()
    assert "Traceback" not in forced.err
    assert cli("inspect", "--type", "image", "inuse:1").returncode == 1
    # the container still works with what it was made from
    assert inspect1(cli, name)["Image"] == image_id
    # once the container is gone, the image can go
    cli.ok("rm", name)
    if cli("inspect", "--type", "image", image_id).returncode == 0:
        cli.ok("rmi", image_id)
    assert not os.path.exists(layer_dir(cli, sha256(plain)[7:]))
    assert not os.path.exists(store_dir(cli, "blobs", "sha256", image_id[7:]))


def test_rmi_and_tag_of_unknown_image_fail_cleanly(cli, image):
    for args in (("rmi", "nosuch"), ("rmi", "nosuch:tag"), ("rmi", "0123456789ab"),
                 ("tag", "nosuch", "other"), ("inspect", "nosuch"),
                 ("inspect", "--type", "image", "NotAValidRef"), ("tag", image, "Bad Name")):
        proc = cli(*args)
        assert_one_error(proc)
    assert json.loads(cli("inspect", "nosuch").out) == []


def test_rmi_several_names_goes_on_after_a_failure(cli, rootfs_tar, tmp_path):
    plain, _ = marked_rootfs(rootfs_tar)
    cli.ok("import", write(tmp_path / "r.tar", plain), "several:1")
    proc = cli("rmi", "nosuch-several", "several:1")
    assert proc.returncode == 1
    assert "Untagged: several:1" in proc.out
    assert cli("inspect", "--type", "image", "several:1").returncode == 1


# -- inspect ------------------------------------------------------------------------------------

def test_inspect_image_is_docker_shaped(cli, image):
    data = inspect1(cli, image)
    config = json.loads(read_blob(cli, data["Id"]))
    assert ID_RE.match(data["Id"])
    assert data["RepoTags"] == ["base:latest"]
    assert data["Config"]["Cmd"] == ["sh"]
    assert "Env" in data["Config"] and "Entrypoint" in data["Config"]
    assert data["RootFS"]["Type"] == "layers"
    assert data["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    assert data["Architecture"] == arch == config["architecture"]
    assert data["Os"] == "linux"
    assert data["Created"] == config["created"]
    # the same through Docker's other spellings
    assert json.loads(cli.ok("image", "inspect", image).out)[0]["Id"] == data["Id"]
    assert inspect1(cli, data["Id"][7:19], "--type", "image")["Id"] == data["Id"]
    assert inspect1(cli, data["Id"])["Id"] == data["Id"]


def test_inspect_container(cli, image):
    name = "insp-%s" % uuid.uuid4().hex[:8]
    assert cli("run", "--name", name, image, "sh", "-c", "exit 3").returncode == 3
    data = inspect1(cli, name)
    assert re.match(r"^[0-9a-f]{64}$", data["Id"])
    assert data["Name"] == "/" + name
    assert data["State"]["Status"] == "exited"
    assert data["State"]["ExitCode"] == 3
    assert data["State"]["Running"] is False
    assert data["Image"] == inspect1(cli, image)["Id"]
    assert data["Config"]["Cmd"] == ["sh", "-c", "exit 3"]
    assert inspect1(cli, data["Id"][:12])["Name"] == "/" + name
    assert inspect1(cli, name, "--type", "container")["Id"] == data["Id"]
    assert_one_error(cli("inspect", "--type", "image", name), code=1)
    cli.ok("rm", name)


def test_import_changes_show_in_inspect_and_apply_in_run(cli, rootfs_tar):
    name = "changes:1"
    cli.ok("import", "-c", "ENV A=b", "-c", "WORKDIR /w", "-c", 'ENTRYPOINT ["/bin/echo"]',
           "-c", 'CMD ["default-arg"]', "-m", "my message", rootfs_tar, name)
    data = inspect1(cli, name)
    assert "A=b" in data["Config"]["Env"]
    assert data["Config"]["WorkingDir"] == "/w"
    assert data["Config"]["Entrypoint"] == ["/bin/echo"]
    assert data["Config"]["Cmd"] == ["default-arg"]
    assert data["Comment"] == "my message"
    assert cli.ok("run", "--rm", name).out == "default-arg\n"
    assert cli.ok("run", "--rm", name, "hello", "world").out == "hello world\n"
    out = cli.ok("run", "--rm", "--entrypoint", "sh", name, "-c", 'echo "$A"; pwd').out
    assert out == "b\n/w\n"


def test_import_bad_change_or_name_fails_before_reading(cli, image, rootfs_tar):
    before = listing(cli)
    assert_one_error(cli("import", "-c", "BOGUS x", rootfs_tar, "x"))
    assert_one_error(cli("import", "-c", 'ENV A="unbalanced', rootfs_tar, "x"))
    assert_one_error(cli("import", "-c", "LABEL novalue", rootfs_tar, "x"))
    assert_one_error(cli("import", rootfs_tar, "Not/A Valid:Name"))
    assert_one_error(cli("import", rootfs_tar, "name@sha256:" + "0" * 64))
    assert listing(cli) == before


# -- bad input ----------------------------------------------------------------------------------

def _bad_inputs(rootfs_tar, tmp_path):
    with open(rootfs_tar, "rb") as f:
        plain = f.read()
    gz = gzip.compress(plain, compresslevel=1)
    xz = lzma.compress(plain, preset=0)
    unreadable = write(tmp_path / "unreadable.tar", plain, mode=0o000)
    return {
        "missing": (str(tmp_path / "does-not-exist.tar"), None),
        "unreadable": (unreadable, None),
        "directory": (str(tmp_path), None),
        "empty": (write(tmp_path / "empty.tar", b""), None),
        "truncated-gzip": (write(tmp_path / "t.tar.gz", gz[:len(gz) // 2]), None),
        "truncated-xz": (write(tmp_path / "t.tar.xz", xz[:len(xz) // 2]), None),
        "truncated-tar": (write(tmp_path / "t.tar", plain[:len(plain) // 2 + 100]), None),
        "garbage": (write(tmp_path / "g.tar", os.urandom(70000)), None),
        "gzip-of-garbage": (write(tmp_path / "gg.tar.gz", gzip.compress(os.urandom(9000))),
                            None),
        "stdin-garbage": ("-", os.urandom(5000)),
        "stdin-empty": ("-", b""),
    }


BAD = ["missing", "unreadable", "directory", "empty", "truncated-gzip", "truncated-xz",
       "truncated-tar", "garbage", "gzip-of-garbage", "stdin-garbage", "stdin-empty"]


@pytest.mark.parametrize("case", BAD)
def test_import_bad_input_fails_cleanly(cli, image, rootfs_tar, tmp_path, case):
    if case == "unreadable" and os.getuid() == 0:
        pytest.skip("root reads anything")
    source, stdin = _bad_inputs(rootfs_tar, tmp_path)[case]
    images_before = cli.ok("images", "-q").out
    before = listing(cli)
    proc = cli("import", source, "bad:input", input=stdin if stdin is not None else b"")
    assert_one_error(proc)
    assert proc.out == ""
    assert listing(cli) == before
    assert cli.ok("images", "-q").out == images_before
    assert cli("inspect", "--type", "image", "bad:input").returncode == 1


# -- hostile tarballs ---------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ["../../escape", "a/../../escape", "../escape",
                                   "a/b/../../../escape", "./../escape"])
def test_import_refuses_names_that_climb_out(cli, image, tmp_path, entry):
    marker = "escape-%s" % uuid.uuid4().hex
    name = entry.replace("escape", marker)
    data = tar_bytes([({"name": "a", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
                      ({"name": "a/b", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
                      ({"name": name}, b"pwned")])
    before = listing(cli)
    proc = cli("import", write(tmp_path / "hostile.tar", data), "hostile:climb")
    assert_one_error(proc)
    assert listing(cli) == before
    for top in (os.path.dirname(cli.data_home), str(tmp_path), "/tmp"):
        assert find_named(top, marker) == [], top


def test_import_symlink_to_root_does_not_write_to_the_host(cli, image, tmp_path):
    marker = "pwned-%s" % uuid.uuid4().hex
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    depth = "../" * 12
    data = tar_bytes([
        ({"name": "evil", "type": tarfile.SYMTYPE, "linkname": "/"}, None),
        ({"name": "evil/tmp/" + marker}, b"pwned"),
        ({"name": "abs", "type": tarfile.SYMTYPE, "linkname": str(host_dir)}, None),
        ({"name": "abs/" + marker}, b"pwned"),
        ({"name": "rel", "type": tarfile.SYMTYPE, "linkname": depth + str(host_dir)[1:]}, None),
        ({"name": "rel/" + marker + "-rel"}, b"pwned"),
        # a directory entry over a symlink replaces the symlink, never fills its target
        ({"name": "sd", "type": tarfile.SYMTYPE, "linkname": str(host_dir)}, None),
        ({"name": "sd", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
        ({"name": "sd/" + marker + "-dir"}, b"pwned"),
    ])
    proc = cli("import", write(tmp_path / "hostile.tar", data), "hostile:symlink")
    assert "Traceback" not in proc.err
    assert not os.path.lexists("/tmp/" + marker)
    assert list(host_dir.iterdir()) == []
    if proc.returncode == 0:
        # what was written landed inside the image
        found = walk_layers(cli, marker)
        assert found and all(p.startswith(layer_dir(cli) + "/") for p in found)
        cli.ok("rmi", "hostile:symlink")
    else:
        assert_one_error(proc)


def test_import_write_through_existing_symlink_does_not_touch_host_file(cli, image, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("original")
    data = tar_bytes([
        ({"name": "v", "type": tarfile.SYMTYPE, "linkname": str(victim)}, None),
        ({"name": "v"}, b"pwned"),
        ({"name": "w", "type": tarfile.SYMTYPE, "linkname": str(victim)}, None),
        ({"name": "w", "type": tarfile.LNKTYPE, "linkname": "v"}, None),
    ])
    proc = cli("import", write(tmp_path / "hostile.tar", data), "hostile:overwrite")
    assert "Traceback" not in proc.err
    assert victim.read_text() == "original"
    if proc.returncode == 0:
        cli.ok("rmi", "hostile:overwrite")
    else:
        assert_one_error(proc)


@pytest.mark.parametrize("linkname", ["/etc/passwd", "../../../../../../../etc/passwd",
                                      "etc/../../../../../etc/passwd"])
def test_import_hardlink_to_host_file_is_refused_or_inside(cli, image, tmp_path, linkname):
    host = os.stat("/etc/passwd")
    with open("/etc/passwd", "rb") as f:
        host_content = f.read()
    data = tar_bytes([({"name": "pw", "type": tarfile.LNKTYPE, "linkname": linkname}, None)])
    before = listing(cli)
    proc = cli("import", write(tmp_path / "hostile.tar", data), "hostile:hardlink")
    assert "Traceback" not in proc.err
    if proc.returncode == 0:
        for path in walk_layers(cli, "pw"):
            st = os.lstat(path)
            assert (st.st_dev, st.st_ino) != (host.st_dev, host.st_ino)
        cli.ok("rmi", "hostile:hardlink")
    else:
        assert_one_error(proc)
        assert listing(cli) == before
    with open("/etc/passwd", "rb") as f:
        assert f.read() == host_content


def test_import_hardlink_to_image_passwd_points_inside(cli, image, rootfs_tar, tmp_path):
    """A link to `/etc/passwd` where the image has one: re-rooted to the image's file."""
    host = os.stat("/etc/passwd")
    data = rootfs_plus(rootfs_tar, [({"name": "pw", "type": tarfile.LNKTYPE,
                                      "linkname": "/etc/passwd"}, None)])
    proc = cli("import", write(tmp_path / "l.tar", data), "hostile:inside")
    assert "Traceback" not in proc.err
    if proc.returncode != 0:
        assert_one_error(proc)
        return
    image_passwd = cli.ok("run", "--rm", "hostile:inside", "cat", "/etc/passwd").out
    assert cli.ok("run", "--rm", "hostile:inside", "cat", "/pw").out == image_passwd
    inodes = cli.ok("run", "--rm", "hostile:inside", "stat", "-c", "%i %h", "/pw",
                    "/etc/passwd").out.split("\n")
    assert inodes[0] == inodes[1] and inodes[0].split()[1] == "2"
    for path in walk_layers(cli, "pw"):
        st = os.lstat(path)
        assert (st.st_dev, st.st_ino) != (host.st_dev, host.st_ino)
    cli.ok("rmi", "hostile:inside")


def test_import_skips_device_nodes_with_a_warning(cli, rootfs_tar, tmp_path):
    dev = "dev-%s" % uuid.uuid4().hex[:8]
    data = rootfs_plus(rootfs_tar, [
        ({"name": dev + "-null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None),
        ({"name": dev + "-sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None),
        ({"name": "after-devices"}, b"still here"),
    ])
    proc = cli.ok("import", write(tmp_path / "d.tar", data), "devices:1")
    imported_id(proc)
    warnings = [line for line in proc.err.splitlines() if line.startswith("rootless-box: warning:")]
    assert len(warnings) == 1 and "device" in warnings[0], proc.err
    assert "Traceback" not in proc.err
    assert walk_layers(cli, dev + "-null") == [] and walk_layers(cli, dev + "-sda") == []
    assert cli.ok("run", "--rm", "devices:1", "cat", "/after-devices").out == "still here"
    cli.ok("rmi", "devices:1")


# -- a kill at any moment -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_tar(tmp_path_factory):
    """About 50 MB of random files (incompressible), owned by a non-root uid."""
    path = tmp_path_factory.mktemp("big") / "big.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(50):
            info = tarfile.TarInfo("d%d/f%02d" % (i % 5, i))
            info.size, info.uid, info.gid, info.mode = 1 << 20, 1000, 1000, 0o644
            tar.addfile(info, io.BytesIO(os.urandom(1 << 20)))
    os.chmod(path, 0o644)
    return str(path)


@pytest.mark.parametrize("moment", ["after-0.2s", "copying", "unpacking"])
def test_kill_during_import_leaves_store_usable(tmp_path, rootfs_tar, big_tar, moment):
    cli = Cli(str(tmp_path / "data"))
    base_id = imported_id(cli.ok("import", rootfs_tar, "base:latest"))
    marker = uuid.uuid4().hex
    env = dict(cli.env, RBX_TEST_MARK=marker)
    tmp_dir = store_dir(cli, "tmp")
    proc = subprocess.Popen(cli.argv("import", big_tar, "big:latest"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if moment == "after-0.2s":
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    elif moment == "copying":
        kill_when(proc, lambda names: any("-import-" in n for n in names), tmp_dir)
    else:
        assert kill_when(proc, unpacking(tmp_dir), tmp_dir), "the import was not caught " \
            "unpacking"
    wait_gone(marker)
    if moment == "unpacking":
        # killed mid-unpack: its temporaries are there, until a locked command clears them
        assert os.listdir(tmp_dir) != []

    # a later command works; the image that was there is intact
    rows = image_rows(cli)
    assert ("base", "latest") in {(r[0], r[1]) for r in rows}
    assert cli.ok("run", "--rm", "base:latest", "true").returncode == 0

    # the next locked command clears the dead import's temporaries
    other, _ = marked_rootfs(rootfs_tar)
    cli.ok("import", write(tmp_path / "o.tar", other), "other:latest")
    assert os.listdir(store_dir(cli, "tmp")) == []

    # every blob is whole (landed by rename, so its name is its digest)
    for name in blob_names(cli):
        assert sha256(read_blob(cli, "sha256:" + name)) == "sha256:" + name

    # the killed import can be done again, and its layer is complete
    cli.ok("import", big_tar, "big:latest")
    with open(big_tar, "rb") as f:
        diff_id = sha256(f.read())
    assert inspect1(cli, "big:latest")["RootFS"]["Layers"] == [diff_id]
    layer = layer_dir(cli, diff_id[7:])
    files = [os.path.join(d, n) for d, _, names in os.walk(layer) for n in names]
    assert len(files) == 50 and all(os.path.getsize(p) == 1 << 20 for p in files)
    assert os.listdir(store_dir(cli, "tmp")) == []
    assert inspect1(cli, "base:latest")["Id"] == base_id
    # the killed import may have finished before the kill (its image now dangling): once
    # every image but base is removed, so is the layer
    for image_id in cli.ok("images", "-q", "--no-trunc").out.split():
        if image_id != base_id:
            cli.ok("rmi", "-f", image_id)
    assert not os.path.exists(layer)
    assert os.listdir(layer_dir(cli)) == [inspect1(cli, base_id)["RootFS"][
        "Layers"][0][7:]]


# -- owners under both id mappings --------------------------------------------------------------

def _owned_rootfs(rootfs_tar):
    return rootfs_plus(rootfs_tar, [
        ({"name": "owned", "uid": 1000, "gid": 1001}, b"mine"),
        ({"name": "owned-dir", "type": tarfile.DIRTYPE, "mode": 0o755, "uid": 1000,
          "gid": 1001}, None),
        ({"name": "rootfile"}, b"root's"),
    ])


def test_single_id_mapping_flattens_owners_to_root(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"), env={"RBX_USERNS": "single"})
    proc = cli.ok("import", write(tmp_path / "o.tar", _owned_rootfs(rootfs_tar)), "owned:1")
    imported_id(proc)
    out = cli.ok("run", "--rm", "owned:1", "stat", "-c", "%u:%g", "/owned", "/owned-dir",
                 "/rootfile").out.split()
    assert out == ["0:0", "0:0", "0:0"]
    assert cli.ok("run", "--rm", "owned:1", "cat", "/owned").out == "mine"
    assert cli.ok("run", "--rm", "owned:1", "id", "-u").out == "0\n"
    # on the host, everything belongs to the user
    layer = layer_dir(cli, inspect1(cli, "owned:1")["RootFS"]["Layers"][0][7:])
    assert os.lstat(os.path.join(layer, "owned")).st_uid == os.getuid()
    cli.ok("rmi", "owned:1")
    assert not os.path.exists(layer)


@needs_subuid
def test_subuid_mapping_keeps_owners(cli, rootfs_tar, tmp_path):
    proc = cli.ok("import", write(tmp_path / "o.tar", _owned_rootfs(rootfs_tar)), "owned:2",
                  env={"RBX_USERNS": "subuid"})
    image_id = imported_id(proc)
    out = cli.ok("run", "--rm", "owned:2", "stat", "-c", "%u:%g", "/owned", "/owned-dir",
                 "/rootfile").out.split()
    assert out == ["1000:1001", "1000:1001", "0:0"]
    assert cli.ok("run", "--rm", "-u", "1000", "owned:2", "cat", "/owned").out == "mine"
    # rmi removes a layer whose files belong to subordinate ids
    layer = layer_dir(cli, inspect1(cli, image_id)["RootFS"]["Layers"][0][7:])
    assert os.lstat(os.path.join(layer, "owned")).st_uid != os.getuid()
    cli.ok("rmi", "owned:2")
    assert not os.path.exists(layer)


@needs_subuid
def test_a_change_of_mapping_unpacks_the_layers_again(tmp_path, rootfs_tar):
    """Owners on disk mean other ids under another mapping: a store used first with a subuid
    range, then without (or the other way), must still give the container sane owners."""
    cli = Cli(str(tmp_path / "data"))
    cli.ok("import", write(tmp_path / "o.tar", _owned_rootfs(rootfs_tar)), "owned:3",
           env={"RBX_USERNS": "subuid"})
    single = {"RBX_USERNS": "single"}
    out = cli.ok("run", "--rm", "owned:3", "sh", "-c",
                 "stat -c %u:%g /owned; echo more >> /owned && cat /owned", env=single).out
    assert out.split() == ["0:0", "minemore"]
    assert cli.ok("run", "--rm", "owned:3", "stat", "-c", "%u", "/owned",
                  env={"RBX_USERNS": "subuid"}).out == "1000\n"
    cli.ok("rmi", "owned:3", env=single)
    assert os.listdir(os.path.join(cli.root, "layers", "single")) == []


def test_inspect_format_templates(cli, image):
    image_id = inspect1(cli, image)["Id"]
    assert cli.ok("inspect", "-f", "{{.Id}}", image).out == image_id + "\n"
    assert cli.ok("inspect", "--format", "{{json .Config.Cmd}}", image).out == '["sh"]\n'
    cli("run", "--name", "fmt-test", image, "sh", "-c", "exit 6")
    assert cli.ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                  "fmt-test").out == "exited 6\n"
    bad = cli("inspect", "-f", "{{.Id", image)
    assert bad.returncode == 1 and "template" in bad.err
    cli.ok("rm", "fmt-test")


def test_a_tar_made_by_the_user_with_its_own_root_entry_imports(cli, rootfs_tar, tmp_path):
    """`tar -C dir -cf x.tar .` as the user writes a `./` entry owned by the user's uid, which
    a subuid mapping turns into a subordinate id: the layer directory must still be the
    store's to move into place (it keeps the namespace root as owner)."""
    with tarfile.open(rootfs_tar) as base, tarfile.open(tmp_path / "own.tar", "w") as out:
        root = tarfile.TarInfo(".")
        root.type, root.mode = tarfile.DIRTYPE, 0o555
        root.uid, root.gid = os.getuid(), os.getgid()
        out.addfile(root)
        for member in base.getmembers():
            out.addfile(member, base.extractfile(member) if member.isreg() else None)
    cli.ok("import", tmp_path / "own.tar", "own:1")
    assert cli.ok("run", "--rm", "own:1", "echo", "imported").out == "imported\n"
