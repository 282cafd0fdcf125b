"""`build --cache-to`/`--cache-from` with `type=local,dest=|src=DIR` and
`type=registry,ref=REF` (issue 20): the step cache carried between stores, so a fresh store
(as in CI) runs nothing again.

Owns: the cache directory's format (an OCI image layout: every step's image, byte for byte as
the store holds it, its index entries annotated with the step's cache key: skopeo and umoci
read it as any layout) and the two ends: exporting a build's steps (blobs added beside those
already there, the index merged, written by rename) and, for a key the store's own cache
lacks, loading that step's image from such a directory (checked as `load` checks an
archive: ops/buildcontexts.load_from_layout). In a registry the same index is pushed as REF
(an OCI image index whose manifests, pushed by digest first, are the step images) and a hit
is pulled by digest (untagged).
Must not: know Dockerfile syntax (the executor asks by key) or print.
"""

import os

from .. import errors, fastjson
from ..oci import image as oci_image

KEY_ANNOTATION = "io.github.rootless-box.cache-key"
_HINT = ("use type=local,dest=DIR or type=registry,ref=REF (--cache-to), type=local,src=DIR "
         "or type=registry,ref=REF (--cache-from)")


def parse(spec, to):
    """One --cache-to/--cache-from value -> {"type": "local", "path"} or {"type": "registry",
    "ref"}. A bare value of --cache-from is a registry ref, as buildx reads it."""
    flag = "--cache-to" if to else "--cache-from"
    if "=" not in spec and not to:
        spec = "type=registry,ref=" + spec
    fields = dict(f.partition("=")[::2] for f in spec.split(",") if f)
    kind = fields.pop("type", "")
    fields.pop("mode", None)  # every step is exported (BuildKit's mode=max) either way
    if kind == "local":
        path = fields.pop("dest" if to else "src", "")
        if path and not fields:
            return {"type": "local", "path": os.path.abspath(path)}
    elif kind == "registry":
        ref = fields.pop("ref", "")
        if ref and not fields:
            from ..oci import reference
            if reference.parse(ref).digest and to:
                raise errors.UsageError("%s: cannot push a cache to a digest: %s" % (flag, ref),
                                        _HINT)
            return {"type": "registry", "ref": ref}
    elif kind:
        raise errors.UsageError("%s type=%s is not supported" % (flag, kind), _HINT)
    raise errors.UsageError("invalid %s %r" % (flag, spec), _HINT)


def source(target):
    """A --cache-from target -> an object with load(store, idmap, key)."""
    return Source(target["path"]) if target["type"] == "local" else \
        RegistrySource(target["ref"])


def export(store, entries, target):
    """The images of entries ({step key: image ID}) to a parsed --cache-to target."""
    if target["type"] == "registry":
        _export_registry(store, entries, target["ref"])
    else:
        _export_local(store, entries, target["path"])


def _step_images(store, entries):
    """(key, local image) of each entry whose image is still here, in key order."""
    from .images import resolve
    for key, image_id in sorted(entries.items()):
        try:
            yield key, resolve(store, image_id)
        except errors.BoxError:
            continue


def _cache_index(manifests):
    return {"schemaVersion": 2, "mediaType": oci_image.MT_OCI_INDEX, "manifests": manifests}


def _export_registry(store, entries, ref_text):
    from ..oci import reference
    from .pull import connect
    from .push import upload
    ref = reference.parse(ref_text)
    registry, repo, _mirror = connect(ref, push=True)[0]
    try:
        manifests = []
        for key, image in _step_images(store, entries):
            digest, data = upload(store, registry, repo, image, image.record["manifest"])
            manifests.append({"mediaType": fastjson.loads(data).get("mediaType") or
                              oci_image.MT_MANIFEST, "digest": digest, "size": len(data),
                              "annotations": {KEY_ANNOTATION: key}})
        registry.put_manifest(repo, ref.tag or reference.DEFAULT_TAG,
                              oci_image.dumps(_cache_index(manifests)), oci_image.MT_OCI_INDEX)
    finally:
        registry.close()


class RegistrySource:
    """A --cache-from type=registry ref: its index read at the first lookup (none there yet
    is an empty cache, as BuildKit only warns), a hit pulled by digest."""

    def __init__(self, ref_text):
        self.ref_text = ref_text
        self.keys = None

    def _index(self):
        from ..oci import reference
        from .pull import connect
        ref = reference.parse(self.ref_text)
        self.repository = ref.repository
        registry, repo, _mirror = connect(ref)[0]
        try:
            _data, _type, _digest, doc = registry.get_manifest(
                repo, ref.digest or ref.tag or reference.DEFAULT_TAG,
                accept=(oci_image.MT_OCI_INDEX,))
        except errors.BoxError:
            return {}
        finally:
            registry.close()
        found = {}
        for desc in (doc.get("manifests") if isinstance(doc, dict) else None) or []:
            key = isinstance(desc, dict) and (desc.get("annotations") or {}).get(
                KEY_ANNOTATION)
            if key and isinstance(desc.get("digest"), str):
                found[key] = desc["digest"]
        return found

    def load(self, store, idmap, key):
        if self.keys is None:
            self.keys = self._index()
        digest = self.keys.get(key)
        if digest is None:
            return None
        from .images import resolve
        from .pull import pull
        try:
            return resolve(store, pull(store, idmap, "%s@%s" % (self.repository,
                                                              digest))["image_id"])
        except errors.BoxError:
            return None  # gone or damaged: a miss, the step runs


def _export_local(store, entries, dest):
    """The images of entries ({step key: image ID}) into the layout at dest."""
    blobs = os.path.join(dest, "blobs", "sha256")
    try:
        os.makedirs(blobs, exist_ok=True)
        index = _read_index(dest)
        keep = [m for m in index["manifests"]
                if (m.get("annotations") or {}).get(KEY_ANNOTATION) not in entries]
        for key, image in _step_images(store, entries):
            record = image.record
            manifest_bytes = store.read_blob(record["manifest"])
            manifest = fastjson.loads(manifest_bytes)
            for digest in [record["manifest"], manifest["config"]["digest"]] + [
                    layer["digest"] for layer in manifest["layers"]]:
                _copy_blob(store, digest, blobs)
            keep.append({"mediaType": manifest.get("mediaType") or oci_image.MT_MANIFEST,
                         "digest": record["manifest"], "size": len(manifest_bytes),
                         "annotations": {KEY_ANNOTATION: key}})
        _write(os.path.join(dest, "oci-layout"), fastjson.dumps({"imageLayoutVersion":
                                                                 "1.0.0"}))
        _write(os.path.join(dest, "index.json"), fastjson.dumps(_cache_index(keep)))
    except OSError as exc:
        raise errors.BoxError("cannot export the build cache to %s: %s" % (
            dest, exc.strerror or exc), "check that the directory is writable") from None


class Source:
    """A --cache-from directory: its keys, and the step image of one loaded on demand."""

    def __init__(self, path):
        self.path = path
        try:
            index = _read_index(path, missing_ok=False)
        except (OSError, ValueError) as exc:
            raise errors.NotFound("--cache-from %s: no cache there: %s" % (
                path, getattr(exc, "strerror", None) or exc), _HINT) from None
        self.keys = {(m.get("annotations") or {}).get(KEY_ANNOTATION): m
                     for m in index["manifests"] if isinstance(m, dict)}
        self.keys.pop(None, None)

    def load(self, store, idmap, key):
        """The local image of key's step (loaded when the store lacks it), or None."""
        desc = self.keys.get(key)
        if desc is None:
            return None
        from .buildcontexts import load_from_layout
        try:
            return load_from_layout(store, idmap, self.path, desc)
        except errors.BoxError:
            return None  # a damaged entry is a miss: the step runs


def _read_index(path, missing_ok=True):
    try:
        with open(os.path.join(path, "index.json"), "rb") as f:
            index = fastjson.loads(f.read())
    except FileNotFoundError:
        if missing_ok:
            return {"manifests": []}
        raise
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ValueError("index.json is no image index")
    return index


def _copy_blob(store, digest, blobs):
    import shutil
    target = os.path.join(blobs, digest.split(":", 1)[1])
    if os.path.exists(target):
        return
    tmp = target + ".tmp-%d" % os.getpid()
    shutil.copyfile(store.blob_path(digest), tmp)
    os.rename(tmp, target)


def _write(path, data):
    tmp = path + ".tmp-%d" % os.getpid()
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)
