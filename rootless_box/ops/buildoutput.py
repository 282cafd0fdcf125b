"""Where a build's image goes besides the store: BuildKit's exporters for `build -o/--output`,
`--push`, `--load` and `--metadata-file` (issue 20).

Owns: the output grammar (buildx's CSV `type=local,dest=DIR`, `type=tar,dest=FILE|-`,
`type=oci,dest=FILE|-`, `type=docker[,dest=FILE|-]`, `type=image|registry,name=REF[,push=true]`,
`type=cacheonly`, and `-o DIR`/`-o -`), writing each: the image's flattened filesystem as a
tar (written inside the user namespace, mtimes as the build's epoch says) or as a directory
(that tar unpacked as the user: owners are the user's, as BuildKit's rootless local exporter
leaves them), an OCI layout or docker-archive tar (ops/archive.py), tags and pushes
(ops/images.py, ops/push.py); and the metadata file's document.
Must not: print (the caller reports) or build anything.
"""

import os

from .. import errors, fastjson
from ..oci import image as oci_image
from ..oci import reference

TYPES = ("local", "tar", "oci", "docker", "image", "registry", "cacheonly")
_KEYS = {"local": {"dest"}, "tar": {"dest"}, "oci": {"dest", "name"},
         "docker": {"dest", "name"}, "image": {"name", "push"},
         "registry": {"name", "push"}, "cacheonly": set()}
# accepted everywhere: this build always rewrites timestamps (see the README), so asking
# for it changes nothing
_ALWAYS = {"rewrite-timestamp"}


def _bad(spec, why, hint=None):
    return errors.UsageError("invalid --output %r: %s" % (spec, why), hint or
                             "use type=local,dest=DIR, type=tar,dest=FILE, type=oci,dest=FILE, "
                             "type=docker,dest=FILE or type=image,name=REF[,push=true]")


def _fields(spec):
    """buildx's CSV: fields split at commas outside double quotes (`"name=a,b"`)."""
    import csv
    try:
        rows = list(csv.reader([spec]))
    except csv.Error as exc:
        raise _bad(spec, str(exc)) from None
    return [f for f in (rows[0] if rows else []) if f.strip()]


def parse(spec):
    """One -o value -> {"type", "dest", "names", "push"}."""
    if spec == "-":
        return {"type": "tar", "dest": "-", "names": [], "push": False}
    if "=" not in spec and "," not in spec:
        return {"type": "local", "dest": spec, "names": [], "push": False}
    out = {"type": None, "dest": None, "names": [], "push": False}
    for field in _fields(spec):
        key, eq, value = field.partition("=")
        key = key.strip().lower()
        if not eq:
            raise _bad(spec, "%r is not KEY=VALUE" % field)
        if key == "type":
            if value not in TYPES:
                raise _bad(spec, "unknown type %r" % value)
            out["type"] = value
        elif key == "dest":
            out["dest"] = value
        elif key == "name":
            out["names"] += [n.strip() for n in value.split(",") if n.strip()]
        elif key == "push":
            if value.lower() not in ("true", "false", "1", "0"):
                raise _bad(spec, "push=%s: give true or false" % value)
            out["push"] = value.lower() in ("true", "1")
        elif key in _ALWAYS:
            continue
        else:
            out.setdefault("unknown", []).append(key)
    kind = out["type"]
    if kind is None:
        raise _bad(spec, "no type")
    unknown = [k for k in out.pop("unknown", []) if k not in _KEYS[kind]]
    given = {k for k in ("dest", "name", "push") if out.get(k if k != "name" else "names")}
    unknown += sorted(given - _KEYS[kind])
    if unknown:
        raise _bad(spec, "type=%s takes no %s" % (kind, ", ".join(unknown)))
    if kind == "registry":
        out["type"], out["push"] = "image", True
    if kind in ("local", "tar", "oci") and not out["dest"]:
        raise _bad(spec, "type=%s needs dest=" % kind)
    for name in out["names"]:
        reference.parse(name)
    return out


def plan(specs, push=False, load=False, tags=()):
    """Every output of one build: the -o values, then --push (the tags, pushed) and --load
    (the store, where a build's image always lands: nothing more to do)."""
    outputs = [parse(s) for s in specs]
    if sum(o["dest"] == "-" for o in outputs) > 1:
        raise errors.UsageError("only one --output can write to standard output")
    if push:
        outputs.append({"type": "image", "dest": None, "names": [], "push": True})
    for out in outputs:
        if out["type"] == "image" and out["push"] and not (out["names"] or tags):
            raise errors.UsageError("tag is needed when pushing to registry",
                                    "add -t NAME, or name=NAME to the output")
    del load
    return outputs


def export(store, idmap, image_id, outputs, tags, times, stdout=None, tls_verify=None):
    """Write every output of the built image; returns the names it was pushed or tagged as.
    stdout: a binary stream for dest=-; times: the build's layers.diff.Times."""
    from . import images
    names = list(tags)
    for out in outputs:
        kind = out["type"]
        dest = stdout if out["dest"] == "-" else out["dest"]
        if kind in ("local", "tar"):
            _filesystem(store, idmap, image_id, kind, dest, times)
        elif kind in ("oci", "docker"):
            if dest is None:
                continue  # type=docker without dest: the store, where the image is anyway
            from .archive import save_image
            refs = [reference.parse(n) for n in (out["names"] or tags)]
            save_image(store, image_id, refs, dest, docker=kind == "docker")
        elif kind == "image":
            for name in out["names"]:
                images.tag(store, image_id, name)
            names += [n for n in out["names"] if n not in names]
            if out["push"]:
                from .push import push
                for name in out["names"] or tags:
                    push(store, name, tls_verify=tls_verify)
    return names


def metadata(store, image_id, names):
    """The --metadata-file document (buildx's keys)."""
    record = store.read_index()["images"][image_id]
    manifest = record["manifest"]
    doc = {"containerimage.config.digest": image_id,
           "containerimage.descriptor": {
               "mediaType": fastjson.loads(store.read_blob(manifest)).get("mediaType") or
               oci_image.MT_MANIFEST,
               "digest": manifest, "size": len(store.read_blob(manifest))},
           "containerimage.digest": manifest}
    if names:
        doc["image.name"] = ",".join(str(reference.parse(n)) for n in names)
    return doc


def _filesystem(store, idmap, image_id, kind, dest, times):
    """The image's merged filesystem: a tar at dest (a path or a binary stream), or (local)
    unpacked into directory dest."""
    from ..userns.launcher import run_in_userns
    from .images import resolve
    from .run import prepare_rootfs
    from .storage import choose_driver
    image = resolve(store, image_id)
    tmp = store.mkdtemp("build-output")
    try:
        rootfs = prepare_rootfs(tmp, choose_driver(store, idmap), image.layer_dirs(), idmap)
        if kind == "tar" and not isinstance(dest, str):
            dest.flush()
            run_in_userns(_flatten_inside, idmap, rootfs, dest.fileno(), times)
        elif kind == "tar":
            from .archive import write_whole
            write_whole(dest, lambda out: run_in_userns(_flatten_inside, idmap, rootfs,
                                                        out.fileno(), times),
                        "the output", "dest=")
        else:
            tar_path = os.path.join(tmp, "rootfs.tar")
            with open(tar_path, "xb") as f:
                run_in_userns(_flatten_inside, idmap, rootfs, f.fileno(), times)
            _unpack_local(tar_path, dest)
    finally:
        store.remove(tmp)


def _flatten_inside(rootfs, out_fd, times):
    from ..layers.diff import write_tree
    from ..userns.mounts import mount_overlay
    if rootfs["driver"] != "copy":
        mount_overlay(rootfs["merged"], rootfs["lower"])
    with os.fdopen(os.dup(out_fd), "wb", buffering=1 << 20) as out:
        return write_tree(rootfs["merged"], out, times)


def _unpack_local(tar_path, dest):
    """The tar unpacked into dest as the user (hostile-tar rules: nothing lands outside dest,
    no device nodes); owners are the user's."""
    from ..layers.unpack import unpack
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        raise errors.BoxError("cannot write the output: %s: %s" % (dest, exc.strerror),
                              "check that the directory can be created") from None
    with open(tar_path, "rb") as f:
        unpack(f, dest, keep_owners=False)
