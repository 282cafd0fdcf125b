"""`build --cache-to type=local,dest=DIR` and `--cache-from type=local,src=DIR` (issue 20): the
step cache carried between stores, so a fresh store (as in CI) runs nothing again.

Owns: the cache directory's format (an OCI image layout: every step's image, byte for byte as
the store holds it, its index entries annotated with the step's cache key: skopeo and umoci
read it as any layout) and the two ends: exporting a build's steps (blobs added beside those
already there, the index merged, written by rename) and, for a key the store's own cache
lacks, loading that step's image from such a directory (checked as `load` checks an
archive: ops/buildcontexts.load_from_layout).
Must not: know Dockerfile syntax (the executor asks by key) or print.
"""

import os

from .. import errors, fastjson
from ..oci import image as oci_image

KEY_ANNOTATION = "io.github.rootless-box.cache-key"
_HINT = "use type=local,dest=DIR (--cache-to) or type=local,src=DIR (--cache-from)"


def parse(spec, to):
    """One --cache-to/--cache-from value -> the directory. A bare path is type=local (as
    buildx reads --cache-from NAME as a registry ref, a bare value is refused there)."""
    fields = dict(f.partition("=")[::2] for f in spec.split(",") if f)
    kind = fields.pop("type", "")
    path = fields.pop("dest" if to else "src", "")
    fields.pop("mode", None)  # every step is exported (BuildKit's mode=max) either way
    if kind != "local" or not path or fields:
        flag = "--cache-to" if to else "--cache-from"
        if kind and kind != "local":
            raise errors.UsageError("%s type=%s is not supported" % (flag, kind), _HINT)
        raise errors.UsageError("invalid %s %r" % (flag, spec), _HINT)
    return os.path.abspath(path)


def export(store, entries, dest):
    """The images of entries ({step key: image ID}) into the layout at dest."""
    blobs = os.path.join(dest, "blobs", "sha256")
    try:
        os.makedirs(blobs, exist_ok=True)
        index = _read_index(dest)
        keep = [m for m in index["manifests"]
                if (m.get("annotations") or {}).get(KEY_ANNOTATION) not in entries]
        records = store.read_index()["images"]
        for key, image_id in sorted(entries.items()):
            record = records.get(image_id)
            if record is None:
                continue
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
        _write(os.path.join(dest, "index.json"), fastjson.dumps(
            {"schemaVersion": 2, "mediaType": oci_image.MT_OCI_INDEX, "manifests": keep}))
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
