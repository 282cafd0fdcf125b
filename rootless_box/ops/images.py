"""Image use cases: import a rootfs tarball, resolve a name, tag, remove, list, inspect.

Owns: the image index semantics (what a tag points at, when an image and its layers go away),
Docker's `import` (one layer, config built here, `--change` applied) and Docker's inspect JSON.
Must not: print or exit (commands/ format the results).
"""

import os
import time

from .. import errors, fastjson
from ..oci import image as oci_image
from ..oci import reference
from ..oci.digest import short_id

_CHUNK = 1 << 20


class Image:
    """An image record from the index, with its config loaded on demand."""

    def __init__(self, store, image_id, record, tags):
        self.store = store
        self.id = image_id
        self.record = record
        self.tags = tags
        self._config = None

    @property
    def config(self):
        if self._config is None:
            self._config = fastjson.loads(self.store.read_blob(self.id))
        return self._config

    @property
    def diff_ids(self):
        return self.record["layers"]

    def layer_dirs(self):
        """Unpacked layer directories, topmost first (overlayfs lowerdir order)."""
        return layer_dirs(self.store, self.diff_ids)


def layer_dirs(store, diff_ids):
    """Directories of diff_ids (bottom first), topmost first as overlayfs wants them. A layer
    that appears twice (two RUN steps that changed nothing give the same empty layer) is kept
    only at its topmost place: overlayfs refuses a directory twice (ELOOP), and the lower copy
    cannot show through the upper one, which holds the same entries and whiteouts."""
    seen, dirs = set(), []
    for diff_id in reversed(diff_ids):
        if diff_id not in seen:
            seen.add(diff_id)
            dirs.append(store.layer_path(diff_id))
    return dirs


def _tags_of(index, image_id):
    return sorted(ref for ref, iid in index["tags"].items() if iid == image_id)


def resolve(store, name, index=None):
    """An image by reference (busybox, host:5000/a/b:tag) or by (short) ID."""
    index = index if index is not None else store.read_index()
    ref = None
    try:
        ref = reference.parse(name)
    except errors.UsageError:
        if not reference.looks_like_id(name):
            raise
    if ref is not None:
        image_id = index["tags"].get(str(ref)) if not ref.digest else _by_digest(index, ref)
        if image_id:
            return Image(store, image_id, index["images"][image_id], _tags_of(index, image_id))
    if reference.looks_like_id(name):
        wanted = name if name.startswith("sha256:") else "sha256:" + name
        matches = [iid for iid in index["images"] if iid.startswith(wanted)]
        if len(matches) == 1:
            iid = matches[0]
            return Image(store, iid, index["images"][iid], _tags_of(index, iid))
        if len(matches) > 1:
            raise errors.Conflict("image ID prefix %s is ambiguous" % name,
                                  "give more characters of the ID")
    raise errors.NotFound("no such image: %s" % name,
                          "list local images with 'rootless-box images', or import one with "
                          "'rootless-box import'")


def _by_digest(index, ref):
    """The image a registry digest names (pulled or pushed by this store), for name@sha256:."""
    wanted = "%s@%s" % (ref.repository, ref.digest)
    for image_id, record in index["images"].items():
        if wanted in (record.get("digests") or ()):
            return image_id
    return None


def manifest_layers(store, image):
    """[(media type, digest, size)] of the image's layer blobs, from its manifest."""
    manifest = fastjson.loads(store.read_blob(image.record["manifest"]))
    return [(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]]


def ensure_unpacked(store, idmap, image):
    """Every layer of image unpacked for the current id mapping. A layer can be missing after
    the mapping changed (an administrator added a subuid range) or a kill; it is unpacked
    again from its blob, as Podman's `system migrate` would, but without being asked."""
    from .storage import unpack_layers
    missing = [d for d in image.diff_ids if not os.path.isdir(store.layer_path(d))]
    if not missing:
        return
    manifest = fastjson.loads(store.read_blob(image.record["manifest"]))
    blobs = dict(zip(image.diff_ids, (layer["digest"] for layer in manifest["layers"])))
    unpack_layers(store, idmap, [(store.blob_path(blobs[d]), d)
                                 for d in dict.fromkeys(missing)])


def list_images(store):
    index = store.read_index()
    return [Image(store, iid, rec, _tags_of(index, iid)) for iid, rec in
            sorted(index["images"].items(), key=lambda kv: kv[1].get("added", ""),
                   reverse=True)]


# -- import -------------------------------------------------------------------------------------

def _copy_hashing(src, dst_path):
    import hashlib
    digest = hashlib.sha256()
    size = 0
    with open(dst_path, "wb") as out:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return "sha256:" + digest.hexdigest(), size


def _blob_from_source(store, source):
    """Copy the tarball (a path, or a binary file object such as stdin, which the command
    passes: library code never reads stdin itself) into the store's tmp while hashing;
    xz/bzip2 are decompressed first, as OCI layers are plain, gzip or zstd.
    Returns (tmp path, digest, size, compression)."""
    from ..layers.compression import detect, open_stream
    name = source if isinstance(source, str) else "-"
    tmp = store.mktemp_path("import")
    try:
        try:
            if not isinstance(source, str):
                digest, size = _copy_hashing(source, tmp)
            else:
                with open(source, "rb") as f:
                    digest, size = _copy_hashing(f, tmp)
        except OSError as exc:
            raise errors.BadArchive("cannot read %s: %s" % (name, exc.strerror or exc)) \
                from None
        if size == 0:
            raise errors.BadArchive("cannot import %s: it is empty" % name)
        with open(tmp, "rb") as f:
            compression = detect(f.read(8))
        if compression in ("bzip2", "xz"):
            # the decompressed copy is a temporary too: a failure (a truncated xz) must not
            # leave it behind, nor the compressed one
            plain = store.mktemp_path("import")
            try:
                with open(tmp, "rb") as f:
                    stream, _ = open_stream(f)
                    digest, size = _copy_hashing(stream, plain)
            except BaseException:
                _unlink(plain)
                raise
            _unlink(tmp)
            tmp, compression = plain, "none"
            if size == 0:
                raise errors.BadArchive("cannot import %s: it is empty" % name)
    except BaseException:
        _unlink(tmp)
        raise
    return tmp, digest, size, compression


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def history_entries(config, sizes):
    """An image config's history paired with its layers' sizes, oldest first: [(entry, size)]
    (an `empty_layer` step 0). sizes: each layer's size, bottom first; a config without
    history gets one entry per layer (all Docker can say about it either). `history` and the
    Engine API's /images/{name}/history show these."""
    entries = config.get("history") or []
    if not isinstance(entries, list) or not entries:
        entries = [{"created": config.get("created", "")} for _ in sizes] or \
            [{"created": config.get("created", "")}]
    result, layer = [], 0
    for entry in entries:
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("empty_layer"):
            size = 0
        else:
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        result.append((entry, size))
    return result


def import_rootfs(store, idmap, source, repository=None, changes=(), message=""):
    """`import FILE|- [REPOSITORY[:TAG]]`: one-layer image from a rootfs tarball. Returns
    (image id, unpack report)."""
    from .storage import unpack_layer
    ref = reference.parse(repository) if repository else None
    if ref is not None and ref.digest:
        raise errors.UsageError("cannot import to a digest reference: %s" % repository)
    container_config = {}
    for change in changes:
        try:
            oci_image.apply_change(container_config, change)
        except ValueError as exc:  # shlex: an unbalanced quote in ENV/LABEL
            raise errors.UsageError("invalid --change %r: %s" % (change, exc),
                                    "write it as in a Dockerfile, e.g. ENV KEY=\"a value\"") \
                from None
    blob_tmp, digest, size, compression = _blob_from_source(store, source)
    try:
        report = unpack_layer(store, idmap, blob_tmp)
        label = os.path.basename(source) if isinstance(source, str) else "-"
        cfg = oci_image.new_config([report["diff_id"]], container_config, comment=message or
                                   "Imported from %s" % label,
                                   created_by="rootless-box import %s" % label)
        with store.lock():
            if not os.path.isdir(store.layer_path(report["diff_id"])):
                # unpack_layer landed it under the lock and let go; an `rmi` in between
                # collected it as unused. Unpack again, now holding the lock (re-entrant).
                unpack_layer(store, idmap, blob_tmp, report["diff_id"])
            store.land_blob_file(blob_tmp, digest)
            blob_tmp = None
            # Docker's SIZE is the content's (the uncompressed tar), not the tarball's
            image_id = record_image(store, cfg,
                                     [(oci_image.MT_LAYER[compression], digest, size)],
                                     [report["diff_id"]], ref, content_size=report["size"])
    finally:
        if blob_tmp:
            _unlink(blob_tmp)
    from .events import images as image_events
    image_events(store, "import", [image_id])
    return image_id, report


def record_image(store, cfg, layers, diff_ids, ref, content_size=None, parent=None):
    """Under the store lock: a new image from a config dict (import, commit): write its config
    and manifest, record and tag it. layers: [(media type, blob digest, blob size)];
    content_size: the uncompressed size of the layers (default: the blobs' sizes); parent: the
    ID of the image it was made from (commit), which inspect shows as Docker's Parent (local
    only: no registry or save keeps it)."""
    config_bytes = oci_image.dumps(cfg)
    image_id = store.put_blob_bytes(config_bytes)
    manifest = oci_image.new_manifest(image_id, len(config_bytes), layers)
    manifest_bytes = oci_image.dumps(manifest)
    size = content_size if content_size is not None else sum(s for _mt, _d, s in layers)
    return record_blobs(store, config_bytes, manifest_bytes, diff_ids, [ref] if ref else [],
                        size, parent=parent)


def record_blobs(store, config_bytes, manifest_bytes, diff_ids, refs, size, digests=(),
                 parent=None):
    """Under the store lock: record an image whose config and manifest are given byte for byte
    (load keeps them as they came, so the image ID and digests hold). The layer blobs must be
    in the store already. digests: `repository@sha256:...` names the image has in registries
    (pull, push), added to those recorded before; parent: as record_image's. Returns the
    image ID (sha256 of the config)."""
    image_id = store.put_blob_bytes(config_bytes)
    manifest_digest = store.put_blob_bytes(manifest_bytes)
    index = store.read_index()
    known = list((index["images"].get(image_id) or {}).get("digests") or [])
    known += [d for d in digests if d not in known]
    index["images"][image_id] = {"manifest": manifest_digest, "layers": list(diff_ids),
                                 "added": oci_image.now_rfc3339(), "size": size}
    if known:
        index["images"][image_id]["digests"] = known
    if parent and parent != image_id:
        index["images"][image_id]["parent"] = parent
    for ref in refs:
        index["tags"][str(ref)] = image_id
    store.write_index(index)
    return image_id


def add_digest(store, image_id, repo_digest):
    """Under the store lock: remember that a registry knows image_id as repo_digest (push)."""
    index = store.read_index()
    record = index["images"].get(image_id)
    if record is not None and repo_digest not in record.setdefault("digests", []):
        record["digests"].append(repo_digest)
        store.write_index(index)


# -- tag, remove --------------------------------------------------------------------------------

def tag(store, source, target):
    ref = reference.parse(target)
    if ref.digest:
        raise errors.UsageError("refusing to create a tag with a digest reference: %s" % target)
    with store.lock():
        index = store.read_index()
        image = resolve(store, source, index)
        index["tags"][str(ref)] = image.id
        store.write_index(index)
    from .events import emit
    emit(store, "image", "tag", image.id, {"name": ref.familiar()})
    return image.id


def containers_using(store, image_id):
    users = []
    for cid in store.container_ids():
        record = store.read_container(cid)
        if record and record.get("Image") == image_id:
            users.append(record)
    return users


def remove(store, name, force=False):
    """`rmi`: untag name; when no tag is left (or name is an ID), delete the image and every
    blob and layer directory nothing else uses. Returns lines like Docker's
    ('Untagged: x', 'Deleted: sha256:...'); each is an untag or delete event too."""
    image_id = resolve(store, name).id
    out = _remove(store, name, force)
    from .events import emit
    for line in out:
        action, _sep, what = line.partition(": ")
        emit(store, "image", "untag" if action == "Untagged" else "delete", image_id,
             {"name": what})
    return out


def _remove(store, name, force=False):
    out = []
    with store.lock():
        index = store.read_index()
        image = resolve(store, name, index)
        by_tag = None
        try:
            ref = reference.parse(name)
            if index["tags"].get(str(ref)) == image.id:
                by_tag = str(ref)
        except errors.UsageError:
            ref = None
        if ref is not None and ref.digest:
            # name@sha256: drops that registry name; the image goes with its last name
            record = index["images"][image.id]
            wanted = "%s@%s" % (ref.repository, ref.digest)
            record["digests"] = [d for d in record.get("digests") or () if d != wanted]
            if image.tags or record["digests"]:
                store.write_index(index)
                return ["Untagged: %s@%s" % (ref.familiar_repository(), ref.digest)]
            out.append("Untagged: %s@%s" % (ref.familiar_repository(), ref.digest))
        if by_tag and len(image.tags) > 1:
            del index["tags"][by_tag]
            store.write_index(index)
            return ["Untagged: %s" % reference.parse(by_tag).familiar()]
        if image.tags and not by_tag and len(image.tags) > 1 and not force:
            raise errors.Conflict(
                "unable to delete %s (must be forced): image is referenced in multiple "
                "repositories" % short_id(image.id), "use -f, or remove the tags one by one")
        users = containers_using(store, image.id)
        if users and not force:
            raise errors.Conflict(
                "unable to remove image %s: it is used by container %s" % (
                    name, short_id(users[0]["Id"])),
                "remove the container first (rootless-box rm), or use rmi -f")
        for tag_name in image.tags:
            del index["tags"][tag_name]
            out.append("Untagged: %s" % reference.parse(tag_name).familiar())
        if users:
            # Docker keeps a forced image that containers use, untagged; so do we.
            store.write_index(index)
            return out
        del index["images"][image.id]
        store.write_index(index)
        out.append("Deleted: %s" % image.id)
        collect_garbage(store, index)
    return out


def collect_garbage(store, index):
    """Remove blobs and layer directories no image references any more (under the lock)."""
    keep_blobs, keep_layers = set(), set()
    blobs_known = True
    for iid, rec in index["images"].items():
        blobs, layers, complete = _references(store, iid, rec)
        keep_blobs |= blobs
        keep_layers.update(layers)
        # an unreadable manifest hides which layer blobs its image needs: delete no blob
        # rather than one a live image uses
        blobs_known = blobs_known and complete
    for name in os.listdir(store.blobs) if blobs_known else ():
        if "sha256:" + name not in keep_blobs and not name.startswith("."):
            _unlink(os.path.join(store.blobs, name))
    for mapping in os.listdir(store.layers):
        for name in os.listdir(os.path.join(store.layers, mapping)):
            if "sha256:" + name not in keep_layers:
                store.remove(os.path.join(store.layers, mapping, name))


# -- inspect ------------------------------------------------------------------------------------

_CONFIG_DEFAULTS = (("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
                    ("AttachStdout", False), ("AttachStderr", False), ("Tty", False),
                    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
                    ("Image", ""), ("Volumes", None), ("WorkingDir", ""),
                    ("Entrypoint", None), ("OnBuild", None), ("Labels", None))


def docker_config(cfg):
    """An image config's `config` object with every field Docker's inspect shows."""
    result = {key: default for key, default in _CONFIG_DEFAULTS}
    result.update(cfg or {})
    return result


def inspect(image):
    cfg = image.config
    history = cfg.get("history") or []
    return {
        "Id": image.id,
        "RepoTags": [reference.parse(t).familiar() for t in image.tags],
        "RepoDigests": [familiar_digest(d) for d in image.record.get("digests") or ()],
        "Parent": image.record.get("parent", ""),
        "Comment": (history[-1].get("comment", "") if history else ""),
        "Created": cfg.get("created", ""),
        "DockerVersion": "",
        "Author": cfg.get("author", ""),
        "Config": docker_config(cfg.get("config")),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": image.record.get("size", 0),
        "GraphDriver": {"Name": "rootless-box",
                        "Data": {"LowerDirs": ":".join(image.layer_dirs())}},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": image.record.get("added", "")},
    }


def familiar_digest(text):
    name, _, digest = text.rpartition("@")
    try:
        return "%s@%s" % (reference.parse(name, default_tag=False).familiar_repository(), digest)
    except errors.UsageError:
        return text


def created_epoch(text):
    """RFC 3339 -> seconds since the epoch (for 'N minutes ago'). By arithmetic rather than
    time.strptime, which imports calendar, locale and re (~5 ms) and takes 0.1 ms a call:
    `ps` calls it three times per container."""
    try:
        # YYYY-MM-DDTHH:MM:SS, then a fraction, Z or an offset: the text is read as UTC
        if len(text) < 19 or text[4] != "-" or text[7] != "-" or text[10] not in "Tt " or \
                text[13] != ":" or text[16] != ":":
            return 0
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
        hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except (ValueError, TypeError):
        return 0
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and
            second < 61):
        return 0
    # days from 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil)
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return days * 86400 + hour * 3600 + minute * 60 + second


# -- what an image holds, for prune and system df (added; the functions above are unchanged) -----

def references(store, image_id, record):
    """(blob digests, diff IDs) that one image keeps alive: its config, its manifest, the layer
    blobs its manifest names, and its unpacked layers. When the manifest cannot be read its
    layer blobs are missing from the answer: use this to measure, not to decide deletions
    (collect_garbage keeps every blob in that case)."""
    blobs, layers, _complete = _references(store, image_id, record)
    return blobs, layers


def _references(store, image_id, record):
    blobs = {image_id, record["manifest"]}
    try:
        manifest = fastjson.loads(store.read_blob(record["manifest"]))
        blobs.update(layer["digest"] for layer in manifest.get("layers", []))
    except (errors.BoxError, ValueError, KeyError, TypeError, AttributeError):
        return blobs, list(record["layers"]), False
    return blobs, list(record["layers"]), True


def created_seconds(text):
    """created_epoch with the fraction of a second kept: images imported within one second
    must still order for `images --filter before=/since=`."""
    seconds = created_epoch(text)
    if seconds and text[19:20] == ".":
        digits = ""
        for ch in text[20:]:
            if not ch.isdigit():
                break
            digits += ch
        if digits:
            seconds += int(digits) / 10 ** len(digits)
    return seconds


def label_matches(labels, spec):
    """Docker's `label=KEY` / `label=KEY=VALUE` filter against a config's Labels."""
    key, eq, value = spec.partition("=")
    labels = labels if isinstance(labels, dict) else {}
    return key in labels and (not eq or labels[key] == value)


def readable_config(image):
    """An image's config, or {} when it cannot be read: prune and the listings must still
    deal with a broken image (remove it, list it) rather than stop at it."""
    try:
        config = image.config
    except (errors.BoxError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def labels_of(config):
    """The Labels of an image config (a dict, possibly empty)."""
    labels = (config.get("config") or {}).get("Labels") if isinstance(config, dict) else None
    return labels if isinstance(labels, dict) else {}
