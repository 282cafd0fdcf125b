"""Volumes as objects: the store's model of a volume, Docker's JSON for it, and its life.

Owns: a volume's metadata (`volumes/<name>/volume.json` beside its `_data`: Name, Driver,
Labels, Options, CreatedAt), Docker's names and rules (the local driver's options
`type=tmpfs|none`, `device=`, `o=`; an anonymous volume is one with the label
`com.docker.volume.anonymous`, as Docker 23+ marks them), Docker's inspect JSON (the one place
that makes it: `volume inspect`, `volume ls --format` and the Engine API of issue 13 all use
`inspect_json`), `volume ls` filters, which containers use a volume, create/remove/prune under
the store lock, and what a container's mount of a volume becomes (`attach`: a directory, a
host directory for `type=none,o=bind`, a tmpfs for `type=tmpfs`).
A volume directory made before this model (no volume.json) is a named volume with no labels
and no options, created when its directory was.
Must not: print, or enter namespaces (a volume's files are removed by store.remove, which
hands subordinate-owned trees to ops).
"""

import os
import time

from .. import errors, fastjson
from . import events

DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
META = "volume.json"
LOCAL_OPTIONS = ("type", "device", "o")
VOLUME_FILTERS = ("dangling", "driver", "label", "name")  # volume ls; prune: label, label!
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _NAME_FIRST | frozenset("_.-")


def validate_name(name):
    """Docker's local driver: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (two characters at least)."""
    if len(name) < 2 or name[0] not in _NAME_FIRST or not set(name) <= _NAME_CHARS:
        raise errors.UsageError(
            'create %s: "%s" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path" % (name, name))
    return name


def random_name():
    """Docker's name for an anonymous or unnamed volume: 64 hex digits."""
    return os.urandom(32).hex()


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_options(driver, options):
    """The local driver's options as moby's volume/local validates them, narrowed to what a
    rootless local driver can mount: a tmpfs, or a bind of a host directory."""
    if driver != DRIVER:
        raise errors.UsageError('error looking up volume plugin %s: plugin "%s" not found'
                                % (driver, driver), "rootless-box has the local driver only")
    options = options or {}
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise errors.UsageError('invalid option: "%s"' % key,
                                    "the local driver takes type, device and o")
    for key, needs in (("device", ("type",)), ("type", ("device",)), ("o", ("device", "type"))):
        if key in options:
            for need in needs:
                if need not in options:
                    raise errors.UsageError('missing required option: "%s"' % need)
    kind = options.get("type")
    if kind is None:
        return
    mount_opts = [o for o in options.get("o", "").split(",") if o]
    if kind == "tmpfs":
        return
    if kind == "none" and "bind" in mount_opts:
        if not os.path.isabs(options["device"]):
            raise errors.UsageError("invalid device %r: a bind needs an absolute host path"
                                    % options["device"])
        return
    raise errors.UsageError(
        "unsupported volume options type=%s,o=%s" % (kind, options.get("o", "")),
        "a rootless local volume is type=tmpfs (o=size=...,mode=...) or "
        "type=none,o=bind,device=/host/dir")


# -- the store's records -------------------------------------------------------------------------

def _dir(store, name):
    return os.path.join(store.volumes, name)


def mountpoint(store, name):
    return os.path.join(store.volumes, name, "_data")


def _read(store, name):
    """A volume's metadata, or None when there is no such volume."""
    path = _dir(store, name)
    try:
        with open(os.path.join(path, META), "rb") as f:
            meta = fastjson.loads(f.read())
        if isinstance(meta, dict):
            meta["Name"] = name
            return meta
    except (OSError, ValueError):
        pass  # none, or damaged: read as a volume from before volume.json
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isdir(path):
        return None
    # a volume made before volume.json existed (a -v NAME of an earlier version)
    return {"Name": name, "Driver": DRIVER, "Labels": None, "Options": None,
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))}


def names(store):
    try:
        return sorted(n for n in os.listdir(store.volumes)
                      if os.path.isdir(os.path.join(store.volumes, n)))
    except OSError:
        return []


def _lookup(store, name):
    """_read for a name typed by a user: never a path out of the volumes directory."""
    return _read(store, name) if name and "/" not in name and name not in (".", "..") else None


def get(store, name):
    meta = _lookup(store, name)
    if meta is None:
        raise errors.NotFound("no such volume: %s" % name,
                              "list volumes with: rootless-box volume ls")
    return meta


def list_volumes(store):
    return [m for m in (_read(store, n) for n in names(store)) if m is not None]


def is_anonymous(meta):
    return ANONYMOUS_LABEL in (meta.get("Labels") or {})


def inspect_json(store, meta):
    """Docker's volume object (GET /volumes/NAME, `volume inspect`)."""
    return {"CreatedAt": meta.get("CreatedAt", ""), "Driver": meta.get("Driver", DRIVER),
            "Labels": meta.get("Labels"), "Mountpoint": mountpoint(store, meta["Name"]),
            "Name": meta["Name"], "Options": meta.get("Options"), "Scope": "local"}


def create(store, name=None, driver=DRIVER, labels=None, options=None):
    """`volume create`: made once; an existing name is returned as it is (Docker's local
    driver). labels/options None (not {}) is a volume made by a container's mount, as
    Docker shows those. -> metadata"""
    check_options(driver, options)
    if not name:
        # moby marks a volume made without a name anonymous, so a plain prune takes it
        labels = dict(labels or {}, **{ANONYMOUS_LABEL: ""})
    name = validate_name(name) if name else random_name()
    with store.lock():
        meta = _read(store, name)
        if meta is None:
            meta = {"Name": name, "Driver": driver, "Labels": labels, "Options": options,
                    "CreatedAt": _now()}
            _write(store, meta)
    events.volume(store, name, "create")  # dockerd reports it for an existing name too
    return meta


def _write(store, meta):
    from ..store import atomic_write
    path = _dir(store, meta["Name"])
    os.makedirs(os.path.join(path, "_data"), 0o755, exist_ok=True)
    atomic_write(os.path.join(path, META), fastjson.dumps(meta))


def users(store, records=None):
    """volume name -> [IDs of the containers (any state) whose mounts use it]."""
    if records is None:
        from .containers import all_records
        records = all_records(store)
    found = {}
    for record in records:
        for mount in record.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                found.setdefault(mount["Name"], []).append(record["Id"])
    return found


def remove(store, name, force=False):
    """`volume rm`: refused while any container uses it (Docker: even with -f, which only
    forgives a missing volume). -> True when removed."""
    with store.lock():
        if _lookup(store, name) is None:
            if force:
                return False
            get(store, name)
        refs = users(store).get(name)
        if refs:
            raise errors.Conflict("remove %s: volume is in use - [%s]" % (name, " ".join(refs)),
                                  "remove the containers that use it first (rootless-box "
                                  "rm), then the volume")
        store.remove(_dir(store, name))
    events.volume(store, name, "destroy")
    return True


def discard_anonymous(store, mounts, removed=None):
    """Remove the anonymous volumes among a container's record Mounts that no container but
    `removed` (the ID of the one going) uses (`rm -v`, `run --rm`): a --volumes-from user
    keeps them."""
    wanted = [m["Name"] for m in mounts
              if m.get("Type") == "volume" and m.get("Anonymous") and m.get("Name")]
    if not wanted:
        return
    with store.lock():
        used = users(store)
        for name in wanted:
            if not [c for c in used.get(name, ()) if c != removed]:
                store.remove(_dir(store, name))
                events.volume(store, name, "destroy")


# -- filters and prune ---------------------------------------------------------------------------

def check_filters(filters):
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise errors.UsageError("invalid filter 'dangling=%s'" % value,
                                    "use dangling=true or dangling=false")


def matcher(store, filters, records=None):
    """Docker's `volume ls --filter` (moby volumes/service): dangling, driver, label, name
    (an unanchored regular expression, as filters.Match); prune's label!. -> accepts(meta)"""
    from .images import label_matches
    check_filters(filters)
    used = users(store, records) if "dangling" in filters else {}

    def accepts(meta):
        if "dangling" in filters:
            want = filters["dangling"][-1].lower() in ("true", "1")
            if bool(used.get(meta["Name"])) == want:
                return False
        if "driver" in filters and meta.get("Driver", DRIVER) not in filters["driver"]:
            return False
        if "name" in filters and not any(_search(p, meta["Name"]) for p in filters["name"]):
            return False
        labels = meta.get("Labels") or {}
        if not all(label_matches(labels, spec) for spec in filters.get("label", [])):
            return False
        # label! (prune's): out when every one of them matches (moby's MatchKVList)
        unwanted = filters.get("label!", [])
        if unwanted and all(label_matches(labels, spec) for spec in unwanted):
            return False
        return True
    return accepts


def _search(pattern, text):
    import re
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def prune(store, all_volumes=False, filters=None):
    """`volume prune`: volumes no container uses; without all_volumes only anonymous ones
    (Docker 23+). -> {"deleted": [names], "reclaimed": bytes}"""
    from .prune import tree_size
    filters = dict(filters or {})
    result = {"deleted": [], "reclaimed": 0}
    with store.lock():
        accepts = matcher(store, filters)
        used = users(store)
        for meta in list_volumes(store):
            if used.get(meta["Name"]) or not accepts(meta):
                continue
            if not all_volumes and not is_anonymous(meta):
                continue
            path = _dir(store, meta["Name"])
            result["reclaimed"] += tree_size(os.path.join(path, "_data"))
            store.remove(path)
            result["deleted"].append(meta["Name"])
            events.volume(store, meta["Name"], "destroy")
    events.emit(store, "volume", "prune", "", {"reclaimed": str(result["reclaimed"])})
    return result


# -- a container's mounts ------------------------------------------------------------------------

def attach(store, mounts, made):
    """Under the store lock, at create: every volume mount's volume made when missing (an
    anonymous one labelled as Docker labels them), and the mount's run spec entry turned into
    what the volume is: its _data directory, the host directory of a type=none,o=bind
    volume, or a tmpfs with the volume's o= options. made: a list that gets the names of the
    volumes made, as they are made (for undoing a failed create)."""
    for m in mounts:
        if m["type"] != "volume":
            continue
        name = m["name"]
        meta = _read(store, name)
        if meta is None:
            labels = {ANONYMOUS_LABEL: ""} if m.get("anonymous") else m.get("labels")
            options = m.get("volume_options")
            check_options(m.get("driver") or DRIVER, options)
            meta = {"Name": name, "Driver": DRIVER, "Labels": labels, "Options": options,
                    "CreatedAt": _now()}
            made.append(name)
            _write(store, meta)
            events.volume(store, name, "create")
        options = meta.get("Options") or {}
        if options.get("type") == "tmpfs":
            if m.get("subpath"):
                raise errors.UsageError("cannot mount a subpath of volume %s: it is a tmpfs, "
                                        "empty at each mount" % name)
            m.update({"type": "tmpfs", "copy": False,
                      "options": [o for o in options.get("o", "").split(",") if o]})
            if m.get("readonly"):
                m["options"].append("ro")
            m.pop("source", None)
        elif options.get("type") == "none":
            if not os.path.isdir(options["device"]):
                raise errors.NotFound(
                    "error while mounting volume '%s': failed to mount local volume: mount "
                    "%s: no such file or directory" % (mountpoint(store, name),
                                                       options["device"]),
                    "create the directory, or recreate the volume with another device")
            m.update({"source": options["device"], "copy": False})
        else:
            m["source"] = mountpoint(store, name)


def forget(store, made):
    for name in made:
        store.remove(_dir(store, name))
        events.volume(store, name, "destroy")
