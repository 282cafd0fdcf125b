"""`push`: an image from the store to a registry, as it is.

Owns: what goes up and in which order (layer blobs and the config first, each skipped when the
registry has it, mounted from another repository of the same registry when this store pulled
or pushed it there, uploaded otherwise; the manifest last, so a registry never names a blob it
lacks), and remembering the pushed digest. The stored manifest is sent byte for byte: its
media types (Docker schema2 or OCI) and its layers' compression (gzip, zstd, none) stay as they
are, and so does its digest.
Must not: print (progress goes to a callback) or change the store beyond the digest record.
"""

from .. import config, errors, fastjson
from ..oci import image as oci_image
from ..oci import reference
from ..oci.digest import short_id
from .images import add_digest, resolve
from .pull import connect


def _manifest_type(manifest):
    media_type = manifest.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    config_type = (manifest.get("config") or {}).get("mediaType")
    return oci_image.MT_DOCKER_MANIFEST if config_type == oci_image.MT_DOCKER_CONFIG else \
        oci_image.MT_MANIFEST


def _mount_sources(store, index, ref):
    """Repositories of ref's registry that this store knows hold each blob: {digest: [repo]}."""
    sources = {}
    for image_id, record in index["images"].items():
        repos = []
        for entry in record.get("digests") or ():
            name = entry.rpartition("@")[0]
            try:
                other = reference.parse(name, default_tag=False)
            except errors.UsageError:
                continue
            if other.domain == ref.domain and other.path != ref.path:
                repos.append(other.path)
        if not repos:
            continue
        try:
            manifest = fastjson.loads(store.read_blob(record["manifest"]))
        except (errors.BoxError, ValueError):
            continue
        for desc in (manifest.get("layers") or []) + [manifest.get("config") or {}]:
            if isinstance(desc, dict) and desc.get("digest"):
                sources.setdefault(desc["digest"], []).extend(repos)
    return sources


def destination(name, dest):
    """The reference to push to: DEST, else the name the image was given (not an ID)."""
    target = dest or name
    if not dest and reference.looks_like_id(name) and ":" not in name:
        raise errors.UsageError("cannot push an image by ID without a destination",
                                "tag it first: rootless-box tag %s REGISTRY/NAME:TAG" % name)
    ref = reference.parse(target)
    if ref.digest:
        raise errors.UsageError("cannot push to a digest reference: %s" % target,
                                "push to a tag; the registry gives the digest")
    return ref


def push(store, name, dest=None, tls_verify=None, progress=None, login=None):
    """Push image `name` to dest (default: name). progress(event, **fields) hears "layer"
    events; login: Credentials for this push alone (the Engine API's X-Registry-Auth), else
    the user's saved ones. Returns {"ref", "digest", "size"} (size: the manifest's length)."""
    progress = progress or (lambda *a, **k: None)
    ref = destination(name, dest)
    index = store.read_index()
    image = resolve(store, name, index)
    registry, repo, _mirror = connect(ref, tls_verify, push=True, login=login)[0]
    try:
        digest, manifest_bytes = upload(store, registry, repo, image, ref.tag or
                                        reference.DEFAULT_TAG,
                                        _mount_sources(store, index, ref), progress)
    finally:
        registry.close()
    with store.lock():
        add_digest(store, image.id, "%s@%s" % (ref.repository, digest))
    from .events import emit
    emit(store, "image", "push", ref.familiar(), {"name": ref.familiar()})
    return {"ref": ref, "digest": digest, "size": len(manifest_bytes)}


def upload(store, registry, repo, image, tag_or_digest, sources=None, progress=None):
    """image's blobs, then its manifest (byte for byte) under tag_or_digest, to repo on an
    open registry. -> (manifest digest, manifest bytes)."""
    progress = progress or (lambda *a, **k: None)
    manifest_bytes = store.read_blob(image.record["manifest"])
    manifest = fastjson.loads(manifest_bytes)
    layers = [d for d in manifest.get("layers") or [] if isinstance(d, dict)]
    config_desc = manifest.get("config") or {}
    chunk = config.upload_chunk_size()
    for desc in layers + [config_desc]:
        is_layer = desc is not config_desc
        _push_blob(store, registry, repo, desc, (sources or {}).get(desc["digest"], ()), chunk,
                   progress if is_layer else (lambda *a, **k: None))
    return registry.put_manifest(repo, tag_or_digest, manifest_bytes,
                                 _manifest_type(manifest)), manifest_bytes


def _push_blob(store, registry, repo, desc, sources, chunk, progress):
    digest, size = desc["digest"], desc.get("size")
    layer_id = short_id(digest)
    progress("layer", id=layer_id, status="Preparing", current=0, total=size)
    if registry.blob_exists(repo, digest):
        progress("layer", id=layer_id, status="Layer already exists", current=size,
                 total=size)
        return
    for source in dict.fromkeys(sources):
        if registry.mount_blob(repo, digest, source):
            progress("layer", id=layer_id, status="Mounted from %s" % source, current=size,
                     total=size)
            return
    path = store.blob_path(digest)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise errors.StoreError("blob missing from the store: %s" % digest,
                                "remove the image and import or pull it again") from None
    with f:
        registry.upload_blob(repo, digest, size, f, chunk_size=chunk, progress=lambda sent:
                             progress("layer", id=layer_id, status="Pushing", current=sent,
                                      total=size))
    progress("layer", id=layer_id, status="Pushed", current=size, total=size)
