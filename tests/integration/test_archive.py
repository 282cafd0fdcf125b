"""`save` and `load` as a user relies on them, and as other tools read and write the archives.

Round trips keep image IDs, manifest digests, tags and content; one file holds several images;
stdout/stdin and a gzip-compressed archive work. skopeo, umoci and podman read what `save`
writes, and what podman saves loads here (each skipped, with the reason, when missing).
Whiteouts from a hand-made archive apply here and in podman. Hostile and broken archives fail
with one error line and leave the store as it was; a load killed mid-way leaves it usable.
Everything goes through the real CLI, as an unprivileged user, on real user namespaces.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import uuid

import pytest

from conftest import Cli, assert_one_error, find_named, inspect1, kill_when, layer_dir, listing, \
    needs_userns, tar_bytes, unpacking, wait_gone

pytestmark = needs_userns

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
# Files a runtime puts into /etc for its bind mounts (ours and podman's): not the image's.
RUNTIME_ETC = {"hosts", "hostname", "resolv.conf", "mtab", ".containerenv"}


# -- helpers ------------------------------------------------------------------------------------

def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def compress(kind, data):
    if kind == "gzip":
        return gzip.compress(data, compresslevel=1)
    if kind == "zstd":
        zstandard = pytest.importorskip("zstandard")
        return zstandard.ZstdCompressor(level=1).compress(data)
    return data


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isreg() else m)
                for m in tar.getmembers()}


def archive_json(data, name):
    return json.loads(members(data)[name])


def image_record(cli, image_id):
    """The store's record of an image: its manifest digest is a promise of the round trip."""
    with open(os.path.join(cli.root, "images.json")) as f:
        return json.load(f)["images"][image_id]


def loaded(proc):
    return proc.out.splitlines()


def file_entry(name, data, **kw):
    return (dict(name=name, mode=0o644, **kw), data)


def hand_archive(layers, tags=("hand:latest",), layout="docker", config=None):
    """A docker-archive ("docker": Docker 1.10+ names, `<id>/layer.tar` and `<hex>.json`,
    the second layer through a symlink as podman writes it) or an OCI layout ("oci"), made
    here from layer tars: [(uncompressed tar bytes, compression)]. -> tar entries, config."""
    diff_ids = [sha256(plain) for plain, _kind in layers]
    blobs = [compress(kind, plain) for plain, kind in layers]
    config = dict(config or {}, architecture=ARCH, os="linux",
                  rootfs={"type": "layers", "diff_ids": diff_ids})
    config.setdefault("config", {"Cmd": ["sh"]})
    config_bytes = json.dumps(config).encode()
    entries = []
    if layout == "docker":
        paths = []
        for i, blob in enumerate(blobs):
            layer_id = hashlib.sha256(b"%d" % i + blob).hexdigest()
            if i == 1:
                entries.append(file_entry("%s.tar" % sha256(blob)[7:], blob))
                entries.append((dict(name="%s/layer.tar" % layer_id, type=tarfile.SYMTYPE,
                                     linkname="../%s.tar" % sha256(blob)[7:]), None))
            else:
                entries.append(file_entry("%s/layer.tar" % layer_id, blob))
            paths.append("%s/layer.tar" % layer_id)
        entries.append(file_entry(sha256(config_bytes)[7:] + ".json", config_bytes))
        entries.append(file_entry("manifest.json", json.dumps([
            {"Config": sha256(config_bytes)[7:] + ".json", "RepoTags": list(tags),
             "Layers": paths}]).encode()))
        return entries, config_bytes
    mt = {"none": "application/vnd.oci.image.layer.v1.tar",
          "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
          "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": mt[kind], "digest": sha256(blob), "size": len(blob)}
                   for blob, (_plain, kind) in zip(blobs, layers)]}).encode()
    for blob in blobs + [config_bytes, manifest]:
        entries.append(file_entry("blobs/sha256/" + sha256(blob)[7:], blob))
    entries.append(file_entry("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'))
    entries.append(file_entry("index.json", json.dumps({
        "schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": sha256(manifest), "size": len(manifest),
             "annotations": {"org.opencontainers.image.ref.name": tag}}
            for tag in tags]}).encode()))
    return entries, config_bytes


def as_image_index(entries, arches, name="localhost/multi:1"):
    """An OCI layout's index.json made to point at an image index (a manifest list) whose
    entries are the image for each of arches: ours where arch is this machine's, else a
    manifest the archive does not hold (a loader must not need it)."""
    index = json.loads(entries[-1][1])
    ours = index["manifests"][0]
    manifests = []
    for arch in arches:
        desc = dict(ours, platform={"os": "linux", "architecture": arch})
        if arch != ARCH:
            desc["digest"] = sha256(arch.encode())
        manifests.append(desc)
    nested = json.dumps({"schemaVersion": 2, "manifests": manifests,
                         "mediaType": "application/vnd.oci.image.index.v1+json"}).encode()
    entries = entries[:-1] + [file_entry("blobs/sha256/" + sha256(nested)[7:], nested)]
    entries.append(file_entry("index.json", json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(nested),
         "size": len(nested), "annotations": {"org.opencontainers.image.ref.name": name}}]
    }).encode()))
    return entries


def marked_layer(text=None):
    """A small layer of its own (so its diff ID belongs to one test) -> (tar bytes, text)."""
    text = text or "marker-%s" % uuid.uuid4().hex
    return tar_bytes([file_entry("marker", text.encode())]), text


@pytest.fixture(scope="module")
def rootfs_bytes(rootfs_tar):
    with open(rootfs_tar, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def marked(cli, image, rootfs_tar, tmp_path_factory):
    """(name, image ID, marker text): an image of two layers (the base rootfs, a marker file)
    made by hand and loaded, tagged twice."""
    layer, text = marked_layer()
    with open(rootfs_tar, "rb") as f:
        base = f.read()
    entries, config_bytes = hand_archive([(base, "none"), (layer, "gzip")],
                                         tags=("marked:1", "marked:2"))
    path = write(tmp_path_factory.mktemp("marked") / "m.tar", tar_bytes(entries))
    assert loaded(cli.ok("load", "-i", path)) == ["Loaded image: marked:1",
                                                  "Loaded image: marked:2"]
    return "marked:1", sha256(config_bytes), text


def fresh(tmp_path, name="data"):
    return Cli(str(tmp_path / name))


# -- round trips --------------------------------------------------------------------------------

def test_round_trip_keeps_ids_manifests_tags_and_content(cli, image, marked, tmp_path):
    name, marked_id, text = marked
    base_id = inspect1(cli, image)["Id"]
    out = str(tmp_path / "two.tar")
    assert cli.ok("save", "-o", out, "marked:1", "marked:2", image).out == ""
    with open(out, "rb") as f:
        data = f.read()
    files = members(data)

    # one archive, both layouts: docker-archive and OCI image layout (Docker 25+)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    docker = json.loads(files["manifest.json"])
    assert [sorted(e["RepoTags"]) for e in docker] == [["marked:1", "marked:2"],
                                                       ["base:latest"]]
    assert docker[0]["Config"] == "blobs/sha256/" + marked_id[7:]
    index = json.loads(files["index.json"])
    names = sorted(d["annotations"]["io.containerd.image.name"] for d in index["manifests"])
    assert names == ["docker.io/library/base:latest", "docker.io/library/marked:1",
                     "docker.io/library/marked:2"]
    assert sorted(d["annotations"]["org.opencontainers.image.ref.name"]
                  for d in index["manifests"]) == ["1", "2", "latest"]
    # every blob is what its name says, byte for byte from the store
    for path, content in files.items():
        if path.startswith("blobs/sha256/") and isinstance(content, bytes):
            assert sha256(content) == "sha256:" + path.rsplit("/", 1)[1]
    for entry in docker:
        for layer in entry["Layers"]:
            assert layer in files
    repos = json.loads(files["repositories"])
    assert repos["marked"]["1"] == docker[0]["Layers"][-1].rsplit("/", 1)[1]
    # the same images give the same bytes
    cli.ok("save", "-o", str(tmp_path / "again.tar"), "marked:1", "marked:2", image)
    with open(tmp_path / "again.tar", "rb") as f:
        assert f.read() == data

    other = fresh(tmp_path)
    assert sorted(loaded(other.ok("load", "-i", out))) == [
        "Loaded image: base:latest", "Loaded image: marked:1", "Loaded image: marked:2"]
    for tag, image_id in (("marked:1", marked_id), ("marked:2", marked_id), (image, base_id)):
        assert inspect1(other, tag)["Id"] == image_id
        assert image_record(other, image_id)["manifest"] == \
            image_record(cli, image_id)["manifest"]
    assert sorted(inspect1(other, "marked:2")["RepoTags"]) == ["marked:1", "marked:2"]
    assert other.ok("run", "--rm", "marked:2", "cat", "/marker").out == text
    assert other.ok("run", "--rm", image, "sh", "-c", "echo ran").out == "ran\n"
    assert sorted(other.ok("images", "-q").out.split()) == sorted([marked_id[7:19],
                                                                  base_id[7:19]])
    assert os.listdir(os.path.join(other.root, "tmp")) == []


def test_save_by_id_to_stdout_load_from_stdin_untagged(cli, marked, tmp_path):
    _name, marked_id, text = marked
    proc = cli("save", marked_id[7:19])
    assert proc.returncode == 0, proc.err
    docker = archive_json(proc.stdout, "manifest.json")
    assert docker[0]["RepoTags"] is None
    assert "annotations" not in archive_json(proc.stdout, "index.json")["manifests"][0]
    other = fresh(tmp_path)
    assert loaded(other.ok("load", input=proc.stdout)) == ["Loaded image ID: %s" % marked_id]
    assert inspect1(other, marked_id)["RepoTags"] == []
    assert other.ok("run", "--rm", marked_id[7:19], "cat", "/marker").out == text


def test_load_of_gzip_compressed_archive_and_quiet(cli, marked, tmp_path):
    _name, marked_id, text = marked
    data = cli.ok("save", "marked:1").stdout
    path = write(tmp_path / "m.tar.gz", gzip.compress(data, compresslevel=1))
    other = fresh(tmp_path)
    assert loaded(other.ok("load", "-q", "-i", path)) == ["Loaded image: marked:1"]
    assert inspect1(other, "marked:1")["Id"] == marked_id
    assert other.ok("run", "--rm", "marked:1", "cat", "/marker").out == text
    # loading again over an existing tag is quiet about it; over another image, Docker's line
    assert loaded(other.ok("load", "-i", path)) == ["Loaded image: marked:1"]


@pytest.mark.parametrize("layout,kind,tag", [
    ("docker", "none", "example.com/comp:plain"), ("docker", "zstd", "example.com/comp:zstd"),
    # podman writes a whole reference as the OCI ref name; skopeo a bare tag, which names no
    # repository: that image loads untagged
    ("oci", "gzip", "example.com/comp:gzip"), ("oci", "zstd", "zstd")])
def test_load_docker_and_oci_layouts_with_each_compression(cli, image, rootfs_bytes, tmp_path,
                                                           layout, kind, tag):
    layer, text = marked_layer()
    entries, config_bytes = hand_archive([(rootfs_bytes, "gzip"), (layer, kind)],
                                         tags=(tag,), layout=layout)
    proc = cli.ok("load", "-i", write(tmp_path / "a.tar", tar_bytes(entries)))
    ref = sha256(config_bytes) if tag == "zstd" else tag
    assert loaded(proc) == ["Loaded image ID: %s" % ref if tag == "zstd" else
                            "Loaded image: %s" % tag]
    assert inspect1(cli, ref)["Id"] == sha256(config_bytes)
    assert cli.ok("run", "--rm", ref, "cat", "/marker").out == text
    cli.ok("rmi", ref)


def test_load_of_a_multi_platform_index_takes_this_machines_image(cli, image, rootfs_bytes,
                                                                   tmp_path):
    layer, text = marked_layer()
    entries, config_bytes = hand_archive([(rootfs_bytes, "gzip"), (layer, "gzip")],
                                         layout="oci")
    other = "s390x" if ARCH != "s390x" else "arm64"
    entries = as_image_index(entries, [other, ARCH])
    proc = cli.ok("load", "-i", write(tmp_path / "multi.tar", tar_bytes(entries)))
    assert loaded(proc) == ["Loaded image: localhost/multi:1"]
    assert inspect1(cli, "localhost/multi:1")["Id"] == sha256(config_bytes)
    assert cli.ok("run", "--rm", "localhost/multi:1", "cat", "/marker").out == text
    cli.ok("rmi", "localhost/multi:1")


def test_save_refuses_a_terminal_and_unknown_images(cli, image, tmp_path):
    import pty
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(cli.argv("save", image), stdout=slave, stderr=subprocess.PIPE,
                              env=cli.env, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1 and b"terminal" in proc.stderr
    before = listing(cli)
    for args in (("save", "-o", str(tmp_path / "x.tar"), "nosuch:image"),
                 ("save", "-o", str(tmp_path / "no" / "such" / "dir.tar"), image),
                 ("load", "-i", str(tmp_path / "missing.tar"))):
        assert_one_error(cli(*args))
    assert os.listdir(tmp_path) == []
    assert listing(cli) == before


# -- interop: skopeo, umoci ---------------------------------------------------------------------

def _need(tool):
    if shutil.which(tool) is None:
        pytest.skip("%s is not installed" % tool)


def _run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def saved(cli, marked, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("saved") / "marked.tar")
    cli.ok("save", "-o", path, "marked:1")
    return path


def test_skopeo_inspects_both_sides_of_the_archive(cli, marked, saved):
    _need("skopeo")
    _name, marked_id, _text = marked
    diff_ids = inspect1(cli, marked_id)["RootFS"]["Layers"]
    # docker-archive: skopeo makes a schema2 manifest from manifest.json + the config
    raw = json.loads(_run(["skopeo", "inspect", "--raw", "docker-archive:" + saved]))
    assert raw["config"]["digest"] == marked_id
    info = json.loads(_run(["skopeo", "inspect", "docker-archive:" + saved]))
    assert info["Layers"] == diff_ids and info["Architecture"] == ARCH
    # oci-archive: our manifest, byte for byte
    manifest_digest = image_record(cli, marked_id)["manifest"]
    raw = _run(["skopeo", "inspect", "--raw", "oci-archive:" + saved])
    assert sha256(raw.encode()) == manifest_digest
    assert json.loads(raw)["config"]["digest"] == marked_id
    config = json.loads(_run(["skopeo", "inspect", "--config", "oci-archive:" + saved]))
    assert config["rootfs"]["diff_ids"] == diff_ids


# -- whiteouts across tools ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def whiteout_image(cli, image, rootfs_bytes, tmp_path_factory):
    """Layer 1: the base rootfs with a real /bin (not the merged-/usr symlink, so that a
    `bin/.wh.vi` of layer 2 lands in it) holding `vi`, and extra files in /etc. Layer 2 deletes
    /bin/vi and makes /etc opaque, putting back only a new /etc/passwd."""
    base = tarfile.open(fileobj=io.BytesIO(rootfs_bytes))
    first = []
    for member in base.getmembers():
        if member.name in ("bin", "./bin"):
            continue
        info = {k: getattr(member, k) for k in ("name", "type", "mode", "linkname", "uid",
                                                 "gid", "mtime")}
        first.append((info, base.extractfile(member).read() if member.isreg() else None))
    passwd = b"root:x:0:0:whiteout test:/root:/bin/sh\n"
    first += [(dict(name="bin", type=tarfile.DIRTYPE, mode=0o755), None),
              (dict(name="bin/sh", type=tarfile.SYMTYPE, linkname="/usr/bin/busybox"), None),
              file_entry("bin/vi", b"not really vi"),
              file_entry("etc/motd", b"old motd"), file_entry("etc/old.conf", b"old")]
    text = "whiteout-%s" % uuid.uuid4().hex
    second = [(dict(name="bin", type=tarfile.DIRTYPE, mode=0o755), None),
              file_entry("bin/.wh.vi", b""),
              (dict(name="etc", type=tarfile.DIRTYPE, mode=0o755), None),
              file_entry("etc/.wh..wh..opq", b""),
              file_entry("etc/passwd", passwd),
              file_entry("marker", text.encode())]
    layers = [tar_bytes(first), tar_bytes(second)]
    entries, config_bytes = hand_archive([(layers[0], "gzip"), (layers[1], "none")],
                                         tags=("whiteout:1",))
    path = write(tmp_path_factory.mktemp("wh") / "wh.tar", tar_bytes(entries))
    assert loaded(cli.ok("load", "-i", path)) == ["Loaded image: whiteout:1"]
    expected = _merged_paths(layers)
    return {"ref": "whiteout:1", "id": sha256(config_bytes), "passwd": passwd,
            "text": text, "paths": expected}


def _merged_paths(layers):
    """The paths a correct unpack of these layers shows (whiteouts applied)."""
    paths = set()
    for data in layers:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            names = [m.name.strip("./") for m in tar.getmembers()]
        for name in names:
            parent, _, base = name.rpartition("/")
            if base == ".wh..wh..opq":
                paths = {p for p in paths if not p.startswith(parent + "/")}
            elif base.startswith(".wh."):
                gone = (parent + "/" if parent else "") + base[4:]
                paths = {p for p in paths if p != gone and not p.startswith(gone + "/")}
        paths.update(n for n in names if not n.rpartition("/")[2].startswith(".wh."))
    return paths


VIEW = "ls -A /etc; echo --; cat /etc/passwd; test -e /bin/vi && echo vi-present || echo vi-gone"


def _check_view(out, wh):
    etc, _, rest = out.partition("--\n")
    assert set(etc.split()) - RUNTIME_ETC == {"passwd"}, out
    assert rest == wh["passwd"].decode() + "vi-gone\n", out


def test_whiteouts_of_a_loaded_archive_apply(cli, whiteout_image):
    _check_view(cli.ok("run", "--rm", whiteout_image["ref"], "sh", "-c", VIEW).out,
                whiteout_image)
    assert cli.ok("run", "--rm", whiteout_image["ref"], "cat", "/marker").out == \
        whiteout_image["text"]


def test_skopeo_copy_and_umoci_unpack_give_the_same_files(cli, whiteout_image, tmp_path):
    _need("skopeo")
    _need("umoci")
    path = str(tmp_path / "wh.tar")
    cli.ok("save", "-o", path, whiteout_image["ref"])
    layout = str(tmp_path / "layout")
    _run(["skopeo", "copy", "-q", "oci-archive:" + path, "oci:%s:copied" % layout])
    bundle = str(tmp_path / "bundle")
    _run(["umoci", "unpack", "--rootless", "--image", layout + ":copied", bundle])
    rootfs = os.path.join(bundle, "rootfs")
    found = set()
    for top, dirs, files in os.walk(rootfs):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(top, name), rootfs))
    assert found == whiteout_image["paths"]
    with open(os.path.join(rootfs, "marker")) as f:
        assert f.read() == whiteout_image["text"]
    with open(os.path.join(rootfs, "etc", "passwd"), "rb") as f:
        assert f.read() == whiteout_image["passwd"]
    # umoci leaves directories it cannot write as they were; make them removable
    subprocess.run(["chmod", "-R", "u+rwX", bundle], capture_output=True)


# -- interop: podman ----------------------------------------------------------------------------

class Podman:
    """podman on a private store, the way bench/run_rm_true.py drives it: native overlay via
    storage.conf (graphroot, runroot and rootless_storage_path, also as --root/--runroot),
    XDG dirs inside the temporary, runc, host network, cgroupfs, file events."""

    def __init__(self, tmp):
        self.root = tmp
        self.graph = os.path.join(tmp, "graph")
        self.run_dir = os.path.join(tmp, "run")
        for sub in ("data", "config", "xdg-runtime", "tmp"):
            os.makedirs(os.path.join(tmp, sub), mode=0o700)
        storage = os.path.join(tmp, "storage.conf")
        with open(storage, "w") as f:
            f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                    'rootless_storage_path = "%s"\n' % (self.graph, self.run_dir, self.graph))
        containers = os.path.join(tmp, "containers.conf")
        with open(containers, "w") as f:
            # a private tmp_dir gives this store its own pause process, ended in close()
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'events_logfile_path = "%s/events.log"\ntmp_dir = "%s/tmp"\n' % (tmp, tmp))
        self.env = dict(os.environ, CONTAINERS_STORAGE_CONF=storage,
                        CONTAINERS_CONF=containers,
                        XDG_DATA_HOME=os.path.join(tmp, "data"),
                        XDG_CONFIG_HOME=os.path.join(tmp, "config"),
                        XDG_RUNTIME_DIR=os.path.join(tmp, "xdg-runtime"))
        self.base = ["podman", "--root", self.graph, "--runroot", self.run_dir,
                     "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]

    def __call__(self, *args, check=True):
        proc = subprocess.run(self.base + list(args), env=self.env, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=120)
        proc.out = proc.stdout.decode(errors="replace")
        proc.err = proc.stderr.decode(errors="replace")
        if check:
            assert proc.returncode == 0, ("podman", args, proc.out, proc.err)
        return proc

    def run(self, image, *cmd):
        return self("run", "--rm", "--network", "host", image, *cmd).out

    def _end_pause(self):
        try:
            with open(os.path.join(self.root, "tmp", "pause.pid")) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def close(self):
        # The pause process's mount namespace holds graph/overlay mounted: end it, then remove
        # the store from a fresh `podman unshare` (files of subordinate ids), then end that one.
        self._end_pause()
        self("unshare", "sh", "-c", "umount -l %s/overlay 2>/dev/null; rm -rf %s %s" % (
            self.graph, self.graph, self.run_dir), check=False)
        self._end_pause()


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    tmp = str(tmp_path_factory.mktemp("podman"))
    pm = Podman(tmp)
    try:
        info = pm("info", "--format", "{{.Store.GraphDriverName}}", check=False)
        if info.returncode != 0 or info.out.strip() != "overlay":
            pytest.skip("podman cannot use a private overlay store here: %s" % (
                info.err.strip().splitlines()[-1:] or info.out.strip()))
        yield pm
    finally:
        pm.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_podman_loads_and_runs_our_save(cli, marked, saved, whiteout_image, podman, tmp_path):
    _name, marked_id, text = marked
    out = podman("load", "-i", saved).out
    assert "marked:1" in out, out
    assert podman("image", "inspect", "--format", "{{.Id}}", "marked:1").out.strip() == \
        marked_id[7:]
    assert podman.run("marked:1", "cat", "/marker") == text
    # deletions included
    path = str(tmp_path / "wh.tar")
    cli.ok("save", "-o", path, whiteout_image["ref"])
    podman("load", "-i", path)
    _check_view(podman.run(whiteout_image["ref"], "sh", "-c", VIEW), whiteout_image)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_save_loads_and_runs_here(cli, image, rootfs_bytes, podman, tmp_path, fmt):
    text = "marker-%s" % uuid.uuid4().hex
    with tarfile.open(fileobj=io.BytesIO(rootfs_bytes)) as tar:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as out:
            for member in tar.getmembers():
                out.addfile(member, tar.extractfile(member) if member.isreg() else None)
            info = tarfile.TarInfo("marker")
            info.size, info.mode = len(text), 0o644
            out.addfile(info, io.BytesIO(text.encode()))
        plain = buf.getvalue()
    src = write(tmp_path / "rootfs.tar", plain)
    name = "localhost/frompodman:%s" % fmt.split("-")[0]
    podman("import", "-q", "--change", 'CMD ["sh"]', src, name)
    podman_id = podman("image", "inspect", "--format", "{{.Id}}", name).out.strip()
    archive = str(tmp_path / "podman.tar")
    podman("save", "--format", fmt, "-o", archive, name)
    assert loaded(cli.ok("load", "-i", archive)) == ["Loaded image: %s" % name]
    assert inspect1(cli, name)["Id"] == "sha256:" + podman_id
    assert cli.ok("run", "--rm", name, "cat", "/marker").out == text
    cli.ok("rmi", name)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_whiteouts_made_by_podman_apply_here(cli, rootfs_bytes, podman, tmp_path, fmt):
    """Deletions and an opaque directory written by another tool's overlay diff."""
    short = fmt.split("-")[0]
    base = "localhost/pmbase:" + short
    podman("import", "-q", "--change", 'CMD ["sh"]', write(tmp_path / "rootfs.tar",
                                                          rootfs_bytes), base)
    podman("run", "--name", "pmwh-" + short, "--network", "host", base, "sh", "-c",
           "rm /bin/vi; rm -rf /home; mkdir /home; echo k > /home/kept")
    name = "localhost/pmwhiteout:" + short
    podman("commit", "-q", "pmwh-" + short, name)
    podman("rm", "pmwh-" + short)
    archive = str(tmp_path / "pmwh.tar")
    podman("save", "--format", fmt, "-o", archive, name)
    cli.ok("load", "-i", archive)
    out = cli.ok("run", "--rm", name, "sh", "-c", "ls /bin/vi 2>&1; ls -A /home").out
    assert "No such file" in out
    assert out.strip().splitlines()[-1] == "kept"
    cli.ok("rmi", name)


# -- hostile and broken archives ----------------------------------------------------------------

def _hostile(case, rootfs_bytes, outside):
    """-> (archive bytes, text the error must contain)."""
    layer, _text = marked_layer()
    marker = os.path.basename(outside)
    if case == "blob-digest":
        entries, _cfg = hand_archive([(layer, "gzip")], layout="oci")
        name = entries[0][0]["name"]
        other, _ = marked_layer()
        entries[0] = file_entry(name, compress("gzip", other))
        return tar_bytes(entries), "sha256:" + name.rsplit("/", 1)[1]
    if case == "blob-digest-docker25":
        # Docker 25's docker-archive side names blobs by digest too: checked there as well
        blob = compress("gzip", layer)
        bad, _ = marked_layer()
        config = json.dumps({"architecture": ARCH, "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [sha256(layer)]}}).encode()
        entries = [file_entry("blobs/sha256/" + sha256(blob)[7:], compress("gzip", bad)),
                   file_entry("blobs/sha256/" + sha256(config)[7:], config),
                   file_entry("manifest.json", json.dumps([{
                       "Config": "blobs/sha256/" + sha256(config)[7:], "RepoTags": ["h:1"],
                       "Layers": ["blobs/sha256/" + sha256(blob)[7:]]}]).encode())]
        return tar_bytes(entries), sha256(blob)
    if case == "diff-id":
        entries, _cfg = hand_archive([(layer, "none")], config={})
        bad_config = json.dumps({"architecture": ARCH, "os": "linux", "rootfs": {
            "type": "layers", "diff_ids": [sha256(b"something else")]}}).encode()
        manifest = json.loads(entries[-1][1])
        entries[-2] = file_entry(sha256(bad_config)[7:] + ".json", bad_config)
        manifest[0]["Config"] = sha256(bad_config)[7:] + ".json"
        entries[-1] = file_entry("manifest.json", json.dumps(manifest).encode())
        return tar_bytes(entries), "diff ID"
    if case == "dotdot-name":
        entries, _cfg = hand_archive([(layer, "none")])
        return tar_bytes([file_entry("../../" + marker, b"pwned")] + entries), ".."
    if case == "dotdot-inside":
        entries, _cfg = hand_archive([(layer, "none")])
        return tar_bytes(entries[:1] + [file_entry("blobs/../../" + marker, b"pwned")] +
                         entries[1:]), ".."
    if case in ("symlink-blobs-absolute", "symlink-blobs-relative"):
        entries, _cfg = hand_archive([(layer, "none")], layout="oci")
        target = outside if case.endswith("absolute") else "../" * 20 + outside.lstrip("/")
        link = (dict(name="blobs", type=tarfile.SYMTYPE, linkname=target), None)
        return tar_bytes([link, file_entry("blobs/" + marker, b"pwned")] + entries), "link"
    if case == "missing-file":
        entries, _cfg = hand_archive([(layer, "none")])
        return tar_bytes(entries[1:]), "missing"
    if case == "truncated":
        entries, _cfg = hand_archive([(rootfs_bytes, "none")])
        data = tar_bytes(entries)
        return data[:len(data) // 2], "truncated"
    if case == "other-platform":
        entries, _cfg = hand_archive([(layer, "none")], layout="oci")
        others = ["arm64", "s390x"] if ARCH not in ("arm64", "s390x") else ["ppc64le"]
        return tar_bytes(as_image_index(entries, others)), "linux/" + others[-1]
    if case == "garbage":
        return os.urandom(40000), "cannot read the archive"
    if case == "not-an-image":
        return rootfs_bytes, "not an image archive"
    raise AssertionError(case)


HOSTILE = ["blob-digest", "blob-digest-docker25", "diff-id", "dotdot-name", "dotdot-inside",
           "symlink-blobs-absolute", "symlink-blobs-relative", "missing-file", "truncated",
           "garbage", "not-an-image", "other-platform"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_or_broken_archive_fails_cleanly(cli, image, rootfs_bytes, tmp_path, case):
    outside = tmp_path / ("outside-%s" % uuid.uuid4().hex)
    outside.mkdir()
    data, expected = _hostile(case, rootfs_bytes, str(outside))
    images_before = cli.ok("images", "-q", "--no-trunc").out
    before = listing(cli)
    proc = cli("load", "-i", write(tmp_path / "hostile.tar", data))
    assert_one_error(proc)
    assert expected in proc.err, proc.err
    assert proc.out == ""
    assert listing(cli) == before
    assert cli.ok("images", "-q", "--no-trunc").out == images_before
    assert list(outside.iterdir()) == []
    marker = outside.name
    for top in (os.path.dirname(cli.data_home), str(tmp_path)):
        assert [p for p in find_named(top, marker) if p != str(outside)] == [], top


def test_load_from_empty_stdin_fails_cleanly(cli, image):
    before = listing(cli)
    assert_one_error(cli("load", input=b""))
    assert listing(cli) == before


# -- kill ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_archive(tmp_path_factory):
    """A ~50 MB docker-archive of one layer (50 files of 1 MiB of random bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(50):
            info = tarfile.TarInfo("big/f%02d" % i)
            info.size, info.mode = 1 << 20, 0o644
            tar.addfile(info, io.BytesIO(os.urandom(1 << 20)))
    entries, config_bytes = hand_archive([(buf.getvalue(), "none")], tags=("big:latest",))
    path = tmp_path_factory.mktemp("big") / "big.tar"
    write(path, tar_bytes(entries))
    return str(path), sha256(config_bytes), sha256(buf.getvalue())


def _extracting(tmp_dir, at_least=10 << 20):
    def ready(names):
        for name in names:
            if "-load-" in name:
                total = 0
                for top, _dirs, files in os.walk(os.path.join(tmp_dir, name)):
                    for f in files:
                        try:
                            total += os.path.getsize(os.path.join(top, f))
                        except OSError:
                            pass
                if total >= at_least:
                    return True
        return False
    return ready


@pytest.mark.parametrize("moment", ["extracting", "unpacking"])
def test_kill_during_load_leaves_store_usable(tmp_path, rootfs_tar, big_archive, moment):
    path, big_id, diff_id = big_archive
    cli = fresh(tmp_path)
    cli.ok("import", rootfs_tar, "base:latest")
    tmp_dir = os.path.join(cli.root, "tmp")
    mark = uuid.uuid4().hex
    proc = subprocess.Popen(cli.argv("load", "-i", path), env=dict(cli.env, RBX_TEST_MARK=mark),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = _extracting(tmp_dir) if moment == "extracting" else unpacking(tmp_dir)
    assert kill_when(proc, ready, tmp_dir), "the load was not caught " + moment
    wait_gone(mark)
    assert os.listdir(tmp_dir) != []  # the killed load's temporaries, until the next command

    # the next command works and clears them
    assert cli.ok("images", "-q").out.strip() != ""
    assert os.listdir(tmp_dir) == []
    assert cli.ok("run", "--rm", "base:latest", "true").returncode == 0
    assert cli("inspect", "--type", "image", "big:latest").returncode == 1
    # the load can be done again, whole
    assert loaded(cli.ok("load", "-i", path)) == ["Loaded image: big:latest"]
    assert inspect1(cli, "big:latest")["Id"] == big_id
    assert sorted(os.listdir(layer_dir(cli, diff_id[7:], "big"))) == \
        ["f%02d" % i for i in range(50)]
    assert os.listdir(tmp_dir) == []
