"""What the container listings know about a container beyond its record: Docker's `ps`
filters, a container's labels, its sizes.

Owns: parsing and applying `ps --filter` (status, name, id, ancestor, label, exited, before,
since, volume, health) as moby's daemon/list.go does, the labels a container carries (its own, else its
image's: Docker copies the image's labels into the container's config), and the writable
layer's size (`ps -s`).
Must not: print, change the store, or format anything (commands/ps.py does).
"""

import os

from .. import errors
from . import containers as container_ops
from . import images as image_ops

PS_FILTERS = ("status", "name", "id", "ancestor", "label", "exited", "before", "since",
              "volume", "health")
HEALTH = ("starting", "healthy", "unhealthy", "none")
# live (Docker's State.Running is true): plain ps lists them, prune keeps them
LIVE_STATES = container_ops.LIVE_STATES
STATES = ("created", "running", "paused", "restarting", "exited", "removing", "dead")


def _search(pattern, text):
    """moby's filters.Match: an unanchored regular expression search; a bad pattern matches
    nothing (the daemon ignores the compile error there)."""
    import re
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def labels(store, record, cache=None):
    """The container's labels: Config.Labels when the record has them, else its image's."""
    own = (record.get("Config") or {}).get("Labels")
    if isinstance(own, dict):
        return own
    cache = {} if cache is None else cache
    image_id = record.get("Image") or ""
    if image_id not in cache:
        try:
            image = image_ops.resolve(store, image_id)
            cache[image_id] = image_ops.labels_of(image_ops.readable_config(image))
        except errors.BoxError:
            cache[image_id] = {}
    return cache[image_id]


def rw_size(store, record):
    """Bytes in the writable layer: the upper dir, or the copy driver's whole rootfs."""
    from .prune import tree_size
    cdir = store.container_dir(record["Id"])
    upper = os.path.join(cdir, "upper")
    return tree_size(upper if os.path.isdir(upper) else os.path.join(cdir, "rootfs"))


def image_size(store, record, cache=None):
    cache = {} if cache is None else cache
    image_id = record.get("Image") or ""
    if image_id not in cache:
        try:
            cache[image_id] = int(image_ops.resolve(store, image_id).record.get("size", 0))
        except errors.BoxError:
            cache[image_id] = 0
    return cache[image_id]


def check_values(filters):
    """Bad status= and exited= values fail before anything is listed (moby: invalid filter)."""
    for value in filters.get("status", []):
        if value not in STATES:
            raise errors.UsageError("invalid filter 'status=%s'" % value,
                                    "status is one of: %s" % ", ".join(STATES))
    for value in filters.get("health", []):
        if value not in HEALTH:
            raise errors.UsageError("invalid filter 'health=%s'" % value,
                                    "health is one of: %s" % ", ".join(HEALTH))
    codes = []
    for value in filters.get("exited", []):
        try:
            codes.append(int(value))
        except ValueError:
            raise errors.UsageError("invalid filter 'exited=%s'" % value,
                                    "exited takes an exit code, e.g. exited=0") from None
    return codes


def _children(store, ancestor):
    """ancestor and every image built on it (its layers a proper prefix of theirs), as
    moby's ancestor filter takes an image's children too."""
    ids = {ancestor.id}
    base = list(ancestor.diff_ids)
    if not base:
        return ids
    for image in image_ops.list_images(store):
        if len(image.diff_ids) > len(base) and list(image.diff_ids[:len(base)]) == base:
            ids.add(image.id)
    return ids


def build(store, filters, records):
    """{key: [values]} -> a predicate over records (newest first in `records`, which before=
    and since= need). Several values of one key are OR'ed, different keys AND'ed."""
    codes = check_values(filters)
    statuses = set(filters.get("status", []))
    names, ids = filters.get("name", []), filters.get("id", [])
    wanted_labels = filters.get("label", [])
    volumes = set(filters.get("volume", []))
    ancestors = None
    if "ancestor" in filters:
        ancestors = set()
        for value in filters["ancestor"]:
            try:
                ancestors |= _children(store, image_ops.resolve(store, value))
            except errors.BoxError:
                continue  # moby logs "no such image" and filters on the others
    bounds = {}
    for key in ("before", "since"):
        for value in filters.get(key, []):
            bounds[key] = container_ops.find(store, value)["Id"]
    order = {r["Id"]: i for i, r in enumerate(records)}  # 0 = newest
    cache = {}

    def keep(record):
        state = record.get("State") or {}
        if statuses and state.get("Status") not in statuses:
            return False
        if names and not any(_search(p, record["Name"]) or _search(p, "/" + record["Name"])
                             for p in names):
            return False
        if ids and not any(_search(p, record["Id"]) for p in ids):
            return False
        if codes and not (state.get("Status") == "exited" and state.get("StartedAt") and
                          state.get("ExitCode") in codes):
            return False
        if ancestors is not None and record.get("Image") not in ancestors:
            return False
        if "health" in filters and ((state.get("Health") or {}).get("Status") or "none") \
                not in filters["health"]:
            return False
        position = order.get(record["Id"], 0)
        if "before" in bounds and not position > order.get(bounds["before"], -1):
            return False
        if "since" in bounds and not position < order.get(bounds["since"], len(order)):
            return False
        if wanted_labels:
            have = labels(store, record, cache)
            if not all(image_ops.label_matches(have, spec) for spec in wanted_labels):
                return False
        if volumes and not any(m.get("Name") in volumes or m.get("Destination") in volumes
                               for m in record.get("Mounts") or []):
            return False  # moby: a volume's name or a mount's destination
        return True
    return keep
