"""The events journal: what `docker events` shows, with no daemon to hear it.

Owns: appending one event per line (Docker's event message as JSON: Type, Action, Actor {ID,
Attributes}, scope, time, timeNano, and for containers and images the legacy status/id/from)
to `events.log` under the data root, by every command that does something Docker reports;
keeping it bounded (past MAX_BYTES it becomes events.log.1, replacing the older one, under a
lock so two writers never both rotate); and reading both back in order, from a time on,
following new lines as they are written (`events`).
Safe under concurrent writers: each event is one write(2) of one line to a file opened
O_APPEND, which the kernel places at the end whole.
Must not: fail its caller (a journal that cannot be written loses the event, never the
command), print, or import json/re (run writes here).
"""

import os
import time

from .. import fastjson

MAX_BYTES = 4 << 20
NAME = "events.log"


def _root(store):
    return getattr(store, "root", store)


def emit(store, kind, action, actor, attributes=None):
    """Append one event. kind: container, image, ...; actor: the object's ID."""
    ns = time.time_ns()
    event = {"Type": kind, "Action": action,
             "Actor": {"ID": actor, "Attributes": dict(attributes or {})},
             "scope": "local", "time": ns // 1000000000, "timeNano": ns}
    if kind in ("container", "image"):
        event.update(status=action, id=actor)
        if kind == "container" and (attributes or {}).get("image"):
            event["from"] = attributes["image"]
    path = os.path.join(_root(store), NAME)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size > MAX_BYTES:
                _rotate(path)
            os.write(fd, fastjson.dumps(event) + b"\n")
        finally:
            os.close(fd)
    except OSError:
        pass


def container(store, record, action, **extra):
    """A container event with Docker's attributes: image, name, its labels, extra. Its
    volumes' mount events and its user networks' connect events come before its start,
    their unmount and disconnect events after its die, as dockerd reports them."""
    if not record:
        return
    if action == "start":
        _volume_mounts(store, record, "mount")
        _network_links(store, record, "connect")
    attributes = dict((record.get("Config") or {}).get("Labels") or {})
    attributes.update(image=record.get("ImageName") or (record.get("Config") or {}).get(
        "Image") or record.get("Image", ""), name=record.get("Name", ""))
    attributes.update({k: str(v) for k, v in extra.items()})
    emit(store, "container", action, record.get("Id", ""), attributes)
    if action == "die":
        _volume_mounts(store, record, "unmount")
        _network_links(store, record, "disconnect")


def volume(store, name, action, **extra):
    """A volume event (create, destroy, mount, unmount): Actor ID the volume's name,
    driver local, as dockerd's."""
    emit(store, "volume", action, name, dict({"driver": "local"},
                                             **{k: str(v) for k, v in extra.items()}))


def _volume_mounts(store, record, action):
    for mount in record.get("Mounts") or ():
        if mount.get("Type") != "volume" or not mount.get("Name"):
            continue
        if action == "mount":
            volume(store, mount["Name"], action, container=record.get("Id", ""),
                   destination=mount.get("Destination", ""), propagation="",
                   **{"read/write": "true" if mount.get("RW", True) else "false"})
        else:
            volume(store, mount["Name"], action, container=record.get("Id", ""))


def _network_links(store, record, action):
    # the record names only user networks (the predefined ones are not endpoints here)
    for name, entry in ((record.get("NetworkSettings") or {}).get("Networks") or {}).items():
        if entry.get("NetworkID"):
            network(store, entry["NetworkID"], action, name=name, type="bridge",
                    container=record.get("Id", ""))


def network(store, network_id, action, **extra):
    """A network event (create, connect, disconnect, destroy): Actor ID the network's ID;
    extra: name, type (the driver), container (connect and disconnect), as dockerd's
    attributes."""
    emit(store, "network", action, network_id, {k: str(v) for k, v in extra.items()})


def images(store, action, image_ids):
    """Image events of load, import and save: Actor ID the image's ID, name too, as
    dockerd's image exporter reports them."""
    for image_id in dict.fromkeys(image_ids):
        emit(store, "image", action, image_id, {"name": image_id})


def _rotate(path):
    import fcntl
    lock = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_size > MAX_BYTES:  # not rotated by another writer meanwhile
                os.replace(path, path + ".1")
        except OSError:
            pass
    finally:
        os.close(lock)


def _lines(path, offset=0):
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1  # a line being written is read whole next time
    return data[:end].splitlines(), offset + end


def _parse(line):
    try:
        event = fastjson.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) and "timeNano" in event else None


def mark(store):
    """Where the journal ends now, for read(after=): a reader of what comes after need
    not parse the megabytes before."""
    try:
        st = os.stat(os.path.join(_root(store), NAME))
    except OSError:
        return None
    return st.st_ino, st.st_size


def read(store, since=None, until=None, follow=False, stop=None, after=None):
    """The journal's events with since <= timeNano <= until (ns), oldest first; with follow,
    then every new one as it is written, until `until` passes or stop() says so. after:
    mark()'s, to read only what was written after it (all, if the journal rotated since).
    Yields event dicts."""
    path = os.path.join(_root(store), NAME)
    try:
        inode = os.stat(path).st_ino
    except OSError:
        inode = None
    start = after[1] if after and after[0] == inode else None
    for line in _lines(path + ".1")[0] if start is None else ():
        event = _parse(line)
        if event and (since is None or event["timeNano"] >= since) and \
                (until is None or event["timeNano"] <= until):
            yield event
    lines, offset = _lines(path, start or 0)
    while True:
        for line in lines:
            event = _parse(line)
            if not event or (since is not None and event["timeNano"] < since):
                continue
            if until is not None and event["timeNano"] > until:
                return
            yield event
        if not follow or (until is not None and time.time_ns() > until) or \
                (stop is not None and stop()):
            return
        time.sleep(0.1)  # a journal file: polled, as `logs -f` polls the log
        try:
            now_inode = os.stat(path).st_ino
        except OSError:
            now_inode = None
        if now_inode != inode:  # rotated: the rest of the old file, then the new one
            rest, _ = _lines(path + ".1", offset)
            lines = rest
            inode, offset = now_inode, 0
            more, offset = _lines(path, 0)
            lines += more
        else:
            lines, offset = _lines(path, offset)


FILTERS = ("container", "event", "image", "label", "network", "type", "volume")


def matches(event, filters):
    """Docker's `events --filter` (moby daemon/events/filter.go): several values of a key are
    OR'ed, keys AND'ed; container and image by ID (or its start) or name; event by action
    (`exec_start` matches `exec_start: sh`); label KEY or KEY=VALUE among the attributes."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    kind, action, actor_id = event.get("Type"), event.get("Action", ""), actor.get("ID", "")

    def names(key):
        wanted = filters.get(key)
        if not wanted:
            return True
        if key == "container":
            return kind == "container" and any(
                w == attributes.get("name") or (w and actor_id.startswith(w)) for w in wanted)
        return any(w == attributes.get("image") or w == attributes.get("name") or
                   (w and actor_id.startswith(w)) or
                   (kind == "image" and w == actor_id.partition(":")[2][:len(w)])
                   for w in wanted)
    if filters.get("type") and kind not in filters["type"]:
        return False
    for key in ("volume", "network"):
        if filters.get(key) and not (kind == key and any(
                w == actor_id or w == attributes.get("name") for w in filters[key])):
            return False
    if filters.get("event") and action not in filters["event"] and \
            action.partition(":")[0] not in filters["event"]:
        return False
    for label in filters.get("label", ()):
        key, eq, value = label.partition("=")
        if key not in attributes or (eq and attributes[key] != value):
            return False
    return names("container") and names("image")
