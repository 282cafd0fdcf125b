"""`save` and `load`: images as one tarball that is both a docker-archive and an OCI image layout.

Owns: writing what Docker 25+ writes (oci-layout, index.json, blobs/sha256/<hex> byte for byte
from the store, manifest.json, repositories); reading docker-archive (Docker 1.10+ and 25+,
podman's and the legacy `<id>/layer.tar` + `<id>.json` layout), OCI layout tarballs and
oci-archive (an image index is narrowed to this machine's platform); verifying every blob and
diff ID before anything is recorded; landing a load in the store by rename under the lock.
Formats: OCI image-layout.md and image-index.md; Docker's image/spec/v1.2.md ("Combined Image
JSON + Filesystem Changeset Format") and moby's image/tarexport.
Must not: print, exit or read stdin (commands/ hand it a stream); write anything outside a store
temporary while reading an archive, create a link from one, or follow one out of it; record an
image before every blob, config and diff ID of the archive has been checked.
"""

import errno
import hashlib
import io
import os
import posixpath
import tarfile

from .. import errors, fastjson
from ..layers.compression import CHUNK_SIZE, HashingReader, detect, open_stream
from ..oci import image as oci_image
from ..oci import reference
from ..oci.digest import sha256_bytes, split
from ..securepath import clean_member_name
from .images import record_blobs, resolve
from .storage import unpack_layer, unpack_layers

# Media types beyond those oci/image.py writes: what Docker and registries put in archives.
_MANIFEST_TYPES = (oci_image.MT_MANIFEST, oci_image.MT_DOCKER_MANIFEST)
_INDEX_TYPES = (oci_image.MT_OCI_INDEX, oci_image.MT_DOCKER_LIST)
_CONFIG_TYPES = (oci_image.MT_CONFIG, oci_image.MT_DOCKER_CONFIG)

# Annotations naming an image in an index: containerd's full name (Docker 25+ writes it) and the
# OCI ref name (a tag for skopeo and Docker, a whole reference for podman).
ANN_IMAGE_NAME = "io.containerd.image.name"
ANN_REF_NAME = "org.opencontainers.image.ref.name"

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}

# JSON documents of an archive are read whole; a hostile one must not exhaust memory. Registries
# cap manifests at 4 MiB (distribution's default); configs with long histories stay far below.
_JSON_LIMIT = 8 << 20
# Nested indexes are legal but a chain of them is no image anyone builds.
_MAX_INDEX_DEPTH = 4


# -- pure logic: the archive's JSON documents -----------------------------------------------------

def _bad(what, reason, hint=None):
    return errors.BadArchive("invalid archive: %s: %s" % (what, reason), hint or
                             "the archive is damaged or was not made by docker/podman/skopeo "
                             "save; make it again")


def _digest(value, what):
    try:
        split(value)
    except errors.BadArchive:
        raise _bad(what, "invalid digest %r" % (value,)) from None
    return value


def _string_list(value, what, allow_none=False):
    if value is None and allow_none:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise _bad(what, "expected a list of strings")
    return value


def parse_docker_manifest(data):
    """manifest.json of a docker-archive -> [{"config", "layers", "repo_tags"}] (paths as given)."""
    if not isinstance(data, list) or not data:
        raise _bad("manifest.json", "expected a non-empty list of images")
    entries = []
    for i, entry in enumerate(data):
        what = "manifest.json[%d]" % i
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise _bad(what, "no Config path")
        entries.append({"config": entry["Config"],
                        "layers": _string_list(entry.get("Layers"), what + ".Layers"),
                        "repo_tags": _string_list(entry.get("RepoTags"), what + ".RepoTags",
                                                  allow_none=True)})
    return entries


def parse_descriptor(desc, what):
    """An OCI content descriptor, checked: digest valid, size a non-negative integer."""
    if not isinstance(desc, dict):
        raise _bad(what, "a descriptor must be an object")
    _digest(desc.get("digest"), what)
    size = desc.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _bad(what, "invalid size %r" % (size,))
    for key in ("annotations", "platform"):
        value = desc.get(key)
        if value is not None and not isinstance(value, dict):
            raise _bad(what, "%s must be an object" % key)
    if desc.get("mediaType") is not None and not isinstance(desc["mediaType"], str):
        raise _bad(what, "mediaType must be a string")
    return desc


def parse_index(data, what="index.json"):
    """An OCI image index or Docker manifest list -> its manifest descriptors."""
    if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
        raise _bad(what, "not an image index (no manifests list)")
    return [parse_descriptor(d, "%s: manifests[%d]" % (what, i))
            for i, d in enumerate(data["manifests"])]


def parse_manifest(data, what):
    """An OCI or Docker v2 schema2 image manifest -> (config descriptor, layer descriptors)."""
    if not isinstance(data, dict):
        raise _bad(what, "a manifest must be an object")
    if data.get("schemaVersion") == 1:
        raise errors.BadArchive("unsupported image manifest: %s: Docker schema 1" % what,
                                "convert it with a newer docker or skopeo first")
    media_type = data.get("mediaType")
    if media_type is not None and media_type not in _MANIFEST_TYPES:
        raise _bad(what, "not an image manifest: %s" % media_type)
    if not isinstance(data.get("layers"), list):
        raise _bad(what, "no layers list")
    config = parse_descriptor(data.get("config"), what + ": config")
    if config.get("mediaType") not in (None,) + _CONFIG_TYPES:
        raise errors.BadArchive("not a container image: %s: config media type %s" % (
            what, config["mediaType"]), "only container images can be loaded")
    layers = [parse_descriptor(d, "%s: layers[%d]" % (what, i))
              for i, d in enumerate(data["layers"])]
    return config, layers


def config_diff_ids(config, what):
    """The diff IDs an image config lists (rootfs.diff_ids), checked."""
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise _bad(what, "an image config needs rootfs.diff_ids")
    return [_digest(d, what + ": rootfs.diff_ids") for d in rootfs["diff_ids"]]


def host_platform():
    """(os, architecture, variant) of this machine, as image indexes name platforms."""
    arch = oci_image.host_arch()
    machine = os.uname().machine
    variant = {"arm64": "v8", "arm": "v%s" % machine[4:5] if machine.startswith("armv")
               else None}.get(arch)
    return "linux", arch, variant


def platform_text(platform):
    if not isinstance(platform, dict):
        return "unknown"
    parts = [str(platform.get("os") or "?"), str(platform.get("architecture") or "?")]
    if platform.get("variant"):
        parts.append(str(platform["variant"]))
    return "/".join(parts)


def choose_platform(descriptors, want, what="image index"):
    """The manifest descriptor of an index for platform want = (os, arch, variant): an exact
    variant first, then one that names none. Entries for other platforms (attestations say
    unknown/unknown) are passed over; an index of one entry that names no platform is taken."""
    want_os, want_arch, want_variant = want
    exact, loose = [], []
    for desc in descriptors:
        platform = desc.get("platform")
        if not isinstance(platform, dict) or platform.get("os") != want_os or \
                platform.get("architecture") != want_arch:
            continue
        variant = platform.get("variant")
        if variant == want_variant:
            exact.append(desc)
        elif not variant or not want_variant:
            loose.append(desc)
    if exact or loose:
        return (exact or loose)[0]
    if len(descriptors) == 1 and not descriptors[0].get("platform"):
        return descriptors[0]
    wanted = platform_text({"os": want_os, "architecture": want_arch, "variant": want_variant})
    found = ", ".join(sorted(set(platform_text(d.get("platform")) for d in descriptors))) or \
        "no entries"
    raise errors.BadArchive("no image for this machine's platform (%s) in the %s: it has %s"
                            % (wanted, what, found),
                            "save or copy the image for %s (e.g. skopeo copy --override-arch "
                            "%s ...)" % (wanted, want_arch))


def refs_from_annotations(annotations):
    """The image names an index entry carries: containerd's full name when present, else an OCI
    ref name that is a whole reference (podman writes `localhost/x:1`). A bare ref name is a
    tag with no repository to attach it to (skopeo's `oci-archive:f:tag`): no name."""
    annotations = annotations or {}
    name = annotations.get(ANN_IMAGE_NAME)
    if isinstance(name, str) and name:
        try:
            return _tag_refs([reference.parse(name)])
        except errors.UsageError:
            raise _bad("index.json", "invalid image name annotation %r" % name) from None
    ref_name = annotations.get(ANN_REF_NAME)
    if isinstance(ref_name, str) and (":" in ref_name or "/" in ref_name):
        try:
            return _tag_refs([reference.parse(ref_name)])
        except errors.UsageError:
            pass  # ref names may be any string (image-layout.md); this one names no image
    return []


def _tag_refs(refs):
    """References usable as tags: a digest is not a tag (`tag` refuses those too)."""
    return [reference.Reference(r.domain, r.path, r.tag) for r in refs if r.tag]


def parse_repo_tag(text, what):
    try:
        ref = reference.parse(text)
    except errors.UsageError:
        raise _bad(what, "invalid tag %r" % text) from None
    if ref.digest:
        raise _bad(what, "a tag cannot hold a digest: %r" % text)
    return ref


# -- pure logic: what save writes -------------------------------------------------------------

def _blob_name(digest):
    return "blobs/%s/%s" % split(digest)


def _platform_of(config):
    platform = {key: config[key] for key in ("architecture", "os", "variant", "os.version")
                if isinstance(config.get(key), str) and config[key]}
    return platform if "architecture" in platform and "os" in platform else None


def index_document(images):
    """index.json as Docker 25+ writes it: a descriptor per image and tag, naming both."""
    manifests = []
    for image in images:
        base = {"mediaType": image.manifest_type, "digest": image.manifest_digest,
                "size": len(image.manifest_bytes)}
        platform = _platform_of(image.config)
        if platform:
            base["platform"] = platform
        for ref in image.refs:
            manifests.append(dict(base, annotations={ANN_IMAGE_NAME: str(ref),
                                                     ANN_REF_NAME: ref.tag}))
        if not image.refs:
            manifests.append(base)
    return {"schemaVersion": 2, "mediaType": oci_image.MT_OCI_INDEX, "manifests": manifests}


def docker_manifest_document(images):
    """manifest.json of the docker-archive side; its paths are the OCI blobs themselves."""
    return [{"Config": _blob_name(image.id),
             "RepoTags": [ref.familiar() for ref in image.refs] or None,
             "Layers": [_blob_name(d) for d, _size in image.layers]}
            for image in images]


def repositories_document(images):
    """The legacy `repositories` file: repository -> tag -> the top layer's ID."""
    repos = {}
    for image in images:
        if image.layers:
            for ref in image.refs:
                repos.setdefault(ref.familiar_repository(), {})[ref.tag] = \
                    split(image.layers[-1][0])[1]
    return repos


# -- save ---------------------------------------------------------------------------------------

class _SavedImage:
    """An image on its way out: its config and manifest bytes, and its layer blobs opened (under
    the store lock, so an `rmi` running beside the save cannot take them away)."""

    def __init__(self, store, image_id, record):
        self.id = image_id
        self.refs = []
        self.config_bytes = store.read_blob(image_id)
        self.manifest_digest = record["manifest"]
        self.manifest_bytes = store.read_blob(self.manifest_digest)
        try:
            self.config = fastjson.loads(self.config_bytes)
            manifest = fastjson.loads(self.manifest_bytes)
            _config, layers = parse_manifest(manifest, "manifest " + self.manifest_digest)
        except (ValueError, errors.BadArchive) as exc:
            raise errors.StoreError("image %s has a damaged manifest: %s" % (image_id, exc),
                                    "remove the image and import or pull it again") from None
        self.manifest_type = manifest.get("mediaType") or oci_image.MT_MANIFEST
        self.files = {}
        self.layers = []
        try:
            for layer in layers:
                digest = layer["digest"]
                if digest not in self.files:
                    self.files[digest] = open(store.blob_path(digest), "rb")
                self.layers.append((digest, os.fstat(self.files[digest].fileno()).st_size))
        except FileNotFoundError:
            self.close()
            raise errors.StoreError("blob missing from the store: %s" % digest,
                                    "remove the image and import or pull it again") from None

    def close(self):
        for f in self.files.values():
            f.close()


def _select(store, index, name):
    """-> (image ID, reference or None): a tag saves that tag, an ID saves the image untagged,
    and a repository named without a tag saves all its tags (as moby's tarexport does)."""
    try:
        bare = reference.parse(name, default_tag=False)
    except errors.UsageError:
        bare = None
    if bare is not None and bare.tag is None and bare.digest is None:
        tagged = sorted(t for t in index["tags"]
                        if reference.parse(t).repository == bare.repository)
        if tagged:
            return [(index["tags"][t], reference.parse(t)) for t in tagged]
    image = resolve(store, name, index)
    ref = reference.parse(name) if bare is not None else None
    if ref is not None and index["tags"].get(str(ref)) == image.id:
        return [(image.id, ref)]
    return [(image.id, None)]


def _collect(store, names):
    """The images names stand for, each once with all its named tags (order kept)."""
    images = {}
    try:
        with store.lock():
            index = store.read_index()
            for name in names:
                for image_id, ref in _select(store, index, name):
                    if image_id not in images:
                        images[image_id] = _SavedImage(store, image_id,
                                                       index["images"][image_id])
                    if ref is not None and str(ref) not in map(str, images[image_id].refs):
                        images[image_id].refs.append(ref)
    except BaseException:
        for image in images.values():
            image.close()
        raise
    return list(images.values())


def _tarinfo(name, size=0, directory=False):
    # Fixed owner, mode and time: the same images give the same archive, byte for byte.
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o755 if directory else 0o644
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
    return info


def _add_bytes(tar, name, data):
    tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))


def _write(images, out, docker=True):
    """The tar itself, in the order Docker 25 writes it: blobs, then the index documents.
    docker=False: an OCI layout alone (no manifest.json, no repositories)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=CHUNK_SIZE,
                      copybufsize=CHUNK_SIZE) as tar:
        tar.addfile(_tarinfo("blobs/", directory=True))
        tar.addfile(_tarinfo("blobs/sha256/", directory=True))
        written = set()
        for image in images:
            for digest, data in ((image.id, image.config_bytes),
                                 (image.manifest_digest, image.manifest_bytes)):
                if digest not in written:
                    written.add(digest)
                    _add_bytes(tar, _blob_name(digest), data)
            for digest, size in image.layers:
                if digest in written:
                    continue
                written.add(digest)
                # Checked on the way out: a blob damaged on disk since it landed must not
                # leave here under a digest it no longer has.
                hashing = HashingReader(image.files[digest])
                tar.addfile(_tarinfo(_blob_name(digest), size), hashing)
                if hashing.digest() != digest:
                    raise errors.StoreError("blob is corrupt: %s" % digest,
                                            "remove the image and import or pull it again")
        _add_bytes(tar, "index.json", oci_image.dumps(index_document(images)))
        if docker:
            _add_bytes(tar, "manifest.json",
                       oci_image.dumps(docker_manifest_document(images)))
        _add_bytes(tar, "oci-layout", oci_image.dumps(OCI_LAYOUT))
        if docker:
            _add_bytes(tar, "repositories", oci_image.dumps(repositories_document(images)))


def save_to_stream(store, names, out):
    """`save IMAGE...` to a writable binary stream (a pipe will do: nothing seeks)."""
    images = _collect(store, names)
    try:
        _write(images, out)
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the CLI ends quietly, as Docker does
    except OSError as exc:
        raise _write_error("the output", exc) from None
    finally:
        for image in images:
            image.close()
    _saved(store, images)


def _saved(store, images):
    from .events import images as image_events
    image_events(store, "save", [image.id for image in images])


def _write_error(where, exc):
    return errors.BoxError("cannot write the archive: %s: %s" % (where, exc.strerror or exc),
                           "check that there is space and the destination is writable")


def save_to_file(store, names, path):
    """`save -o FILE IMAGE...`: the file appears whole, by rename, or not at all
    (write_whole)."""
    images = _collect(store, names)
    _write_file(images, path)
    _saved(store, images)


def save_image(store, image_id, refs, dest, docker=True):
    """One image, named refs (references, not looked up: `build -o type=oci,name=X` names it
    without a tag in the store), to dest: a path, or a binary stream. docker=False writes an
    OCI layout alone (`build -o type=oci`), else what `save` writes (`type=docker`)."""
    with store.lock():
        record = store.read_index()["images"][image_id]
        image = _SavedImage(store, image_id, record)
    image.refs = list(refs)
    if isinstance(dest, str):
        _write_file([image], dest, docker)
        return
    try:
        _write([image], dest, docker)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _write_error("the output", exc) from None
    finally:
        image.close()


def _write_file(images, path, docker=True):
    """The archive at path, whole by rename or not at all; closes the images."""
    try:
        write_whole(path, lambda out: _write(images, out, docker))
    finally:
        for image in images:
            image.close()


def write_whole(path, write, what="the archive", flag="-o"):
    """write(binary file) fills a hidden temporary beside path, renamed onto it: the file
    appears whole or not at all. (A kill leaves the temporary, as Docker's CLI does.
    O_TMPFILE would avoid that, but naming one with linkat(2) through /proc/self/fd failed
    with EXDEV on the test machines' ext4, so it is not relied on.)"""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise errors.UsageError("cannot write %s: %s: it is a directory" % (what, path),
                                "give a file name to %s" % flag)
    tmp = os.path.join(os.path.dirname(target), ".%s.tmp-%d-%s" % (
        os.path.basename(target), os.getpid(), os.urandom(4).hex()))
    try:
        with open(tmp, "xb", buffering=0) as out:
            write(out)
            os.fsync(out.fileno())
        os.rename(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise errors.BoxError("cannot write %s: %s: %s" % (what, path,
                                                                exc.strerror or exc),
                                  "check that there is space and the destination is "
                                  "writable") from None
        raise


# -- load: reading the archive --------------------------------------------------------------------

class _Extracted:
    """The regular files of an archive, extracted under a store temporary by their clean names,
    with their sha256 and size, and its links as name -> name (resolved here, never created on
    disk: nothing in the temporary can point anywhere)."""

    def __init__(self, root):
        self.root = root
        self.files = {}
        self.links = {}

    def resolve(self, name, what):
        """The clean name of the regular file `name` (an archive path) stands for."""
        try:
            clean = clean_member_name(name)
        except errors.BadArchive:
            raise _bad(what, "path %r climbs out of the archive" % name) from None
        for _ in range(40):  # Linux's MAXSYMLINKS (path_resolution(7))
            if clean in self.files:
                return clean
            if clean not in self.links:
                raise errors.BadArchive("%s is missing from the archive: %s" % (what, name),
                                        "the archive is incomplete or truncated; make it again")
            clean = self.links[clean]
        raise _bad(what, "too many links: %r" % name)

    def path(self, clean):
        return os.path.join(self.root, clean)

    def verified(self, name, what, digest=None, size=None):
        """The clean name of the file `name` stands for, after checking its content: against
        digest when given, and against a digest its path names (blobs/sha256/<hex>)."""
        clean = self.resolve(name, what)
        actual, actual_size = self.files[clean]
        for expected in (digest, _digest_in_path(clean), _digest_in_path(name)):
            if expected and actual != expected:
                raise errors.BadArchive(
                    "blob does not match its digest: %s (%s: the content hashes to %s)" % (
                        expected, what, actual),
                    "the archive is damaged or was tampered with; make it again")
        if size is not None and size != actual_size:
            raise _bad(what, "%s has %d bytes, its descriptor says %d" % (
                name, actual_size, size))
        return clean

    def read(self, name, what, digest=None, size=None):
        clean = self.verified(name, what, digest, size)
        if self.files[clean][1] > _JSON_LIMIT:
            raise _bad(what, "%s is too large (%d bytes)" % (name, self.files[clean][1]))
        with open(self.path(clean), "rb") as f:
            return f.read()

    def read_json(self, name, what, digest=None, size=None):
        data = self.read(name, what, digest, size)
        try:
            return data, fastjson.loads(data)
        except ValueError as exc:
            raise _bad(what, "not valid JSON: %s" % exc) from None

    def has(self, name):
        return name in self.files or name in self.links


def _digest_in_path(name):
    parts = (name or "").split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256":
        try:
            return "sha256:%s" % split("sha256:" + parts[2])[1]
        except errors.BadArchive:
            return None
    return None


def _open_input(source):
    if not isinstance(source, str):
        return source, False
    try:
        return open(source, "rb"), True
    except FileNotFoundError:
        raise errors.NotFound("no such file: %s" % source,
                              "give the path of an archive made by save") from None
    except OSError as exc:
        raise errors.BadArchive("cannot read %s: %s" % (source, exc.strerror or exc)) from None


def extract(source, root):
    """Stream the (possibly compressed) archive into root: regular files only, by clean name,
    hashed on the way. Links are remembered by name; other entries are skipped."""
    from ..layers.unpack import StrictTarInfo
    extracted = _Extracted(root)
    raw, owned = _open_input(source)
    try:
        try:
            stream, _compression = open_stream(raw)
            with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK_SIZE, encoding="utf-8",
                              tarinfo=StrictTarInfo) as tar:
                while (member := tar.next()) is not None:
                    tar.members.clear()  # a streaming TarFile keeps every header otherwise
                    _extract_member(tar, member, extracted)
        except errors.BoxError:
            raise
        except (tarfile.TarError, EOFError) as exc:
            if str(exc) == "empty file":
                raise errors.BadArchive("cannot load: the archive is empty",
                                        "give an archive made by save") from None
            raise errors.BadArchive("cannot read the archive: corrupt or truncated tar: %s"
                                    % exc, "make the archive again with save") from None
        except OSError as exc:
            raise errors.BadArchive("cannot read the archive: %s" % (exc.strerror or exc)) \
                from None
    finally:
        if owned:
            raw.close()
    if not extracted.files:
        raise errors.BadArchive("cannot load: the archive holds no files",
                                "give an archive made by save (docker, podman or skopeo)")
    return extracted


def _extract_member(tar, member, extracted):
    name = clean_member_name(member.name)
    if name is None:
        return
    if member.issym() or member.islnk():
        # A symlink's target is relative to its directory (an absolute one means the host's
        # root), a hard link's to the archive's root; either must stay inside the archive.
        target = member.linkname
        if member.issym():
            if target.startswith("/"):
                raise errors.BadArchive("unsafe archive entry: %r: a link out of the archive "
                                        "(to %r)" % (member.name, target))
            target = posixpath.join(posixpath.dirname(name), target)
        try:
            target = clean_member_name(target)
        except errors.BadArchive:
            raise errors.BadArchive("unsafe archive entry: %r: a link out of the archive (to "
                                    "%r)" % (member.name, member.linkname)) from None
        if target is None or target == name:
            return
        _forget_file(extracted, name)
        extracted.links[name] = target
        return
    if not member.isreg():
        return  # directories are made as needed; devices, fifos have no place in an archive
    extracted.links.pop(name, None)
    path = extracted.path(name)
    try:
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        # O_NOFOLLOW|O_TRUNC: a duplicate entry replaces the first, as with tar; the temporary
        # holds no links, so nothing followed could lead out anyway.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o600)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise errors.BadArchive("unsafe archive entry: %r: it clashes with another entry "
                                "(a file and a directory of one name)" % member.name) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise errors.BadArchive("unsafe archive entry: %r: the name is too long"
                                    % member.name[:200]) from None
        raise _store_error(exc) from None
    source = tar.extractfile(member)
    digest = hashlib.sha256()
    size = 0
    with open(fd, "wb", buffering=0) as out:
        while True:
            chunk = source.read(CHUNK_SIZE)
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
            try:
                out.write(chunk)
            except OSError as exc:
                raise _store_error(exc) from None
    extracted.files[name] = ("sha256:" + digest.hexdigest(), size)


def _forget_file(extracted, name):
    if extracted.files.pop(name, None) is not None:
        os.unlink(extracted.path(name))


def _store_error(exc):
    return errors.StoreError("cannot write to the store: %s" % (exc.strerror or exc),
                             "free some space (rootless-box image prune) and try again")


class _Layer:
    """A layer blob of the archive: its clean name there, digest, size and claimed diff ID."""
    __slots__ = ("name", "digest", "size", "diff_id")

    def __init__(self, name, digest, size, diff_id):
        self.name, self.digest, self.size, self.diff_id = name, digest, size, diff_id


class _LoadedImage:
    def __init__(self, config_bytes, manifest_bytes, layers):
        self.id = sha256_bytes(config_bytes)
        self.config_bytes = config_bytes
        self.manifest_bytes = manifest_bytes
        self.layers = layers
        self.refs = []

    def add_refs(self, refs):
        for ref in refs:
            if str(ref) not in map(str, self.refs):
                self.refs.append(ref)


def _layer_compression(extracted, clean, what):
    with open(extracted.path(clean), "rb") as f:
        compression = detect(f.read(8))
    if compression not in oci_image.MT_LAYER:
        raise errors.BadArchive("unsupported layer compression: %s: %s" % (what, compression),
                                "layers may be uncompressed, gzip or zstd")
    return compression


def _diff_ids_of(config_bytes, layers, what):
    try:
        config = fastjson.loads(config_bytes)
    except ValueError as exc:
        raise _bad(what, "the image config is not valid JSON: %s" % exc) from None
    diff_ids = config_diff_ids(config, what)
    if len(diff_ids) != len(layers):
        raise _bad(what, "the config lists %d layers, the manifest %d" % (
            len(diff_ids), len(layers)))
    return diff_ids


def _read_docker_archive(extracted):
    """docker-archive: manifest.json lists config and layer paths; no manifest is stored, so
    an OCI one is made for the image (as docker load does for its own store)."""
    _raw, data = extracted.read_json("manifest.json", "manifest.json")
    images = {}
    for i, entry in enumerate(parse_docker_manifest(data)):
        what = "manifest.json[%d]" % i
        refs = [parse_repo_tag(t, what + ".RepoTags") for t in entry["repo_tags"]]
        config_bytes = extracted.read(entry["config"], what + ": config")
        diff_ids = _diff_ids_of(config_bytes, entry["layers"], what)
        layers, descriptors = [], []
        for j, (path, diff_id) in enumerate(zip(entry["layers"], diff_ids)):
            layer_what = "%s: layer %d" % (what, j)
            clean = extracted.verified(path, layer_what)
            digest, size = extracted.files[clean]
            layers.append(_Layer(clean, digest, size, diff_id))
            # the media type says what the bytes are (docker-archive layers may be compressed)
            descriptors.append((oci_image.MT_LAYER[_layer_compression(extracted, clean,
                                                                      layer_what)],
                                digest, size))
        manifest = oci_image.new_manifest(sha256_bytes(config_bytes), len(config_bytes),
                                          descriptors)
        image = _LoadedImage(config_bytes, oci_image.dumps(manifest), layers)
        images.setdefault(image.id, image).add_refs(refs)
    return list(images.values())


def _read_oci_layout(extracted):
    """OCI image layout: index.json -> manifests (an index in between is narrowed to this
    machine's platform); manifests and configs are kept byte for byte."""
    if extracted.has("oci-layout"):
        _raw, layout = extracted.read_json("oci-layout", "oci-layout")
        if not isinstance(layout, dict) or layout.get("imageLayoutVersion") != "1.0.0":
            raise _bad("oci-layout", "unsupported image layout version %r" % (
                layout.get("imageLayoutVersion") if isinstance(layout, dict) else layout,))
    _raw, index = extracted.read_json("index.json", "index.json")
    images = {}
    for i, desc in enumerate(parse_index(index)):
        refs = refs_from_annotations(desc.get("annotations"))
        manifest_bytes, manifest, manifest_desc = _manifest_for(
            extracted, desc, "index.json: manifests[%d]" % i, 0)
        what = "manifest " + manifest_desc["digest"]
        config_desc, layer_descs = parse_manifest(manifest, what)
        config_bytes = extracted.read(_blob_name(config_desc["digest"]), what + ": config",
                                      config_desc["digest"], config_desc.get("size"))
        diff_ids = _diff_ids_of(config_bytes, layer_descs, what)
        layers = []
        for j, (layer, diff_id) in enumerate(zip(layer_descs, diff_ids)):
            clean = extracted.verified(_blob_name(layer["digest"]), "%s: layer %d" % (what, j),
                                       layer["digest"], layer.get("size"))
            _layer_compression(extracted, clean, "%s: layer %d" % (what, j))
            layers.append(_Layer(clean, layer["digest"], extracted.files[clean][1], diff_id))
        image = _LoadedImage(config_bytes, manifest_bytes, layers)
        images.setdefault(image.id, image).add_refs(refs)
    return list(images.values())


def _manifest_for(extracted, desc, what, depth):
    """-> (manifest bytes, parsed manifest, its descriptor) for an index entry, going through
    nested indexes (manifest lists) by platform."""
    raw, doc = extracted.read_json(_blob_name(desc["digest"]), what, desc["digest"],
                                   desc.get("size"))
    is_index = desc.get("mediaType") in _INDEX_TYPES or (
        isinstance(doc, dict) and "manifests" in doc and "layers" not in doc)
    if not is_index:
        return raw, doc, desc
    if depth >= _MAX_INDEX_DEPTH:
        raise _bad(what, "image indexes nested too deep")
    nested = "image index " + desc["digest"]
    chosen = choose_platform(parse_index(doc, nested), host_platform(), nested)
    return _manifest_for(extracted, chosen, nested, depth + 1)


def read_archive(extracted):
    """The images of an extracted archive, every blob checked. Docker 25+ writes both layouts;
    the OCI side is preferred because it keeps the manifests (so their digests survive)."""
    if extracted.has("index.json"):
        images = _read_oci_layout(extracted)
    elif extracted.has("manifest.json"):
        images = _read_docker_archive(extracted)
    else:
        raise errors.BadArchive(
            "not an image archive: it has neither manifest.json (docker-archive) nor "
            "index.json (OCI layout)", "a root filesystem tarball is loaded with "
                                       "'rootless-box import', not load")
    if not images:
        raise _bad("index.json", "it lists no images")
    return images


# -- load: landing ------------------------------------------------------------------------------

def _check_diff_id(path, diff_id):
    """A layer whose directory exists already: its blob must still hash to the diff ID the
    config claims, or the image would record a blob that is not that layer. -> uncompressed
    size."""
    with open(path, "rb") as raw:
        stream, _compression = open_stream(raw)
        hashing = HashingReader(stream)
        hashing.drain()
    if hashing.digest() != diff_id:
        raise errors.BadArchive("layer content does not match its diff ID: got %s, expected %s"
                                % (hashing.digest(), diff_id),
                                "the archive is damaged or was tampered with; make it again")
    return hashing.size


def _unpack_all(store, idmap, extracted, images, landed, reports, progress=None):
    """Every layer blob unpacked, or checked against its diff ID where the layer is there
    already. Each (blob, diff ID) pair is checked once: two images may claim one diff ID for
    different blobs (gzip and plain), and each claim must hold. -> {diff ID: size}."""
    sizes, checked = {}, set()
    pending = []
    for image in images:
        for layer in image.layers:
            if (layer.digest, layer.diff_id) in checked:
                continue
            checked.add((layer.digest, layer.diff_id))
            blob = extracted.path(layer.name)
            if os.path.isdir(store.layer_path(layer.diff_id)):
                # an uncompressed blob was hashed whole while it was extracted: its digest
                # is its diff ID, with nothing to read again
                sizes[layer.diff_id] = layer.size if layer.digest == layer.diff_id else \
                    _check_diff_id(blob, layer.diff_id)
                continue
            pending.append(layer)
    # the layers unpack in parallel, one user-namespace helper each
    for layer, report in zip(pending, unpack_layers(
            store, idmap, [(extracted.path(layer.name), layer.diff_id) for layer in pending])):
        landed.append(layer.diff_id)
        reports.append(report)
        sizes[layer.diff_id] = report["size"]
        if progress is not None:
            progress(layer.diff_id, report["size"])
    return sizes


def _record(store, idmap, extracted, images, sizes):
    """Under the store lock: land the layer blobs and record each image with its tags."""
    lines = []
    with store.lock():
        before = store.read_index()
        moved = set()
        for image in images:
            for layer in image.layers:
                if layer.digest in moved:
                    continue
                if not os.path.isdir(store.layer_path(layer.diff_id)):
                    # an `rmi` collected it as unused between its unpack and this lock: unpack
                    # it again, holding the lock now (re-entrant)
                    unpack_layer(store, idmap, extracted.path(layer.name), layer.diff_id)
                store.land_blob_file(extracted.path(layer.name), layer.digest)
                moved.add(layer.digest)
            size = sum(sizes[d] for d in dict.fromkeys(lay.diff_id for lay in image.layers))
            record_blobs(store, image.config_bytes, image.manifest_bytes,
                         [lay.diff_id for lay in image.layers], image.refs, size)
            for ref in image.refs:
                old = before["tags"].get(str(ref))
                if old and old != image.id:
                    lines.append("The image %s already exists, renaming the old one with ID %s "
                                 "to empty string" % (ref.familiar(), old))
                lines.append("Loaded image: %s" % ref.familiar())
            if not image.refs:
                lines.append("Loaded image ID: %s" % image.id)
    return lines


def _forget_layers(store, diff_ids):
    """After a failed load: drop the layer directories it landed that no image uses."""
    if not diff_ids:
        return
    with store.lock():
        used = set()
        for record in store.read_index()["images"].values():
            used.update(record["layers"])
        for diff_id in diff_ids:
            if diff_id not in used:
                store.remove(store.layer_path(diff_id))


def load(store, idmap, source, progress=None):
    """`load`: source is a path or a readable binary stream holding a docker-archive, an OCI
    layout tarball or an oci-archive, itself possibly gzip/zstd/xz/bzip2-compressed.
    progress(diff ID, size): each layer unpacked (the Engine API's "Loading layer" lines).
    Returns {"lines": what Docker prints, "skipped_devices": n, "unmapped_owners": n}.
    Everything stays in store temporaries until it is checked; then layers land by rename and
    images are recorded under the lock. On failure nothing is recorded."""
    tmp = store.mkdtemp("load")
    landed, reports = [], []
    try:
        extracted = extract(source, tmp)
        images = read_archive(extracted)
        sizes = _unpack_all(store, idmap, extracted, images, landed, reports, progress)
        lines = _record(store, idmap, extracted, images, sizes)
        landed = []
        from .events import images as image_events
        image_events(store, "load", [image.id for image in images])
    finally:
        try:
            _forget_layers(store, landed)
        finally:
            store.remove(tmp)
    return {"lines": lines,
            "skipped_devices": sum(r["skipped_devices"] for r in reports),
            "unmapped_owners": sum(r["unmapped_owners"] for r in reports)}
