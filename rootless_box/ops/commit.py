"""`commit`, `export` and `diff`: a container's filesystem as a new image layer, as one
tarball, or as Docker's list of changes.

Owns: Docker's commit semantics (the new image takes the container's command, environment,
working directory and user, then `--change` lines; history gets an entry with the command,
message and author) and export (the container's whole merged rootfs). The tars are written
inside the user namespace (layers/diff.py), where owners read as the container sees them.
Must not: print or exit.
"""

import os

from .. import errors, fastjson
from ..oci import image as oci_image
from ..oci import reference
from ..userns.launcher import run_in_userns
from . import containers, images
from .storage import unpack_layer


def _parent(store, record):
    try:
        return images.resolve(store, record["Image"])
    except errors.NotFound:
        raise errors.NotFound("the image of container %s no longer exists" % record["Name"],
                              "export the container instead (rootless-box export)") from None


def _layer_inside(driver, changes_dir, lowers, out_path, mountpoints, times=None,
                  new_owner=None, disposable=False):
    from ..layers.compression import HashingWriter
    from ..layers.diff import claim_new, write_changes, write_upper
    if new_owner is not None:
        claim_new(changes_dir, lowers, new_owner[0], new_owner[1], upper=driver != "copy")
    with open(out_path, "wb", buffering=0) as raw:
        out = HashingWriter(raw)
        if driver == "copy":
            write_changes(changes_dir, lowers, out, mountpoints, times)
        else:
            # a disposable upper dir is made into the layer's own directory on the way
            write_upper(changes_dir, out, mountpoints, lowers, times, prune=disposable)
    return {"diff_id": out.digest(), "size": out.size}


# What every container mounts onto (relative to its root): their placeholders in an upper dir
# are not the user's changes.
BASE_MOUNTPOINTS = ("etc/hosts", "etc/hostname", "etc/resolv.conf", "proc", "sys", "dev")


def _mountpoints(record):
    """BASE_MOUNTPOINTS and the volumes and tmpfs the run mounted."""
    return list(BASE_MOUNTPOINTS) + [os.path.normpath(m["Destination"]).lstrip("/")
                                     for m in record.get("Mounts", [])]


def _fake_owner(idmap, record, driver, changes_dir, parent):
    """(uid, gid) of the user other than root a container ran as under the single-id
    mapping (as uid 0 with its ids faked: userns/launcher.become), from the container's own
    /etc/passwd; None otherwise. What it created becomes that user's in the layer, as under
    Docker (what exec'd processes made as other users too: they are not told apart)."""
    user = (record.get("Config") or {}).get("User") or ""
    if idmap.mode != "single" or (user.split(":")[0] in ("", "0", "root")
                                  and ":" not in user):
        return None
    from ..layers.diff import LowerView
    from ..oci.users import resolve
    view = LowerView([changes_dir] if driver == "copy"
                     else [changes_dir] + list(parent.layer_dirs()))
    try:
        found = resolve(user, view.read_text("etc/passwd"), view.read_text("etc/group"))
    except errors.BoxError:
        return None
    return (found.uid, found.gid) if found.uid or found.gid else None


def _container_config(parent_config, record, changes):
    """The new image's runtime config: the parent's, then what the container ran with."""
    config = dict(parent_config.get("config") or {})
    ran = record.get("Config", {})
    if ran.get("Cmd"):
        config["Cmd"] = ran["Cmd"]
    if "Entrypoint" in ran:
        config["Entrypoint"] = ran["Entrypoint"]
    # HOSTNAME is set per container at run time, not part of the image (Docker leaves it out)
    env = [e for e in ran.get("Env") or [] if not e.startswith("HOSTNAME=")]
    if env:
        config["Env"] = env
    for key in ("WorkingDir", "User"):
        if ran.get(key) and ran[key] != "/":
            config[key] = ran[key]
    for change in changes:
        oci_image.apply_change(config, change)
    return config


def commit(store, idmap, name, repository=None, changes=(), message="", author=""):
    """A new image: the container's image plus one layer of the container's changes."""
    record = containers.find(store, name)
    ref = reference.parse(repository) if repository else None
    if ref is not None and ref.digest:
        raise errors.UsageError("cannot commit to a digest reference: %s" % repository)
    parent = _parent(store, record)
    parent_cfg = fastjson.loads(fastjson.dumps(parent.config))
    config = _container_config(parent_cfg, record, changes)
    cdir = store.container_dir(record["Id"])
    driver = record.get("Driver", "overlay")
    changes_dir = os.path.join(cdir, "rootfs" if driver == "copy" else "upper")
    with store.lock():
        report = make_layer(store, idmap, driver, changes_dir, parent.layer_dirs(),
                            _mountpoints(record),
                            new_owner=_fake_owner(idmap, record, driver, changes_dir, parent),
                            unpack=False)
        created = oci_image.now_rfc3339()
        cfg = dict(parent_cfg, config=config, created=created, container=record["Id"])
        if author:
            cfg["author"] = author
        cfg["rootfs"] = {"type": "layers",
                         "diff_ids": list(parent.diff_ids) + [report["diff_id"]]}
        entry = {"created": created, "created_by": " ".join(
            [record.get("Path", "")] + record.get("Args", []))}
        if message:
            entry["comment"] = message
        if author:
            entry["author"] = author
        cfg["history"] = list(parent_cfg.get("history") or []) + [entry]
        layers = images.manifest_layers(store, parent)
        layers.append((oci_image.MT_LAYER["none"], report["diff_id"], report["size"]))
        result = images.record_image(store, cfg, layers, cfg["rootfs"]["diff_ids"], ref,
                                     content_size=parent.record.get("size", 0) +
                                     report["size"], parent=parent.id)
    # dockerd's (daemon/commit.go): the image's create, its tag, then the container's commit
    from . import events
    events.emit(store, "image", "create", result, {"name": result})
    if ref is not None:
        events.emit(store, "image", "tag", result, {"name": ref.familiar()})
    events.container(store, record, "commit", comment=message, imageID=result,
                     imageRef=ref.familiar() if ref is not None else "")
    return result


def make_layer(store, idmap, driver, changes_dir, lowers, mountpoints=(), times=None,
               new_owner=None, disposable=False, unpack=True):
    """The changes in changes_dir (an upper dir, or a copy-driver rootfs compared with lowers)
    as a new layer: its tar in blobs/ (uncompressed: the digest is the diff ID) and its
    directory in layers/. Call under the store lock, so no rmi collects the layer before an
    image uses it. Returns {"diff_id", "size"}.

    times: a layers.diff.Times for a build's reproducible mtimes, None to keep them.
    new_owner: (uid, gid) of a non-root user the changes were made as under the single-id
    mapping: what they created is recorded as theirs first (diff.claim_new).
    disposable: changes_dir is an overlay upper dir nobody will use again (a build step's):
    it becomes the layer's directory by rename, pruned to what the tar holds, instead of
    unpacking the tar again (10,000 new files cost 0.2-2 s on this disk). unpack=False (a
    container's commit: its upper dir stays in use, and a layer may share no writable file
    with a container) leaves the directory to be unpacked from the blob when an image first
    needs it (images.ensure_unpacked, which run, create and build call)."""
    disposable = disposable and driver != "copy"
    tmp = store.mktemp_path("layer-tar")
    try:
        report = run_in_userns(_layer_inside, idmap, driver, changes_dir, lowers, tmp,
                               list(mountpoints), times, new_owner, disposable)
        dest = store.layer_path(report["diff_id"])
        if disposable and not os.path.isdir(dest):
            try:
                os.rename(changes_dir, dest)
            except OSError:  # not on the store's file system: unpacked below
                pass
        if unpack and not os.path.isdir(dest):
            unpack_layer(store, idmap, tmp, report["diff_id"])
        if disposable and os.path.exists(store.blob_path(report["diff_id"])):
            # the same layer again (a reproducible rebuild's step): its tar, as large as the
            # step's output, is deleted with the step's directory, after the build answers
            store.discard(tmp)
        else:
            store.land_blob_file(tmp, report["diff_id"])
        tmp = None
        return report
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)


def _changes_inside(driver, changes_dir, lowers, mountpoints):
    from ..layers.diff import list_changes
    return list_changes(changes_dir, lowers, mountpoints, copy=driver == "copy")


def diff(store, idmap, name):
    """`diff`: the container's changes against its image, [(kind, path)] (A, C, D), read
    inside a user namespace of the container's mapping (its files' owners are its own); a
    running container's upper dir is read as it is."""
    from .run import idmap_of
    record = containers.find(store, name)
    parent = _parent(store, record)
    try:
        idmap = idmap_of(containers.load_spec(store, record), idmap)
    except errors.Conflict:
        pass  # no kept spec: the default mapping
    driver = record.get("Driver", "overlay")
    cdir = store.container_dir(record["Id"])
    changes_dir = os.path.join(cdir, "rootfs" if driver == "copy" else "upper")
    return [tuple(c) for c in run_in_userns(_changes_inside, idmap, driver, changes_dir,
                                            parent.layer_dirs(), _mountpoints(record))]


def _export_inside(driver, cdir, lowers, mountpoint, out_fd):
    from ..layers.diff import write_tree
    from ..userns.mounts import mount_overlay
    if driver == "copy":
        tree = os.path.join(cdir, "rootfs")
    else:
        # a read-only overlay with the upper dir as the topmost lower: works while the
        # container runs (its upper dir is in use) and applies its whiteouts
        mount_overlay(mountpoint, [os.path.join(cdir, "upper")] + lowers)
        tree = mountpoint
    with os.fdopen(os.dup(out_fd), "wb") as out:
        return write_tree(tree, out)


def export(store, idmap, name, out_fd):
    """Write the container's merged filesystem as a tar to out_fd."""
    record = containers.find(store, name)
    parent = _parent(store, record)
    mountpoint = store.mkdtemp("export")
    try:
        return run_in_userns(_export_inside, idmap, record.get("Driver", "overlay"),
                             store.container_dir(record["Id"]), parent.layer_dirs(),
                             mountpoint, out_fd)
    finally:
        store.remove(mountpoint)
