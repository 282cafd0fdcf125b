"""Prune and disk usage: what `image prune`, `system prune` and `system df` remove and count.

Owns: choosing what is unused (dangling images, or every image no container was created from;
containers that are not running; volumes are ops/volumes.py's), Docker's prune filters
(`until=`, `label=`, `label!=`), removing those under the store lock, and measuring the store in
bytes (blobs, unpacked layers, container directories, volumes, the build cache) and each
layer's size.
Must not: print, ask for confirmation or exit (commands/ do); decide by itself which blobs and
layer directories are garbage (ops/images.py's collection does, it is called, not copied).
"""

import os
import stat
import time

from .. import errors, fastjson
from ..oci import reference
from ..oci.digest import is_hex
from . import containers as container_ops
from . import images as image_ops

PRUNE_FILTERS = ("until", "label", "label!")

# Go's time.ParseDuration units (`until=24h`, `until=1h30m`, `until=90s`).
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                   "m": 60.0, "h": 3600.0}


# -- measuring ----------------------------------------------------------------------------------

def tree_size(path):
    """Bytes under path that this user can reach: files and symlinks by their apparent size,
    hard links once (as Docker's directory size counts them). Directories owned by subordinate
    ids may be unreadable to the user: what lies behind them is not counted; never an error."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total, seen, pending = 0, set(), [path]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:  # vanished meanwhile
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(entry.path)
                        continue
                    if st.st_nlink > 1:
                        if (st.st_dev, st.st_ino) in seen:
                            continue
                        seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        except OSError:  # PermissionError under subuid owners, or removed meanwhile
            continue
    return total


def _layer_dirs(store, diff_id):
    """Every unpacked copy of a layer: one per id mapping the store has seen."""
    try:
        mappings = os.listdir(store.layers)
    except OSError:
        return []
    hexpart = diff_id.partition(":")[2]
    return [os.path.join(store.layers, m, hexpart) for m in mappings
            if os.path.isdir(os.path.join(store.layers, m, hexpart))]


def layer_sizes(store, image):
    """The uncompressed size of each layer of image, bottom first (what `history` shows).
    The cheapest source that knows wins: sizes the index recorded; for a one-layer image the
    image's size (import records the uncompressed tar's); an uncompressed blob's length; the
    unpacked directory; at worst the compressed blob's length (never decompress to count)."""
    record, diff_ids = image.record, image.diff_ids
    recorded = record.get("layer_sizes")
    if isinstance(recorded, list) and len(recorded) == len(diff_ids):
        return [int(s or 0) for s in recorded]
    if len(diff_ids) == 1 and isinstance(record.get("size"), int):
        return [record["size"]]
    try:
        descriptors = fastjson.loads(store.read_blob(record["manifest"]))["layers"]
    except (errors.BoxError, ValueError, KeyError, TypeError):
        descriptors = []
    sizes = []
    for i, diff_id in enumerate(diff_ids):
        desc = descriptors[i] if i < len(descriptors) and isinstance(descriptors[i], dict) \
            else {}
        # OCI `...layer.v1.tar` and Docker's `...rootfs.diff.tar` are uncompressed
        if str(desc.get("mediaType", "")).endswith(".tar") and isinstance(desc.get("size"), int):
            sizes.append(desc["size"])
            continue
        unpacked = _layer_dirs(store, diff_id)
        if unpacked:
            sizes.append(tree_size(unpacked[0]))
        else:
            size = desc.get("size")
            sizes.append(size if isinstance(size, int) else 0)
    return sizes


def _blob_sizes(store):
    """digest -> bytes, for every blob file (not the atomic writes' temporaries)."""
    sizes = {}
    try:
        entries = os.scandir(store.blobs)
    except OSError:
        return sizes
    with entries:
        for entry in entries:
            if is_hex(entry.name, 64):
                try:
                    sizes["sha256:" + entry.name] = entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass
    return sizes


def _layer_sizes_on_disk(store):
    """diff ID -> bytes of its unpacked directories (summed over the id mappings)."""
    sizes = {}
    try:
        mappings = os.listdir(store.layers)
    except OSError:
        return sizes
    for mapping in mappings:
        try:
            names = os.listdir(os.path.join(store.layers, mapping))
        except OSError:
            continue
        for name in names:
            diff_id = "sha256:" + name
            sizes[diff_id] = sizes.get(diff_id, 0) + tree_size(
                os.path.join(store.layers, mapping, name))
    return sizes


def _is_running(record):
    return record.get("State", {}).get("Status") == "running"


def disk_usage(store):
    """What `system df` reports, measured from the store now.

    Images: every blob and unpacked layer directory on disk counts (orphans too: they are
    reclaimable); an image's size is that of its config, manifest, layer blobs and unpacked
    layers; shared is the part other images use too; what the images of existing containers
    use is not reclaimable. Containers: their directories (upper dir or rootfs copy, /etc
    files); a running one's is not reclaimable. Volumes: their directories; one a container
    mounts is not reclaimable. Returns plain dicts (the command formats them)."""
    records = container_ops.all_records(store)
    containers_of = {}
    for record in records:
        containers_of[record.get("Image")] = containers_of.get(record.get("Image"), 0) + 1
    blob_sizes, layer_sizes_ = _blob_sizes(store), _layer_sizes_on_disk(store)
    holdings, holders = {}, {}
    for image in image_ops.list_images(store):
        blobs, diff_ids = image_ops.references(store, image.id, image.record)
        held = {("blob", d) for d in blobs if d in blob_sizes} | \
            {("layer", d) for d in diff_ids if d in layer_sizes_}
        holdings[image.id] = (image, held)
        for key in held:
            holders[key] = holders.get(key, 0) + 1

    def size_of(key):
        return blob_sizes[key[1]] if key[0] == "blob" else layer_sizes_[key[1]]

    images, in_use = [], set()
    for image, held in holdings.values():
        size = sum(size_of(k) for k in held)
        shared = sum(size_of(k) for k in held if holders[k] > 1)
        users = containers_of.get(image.id, 0)
        if users:
            in_use |= held
        images.append({"image": image, "size": size, "shared": shared, "unique": size - shared,
                       "containers": users})
    images_total = sum(blob_sizes.values()) + sum(layer_sizes_.values())
    container_rows = []
    for record in records:
        container_rows.append({"record": record, "running": _is_running(record),
                               "size": tree_size(store.container_dir(record["Id"]))})
    from . import volumes as volume_ops
    volume_users = volume_ops.users(store, records)
    volumes = [{"name": name, "links": len(volume_users.get(name, ())),
                "size": tree_size(volume_ops.mountpoint(store, name))}
               for name in volume_ops.names(store)]
    return {
        "images": images,
        "images_total": images_total,
        "images_reclaimable": images_total - sum(size_of(k) for k in in_use),
        "containers": container_rows,
        "volumes": volumes,
        "build_cache": build_cache_usage(store),
    }


def _cache_mounts(store):
    """-> (their directory, the RUN --mount=type=cache directories' names, sorted)."""
    from .buildsteps import CACHE_MOUNTS
    root = os.path.join(store.root, CACHE_MOUNTS)
    try:
        return root, sorted(n for n in os.listdir(root) if not n.endswith(".lock"))
    except FileNotFoundError:
        return root, []


def build_cache_usage(store):
    """The build cache `builder prune` removes, as BuildKit's records: the kept build
    contexts (`source.local`, ops/contextcache.py) and the RUN --mount=type=cache
    directories (`exec.cachemount`). [{"id", "type", "description", "size", "in_use",
    "created", "last_used"}], least recently used first (Docker's order). One in use (a
    build holds it) is not reclaimable."""
    import fcntl
    from . import contextcache
    records = [{"id": kept["name"], "type": "source.local",
                "description": "local source for context", "size": tree_size(kept["path"]),
                "in_use": kept["in_use"], "created": kept["created"],
                "last_used": kept["last_used"]} for kept in contextcache.usage(store)]
    root, names = _cache_mounts(store)
    for name in names:
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue  # removed meanwhile
        in_use, created = False, st.st_ctime
        try:
            fd = os.open(path + ".lock", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = None
        if fd is not None:
            try:
                created = os.fstat(fd).st_ctime  # the lock file is made with the cache
                # a step holds it while it runs (shared or exclusive): taken here without
                # waiting and let go at once, it tells
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                in_use = True
            finally:
                os.close(fd)
        records.append({"id": name, "type": "exec.cachemount", "description": "cached mount",
                        "size": tree_size(path), "in_use": in_use, "created": created,
                        "last_used": st.st_mtime})
    records.sort(key=lambda r: (r["last_used"], r["id"]))
    return records


# -- filters ------------------------------------------------------------------------------------

def parse_duration(text):
    """Go's time.ParseDuration: `1h30m`, `90s`, `1.5h`, `-2m` -> seconds; None if not one."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    total, i = 0.0, 0
    if not body:
        return None
    while i < len(body):
        start = i
        while i < len(body) and (body[i].isdigit() or body[i] == "."):
            i += 1
        number = body[start:i]
        unit_start = i
        while i < len(body) and not (body[i].isdigit() or body[i] == "."):
            i += 1
        unit = body[unit_start:i]
        if not number or number == "." or number.count(".") > 1 or \
                unit not in _DURATION_UNITS:
            return None
        total += float(number) * _DURATION_UNITS[unit]
    return -total if text.startswith("-") else total


def parse_until(text, now=None):
    """Docker's `until=` value -> seconds since the epoch: a Go duration back from now
    (`24h`), an RFC 3339 date or time (a time without zone is local, as Docker reads it), or
    a Unix time (`1700000000`, `1700000000.5`)."""
    import datetime
    now = time.time() if now is None else now
    value = text.strip()
    duration = parse_duration(value)
    if duration is not None:
        return now - duration
    try:
        return float(value)
    except ValueError:
        pass
    iso = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    # fromisoformat takes at most 6 digits of fraction; RFC 3339 allows nanoseconds
    head, dot, rest = iso.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        iso = head + "." + rest[:min(digits, 6)] + rest[digits:]
    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        raise errors.UsageError(
            "invalid filter 'until=%s': not a duration, date or Unix time" % text,
            "use a duration such as 24h or 1h30m, a date such as 2024-01-31T12:00:00Z, or "
            "a Unix time") from None


def image_filter(filters, now=None):
    """Docker's prune filters ({key: [values]}, keys from PRUNE_FILTERS) -> a predicate over
    (created seconds, labels). `until`: created no later than that time; `label`: every
    given label matches; `label!`: not all of them match (moby's matchLabels). Bad values
    raise here, before anything is asked or removed."""
    untils = filters.get("until", [])
    if len(untils) > 1:
        raise errors.UsageError("more than one until filter specified",
                                "give --filter until=... once")
    until = parse_until(untils[0], now) if untils else None
    wanted, unwanted = filters.get("label", []), filters.get("label!", [])

    def accepts(created, labels):
        if until is not None and created > until:
            return False
        if not all(image_ops.label_matches(labels, spec) for spec in wanted):
            return False
        return not (unwanted and all(image_ops.label_matches(labels, spec)
                                     for spec in unwanted))
    return accepts


# -- removing -----------------------------------------------------------------------------------

def _measure_holdings(store, victims):
    """path -> bytes of every blob and layer directory the victims hold. After the garbage
    collection, those paths that are gone are the space reclaimed (a layer another image
    still uses stays, and is not counted)."""
    paths = {}
    for image in victims:
        blobs, diff_ids = image_ops.references(store, image.id, image.record)
        for digest in blobs:
            path = store.blob_path(digest)
            if path not in paths:
                paths[path] = tree_size(path)
        for diff_id in diff_ids:
            for path in _layer_dirs(store, diff_id):
                if path not in paths:
                    paths[path] = tree_size(path)
    return paths


def prune_images(store, all_images=False, accepts=None):
    """Remove the dangling (untagged) images, or with all_images every image, that no
    container (running or not) was created from and that accepts(created, labels) lets
    through; then every blob and layer directory nothing references any more.
    Returns {"items": [("untagged", familiar name) | ("deleted", image ID)], "reclaimed": n}."""
    result = {"items": [], "reclaimed": 0}
    with store.lock():
        used = {record.get("Image") for record in container_ops.all_records(store)}
        victims = []
        for image in image_ops.list_images(store):
            if image.id in used or (image.tags and not all_images):
                continue
            if accepts is not None:
                config = image_ops.readable_config(image)
                created = image_ops.created_seconds(config.get("created") or "")
                if not accepts(created, image_ops.labels_of(config)):
                    continue
            victims.append(image)
        if not victims:
            return result
        holdings = _measure_holdings(store, victims)
        index = store.read_index()
        for image in victims:
            for tag in image.tags:
                index["tags"].pop(tag, None)
                result["items"].append(("untagged", reference.parse(tag).familiar()))
            index["images"].pop(image.id, None)
            result["items"].append(("deleted", image.id))
        store.write_index(index)
        image_ops.collect_garbage(store, index)
        result["reclaimed"] = sum(size for path, size in holdings.items()
                                  if not os.path.lexists(path))
    return result


def prune_build_cache(store, everything=False):
    """`builder prune`: the RUN --mount=type=cache directories no build step holds (each
    step holds its `.lock`; one in use is left, as BuildKit keeps a cache in use), the
    dangling images builds leave, and with everything the step cache itself (the next build
    runs every step again). Returns {"deleted": [cache ids, image IDs], "reclaimed": n}."""
    import fcntl
    from .buildsteps import CACHE_FILE, KNOWN_FILE
    result = {"deleted": [], "reclaimed": 0}
    with store.lock():
        root, names = _cache_mounts(store)
        for name in names:
            path = os.path.join(root, name)
            fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a build step uses it now
                size = tree_size(path)
                store.remove(path)
                if not os.path.lexists(path):
                    result["deleted"].append(name)
                    result["reclaimed"] += size
            finally:
                os.close(fd)  # the lock file stays: a step waiting on it keeps its lock
        # the build contexts the service keeps unpacked (a build holding one keeps it)
        from . import contextcache
        for name, size in contextcache.prune(store):
            result["deleted"].append(name)
            result["reclaimed"] += size
        if everything:
            for name in (CACHE_FILE, KNOWN_FILE):
                path = os.path.join(store.root, name)
                try:
                    size = os.lstat(path).st_size
                    os.unlink(path)
                except FileNotFoundError:
                    continue
                result["reclaimed"] += size
        images = prune_images(store)
    result["deleted"] += [item for kind, item in images["items"] if kind == "deleted"]
    result["reclaimed"] += images["reclaimed"]
    return result


def prune_containers(store, accepts=None):
    """Remove every stopped container (created or exited: not running, paused or
    restarting, nor being started by a `run` or `start` still at it) that accepts(created,
    labels) lets through (Docker's `container prune`).
    Returns {"deleted": [container IDs], "reclaimed": bytes}."""
    from .psfilter import LIVE_STATES, labels
    result = {"deleted": [], "reclaimed": 0}
    cache = {}
    with store.lock():
        for record in container_ops.all_records(store):
            state = record.get("State", {})
            if state.get("Status") in LIVE_STATES or container_ops.being_started(state):
                continue
            if accepts is not None and not accepts(
                    image_ops.created_seconds(record.get("Created") or ""),
                    labels(store, record, cache)):
                continue
            size = tree_size(store.container_dir(record["Id"]))
            container_ops.remove(store, record)
            result["deleted"].append(record["Id"])
            result["reclaimed"] += size
    return result


def prune_volumes(store):
    """`system prune --volumes`: the anonymous volumes no container mounts (Docker 23+; named
    ones go with `volume prune -a`). Returns {"deleted": [names], "reclaimed": n}."""
    from .volumes import prune
    return prune(store)


def prune_system(store, all_images=False, volumes=False):
    """`system prune`: stopped containers first (so their images and volumes become unused),
    then unused volumes when asked, then images, then the build cache (`builder prune`, with
    all_images `builder prune -a`: Docker's CLI passes its -a on), all under one hold of the
    lock."""
    with store.lock():
        return {"containers": prune_containers(store),
                "volumes": prune_volumes(store) if volumes else None,
                "images": prune_images(store, all_images),
                "build_cache": prune_build_cache(store, everything=all_images)}
