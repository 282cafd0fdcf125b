"""`pull`: an image from a registry into the store, whole or not at all.

Owns: choosing the endpoint (mirrors first, from registries.conf), the manifest and, through an
index, the platform's manifest; what is fetched (blobs present in the store and unpacked layers
are not fetched again); fetching the layers in parallel helpers that download, hash and unpack
each layer in one pass (the digest and the diff ID are checked while the bytes stream), and
landing the blobs, layers and the image record together under the store lock.
Must not: print (progress goes to a callback), start a thread (the helpers are forked: DESIGN.md
says fork before any thread), or record an image before every blob has been checked.
"""

import os

from .. import errors, fastjson
from ..oci import image as oci_image
from ..oci import reference
from ..oci.digest import short_id
from . import archive
from .images import record_blobs
from .prune import tree_size

DOWNLOADS = 3
_CONFIG_LIMIT = 8 << 20
_LAYER_TYPES = ("application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.layer.v1.tar+gzip",
                "application/vnd.oci.image.layer.v1.tar+zstd",
                "application/vnd.docker.image.rootfs.diff.tar",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.image.rootfs.diff.tar.zstd")
_PROGRESS_STEP = 1 << 20


def parse_platform(text):
    """--platform os/arch[/variant] -> (os, arch, variant)."""
    parts = (text or "").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise errors.UsageError("invalid platform %r" % text,
                                "write it as os/arch[/variant], e.g. linux/arm64")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def connect(ref, tls_verify=None, push=False, login=None):
    """[(Registry, repository on it, is_mirror)] to try for ref, in order. login: the
    credentials to use (registry.credentials.Credentials: the Engine API's X-Registry-Auth)
    instead of the user's saved ones."""
    from ..registry import credentials, regconf
    from ..registry.client import Registry
    result = []
    for ep in regconf.endpoints(ref.domain, ref.path, tls_verify=tls_verify,
                                by_digest=bool(ref.digest), push=push):
        certs = regconf.client_certs(ep.host)
        registry = Registry(ep.host, name=ref.domain, insecure=ep.insecure,
                            credentials=(lambda: login) if login else
                            (lambda: credentials.lookup(ref.domain, ref.path)),
                            ca_files=regconf.ca_files(ep.host),
                            client_cert=certs[0] if certs else None)
        result.append((registry, ep.repository, ep.is_mirror))
    return result


def _registry_error(exc, ref):
    """Archive parsing words its errors for files; say where the image came from instead."""
    message = exc.message.replace("invalid archive: ", "invalid image %s: " % ref.familiar())
    return errors.RegistryError(message, "the registry serves a broken or unsupported image")


def _manifest(registry, repo, ref, platform):
    """-> (manifest bytes, manifest, digest pulled by (the index's when there is one))."""
    wanted = ref.digest or ref.tag
    data, media_type, digest, doc = registry.get_manifest(repo, wanted)
    top_digest = digest
    for _depth in range(4):
        if media_type not in (oci_image.MT_OCI_INDEX, oci_image.MT_DOCKER_LIST) and not (
                isinstance(doc, dict) and "manifests" in doc and "layers" not in doc):
            return data, doc, top_digest
        try:
            descriptors = archive.parse_index(doc, "image index %s" % digest)
            chosen = archive.choose_platform(descriptors, platform, "image index of %s" %
                                             ref.familiar())
        except errors.BadArchive as exc:
            if "no image for" in exc.message:
                raise errors.NotFound(exc.message.replace("this machine's platform",
                                                          "platform"),
                                      "pull one of those with --platform os/arch") from None
            raise _registry_error(exc, ref) from None
        data, media_type, digest, doc = registry.get_manifest(repo, chosen["digest"])
    raise errors.RegistryError("image indexes of %s nested too deep" % ref.familiar())


def _layer_descriptors(manifest, ref):
    try:
        config_desc, layers = archive.parse_manifest(manifest, "manifest of %s" %
                                                     ref.familiar())
    except errors.BadArchive as exc:
        raise _registry_error(exc, ref) from None
    for desc in layers:
        media_type = desc.get("mediaType")
        if media_type not in _LAYER_TYPES:
            raise errors.RegistryError(
                "%s has a layer of type %s, which rootless-box cannot use" % (
                    ref.familiar(), media_type),
                "foreign (Windows) and non-distributable layers are not supported")
        if desc.get("size") is None:
            raise errors.RegistryError("%s: a layer descriptor has no size" % ref.familiar())
    return config_desc, layers


def _check_config(config_bytes, layers, ref, platform, explicit_platform):
    try:
        cfg = fastjson.loads(config_bytes)
        diff_ids = archive.config_diff_ids(cfg, "config of %s" % ref.familiar())
    except ValueError as exc:
        raise errors.RegistryError("the config of %s is not valid JSON: %s" % (
            ref.familiar(), exc)) from None
    except errors.BadArchive as exc:
        raise _registry_error(exc, ref) from None
    if len(diff_ids) != len(layers):
        raise errors.RegistryError("the config of %s lists %d layers, its manifest %d" % (
            ref.familiar(), len(diff_ids), len(layers)))
    if explicit_platform and (cfg.get("os"), cfg.get("architecture")) != platform[:2]:
        raise errors.NotFound("%s is for %s/%s, not %s" % (
            ref.familiar(), cfg.get("os"), cfg.get("architecture"),
            archive.platform_text({"os": platform[0], "architecture": platform[1],
                                   "variant": platform[2]})),
            "pull it without --platform, or pick a tag made for that platform")
    return diff_ids


class _Tee:
    """The compressed bytes on their way to the unpacker: written to the blob file, hashed,
    and counted for the progress display."""

    def __init__(self, source, out, send):
        import hashlib
        self._source, self._out, self._send = source, out, send
        self._sha = hashlib.sha256()
        self.size = 0
        self._reported = 0

    def read(self, size=-1):
        data = self._source.read(size if size and size > 0 else _PROGRESS_STEP)
        if data:
            self._sha.update(data)
            self._out.write(data)
            self.size += len(data)
            if self.size - self._reported >= _PROGRESS_STEP:
                self._reported = self.size
                self._send(self.size)
        return data

    def drain(self):
        while self.read(_PROGRESS_STEP):
            pass

    def digest(self):
        return "sha256:" + self._sha.hexdigest()


def _fetch_layer(send, registry, repo, desc, blob_tmp, dest, keep_owners):
    """In a user-namespace helper: download one layer blob to blob_tmp and unpack it into dest
    as the bytes arrive; check its digest and size. -> the unpack report."""
    from .storage import unpack_stream
    registry.forget_connections()
    source = registry.open_blob(repo, desc["digest"], desc["size"])
    try:
        with open(blob_tmp, "wb") as out:
            tee = _Tee(source, out, send)
            try:
                report = unpack_stream(tee, dest, keep_owners)
            except errors.BadArchive:
                # corrupted bytes mostly fail to unpack first: when they are not the blob that
                # was asked for, that is the error to report, not the tar's symptom
                tee.drain()
                _check_blob(tee, desc)
                raise
            tee.drain()
    finally:
        source.close()
    _check_blob(tee, desc)
    send(tee.size)
    return report


def _check_blob(tee, desc):
    if tee.digest() != desc["digest"] or tee.size != desc["size"]:
        raise errors.RegistryError("layer %s does not match its digest (got %s, %d bytes)" % (
            desc["digest"], tee.digest(), tee.size),
            "the registry or something between is corrupting data; try again")


def _unpack_local(send, blob_path, dest, keep_owners):
    """In a user-namespace helper: a layer whose blob is in the store but not unpacked for
    this id mapping."""
    from .storage import unpack_file
    report = unpack_file(blob_path, dest, keep_owners)
    send(os.path.getsize(blob_path))
    return report


def _dispatch(send, kind, *args):
    return (_fetch_layer if kind == "fetch" else _unpack_local)(send, *args)


class _Job:
    __slots__ = ("desc", "diff_id", "kind", "blob_tmp", "dest", "report")

    def __init__(self, desc, diff_id, kind, blob_tmp, dest):
        self.desc, self.diff_id, self.kind = desc, diff_id, kind
        self.blob_tmp, self.dest, self.report = blob_tmp, dest, None


def _run_jobs(store, idmap, registry, repo, jobs, progress):
    # imported once here rather than in each helper after its fork (~0.1 s apiece)
    from ..layers import compression, unpack  # noqa: F401
    from ..userns.launcher import run_in_userns_pool
    keep = idmap.mode != "single"
    arglists = []
    for job in jobs:
        if job.kind == "fetch":
            arglists.append(("fetch", registry, repo, job.desc, job.blob_tmp, job.dest, keep))
        else:
            arglists.append(("local", store.blob_path(job.desc["digest"]), job.dest, keep))

    def on_message(index, current):
        job = jobs[index]
        progress("layer", id=short_id(job.desc["digest"]), status="Downloading"
                 if job.kind == "fetch" else "Extracting", current=current,
                 total=job.desc["size"])

    # the parent's connections stay the parent's: each helper opens its own
    reports = run_in_userns_pool(_dispatch, idmap, arglists, DOWNLOADS, on_message)
    for job, report in zip(jobs, reports):
        if report["diff_id"] != job.diff_id:
            raise errors.RegistryError("layer %s does not hold the content its image config "
                                       "names (diff ID %s, got %s)" % (
                                           job.desc["digest"], job.diff_id, report["diff_id"]),
                                       "the image in the registry is broken")
        job.report = report
        progress("layer", id=short_id(job.desc["digest"]), status="Pull complete",
                 current=job.desc["size"], total=job.desc["size"])


def _land(store, idmap, jobs, layer_digests, config_bytes, manifest_bytes, diff_ids, refs,
          repo_digest, sizes):
    """Under the store lock: layers and blobs into place, then the image record. A failure
    on the way takes back the layer directories it moved in."""
    from .storage import unpack_layer
    moved = []
    with store.lock():
        before = store.read_index()
        try:
            for job in jobs:
                target = store.layer_path(job.diff_id)
                if not os.path.isdir(target):
                    os.rename(job.dest, target)
                    moved.append(target)
                if job.kind == "fetch":
                    store.land_blob_file(job.blob_tmp, job.desc["digest"])
            for diff_id, digest in zip(diff_ids, layer_digests):
                if not os.path.isdir(store.layer_path(diff_id)):
                    # collected by an `rmi` since this pull looked: unpack it again, holding
                    # the lock (re-entrant)
                    unpack_layer(store, idmap, store.blob_path(digest), diff_id)
            image_id = record_blobs(store, config_bytes, manifest_bytes, diff_ids, refs,
                                    sum(sizes[d] for d in dict.fromkeys(diff_ids)),
                                    digests=[repo_digest])
        except BaseException:
            for path in moved:
                store.remove(path)
            raise
    return image_id, before


def pull(store, idmap, name, platform=None, tls_verify=None, progress=None, login=None):
    """Pull name (a reference; a tag defaults to latest) into the store. progress(event,
    **fields) hears "layer" events (id, status, current, total). Returns {"ref", "digest",
    "image_id", "updated" (False when the image was already here), "reports"}."""
    progress = progress or (lambda *a, **k: None)
    ref = reference.parse(name)
    explicit_platform = platform is not None
    want = parse_platform(platform) if platform else archive.host_platform()
    errors_seen = []
    for registry, repo, is_mirror in connect(ref, tls_verify, login=login):
        try:
            result = _pull_from(store, idmap, registry, repo, ref, want, explicit_platform,
                                progress)
            from .events import emit
            emit(store, "image", "pull", ref.familiar(), {"name": ref.familiar()})
            return result
        except (errors.RegistryError, errors.NotFound) as exc:
            if not is_mirror:
                raise
            errors_seen.append(exc)  # a mirror that fails: the next one, then the registry
        finally:
            registry.close()
    raise errors_seen[-1]


def _pull_from(store, idmap, registry, repo, ref, want, explicit_platform, progress):
    manifest_bytes, manifest, top_digest = _manifest(registry, repo, ref, want)
    config_desc, layer_descs = _layer_descriptors(manifest, ref)
    config_digest = config_desc["digest"]
    if store.has_blob(config_digest):
        config_bytes = store.read_blob(config_digest)
    else:
        config_bytes = registry.get_blob_bytes(repo, config_digest, _CONFIG_LIMIT,
                                               "config of %s" % ref.familiar())
    diff_ids = _check_config(config_bytes, layer_descs, ref, want, explicit_platform)
    refs = [reference.Reference(ref.domain, ref.path, ref.tag)] if ref.tag and \
        not ref.digest else []
    repo_digest = "%s@%s" % (ref.repository, top_digest)

    jobs, sizes, tmps = [], {}, []
    seen = set()
    for desc, diff_id in zip(layer_descs, diff_ids):
        if desc["digest"] in seen:
            continue
        seen.add(desc["digest"])
        have_blob = store.has_blob(desc["digest"])
        have_layer = os.path.isdir(store.layer_path(diff_id))
        if have_blob and have_layer:
            progress("layer", id=short_id(desc["digest"]), status="Already exists",
                     current=desc["size"], total=desc["size"])
            continue
        dest = store.mkdtemp("layer")
        tmps.append(dest)
        blob_tmp = None if have_blob else store.mktemp_path("blob")
        if blob_tmp:
            tmps.append(blob_tmp)
        jobs.append(_Job(desc, diff_id, "local" if have_blob else "fetch", blob_tmp, dest))
        progress("layer", id=short_id(desc["digest"]), status="Pulling fs layer", current=0,
                 total=desc["size"])
    try:
        if jobs:
            _run_jobs(store, idmap, registry, repo, jobs, progress)
        for job in jobs:
            sizes[job.diff_id] = job.report["size"]
        for diff_id in diff_ids:
            if diff_id not in sizes:
                sizes[diff_id] = tree_size(store.layer_path(diff_id))
        image_id, before = _land(store, idmap, jobs, [d["digest"] for d in layer_descs],
                                 config_bytes, manifest_bytes, diff_ids, refs, repo_digest,
                                 sizes)
    finally:
        for path in tmps:
            if os.path.isdir(path):
                store.remove(path)
            elif os.path.lexists(path):
                os.unlink(path)
    updated = bool(jobs) or any(before["tags"].get(str(r)) != image_id for r in refs) or \
        image_id not in before["images"]
    return {"ref": ref, "digest": top_digest, "image_id": image_id, "updated": updated,
            "reports": [job.report for job in jobs]}
