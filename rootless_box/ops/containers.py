"""Container records: create, find by name or ID, state, list, remove.

Owns: container IDs (64 hex) and names (unique, Docker's charset, generated when not given),
each container's directory (record, rootfs dirs, /etc files), and telling a live container from
one whose `run` process died (pid plus its start time from /proc).
Must not: start processes (ops/run.py does) or print.
"""

import os
import time

from .. import errors
from ..oci.image import now_rfc3339

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_LEFT = ("admiring", "brave", "calm", "clever", "dreamy", "eager", "focused", "gifted",
         "happy", "jolly", "keen", "lucid", "modest", "nifty", "quirky", "serene", "tender",
         "vibrant", "wizardly", "zealous")
_RIGHT = ("babbage", "curie", "darwin", "euclid", "fermat", "galileo", "hopper", "hypatia",
          "kepler", "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon",
          "thompson", "turing", "wozniak", "yalow")


def validate_name(name):
    if not name or name[0] not in _NAME_CHARS - frozenset("_.-") or \
            not set(name) <= _NAME_CHARS:
        raise errors.UsageError("invalid container name %r: only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                                "allowed" % name)
    return name


def all_records(store):
    records = []
    for cid in store.container_ids():
        record = store.read_container(cid)
        if record:
            records.append(refresh_state(store, record))
    return records


def find(store, name_or_id):
    """A container by exact name, full ID or unique ID prefix."""
    records = all_records(store)
    for record in records:
        if record["Name"] == name_or_id or record["Id"] == name_or_id:
            return record
    matches = [r for r in records if r["Id"].startswith(name_or_id)] if name_or_id else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise errors.Conflict("container ID prefix %s is ambiguous" % name_or_id,
                              "give more characters of the ID, or the name")
    raise errors.NotFound("no such container: %s" % name_or_id,
                          "list containers with 'rootless-box ps -a'")


def log_path(store, cid):
    """The container's json-file log (what its monitor writes and `logs` reads)."""
    return os.path.join(store.container_dir(cid), "json.log")


def _pick(words):
    return words[int.from_bytes(os.urandom(2), "little") % len(words)]


def _unique_name(taken):
    while True:
        name = "%s_%s" % (_pick(_LEFT), _pick(_RIGHT))
        if name in taken:
            name += str(int.from_bytes(os.urandom(1), "little") % 100)
        if name not in taken:
            return name


def create_record(store, record, name=None):
    """Give record an ID and a unique name, make its directory, write it. Under the lock, so
    two concurrent runs cannot take the same name."""
    with store.lock():
        taken = {r["Name"] for r in (store.read_container(c) for c in store.container_ids())
                 if r}
        if name:
            validate_name(name)
            if name in taken:
                raise errors.Conflict(
                    'the container name "%s" is already in use' % name,
                    "remove that container (rootless-box rm %s) or choose another name"
                    % name)
        else:
            name = _unique_name(taken)
        cid = os.urandom(32).hex()
        record.update({"Id": cid, "Name": name, "Created": now_rfc3339()})
        os.mkdir(store.container_dir(cid), 0o700)
        store.write_container(record)
    return record


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat: tells a recycled pid from the process we started."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def refresh_state(store, record):
    """A 'running' record whose process is gone (its run was killed) becomes exited."""
    state = record.get("State", {})
    if state.get("Status") == "running":
        pid = state.get("Pid") or 0
        if not pid or proc_start_time(pid) != state.get("PidStartTime"):
            state.update({"Status": "exited", "Running": False, "Pid": 0, "ExitCode": 255,
                          "Error": "the process that ran the container died",
                          "FinishedAt": state.get("FinishedAt") or now_rfc3339()})
            try:
                store.write_container(record)
            except OSError:
                pass
    return record


def mark_running(store, record, pid):
    record["State"].update({"Status": "running", "Running": True, "Pid": pid,
                            "PidStartTime": proc_start_time(pid),
                            "StartedAt": now_rfc3339()})
    store.write_container(record)


def mark_exited(store, record, code, error=""):
    record["State"].update({"Status": "exited", "Running": False, "Pid": 0, "ExitCode": code,
                            "Error": error, "FinishedAt": now_rfc3339()})
    store.write_container(record)


def remove(store, record, force=False, volumes=False):
    """Remove a container (killing it first with force); with volumes, also the anonymous
    volumes it created, as `docker rm -v` does."""
    state = refresh_state(store, record)["State"]
    if state.get("Status") == "running":
        if not force:
            raise errors.Conflict(
                "cannot remove container %s: it is running" % record["Name"],
                "stop it first, or use rm -f")
        try:
            os.kill(state["Pid"], 9)
        except ProcessLookupError:
            pass
        for _ in range(100):
            if proc_start_time(state["Pid"]) != state.get("PidStartTime"):
                break
            time.sleep(0.01)
    store.remove(store.container_dir(record["Id"]))
    if volumes:
        for mount in record.get("Mounts", []):
            if mount.get("Anonymous") and mount.get("Source"):
                store.remove(os.path.dirname(mount["Source"]))


def rename(store, name_or_id, new_name):
    """Give a container a new name (`docker rename`): checked against every other name under
    the store lock, so two renames (or a run) cannot take the same name. Returns the record."""
    # Docker accepts the name as the daemon stores it, with its leading slash
    new_name = new_name[1:] if new_name.startswith("/") else new_name
    try:
        validate_name(new_name)
    except errors.UsageError as exc:
        raise errors.UsageError(exc.message, "a name starts with a letter or digit") from None
    with store.lock():
        record = find(store, name_or_id)
        if record["Name"] == new_name:
            raise errors.Conflict("renaming a container with the same name as its current "
                                  "name", "choose another name")
        for cid in store.container_ids():
            other = store.read_container(cid)
            if other and other["Id"] != record["Id"] and other["Name"] == new_name:
                raise errors.Conflict(
                    'the container name "%s" is already in use by container %s'
                    % (new_name, other["Id"][:12]),
                    "remove (or rename) that container to reuse its name")
        current = store.read_container(record["Id"])
        if current is None:
            raise errors.NotFound("no such container: %s" % name_or_id)
        current["Name"] = new_name
        store.write_container(current)
    return current
