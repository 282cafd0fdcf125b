"""The Engine API's endpoints: Docker's paths -> ops calls -> Docker's JSON and status codes.

Owns: the route table, Docker's status codes and wording per endpoint (404 "No such
container: X", 409 for a name in use or a running container removed without force, 304 for a
start or stop that changed nothing), filters in both encodings, the streams (logs, attach,
exec, wait, pull progress) with the 8-byte framing unless the container has a tty, and the
exec instances (kept in memory: they die with the service, as dockerd's die with it).
Must not: fork (anything that may start a process goes to the fork server: api/jobs.py), or
build JSON the CLI builds too (ops/containerjson.py, ops/images.inspect do).
"""

import json
import os
import platform
import re
import select
import socket
import struct
import threading
import time
import uuid

from .. import config, errors
from ..oci import reference
from ..ops import containers, images, lifecycle, logfile, psfilter
from ..ops.containerjson import container_json, list_item
from ..ops.imagefilter import IMAGE_FILTERS, image_filter, reference_matches
from ..ops.storage import open_store
from ..userns import pty
from . import bodytypes, containers2, objects
from .forkserver import answer
from .httpserver import API_VERSION, MIN_API_VERSION, HTTPError, ping, status_of

FORK = None  # the ForkServer, set by api/service.py
_EXECS = {}
_EXECS_LOCK = threading.Lock()


def _store():
    return open_store()


def _container(name):
    try:
        return containers.find(_store(), name)
    except errors.NotFound:
        raise HTTPError(404, "No such container: %s" % name) from None


def _filters(handler):
    """Docker's filters query in both encodings: {"k":{"v":true}} (the CLI) and {"k":["v"]}
    (docker-py)."""
    text = handler.arg("filters")
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise HTTPError(400, "invalid filter: %s" % exc) from None
    if not isinstance(raw, dict):
        raise HTTPError(400, "invalid filter: not an object")
    result = {}
    for key, values in raw.items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        elif isinstance(values, str):
            values = [values]
        elif not isinstance(values, list):
            raise HTTPError(400, "invalid filter '%s'" % key)
        result[key.lower()] = [str(v) for v in values]
    return result


# -- system -------------------------------------------------------------------------------------

def version(h):
    kernel = platform.release()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    engine = {"Version": config.VERSION, "ApiVersion": API_VERSION,
              "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch,
              "KernelVersion": kernel, "GitCommit": "", "GoVersion": "",
              "BuildTime": "", "Experimental": False}
    h.reply(200, dict(engine, Platform={"Name": "rootless-box"},
                      Components=[{"Name": "Engine", "Version": config.VERSION,
                                   "Details": {k: str(v).lower() if isinstance(v, bool) else str(v)
                                               for k, v in engine.items()
                                               if k != "Version"}}]))


def info(h):
    doc = FORK.call("info", {})
    store = _store()
    records = [containers.refresh_state(store, r) for r in containers.all_records(store)]
    states = [(r.get("State") or {}).get("Status") for r in records]
    doc.update({"ID": "", "ExperimentalBuild": False, "Name": platform.node(),
                "OperatingSystem": "rootless-box", "OSVersion": "",
                "NCPU": os.cpu_count() or 1, "MemTotal": _memtotal(),
                "Containers": len(records), "ContainersRunning": states.count("running"),
                "ContainersPaused": states.count("paused"),
                "ContainersStopped": len(records) - states.count("running") -
                states.count("paused"),
                "Images": len(images.list_images(store)), "LoggingDriver": "json-file",
                "CgroupDriver": "none", "CgroupVersion":
                "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
                "DockerRootDir":
                doc.get("DockerRootDir", ""), "IndexServerAddress":
                "https://index.docker.io/v1/", "RegistryConfig": {}, "Swarm":
                {"LocalNodeState": "inactive"}, "Plugins": {"Volume": ["local"],
                                                            "Network": ["host", "none"],
                                                            "Log": ["json-file"]},
                "Runtimes": {}, "DefaultRuntime": "rootless-box"})
    h.reply(200, doc)


def _memtotal():
    try:
        with open("/proc/meminfo") as f:
            return int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0


# -- containers ---------------------------------------------------------------------------------

def containers_list(h):
    filters = _filters(h)
    unknown = [k for k in filters if k not in psfilter.PS_FILTERS]
    if unknown:
        raise HTTPError(400, "invalid filter '%s'" % unknown[0])
    store = _store()
    records = [containers.refresh_state(store, r) for r in containers.all_records(store)]
    records.sort(key=lambda r: images.created_seconds(r.get("Created") or ""), reverse=True)
    keep = psfilter.build(store, filters, records)
    show_all = h.flag("all") or "status" in filters
    chosen = [r for r in records if (show_all or (r.get("State") or {}).get("Status")
                                     in psfilter.LIVE_STATES) and keep(r)]
    limit = h.number("limit", -1)
    if limit > 0:
        chosen = chosen[:limit]
    cache = {}
    h.reply(200, [list_item(r, psfilter.labels(store, r, cache)) for r in chosen])


def container_create(h):
    body = h.json_body(shape=bodytypes.CREATE, where="ContainerConfig")
    if body is None:
        raise HTTPError(400, "config cannot be empty in order to create a container")
    name = h.arg("name") or None
    try:
        made = FORK.call("create", {"name": name, "body": body})
    except errors.NotFound as exc:
        image = body.get("Image") if isinstance(body, dict) else ""
        if "image" in exc.message.lower() or _image_missing(image):
            raise HTTPError(404, "No such image: %s" % image) from None
        raise
    except errors.Conflict as exc:
        raise HTTPError(409, exc.message) from None
    h.reply(201, made)


def _image_missing(name):
    try:
        images.resolve(_store(), name)
        return False
    except errors.BoxError:
        return True


def container_inspect(h, name):
    store = _store()
    h.reply(200, _short_id_aliases(container_json(containers.refresh_state(
        store, _container(name)))))


def _short_id_aliases(info):
    """API < 1.45 (ours is 1.44): dockerd's inspect adds the short ID to Aliases on every
    user-defined network (moby's router; 1.45 moved it to DNSNames alone)."""
    short = info["Id"][:12]
    for name, entry in info["NetworkSettings"]["Networks"].items():
        if entry and name not in ("bridge", "host", "none", "private") and \
                not name.startswith("container:"):
            aliases = list(entry.get("Aliases") or ())
            info["NetworkSettings"]["Networks"][name] = dict(
                entry, Aliases=aliases + [short] if short not in aliases else aliases)
    return info


def container_start(h, name):
    record = _container(name)
    if not FORK.call("start", {"id": record["Id"]}):
        h.reply(304)
        return
    h.reply(204)


def _timeout(h):
    return h.number("t", h.number("timeout"))


def container_stop(h, name):
    store = _store()
    record = containers.refresh_state(store, _container(name))
    if record["State"].get("Status") not in containers.LIVE_STATES:
        h.reply(304)
        return
    lifecycle.stop(store, record["Id"], _timeout(h), h.arg("signal") or None)
    h.reply(204)


def container_kill(h, name):
    record = _container(name)
    sig = h.arg("signal") or "KILL"
    store = _store()
    try:
        lifecycle.kill(store, record["Id"], sig)
    except errors.Conflict:
        raise HTTPError(409, "Cannot kill container: %s: Container %s is not running"
                        % (name, record["Id"])) from None
    if sig.upper().removeprefix("SIG") in ("KILL", "9"):
        # dockerd answers a SIGKILL once the container is down (its inspect says exited)
        finished = (record.get("State") or {}).get("FinishedAt") or ""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = store.read_container(record["Id"])
            state = now and containers.refresh_state(store, now)["State"]
            if not state or state.get("Status") not in containers.LIVE_STATES or (
                    state.get("FinishedAt") or "") != finished:  # down, maybe restarting
                break
            time.sleep(0.01)
    h.reply(204)


def container_restart(h, name):
    record = _container(name)
    FORK.call("restart", {"id": record["Id"], "timeout": _timeout(h),
                          "signal": h.arg("signal") or None})
    h.reply(204)


def container_delete(h, name):
    store = _store()
    if h.flag("link"):  # `/containers/CTR/ALIAS?link=1`: that link, not the container
        ctr, _, alias = name.strip("/").rpartition("/")
        from ..ops.networks import remove_link
        try:
            remove_link(store, ctr or name, alias)
        except errors.NotFound as exc:
            raise HTTPError(404, exc.message) from None
        h.reply(204)
        return
    record = containers.refresh_state(store, _container(name))
    force = h.flag("force")
    if record["State"].get("Status") in containers.LIVE_STATES and not force:
        raise HTTPError(409, "You cannot remove a running container %s. Stop the container "
                        "before attempting removal or force remove" % record["Id"])
    FORK.call("remove", {"id": record["Id"], "force": force, "volumes": h.flag("v")})
    h.reply(204)


def container_rename(h, name):
    record = _container(name)
    new = h.arg("name") or ""
    try:
        containers.rename(_store(), record["Id"], new)
    except errors.Conflict as exc:
        raise HTTPError(409, exc.message) from None
    h.reply(204)


def container_pause(h, name, action):
    """The cgroup v2 freezer (ops/pause.py), as the CLI's pause: where no delegated cgroup
    exists, its error (500) says why."""
    from ..ops import pause as pause_ops
    _container(name)  # Docker's 404 first
    getattr(pause_ops, action)(_store(), name)
    h.reply(204)


def container_resize(h, name):
    record = _container(name)
    rows, cols = h.number("h", 0), h.number("w", 0)
    master = _TERMINALS.get(record["Id"])
    if master is not None and rows > 0 and cols > 0:
        from ..userns.pty import set_winsize
        try:
            set_winsize(master, rows, cols)
        except OSError:
            pass
    h.reply(200, b"", "text/plain")


def container_wait(h, name):
    """Headers at once (the CLI waits for them before it starts the container), the body when
    the condition holds (ops/lifecycle.wait_condition: dockerd's conditions)."""
    store = _store()
    record = _container(name)
    condition = h.arg("condition") or "not-running"
    if condition not in lifecycle.WAIT_CONDITIONS:
        raise HTTPError(400, "invalid condition: %s" % json.dumps(condition))  # dockerd: %q
    run = lifecycle.NextExit(store, record["Id"])  # before the headers: then comes the start
    write, end = h.stream()
    # `run -d` drops its wait: no thread stays polling for it
    code = lifecycle.wait_condition(store, record, condition, lambda: _gone(h.connection),
                                    run)
    if code is None:
        return
    write((json.dumps({"StatusCode": code, "Error": None}) + "\n").encode())
    end()


def _frame(stream, data):
    return struct.pack(">BxxxL", stream, len(data)) + data


def _since_ns(value):
    if not value:
        return None
    try:
        return int(float(value) * 1000000000)
    except ValueError:
        raise HTTPError(400, "invalid since value %r" % value) from None


def container_logs(h, name):
    store = _store()
    record = _container(name)
    if not (h.flag("stdout") or h.flag("stderr")):
        raise HTTPError(400, "You must choose at least one stream")
    want = {"stdout": h.flag("stdout"), "stderr": h.flag("stderr")}
    try:
        containers.readable_log(store, record)
    except errors.BoxError as exc:
        raise HTTPError(501, exc.message) from None  # moby's ErrReadLogsNotSupported
    if not h.flag("follow"):
        record = containers.settled(store, record)
    tty = bool((record.get("Config") or {}).get("Tty"))
    tail = h.arg("tail") or "all"
    tail = None if tail == "all" else max(0, int(tail)) if tail.lstrip("-").isdigit() else None
    since, until = _since_ns(h.arg("since")), _since_ns(h.arg("until"))
    cid = record["Id"]
    kept = _KeptLog(store, record)

    def running():
        kept.link()
        if _gone(h.connection):
            return False  # the client left: stop following, leave nothing behind
        now = store.read_container(cid)
        return now is not None and containers.refresh_state(store, now)["State"].get(
            "Status") in containers.LIVE_STATES

    if h.flag("follow"):
        entries = logfile.follow(kept.link(), running, tail=tail, since=since, until=until,
                                 interval=0.02)
    elif not os.path.exists(kept.path):
        entries = []
    elif tail is not None:
        entries = [e for e in logfile.tail(kept.path, tail)
                   if (since is None or e.ns >= since) and (until is None or e.ns <= until)]
    else:
        entries = logfile.read_entries(kept.path, since, until)
    try:
        _send_log(h, entries, tty, want)
    finally:
        kept.close()


def _send_log(h, entries, tty, want):
    write, end = h.stream("application/vnd.docker.raw-stream" if tty else
                          "application/vnd.docker.multiplexed-stream")
    stamps = h.flag("timestamps")
    for entry in entries:
        if not want.get(entry.stream, True):
            continue
        data = ((entry.time + " ") if stamps else "") + entry.log
        data = data.encode("utf-8", "replace")
        write(data if tty else _frame(2 if entry.stream == "stderr" else 1, data))
    end()


def container_attach(h, name):
    """Hijacked: the container's output from its start (or from now when it runs already),
    framed unless it has a tty; the client's input to its stdin through its watcher's attach
    socket; the end when the container stops. A created container is waited for."""
    store = _store()
    record = _container(name)
    cid = record["Id"]
    tty = bool((record.get("Config") or {}).get("Tty"))
    use_stdin = h.flag("stdin") and (record.get("Config") or {}).get("OpenStdin")
    want = {"stdout": h.flag("stdout"), "stderr": h.flag("stderr")}
    try:
        keys = pty.detach_sequence(h.arg("detachKeys"))
    except errors.UsageError as exc:
        raise HTTPError(400, str(exc)) from None
    initial = containers.refresh_state(store, record)["State"]
    if initial.get("Status") == "restarting":
        # dockerd's: the stream would be of a run that has ended (NextExit would end it at
        # once) or of the next, which is not this client's to see
        raise HTTPError(409, "Container %s is restarting, wait until the container is running"
                        % cid)
    already = initial.get("Status") in containers.LIVE_STATES
    run = lifecycle.NextExit(store, cid)  # before the start: the stream ends at its exit
    since_ns = time.time_ns() if already else None
    conn = h.hijack("application/vnd.docker.raw-stream" if tty else
                    "application/vnd.docker.multiplexed-stream")
    kept = _KeptLog(store, record)
    try:
        if not h.flag("stream"):
            # stream=0: the log so far (logs=1) and the end, never a wait for a start
            if h.flag("logs") and os.path.exists(kept.path):
                try:
                    for entry in logfile.read_entries(kept.path):
                        if want.get(entry.stream, True):
                            data = entry.log.encode("utf-8", "replace")
                            conn.sendall(data if tty else _frame(
                                2 if entry.stream == "stderr" else 1, data))
                except OSError:
                    pass
            return
        # wait for the start the client is about to ask for (or for the container's end)
        while True:
            kept.link()
            current = store.read_container(cid)
            if current is None:
                break
            state = containers.refresh_state(store, current)["State"]
            if state.get("Status") in containers.LIVE_STATES or (
                    state.get("StartedAt") or "") != (initial.get("StartedAt") or ""):
                break
            if _gone(conn):
                return
            time.sleep(0.01)
        if since_ns is None and current is not None:
            since_ns = logfile.parse_time(state.get("StartedAt") or "") or None
        _attached(conn, store, cid, kept, since_ns, tty, use_stdin, want, keys, run)
    finally:
        kept.close()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _KeptLog:
    """A hard link to a container's log, made as soon as its watcher creates it: a --rm
    container's directory (and log) may go before a client has read its short output
    (docker-py's run() reads the logs after it removed the container). link() -> the path
    to read (the link's, or the log's own before it exists)."""

    def __init__(self, store, record):
        self.path = record.get("LogPath") or containers.log_path(store, record["Id"])
        self.kept = store.mktemp_path("log")
        self.linked = False

    def link(self):
        if not self.linked:
            try:
                os.link(self.path, self.kept)
                self.linked = True
            except OSError:
                pass
        return self.kept

    def close(self):
        try:
            os.unlink(self.kept)
        except OSError:
            pass


def _attached(conn, store, cid, kept, since_ns, tty, use_stdin, want, keys=None, run=None):
    """Output always from the log (so nothing written before the attach socket existed is
    lost, and a --rm container's output survives its directory); input, and a terminal's
    size, through the watcher's attach socket; the detach keys in the input end the attach
    and leave the container running. The end: the container's next exit (run: its
    lifecycle.NextExit), as dockerd closes the streams then, before a restart policy's next
    run."""
    detached = threading.Event()
    run = run or lifecycle.NextExit(store, cid)

    def running():
        kept.link()
        if detached.is_set() or _gone(conn):
            return False  # the client left: stop following, leave nothing behind
        return not run.ended()

    feeder = _Feeder(conn, run, use_stdin, tty, running, keys, detached) \
        if use_stdin or tty else None
    try:
        for entry in logfile.follow(kept.link(), running, since=since_ns, interval=0.02):
            if not run.owns(entry.ns):
                break  # a restart's output
            if not want.get(entry.stream, True):
                continue
            data = entry.log.encode("utf-8", "replace")
            conn.sendall(data if tty else _frame(2 if entry.stream == "stderr" else 1, data))
    except OSError:
        pass
    finally:
        if feeder is not None:
            feeder.close()


def _gone(conn):
    """The client hung up. Not a half-close: a client with no input shuts its writing side
    at once and still reads (POLLHUP comes only when both directions are shut)."""
    poller = select.poll()
    poller.register(conn, select.POLLHUP | select.POLLERR)
    try:
        return any(ev & (select.POLLHUP | select.POLLERR) for _fd, ev in poller.poll(0))
    except OSError:
        return True


_TERMINALS = {}  # container ID -> its pty master, while an API client is attached


class _Feeder:
    """The attach socket of the run attached to (never a restart's: NextExit.connect): the
    client's bytes go in (its stdin, or its terminal); a half-close by the client closes the
    container's stdin. A -t container's watcher sends its terminal's master first (kept for
    resize) and then its output, which is read and dropped here (the log has it; an unread
    client would stall the watcher, whose writes to clients block)."""

    def __init__(self, client, run, stdin, tty, running, keys=None, detached=None):
        self.cid = run.cid
        self.keys, self.detached = keys, detached
        self.master = None
        # the run attached to (a lifecycle.NextExit made before its start), never a restart's
        self.conn = run.connect(stop=lambda: not running())
        if self.conn is None:
            return
        if tty:
            try:
                _msg, fds, _flags, _addr = socket.recv_fds(self.conn, 1, 1)
            except OSError:
                fds = []
            if fds:
                self.master = fds[0]
                _TERMINALS[self.cid] = self.master
            threading.Thread(target=self._drain, daemon=True).start()
        if stdin:
            threading.Thread(target=self._copy, args=(client,), daemon=True).start()

    def _drain(self):
        try:
            while self.conn.recv(65536):
                pass
        except OSError:
            pass

    def _copy(self, client):
        watch = pty.DetachWatch(self.keys) if self.keys else None
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if watch is not None:
                    data, detach = watch.feed(data)
                    if detach:
                        if data:
                            self.conn.sendall(data)
                        self.detached.set()
                        client.shutdown(socket.SHUT_RDWR)  # dockerd hangs up on a detach
                        return
                self.conn.sendall(data)
            self.conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        if self.master is not None:
            if _TERMINALS.get(self.cid) == self.master:
                del _TERMINALS[self.cid]
            os.close(self.master)
            self.master = None
        if self.conn is not None:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
                self.conn.close()
            except OSError:
                pass


# -- exec ---------------------------------------------------------------------------------------

def exec_create(h, name):
    body = h.json_body(shape=bodytypes.EXEC_CREATE, where="ExecConfig") or {}
    store = _store()
    record = containers.refresh_state(store, _container(name))
    status = record["State"].get("Status")
    if status == "paused":
        raise HTTPError(409, "Container %s is paused, unpause the container before exec"
                        % record["Id"])
    if status != "running":
        raise HTTPError(409, "Container %s is not running" % record["Id"])
    cmd = body.get("Cmd")
    if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise HTTPError(400, "No exec command specified")
    if body.get("Privileged"):
        raise HTTPError(400, "privileged exec is not supported: the exec'd process gets the "
                        "container's capabilities")
    # docker-py sends detachKeys; dockerd's JSON decoding ignores a field name's case
    keys = body.get("DetachKeys") or body.get("detachKeys") or ""
    try:
        pty.detach_sequence(keys)
    except errors.UsageError as exc:
        raise HTTPError(400, str(exc)) from None
    exec_id = uuid.uuid4().hex + uuid.uuid4().hex
    with _EXECS_LOCK:
        _EXECS[exec_id] = {"ID": exec_id, "ContainerID": record["Id"], "Running": False,
                           "ExitCode": None, "Pid": 0, "OpenStdin": bool(body.get("AttachStdin")),
                           "OpenStdout": bool(body.get("AttachStdout")),
                           "OpenStderr": bool(body.get("AttachStderr")), "CanRemove": False,
                           "DetachKeys": keys,
                           "ProcessConfig": {"tty": bool(body.get("Tty")),
                                             "entrypoint": cmd[0], "arguments": cmd[1:],
                                             "privileged": bool(body.get("Privileged")),
                                             "user": body.get("User") or ""},
                           "_env": body.get("Env") or [], "_workdir": body.get("WorkingDir"),
                           "_size": body.get("ConsoleSize")}
    h.reply(201, {"Id": exec_id})


def _exec(exec_id):
    with _EXECS_LOCK:
        found = _EXECS.get(exec_id)
    if found is None:
        raise HTTPError(404, "No such exec instance: %s" % exec_id)
    return found


def _console_size(value):
    """Docker's ConsoleSize [rows, cols] -> (rows, cols), or None (0s, or not given)."""
    if isinstance(value, list) and len(value) == 2 and all(
            isinstance(n, int) and n > 0 for n in value):
        return tuple(value)
    return None


def exec_inspect(h, exec_id):
    found = _exec(exec_id)
    h.reply(200, {k: v for k, v in found.items() if not k.startswith("_")})


def exec_resize(h, exec_id):
    _exec(exec_id)
    h.reply(201, b"", "text/plain")


def exec_start(h, exec_id):
    found = _exec(exec_id)
    body = h.json_body(shape=bodytypes.EXEC_START, where="ExecStartCheck") or {}
    with _EXECS_LOCK:
        if found["Running"] or found["ExitCode"] is not None:
            raise HTTPError(409, "Exec command %s has already run" % exec_id)
        found["Running"] = True
    proc = found["ProcessConfig"]
    tty = proc["tty"]  # the process's terminal is create's; the framing is the start's
    framed = not body.get("Tty", tty)
    detach = bool(body.get("Detach"))
    args = {"container": found["ContainerID"], "cmd": [proc["entrypoint"]] + proc["arguments"],
            "env": found["_env"], "workdir": found["_workdir"], "user": proc["user"],
            "tty": tty, "stdin": found["OpenStdin"], "detach": detach,
            "winsize": _console_size(body.get("ConsoleSize") or found["_size"]),
            # the exec's detach keys (else dockerd's ctrl-p,ctrl-q) end a -it client's part
            "detach_keys": found["DetachKeys"] or "ctrl-p,ctrl-q"}
    try:
        if detach:
            null = os.open(os.devnull, os.O_RDWR)
            try:
                FORK.call("exec_start", args, [null, null, null])
            finally:
                os.close(null)
            found["ExitCode"] = 0
            h.reply(200, b"", "text/plain")
            return
        conn = h.hijack("application/vnd.docker.multiplexed-stream" if framed else
                        "application/vnd.docker.raw-stream")
        try:
            found["ExitCode"] = _exec_stream(conn, args, tty, framed)
        finally:
            # the code is there before the client sees the end: it asks for it next
            found["Running"] = False
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    finally:
        found["Running"] = False


def _exec_stream(conn, args, tty, framed=None):
    """The hijacked exec: with a tty the client's socket is the process's stdio; without,
    its output comes back on pipes and goes out framed. A tty's output is framed too (as
    stdout) when the start asked for no tty (dockerd frames by the start's Tty, docker-py
    sends false). -> the exit code (126 when the setup failed, its message on stderr: dockerd
    sets 126 on any failed exec start, a command not found included, where `run` has 127)."""
    framed = not tty if framed is None else framed
    null = os.open(os.devnull, os.O_RDONLY)
    opened = [null]
    try:
        if tty and not framed:
            stdin = conn.fileno() if args["stdin"] else null
            job = FORK.submit("exec_start", args, [stdin, conn.fileno(), conn.fileno()])
            return _result(conn, job, tty)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        opened += [out_r, out_w, err_r, err_w]
        stdin = conn.fileno() if args["stdin"] else null
        job = FORK.submit("exec_start", args, [stdin, out_w, out_w if tty else err_w])
        os.close(out_w)
        os.close(err_w)
        opened = [null, out_r, err_r]
        pipes = {out_r: 1, err_r: 2}
        result = {}
        waiter = threading.Thread(target=_answer_into, args=(job, result), daemon=True)
        waiter.start()
        gone = False
        while pipes and not gone:
            ready = select.select(list(pipes), [], [], 0.2)[0]
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    del pipes[fd]
                    continue
                try:
                    conn.sendall(_frame(pipes[fd], data))
                except OSError:
                    gone = True  # the client left
                    break
            if not ready and not waiter.is_alive():
                break  # the process ended; a background child may keep the pipes open
        if gone:
            # its output has nowhere to go: the process's next write fails (EPIPE), as
            # a process whose terminal went away
            for fd in (out_r, err_r):
                os.close(fd)
            opened = [null]
        waiter.join()
        job.close()
        if "error" in result:
            exc = result["error"]
            message = (exc.message + "\n").encode()
            try:
                conn.sendall(_frame(2, message))
            except OSError:
                pass
            return 126
        return result.get("ok", 0)
    finally:
        for fd in opened:
            try:
                os.close(fd)
            except OSError:
                pass


def _answer_into(job, result):
    try:
        result["ok"] = answer(job)
    except errors.BoxError as exc:
        result["error"] = exc


def _result(conn, job, tty):
    try:
        return answer(job)
    except errors.BoxError as exc:
        try:
            conn.sendall((exc.message + "\r\n").encode())
        except OSError:
            pass
        return 126  # dockerd's, for any exec that could not start (_exec_stream)
    finally:
        job.close()


# -- images -------------------------------------------------------------------------------------

def _familiar(tag):
    return reference.parse(tag).familiar()


def images_list(h):
    """Docker's image list, filtered as `images --filter` is (ops/imagefilter.py)."""
    filters = _filters(h)
    unknown = [k for k in filters if k not in IMAGE_FILTERS]
    if unknown:
        raise HTTPError(400, "invalid filter '%s'" % unknown[0])
    store = _store()
    keep, regexes = image_filter(store, filters)
    counts = {}
    for r in containers.all_records(store):
        counts[r.get("Image")] = counts.get(r.get("Image"), 0) + 1
    result = []
    for image in images.list_images(store):
        config = images.readable_config(image)
        if not keep(image, config):
            continue
        tags = [t for t in image.tags if not regexes or reference_matches(regexes, t)]
        if regexes and not tags:
            continue
        result.append(image_summary(image, config, tags, counts.get(image.id, 0)))
    h.reply(200, result)


def image_summary(image, config=None, tags=None, containers_count=-1):
    """An image list item (GET /images/json, /system/df's Images)."""
    config = images.readable_config(image) if config is None else config
    tags = image.tags if tags is None else tags
    digests = [d for d in image.record.get("digests") or () if "@" in d]
    return {"Id": image.id, "ParentId": "",
            "RepoTags": [reference.parse(t).familiar() for t in tags],
            "RepoDigests": [images.familiar_digest(d) for d in digests],
            "Created": int(images.created_epoch(config.get("created") or "")),
            "Size": image.record.get("size", 0), "SharedSize": -1,
            "VirtualSize": image.record.get("size", 0),
            "Labels": images.labels_of(config) or None, "Containers": containers_count}


def _image(name):
    try:
        return images.resolve(_store(), name)
    except (errors.NotFound, errors.UsageError):
        raise HTTPError(404, "No such image: %s" % name) from None


def image_inspect(h, name):
    h.reply(200, images.inspect(_image(name)))


def image_tag(h, name):
    image = _image(name)
    repo, tag = h.arg("repo") or "", h.arg("tag") or ""
    if not repo:
        raise HTTPError(400, "repository name must have at least one component")
    images.tag(_store(), image.id, repo + (":" + tag if tag else ""))
    h.reply(201, b"", "text/plain")


def image_delete(h, name):
    _image(name)
    lines = FORK.call("rmi", {"name": name, "force": h.flag("force")})
    result = []
    for line in lines:
        kind, _, what = line.partition(": ")
        result.append({kind: what})
    h.reply(200, result)


def registry_auth(header):
    """Docker's X-Registry-Auth (base64url JSON; the standard alphabet and missing padding
    accepted too, as clients differ) -> {"username", "password", "identity_token"}, or None
    when it names no one (`e30=`, `{}`, is what the CLI sends without a login)."""
    if not header:
        return None
    from .transfer import header_json
    doc = header_json(header, "X-Registry-Auth")
    if not isinstance(doc, dict):
        raise HTTPError(400, "invalid X-Registry-Auth header")
    login = {"username": doc.get("username") or "", "password": doc.get("password") or "",
             "identity_token": doc.get("identitytoken") or None}
    if not (login["username"] or login["identity_token"]):
        return None
    return login


def image_create(h):
    """`pull`: Docker's progress stream, an error after it began carried in the stream."""
    name = h.arg("fromImage")
    if not name:
        if h.arg("fromSrc"):
            return _images2.image_import(h)
        raise HTTPError(400, "fromSrc or fromImage must be set")
    tag = h.arg("tag") or ""
    if tag:
        name += ("@" if tag.startswith("sha256:") else ":") + tag
    try:
        ref = reference.parse(name)
    except errors.UsageError as exc:
        raise HTTPError(400, exc.message) from None
    job = FORK.submit("pull", {"name": name, "platform": h.arg("platform"),
                               "login": registry_auth(h.headers.get("X-Registry-Auth"))})
    write = None
    try:
        def progress(fields):
            nonlocal write
            if write is None:
                write, _end = h.stream()
                write((json.dumps({"status": "Pulling from %s" % ref.path,
                                   "id": ref.tag or ref.digest}) + "\n").encode())
            msg = {"status": fields.get("status", ""), "id": fields.get("id", "")}
            if fields.get("total"):
                msg["progressDetail"] = {"current": fields.get("current", 0),
                                         "total": fields["total"]}
            write((json.dumps(msg) + "\n").encode())
        try:
            result = answer(job, progress)
        except errors.BoxError as exc:
            if write is None:
                if isinstance(exc, (errors.NotFound, errors.AuthError)):
                    raise HTTPError(404, "pull access denied for %s, repository does not "
                                    "exist or may require 'docker login': %s"
                                    % (ref.familiar_repository(), exc.message)) from None
                raise HTTPError(status_of(exc), exc.message) from None
            write((json.dumps({"errorDetail": {"message": exc.message},
                               "error": exc.message}) + "\n").encode())
            h.wfile.write(b"0\r\n\r\n")
            return
        if write is None:
            write, _end = h.stream()
        shown = ref.familiar()
        write((json.dumps({"status": "Digest: %s" % result["digest"]}) + "\n").encode())
        write((json.dumps({"status": "Status: %s for %s" % (
            "Downloaded newer image" if result["updated"] else "Image is up to date",
            shown)}) + "\n").encode())
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
    finally:
        job.close()


# -- the table ----------------------------------------------------------------------------------

_ID = r"([^/]+)"
ROUTES = [
    ("GET", r"/_ping", ping), ("HEAD", r"/_ping", ping),
    ("GET", r"/version", version), ("GET", r"/info", info),
    ("GET", r"/containers/json", containers_list),
    ("POST", r"/containers/create", container_create),
    ("GET", r"/containers/%s/json" % _ID, container_inspect),
    ("POST", r"/containers/%s/start" % _ID, container_start),
    ("POST", r"/containers/%s/stop" % _ID, container_stop),
    ("POST", r"/containers/%s/kill" % _ID, container_kill),
    ("POST", r"/containers/%s/restart" % _ID, container_restart),
    ("POST", r"/containers/%s/wait" % _ID, container_wait),
    ("POST", r"/containers/%s/rename" % _ID, container_rename),
    ("POST", r"/containers/%s/resize" % _ID, container_resize),
    ("POST", r"/containers/%s/pause" % _ID, lambda h, n: container_pause(h, n, "pause")),
    ("POST", r"/containers/%s/unpause" % _ID, lambda h, n: container_pause(h, n, "unpause")),
    ("POST", r"/containers/%s/attach" % _ID, container_attach),
    ("GET", r"/containers/%s/logs" % _ID, container_logs),
    ("DELETE", r"/containers/%s" % _ID, container_delete),
    ("DELETE", r"/containers/([^/]+/[^/]+)", container_delete),  # CTR/ALIAS?link=1
    ("POST", r"/containers/%s/exec" % _ID, exec_create),
    ("POST", r"/exec/%s/start" % _ID, exec_start),
    ("POST", r"/exec/%s/resize" % _ID, exec_resize),
    ("GET", r"/exec/%s/json" % _ID, exec_inspect),
    ("GET", r"/images/json", images_list),
    ("POST", r"/images/create", image_create),
    ("GET", r"/images/(.+)/json", image_inspect),
    ("POST", r"/images/(.+)/tag", image_tag),
    ("DELETE", r"/images/(.+)", image_delete),
] + objects.ROUTES + containers2.ROUTES
from . import build as _build, images2 as _images2  # noqa: E402  (they use FORK, set here)
ROUTES += _build.ROUTES + _images2.ROUTES


def not_a_swarm(h, *_ignored):
    """dockerd outside swarm mode: 503 and these words (docker-py's leave_swarm(force=True)
    takes them as done; a client that tears down with it expects them)."""
    raise HTTPError(503, "This node is not part of a swarm")


ROUTES += [(method, pattern, not_a_swarm) for method, pattern in (
    ("GET", r"/swarm"), ("POST", r"/swarm/(init|join|leave|update|unlock)"),
    ("GET", r"/swarm/unlockkey"), ("GET", r"/(nodes|services|tasks|secrets|configs)"))]
_COMPILED = [(method, re.compile(pattern + r"\Z"), func) for method, pattern, func in ROUTES]


def dispatch(h, method, path):
    known_path = False
    for want, pattern, func in _COMPILED:
        match = pattern.match(path)
        if match:
            known_path = True
            if want == method:
                return func(h, *match.groups())
    if known_path:
        raise HTTPError(405, "method %s not allowed for %s" % (method, path))
    raise HTTPError(404, "page not found")
