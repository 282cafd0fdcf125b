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
from . import events

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
    """A container by exact name, full ID or unique ID prefix. Only the match's liveness is
    checked (inspect, port, exec and stop name one container among many)."""
    if len(name_or_id) == 64 and "/" not in name_or_id:
        record = store.read_container(name_or_id)
        if record and record.get("Id") == name_or_id:
            return refresh_state(store, record)
    records = [r for r in (store.read_container(c) for c in store.container_ids()) if r]
    for record in records:
        if record["Name"] == name_or_id or record["Id"] == name_or_id:
            return refresh_state(store, record)
    matches = [r for r in records if r["Id"].startswith(name_or_id)] if name_or_id else []
    if len(matches) == 1:
        return refresh_state(store, matches[0])
    if len(matches) > 1:
        raise errors.Conflict("container ID prefix %s is ambiguous" % name_or_id,
                              "give more characters of the ID, or the name")
    raise errors.NotFound("no such container: %s" % name_or_id,
                          "list containers with 'rootless-box ps -a'")


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


def _alive(pid, start_time):
    return bool(pid) and proc_start_time(pid) == start_time


def starter_fields():
    """State fields naming this process as the one starting a container: `run` from the
    record's creation until init runs, `start` while it launches the monitor."""
    pid = os.getpid()
    return {"StarterPid": pid, "StarterStartTime": proc_start_time(pid)}


def being_started(state):
    """Whether a container that is not running is being started by a process still alive
    (see starter_fields): a prune must leave it, or it would remove the directories of a
    container whose init is being set up in them. Once the starter is gone (`create` exits
    at once, a `run` that was killed), the container is an ordinary stopped one."""
    return state.get("Status") not in LIVE_STATES and \
        _alive(state.get("StarterPid") or 0, state.get("StarterStartTime"))


def _keeper_gone(state):
    if state.get("Status") not in LIVE_STATES:
        return False
    if state.get("MonitorPid"):
        return not _alive(state["MonitorPid"], state.get("MonitorStartTime"))
    return not _alive(state.get("Pid") or 0, state.get("PidStartTime"))


def _init_state(pid, start_time):
    """The container's init: "ended" (a zombie its monitor has not reaped yet included),
    "new-running" (busy, started within the last second), or "on"."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        if fields[0] in (b"Z", b"X") or int(fields[19]) != start_time:
            return "ended"
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        young = uptime - start_time / os.sysconf("SC_CLK_TCK") < 1.0
        # R: runnable, D: in the kernel (its pages coming in from disk), not waiting on a read
        return "new-running" if young and fields[0] in (b"R", b"D") else "on"
    except (OSError, ValueError, IndexError):
        return "ended"


def settled(store, record, timeout=2.0):
    """The record once a just-started container has written its first output: an init still
    runnable in its first second is waited for until it sleeps or ends, an ended one until
    its watcher, which logs the last of its output before it records the exit, has recorded
    it. So `logs` right after `start` of a short command (docker-py's users' way; dockerd's
    shim is quicker than this process is scheduled) reads its output. Bounded by timeout;
    a container that runs on, or whose exit is recorded, at once."""
    deadline = time.monotonic() + timeout
    while True:
        state = record.get("State") or {}
        if state.get("Status") != "running" or not state.get("MonitorPid") or \
                _init_state(state.get("Pid") or 0, state.get("PidStartTime")) == "on" or \
                time.monotonic() > deadline:
            return record
        time.sleep(0.005)
        current = store.read_container(record["Id"])
        if current is None:
            return record  # removed meanwhile (--rm): its log went with it
        record = refresh_state(store, current)


def refresh_state(store, record):
    """A live-looking record whose keeper is gone becomes exited: the `run` process of a
    foreground container, the monitor of a detached one (killed, or the machine rebooted).
    While a monitor lives it alone records the exit (it knows the status)."""
    if not _keeper_gone(record.get("State", {})):
        return record
    with store.lock():
        # decided again on the record as it is now: a `start` may have just given it a new
        # monitor
        current = store.read_container(record["Id"])
        if current is not None and _keeper_gone(current.get("State", {})):
            current["State"].update({
                "Status": "exited", "Running": False, "Paused": False, "Restarting": False,
                "Pid": 0, "MonitorPid": 0, "ExitCode": 255,
                "Error": "the process that ran the container died",
                "FinishedAt": current["State"].get("FinishedAt") or now_rfc3339()})
            try:
                store.write_container(current)
            except OSError:
                pass
    if current is not None:
        record.clear()
        record.update(current)
    return record


def mark_running(store, record, pid, monitor=None):
    """The container's init runs as host pid `pid`; monitor: the pid of the process that
    watches it (a detached container's), else the foreground `run` keeps it."""
    fields = {"Status": "running", "Running": True, "Paused": False, "Restarting": False,
              "Pid": pid, "PidStartTime": proc_start_time(pid), "StartedAt": now_rfc3339(),
              "ExitCode": 0, "Error": "", "MonitorPid": monitor or 0,
              "MonitorStartTime": proc_start_time(monitor) if monitor else None,
              "StarterPid": 0}
    current = update_state(store, record, **fields)
    events.container(store, current, "start")
    return current


def mark_exited(store, record, code, error=""):
    current = update_state(store, record, Status="exited", Running=False, Paused=False,
                           Restarting=False, Pid=0, MonitorPid=0, ExitCode=code, Error=error,
                           FinishedAt=now_rfc3339(), StarterPid=0)
    events.container(store, current, "die", exitCode=code)
    return current


def update_state(store, record, **fields):
    """Change State fields of a container under the store lock, on the record as it is on
    disk now (another process may have changed it), and replace it by rename. Returns the
    new record, or None when the container was removed meanwhile. record may be the record
    or its ID."""
    cid = record if isinstance(record, str) else record["Id"]
    with store.lock():
        current = store.read_container(cid)
        if current is None or not os.path.isdir(store.container_dir(cid)):
            return None
        current.setdefault("State", {}).update(fields)
        store.write_container(current)
    if not isinstance(record, str):
        record.clear()
        record.update(current)
    return current


LIVE_STATES = ("running", "paused", "restarting")


def parse_size(text):
    """Docker's sizes for --log-opt max-size: 1024, 500k, 10m, 1g (binary units). ValueError
    on anything else."""
    text = str(text).strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:] if text else "", 1)
    number = text[:-1] if scale > 1 else text
    if number.endswith("b"):
        number = number[:-1]
    value = int(float(number) * scale)
    if value <= 0:
        raise ValueError(text)
    return value


def log_path(store, cid):
    """The container's json-file log (what its monitor writes and `logs` reads)."""
    return os.path.join(store.container_dir(cid), "json.log")


def readable_log(store, record):
    """The log `logs` reads, or Docker's error for a container whose log driver keeps none
    (--log-driver none; the API answers it 501)."""
    if ((record.get("HostConfig") or {}).get("LogConfig") or {}).get("Type") == "none":
        raise errors.BoxError("configured logging driver does not support reading",
                              "the container was made with --log-driver none", exit_code=1)
    return record.get("LogPath") or log_path(store, record["Id"])


def spec_path(store, cid):
    return os.path.join(store.container_dir(cid), "spec.json")


def save_spec(store, cid, spec):
    """The run spec of a created container, for `start` (and a monitor's restarts)."""
    from ..store import atomic_write
    from .. import fastjson
    atomic_write(spec_path(store, cid), fastjson.dumps(spec))


def load_spec(store, record):
    from .. import fastjson
    try:
        with open(spec_path(store, record["Id"]), "rb") as f:
            return fastjson.loads(f.read())
    except (OSError, ValueError):
        raise errors.Conflict("container %s cannot be started again: it was made by a "
                              "foreground run" % record["Name"],
                              "run a new container (rootless-box run -d ...)") from None


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
    events.container(store, record, "destroy")
    if volumes:
        from .volumes import discard_anonymous
        discard_anonymous(store, record.get("Mounts") or [], record["Id"])


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
        old_name = current["Name"]
        current["Name"] = new_name
        store.write_container(current)
    events.container(store, current, "rename", oldName="/" + old_name)
    return current
