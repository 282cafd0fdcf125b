"""`build --build-context NAME=VALUE` (issue 20): what a named context stands for.

Owns: BuildKit's value forms: a local directory (a path), `docker-image://REF` (a local image,
pulled when missing) and `oci-layout://PATH[:TAG|@DIGEST]` (an OCI image layout directory:
the chosen image is loaded into the store untagged, as `load` would, and used by ID);
checking them (one line for a bad one).
Must not: know Dockerfile syntax (dockerfile/executor.py uses the answer for FROM NAME and
COPY --from=NAME) or print.
"""

import os

from .. import errors, fastjson

_HINT = "use NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://PATH[:TAG|@DIGEST]"


def parse(items):
    """--build-context values -> {name (lower case): value}, checked for form only."""
    result = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise errors.UsageError("invalid --build-context %r" % item, _HINT)
        if "://" in value and not value.startswith(("docker-image://", "oci-layout://")):
            raise errors.UsageError("--build-context %s: unsupported source %s" % (
                name, value.split("://")[0] + "://"), _HINT)
        result[name.lower()] = value
    return result


def resolve(store, idmap, name, value, resolve_image):
    """-> {"kind": "image", "image"} or {"kind": "dir", "path"}. resolve_image(ref):
    a local image, pulled when missing (the build's own rule)."""
    if value.startswith("docker-image://"):
        ref = value[len("docker-image://"):]
        try:
            return {"kind": "image", "image": resolve_image(ref)}
        except errors.BoxError as exc:
            raise errors.NotFound("--build-context %s: %s" % (name, exc.message),
                                  exc.hint) from None
    if value.startswith("oci-layout://"):
        return {"kind": "image", "image": _oci_layout(store, idmap, name,
                                                      value[len("oci-layout://"):])}
    path = os.path.abspath(value)
    if not os.path.isdir(path):
        raise errors.NotFound("--build-context %s: no such directory: %s" % (name, value),
                              _HINT)
    return {"kind": "dir", "path": path}


def _split_layout(text):
    """PATH[:TAG|@sha256:HEX] -> (path, tag or None, digest or None)."""
    if "@" in text:
        path, _, digest = text.rpartition("@")
        return path, None, digest
    head, colon, tag = text.rpartition(":")
    if colon and "/" not in tag and head:
        return head, tag, None
    return text, None, None


def _oci_layout(store, idmap, name, text):
    path, tag, digest = _split_layout(text)

    def bad(why):
        return errors.NotFound("--build-context %s: oci-layout://%s: %s" % (name, text, why),
                               "give an OCI image layout directory (index.json, blobs/)")
    try:
        with open(os.path.join(path, "index.json"), "rb") as f:
            index = fastjson.loads(f.read())
        manifests = index["manifests"]
    except (OSError, ValueError, KeyError, TypeError):
        raise bad("no readable index.json") from None
    chosen = [m for m in manifests if isinstance(m, dict) and (
        (digest and m.get("digest") == digest) or
        (tag and (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag) or
        (not digest and not tag))]
    if not chosen:
        raise bad("no image %s in it" % (digest or tag))
    if len(chosen) > 1 and not (digest or tag):
        raise bad("it holds %d images: name one with :TAG or @DIGEST" % len(chosen))
    try:
        return load_from_layout(store, idmap, path, chosen[0])
    except errors.BoxError as exc:
        raise bad(exc.message) from None


def load_from_layout(store, idmap, path, desc):
    """The image of manifest descriptor desc in the OCI layout directory path, loaded into
    the store untagged (checked as `load` checks an archive); -> the local image."""
    from .archive import load
    from .images import resolve as resolve_local
    desc = {k: v for k, v in desc.items() if k != "annotations"}
    tmp = store.mkdtemp("layout")
    try:
        tar_path = os.path.join(tmp, "layout.tar")
        manifest = _layout_tar(path, desc, tar_path)
        load(store, idmap, tar_path)
    finally:
        store.remove(tmp)
    return resolve_local(store, manifest["config"]["digest"])


def _layout_tar(path, desc, out_path):
    """A tar of what desc needs from the layout (its manifest, config and layers) with an
    index naming desc alone (load reads tars) -> the manifest."""
    import io
    import tarfile
    from ..oci.digest import split

    def blob(digest):
        algo, hexa = split(digest)
        return os.path.join(path, "blobs", algo, hexa), "blobs/%s/%s" % (algo, hexa)
    try:
        with open(blob(desc["digest"])[0], "rb") as f:
            manifest = fastjson.loads(f.read(8 << 20))
        needed = [desc["digest"], manifest["config"]["digest"]] + [
            layer["digest"] for layer in manifest["layers"]]
    except (OSError, ValueError, KeyError, TypeError):
        raise errors.BadArchive("cannot read the manifest %s" % desc.get("digest")) from None
    with tarfile.open(out_path, "w") as tar:
        for digest in dict.fromkeys(needed):
            full, name = blob(digest)
            if not os.path.isfile(full) or os.path.islink(full):
                raise errors.BadArchive("blob %s is missing" % digest)
            tar.add(full, name, recursive=False)
        for member, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                             ("index.json", fastjson.dumps({
                                 "schemaVersion": 2, "manifests": [desc]}))):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return manifest
