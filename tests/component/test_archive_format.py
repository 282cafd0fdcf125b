"""ops/archive.py without a store or a namespace: the JSON documents of docker-archive and OCI
layouts (parsed and written), the platform choice in an image index, image names from
annotations, and reading hostile archives into a real temporary directory.

Archives are built in memory and read from a stream that cannot seek, as stdin would be.
"""

import gzip
import hashlib
import io
import json
import os
import tarfile
from types import SimpleNamespace

import pytest

from rootless_box.errors import BadArchive
from rootless_box.oci import image as media
from rootless_box.oci import reference
from rootless_box.oci.image import host_arch
from rootless_box.ops import archive

HOST = ("linux", host_arch(), {"arm64": "v8"}.get(host_arch()))
OTHER_ARCH = "s390x" if host_arch() != "s390x" else "ppc64le"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Pipe(io.RawIOBase):
    """A readable stream that cannot seek."""

    def __init__(self, data):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        chunk = self._data.read(min(len(buffer), 7000))
        buffer[:len(chunk)] = chunk
        return len(chunk)


def tar_of(entries):
    """entries: (name, bytes) for files, (name, ("sym"|"hard", target)) for links,
    (name, "dir") / (name, "fifo") for those."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries:
            info = tarfile.TarInfo(name)
            if isinstance(value, bytes):
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
                continue
            if isinstance(value, tuple):
                info.type = tarfile.SYMTYPE if value[0] == "sym" else tarfile.LNKTYPE
                info.linkname = value[1]
            else:
                info.type = {"dir": tarfile.DIRTYPE, "fifo": tarfile.FIFOTYPE}[value]
            tar.addfile(info)
    return buf.getvalue()


def extract(tmp_path, entries, compress=None):
    data = tar_of(entries)
    if compress:
        data = compress(data)
    root = tmp_path / "x"
    root.mkdir()
    return archive.extract(_Pipe(data), str(root))


LAYER = tar_of([("hello", b"hi\n")])


def config_for(layers, arch=None):
    return json.dumps({"architecture": arch or host_arch(), "os": "linux",
                       "rootfs": {"type": "layers",
                                  "diff_ids": [sha256(x) for x in layers]}}).encode()


def oci_image(layer=LAYER, arch=None):
    """-> (blob entries, manifest bytes, config bytes) of a one-layer OCI image."""
    config = config_for([layer], arch)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer), "size": len(layer)}]}).encode()
    blobs = [("blobs/sha256/" + sha256(b)[7:], b) for b in (layer, config, manifest)]
    return blobs, manifest, config


def descriptor(data, media_type="application/vnd.oci.image.manifest.v1+json", **extra):
    return dict({"mediaType": media_type, "digest": sha256(data), "size": len(data)}, **extra)


# -- manifest.json --------------------------------------------------------------------------------

def test_parse_docker_manifest():
    entries = archive.parse_docker_manifest([
        {"Config": "a.json", "RepoTags": ["x:1"], "Layers": ["l/layer.tar"]},
        {"Config": "b.json", "RepoTags": None, "Layers": []}])
    assert entries == [{"config": "a.json", "layers": ["l/layer.tar"], "repo_tags": ["x:1"]},
                       {"config": "b.json", "layers": [], "repo_tags": []}]


@pytest.mark.parametrize("data", [{}, [], [{}], [{"Config": 1, "Layers": []}],
                                  [{"Config": "a", "Layers": "l"}],
                                  [{"Config": "a", "Layers": [1]}],
                                  [{"Config": "a", "Layers": [], "RepoTags": "x"}]])
def test_parse_docker_manifest_refuses_bad_shapes(data):
    with pytest.raises(BadArchive, match="manifest.json"):
        archive.parse_docker_manifest(data)


# -- index.json, manifests, configs ---------------------------------------------------------------

def test_parse_index_and_descriptors():
    desc = {"digest": "sha256:" + "a" * 64, "size": 3, "annotations": {"k": "v"}}
    assert archive.parse_index({"manifests": [desc]}) == [desc]
    for bad in ({"digest": "sha256:abc"}, {"digest": "md5:" + "a" * 32},
                {"digest": "sha256:" + "a" * 64, "size": -1},
                {"digest": "sha256:" + "a" * 64, "size": True},
                {"digest": "sha256:" + "a" * 64, "annotations": []}, "x"):
        with pytest.raises(BadArchive):
            archive.parse_index({"manifests": [bad]})
    with pytest.raises(BadArchive, match="not an image index"):
        archive.parse_index({"layers": []})


def test_parse_manifest():
    _blobs, manifest, config = oci_image()
    config_desc, layers = archive.parse_manifest(json.loads(manifest), "m")
    assert config_desc["digest"] == sha256(config)
    assert [d["digest"] for d in layers] == [sha256(LAYER)]
    docker = dict(json.loads(manifest),
                  mediaType="application/vnd.docker.distribution.manifest.v2+json")
    docker["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    assert archive.parse_manifest(docker, "m")[0]["digest"] == sha256(config)
    with pytest.raises(BadArchive, match="schema 1"):
        archive.parse_manifest({"schemaVersion": 1, "fsLayers": []}, "m")
    helm = dict(json.loads(manifest))
    helm["config"] = dict(helm["config"], mediaType="application/vnd.cncf.helm.config.v1+json")
    with pytest.raises(BadArchive, match="not a container image"):
        archive.parse_manifest(helm, "m")
    with pytest.raises(BadArchive, match="not an image manifest"):
        archive.parse_manifest(dict(json.loads(manifest), mediaType="text/plain"), "m")


def test_config_diff_ids():
    assert archive.config_diff_ids(json.loads(config_for([LAYER])), "c") == [sha256(LAYER)]
    for bad in ({}, {"rootfs": {}}, {"rootfs": {"diff_ids": ["nope"]}}, []):
        with pytest.raises(BadArchive):
            archive.config_diff_ids(bad, "c")


# -- platform choice --------------------------------------------------------------------------

def _platform(arch, os_="linux", variant=None):
    p = {"os": os_, "architecture": arch}
    if variant:
        p["variant"] = variant
    return {"digest": "sha256:" + hashlib.sha256(repr(p).encode()).hexdigest(), "platform": p}


def test_choose_platform_picks_this_machine():
    entries = [_platform("arm", variant="v7"), _platform("amd64"), _platform("arm64", variant="v8"),
               _platform("unknown", "unknown")]
    assert archive.choose_platform(entries, ("linux", "amd64", None)) is entries[1]
    assert archive.choose_platform(entries, ("linux", "arm64", "v8")) is entries[2]
    assert archive.choose_platform(entries, ("linux", "arm", "v7")) is entries[0]
    # an exact variant wins over none; none is taken when it is all there is
    loose, exact = _platform("arm64"), _platform("arm64", variant="v8")
    assert archive.choose_platform([loose, exact], ("linux", "arm64", "v8")) is exact
    assert archive.choose_platform([loose], ("linux", "arm64", "v8")) is loose
    # windows is another os
    assert archive.choose_platform([_platform("amd64", "windows"), entries[1]],
                                   ("linux", "amd64", None)) is entries[1]
    # one entry naming no platform is the image
    bare = {"digest": "sha256:" + "b" * 64}
    assert archive.choose_platform([bare], HOST) is bare


def test_choose_platform_lists_what_there_is():
    entries = [_platform("arm64", variant="v8"), _platform("arm", variant="v7"),
               _platform("unknown", "unknown")]
    with pytest.raises(BadArchive) as info:
        archive.choose_platform(entries, ("linux", "amd64", None), "image index sha256:x")
    message = info.value.message
    assert "linux/amd64" in message and "image index sha256:x" in message
    assert "linux/arm/v7, linux/arm64/v8, unknown/unknown" in message
    assert info.value.hint


def test_host_platform():
    assert archive.host_platform()[:2] == ("linux", host_arch())


# -- names ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("annotations,names", [
    ({archive.ANN_IMAGE_NAME: "docker.io/library/base:latest", archive.ANN_REF_NAME: "latest"},
     ["docker.io/library/base:latest"]),
    ({archive.ANN_REF_NAME: "localhost/x:1"}, ["localhost/x:1"]),     # podman
    ({archive.ANN_REF_NAME: "base:2"}, ["docker.io/library/base:2"]),
    ({archive.ANN_REF_NAME: "latest"}, []),                           # skopeo: a bare tag
    ({archive.ANN_REF_NAME: "Not A Ref:x"}, []),
    ({archive.ANN_IMAGE_NAME: "x@sha256:" + "a" * 64}, []),            # a digest is no tag
    ({archive.ANN_IMAGE_NAME: "x:1@sha256:" + "a" * 64}, ["docker.io/library/x:1"]),
    (None, []), ({}, []),
])
def test_refs_from_annotations(annotations, names):
    assert [str(r) for r in archive.refs_from_annotations(annotations)] == names


def test_an_invalid_containerd_name_is_an_error():
    with pytest.raises(BadArchive, match="image name"):
        archive.refs_from_annotations({archive.ANN_IMAGE_NAME: "Bad Name"})


def test_parse_repo_tag():
    assert str(archive.parse_repo_tag("base", "t")) == "docker.io/library/base:latest"
    for bad in ("Bad", "x@sha256:" + "a" * 64, ""):
        with pytest.raises(BadArchive):
            archive.parse_repo_tag(bad, "t")


# -- what save writes -------------------------------------------------------------------------

def _saved(refs, layers, config=None, image_id="sha256:" + "c" * 64):
    return SimpleNamespace(
        id=image_id, refs=[reference.parse(r) for r in refs], layers=layers,
        config=config if config is not None else {"architecture": "amd64", "os": "linux"},
        manifest_type="application/vnd.oci.image.manifest.v1+json",
        manifest_digest="sha256:" + "d" * 64, manifest_bytes=b"x" * 10)


def test_documents_of_save():
    top = "sha256:" + "f" * 64
    tagged = _saved(["base:latest", "localhost:5000/a/b:v1"], [("sha256:" + "e" * 64, 5),
                                                                (top, 7)])
    untagged = _saved([], [], config={}, image_id="sha256:" + "9" * 64)
    index = archive.index_document([tagged, untagged])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    first, second, third = index["manifests"]
    assert first["annotations"] == {archive.ANN_IMAGE_NAME: "docker.io/library/base:latest",
                                    archive.ANN_REF_NAME: "latest"}
    assert second["annotations"][archive.ANN_IMAGE_NAME] == "localhost:5000/a/b:v1"
    assert first["platform"] == {"architecture": "amd64", "os": "linux"}
    assert first["digest"] == "sha256:" + "d" * 64 and first["size"] == 10
    assert "annotations" not in third and "platform" not in third

    docker = archive.docker_manifest_document([tagged, untagged])
    assert docker[0] == {"Config": "blobs/sha256/" + "c" * 64,
                         "RepoTags": ["base:latest", "localhost:5000/a/b:v1"],
                         "Layers": ["blobs/sha256/" + "e" * 64, "blobs/sha256/" + "f" * 64]}
    assert docker[1]["RepoTags"] is None and docker[1]["Layers"] == []
    assert archive.repositories_document([tagged, untagged]) == {
        "base": {"latest": "f" * 64}, "localhost:5000/a/b": {"v1": "f" * 64}}


# -- reading archives -----------------------------------------------------------------------------

def test_extract_keeps_regular_files_by_clean_name_and_hashes_them(tmp_path):
    ex = extract(tmp_path, [("./a/b", b"one"), ("a/", "dir"), ("fifo", "fifo"),
                            ("/abs/c", b"two"), ("a/b", b"replaced"),
                            ("sym", ("sym", "a/b")), ("a/hard", ("hard", "abs/c"))],
                 compress=gzip.compress)
    assert ex.files == {"a/b": (sha256(b"replaced"), 8), "abs/c": (sha256(b"two"), 3)}
    assert ex.resolve("sym", "x") == "a/b" and ex.resolve("./a/hard", "x") == "abs/c"
    found = sorted(os.path.relpath(os.path.join(d, n), ex.root)
                   for d, _dirs, names in os.walk(ex.root) for n in names)
    assert found == ["a/b", "abs/c"]  # no links, no fifo on disk
    with pytest.raises(BadArchive, match="missing"):
        ex.resolve("nothing", "the config")


@pytest.mark.parametrize("entries,match", [
    ([("../up", b"x")], "climbs out"),
    ([("a/../../up", b"x")], "climbs out"),
    ([("blobs", ("sym", "/etc"))], "link out"),
    ([("blobs", ("sym", "../../etc"))], "link out"),
    ([("a/l", ("hard", "../../etc/passwd"))], "link out"),
    ([("a", b"file"), ("a/b", b"under a file")], "clashes"),
    ([("a/b", b"x"), ("a", b"over a directory")], "clashes"),
    ([("x" * 300, b"x")], "too long"),
])
def test_extract_refuses_hostile_entries(tmp_path, entries, match):
    with pytest.raises(BadArchive, match=match):
        extract(tmp_path, [("ok", b"fine")] + entries)
    assert not os.path.exists(tmp_path / "up") and not os.path.exists(tmp_path.parent / "up")


@pytest.mark.parametrize("kind", ["gzip", "xz", "bzip2", "zstd"])
def test_extract_reads_a_compressed_archive(tmp_path, kind):
    import bz2
    import lzma
    if kind == "zstd":
        zstandard = pytest.importorskip("zstandard")
        pack = zstandard.ZstdCompressor().compress
    else:
        pack = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}[kind]
    payload = os.urandom(300000)
    ex = extract(tmp_path, [("blob", payload)], compress=pack)
    assert ex.files == {"blob": (sha256(payload), len(payload))}
    with open(ex.path("blob"), "rb") as f:
        assert f.read() == payload


def test_extract_refuses_broken_input(tmp_path):
    data = tar_of([("a", os.urandom(5000))])
    for i, bad in enumerate((b"", os.urandom(3000), data[:2000], gzip.compress(data)[:100])):
        root = tmp_path / str(i)
        root.mkdir()
        with pytest.raises(BadArchive):
            archive.extract(_Pipe(bad), str(root))


def test_read_oci_layout_narrows_an_index_to_this_platform(tmp_path):
    ours, our_manifest, our_config = oci_image()
    theirs, their_manifest, _ = oci_image(tar_of([("other", b"arch")]), arch=OTHER_ARCH)
    nested = json.dumps({"schemaVersion": 2, "mediaType": media.MT_OCI_INDEX, "manifests": [
        descriptor(their_manifest, platform={"os": "linux", "architecture": OTHER_ARCH}),
        descriptor(our_manifest, platform={"os": "linux", "architecture": host_arch(),
                                           **({"variant": HOST[2]} if HOST[2] else {})})]
    }).encode()
    index = {"schemaVersion": 2, "manifests": [descriptor(
        nested, media.MT_OCI_INDEX, annotations={archive.ANN_REF_NAME: "localhost/m:1"})]}
    # the other platform's blobs are absent: only the chosen image is read
    ex = extract(tmp_path, ours + [("blobs/sha256/" + sha256(nested)[7:], nested),
                                   ("index.json", json.dumps(index).encode()),
                                   ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')])
    [image] = archive.read_archive(ex)
    assert image.id == sha256(our_config)
    assert image.manifest_bytes == our_manifest
    assert [str(r) for r in image.refs] == ["localhost/m:1"]
    assert [(lay.digest, lay.diff_id) for lay in image.layers] == [(sha256(LAYER),
                                                                    sha256(LAYER))]


def test_read_oci_layout_without_this_platform_names_the_others(tmp_path):
    theirs, their_manifest, _ = oci_image(arch=OTHER_ARCH)
    nested = json.dumps({"manifests": [descriptor(
        their_manifest, platform={"os": "linux", "architecture": OTHER_ARCH})]}).encode()
    ex = extract(tmp_path, theirs + [("blobs/sha256/" + sha256(nested)[7:], nested),
                                     ("index.json", json.dumps({"manifests": [
                                         descriptor(nested, media.MT_DOCKER_LIST)]}).encode())])
    with pytest.raises(BadArchive, match="linux/%s" % OTHER_ARCH):
        archive.read_archive(ex)


def test_read_merges_tags_of_one_manifest(tmp_path):
    blobs, manifest, config = oci_image()
    index = {"manifests": [descriptor(manifest, annotations={
        archive.ANN_IMAGE_NAME: "docker.io/library/t:%d" % i}) for i in (1, 2, 1)]}
    ex = extract(tmp_path, blobs + [("index.json", json.dumps(index).encode())])
    [image] = archive.read_archive(ex)
    assert [r.tag for r in image.refs] == ["1", "2"]


def test_read_docker_archive_legacy_layout_with_a_linked_layer(tmp_path):
    second = tar_of([("second", b"2")])
    config = config_for([LAYER, second])
    gz = gzip.compress(LAYER)
    ex = extract(tmp_path, [
        ("1111/layer.tar", gz), ("2222.tar", second), ("3333/layer.tar", ("sym", "../2222.tar")),
        ("cfg.json", config),
        ("manifest.json", json.dumps([{"Config": "cfg.json", "RepoTags": ["a:1", "a:1", "b"],
                                       "Layers": ["1111/layer.tar", "3333/layer.tar"]}]).encode()),
    ])
    [image] = archive.read_archive(ex)
    assert image.id == sha256(config) and image.config_bytes == config
    assert [str(r) for r in image.refs] == ["docker.io/library/a:1", "docker.io/library/b:latest"]
    assert [lay.name for lay in image.layers] == ["1111/layer.tar", "2222.tar"]
    manifest = json.loads(image.manifest_bytes)
    assert manifest["config"] == {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": sha256(config), "size": len(config)}
    assert [(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]] == [
        ("application/vnd.oci.image.layer.v1.tar+gzip", sha256(gz), len(gz)),
        ("application/vnd.oci.image.layer.v1.tar", sha256(second), len(second))]


@pytest.mark.parametrize("case,match", [
    ("blob", "blob does not match its digest: sha256:"),
    ("size", "descriptor says"),
    ("count", "lists 1 layers, the manifest 2"),
    ("xz", "unsupported layer compression"),
    ("nothing", "not an image archive"),
    ("json", "not valid JSON"),
])
def test_read_refuses_inconsistent_archives(tmp_path, case, match):
    blobs, manifest, config = oci_image()
    index = {"manifests": [descriptor(manifest)]}
    if case == "blob":
        blobs[0] = (blobs[0][0], tar_of([("tampered", b"!")]))
    elif case == "size":
        index["manifests"][0]["size"] += 1
    elif case == "count":
        m = json.loads(manifest)
        m["layers"] *= 2
        manifest = json.dumps(m).encode()
        blobs[2] = ("blobs/sha256/" + sha256(manifest)[7:], manifest)
        index = {"manifests": [descriptor(manifest)]}
    elif case == "xz":
        import lzma
        packed = lzma.compress(LAYER)
        config = config_for([LAYER])
        blobs = [("l.tar.xz", packed), ("c.json", config)]
        index = None
        docker = [{"Config": "c.json", "Layers": ["l.tar.xz"]}]
    elif case == "nothing":
        blobs, index = [("etc/passwd", b"root:x:0:0::/:/bin/sh\n")], None
    elif case == "json":
        blobs, index = [("manifest.json", b"[{")], None
    entries = list(blobs)
    if index is not None:
        entries.append(("index.json", json.dumps(index).encode()))
    if case == "xz":
        entries.append(("manifest.json", json.dumps(docker).encode()))
    with pytest.raises(BadArchive, match=match):
        archive.read_archive(extract(tmp_path, entries))
