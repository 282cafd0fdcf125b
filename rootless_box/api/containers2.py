"""The Engine API's container endpoints beyond the first slice: top, stats, update, changes,
export, archive (docker cp both ways) and /commit.

Owns: these endpoints' Docker shapes ({"Titles","Processes"}; the stats document with
cpu_stats/precpu_stats/memory_stats/blkio_stats/pids_stats/networks, from /proc samples, so
the CLI's arithmetic gives what `rootless-box stats` shows; {"Path","Kind"} changes; the
base64 X-Docker-Container-Path-Stat header; {"Id"} of a commit), their status codes (404
for a missing path, 400 for an extraction point that is not a directory, 403 for a
read-only one, 409 for a container that is not running), tar bodies streamed both ways
through a pipe to a fork-server worker (the container's files are reached by joining it
or mounting its overlay in a user namespace: a fork), and the jobs that do that.
Must not: know Docker's copy, commit or diff rules (ops/cp.py, ops/commit.py), or find
processes (ops/procstats.py, ops/top.py).
"""

import base64
import json
import os
import threading
import time

from .. import errors
from ..ops import containers, procstats
from ..ops.storage import open_store
from . import bodytypes
from .forkserver import answer
from .httpserver import HTTPError
from .objects import _job, _routes

STATS_INTERVAL = 0.5  # between the two samples of a one-off answer, as `stats --no-stream`


def _running(store, name):
    record = containers.refresh_state(store, _routes()._container(name))
    return record, procstats.container_pids(record)


# -- top ----------------------------------------------------------------------------------------

def container_top(h, name):
    from ..ops import top
    store = open_store()
    record, pids = _running(store, name)
    if not pids:
        raise HTTPError(409, "Container %s is not running" % record["Id"])
    options = (h.arg("ps_args") or "").split()
    if not options or options == ["-ef"]:
        titles, rows = top.TITLES, top.default_rows(pids)
    else:
        titles, rows = _routes().FORK.call("top_ps", {"pids": pids, "options": options})
    h.reply(200, {"Titles": titles, "Processes": rows})


@_job("top_ps")
def top_ps(args, _fds, _progress):
    from ..ops import top
    return list(top.ps_rows(args["pids"], args["options"]))


# -- stats --------------------------------------------------------------------------------------

def _system_ns():
    """/proc/stat's total CPU time (every CPU), as dockerd's system_cpu_usage."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:9]
    return sum(int(v) for v in fields) * 1000000000 // procstats.CLK_TCK


def _networks(pid):
    """/proc/PID/net/dev of a container's init: its own network namespace's interfaces."""
    out = {}
    try:
        with open("/proc/%d/net/dev" % pid) as f:
            lines = f.read().splitlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        name, values = name.strip(), [int(v) for v in rest.split()]
        if name == "lo" or len(values) < 12:
            continue
        out[name] = {"rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                     "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                     "tx_errors": values[10], "tx_dropped": values[11]}
    return out


def _rfc3339(seconds):
    if not seconds:
        return "0001-01-01T00:00:00Z"
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + \
        ".%09dZ" % int((seconds - whole) * 1e9)


def _cpu(sample, system):
    ticks = sample["ticks"] if sample else 0
    return {"cpu_usage": {"total_usage": ticks * 1000000000 // procstats.CLK_TCK,
                          "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": system if sample else 0,
            "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_doc(record, pids, before, after):
    """Docker's stats document from two samples ((time, system ns, procstats.sample) or
    None): the CLI computes CPU % as the process time's share of the system's times the
    CPUs, which is `stats`' per-CPU percentage."""
    now, system, current = after or (0, 0, None)
    then, pre_system, previous = before or (0, 0, None)
    current = current or {}
    doc = {"read": _rfc3339(now), "preread": _rfc3339(then), "name": "/" + record["Name"],
           "id": record["Id"], "num_procs": 0, "storage_stats": {},
           "pids_stats": {"current": current.get("tasks", 0)},
           "blkio_stats": {"io_service_bytes_recursive": [
               {"major": 0, "minor": 0, "op": "read", "value": current.get("read", 0)},
               {"major": 0, "minor": 0, "op": "write", "value": current.get("write", 0)}]
               if current else None},
           "cpu_stats": _cpu(current, system), "precpu_stats": _cpu(previous, pre_system),
           "memory_stats": {"usage": current.get("memory", 0), "stats": {},
                            "limit": procstats.memory_total()} if current else {}}
    mode = (record.get("HostConfig") or {}).get("NetworkMode") or "host"
    if pids and mode != "host":
        nets = _networks(pids[0])
        if nets is not None:
            doc["networks"] = nets
    return doc


def _sample(pids):
    return (time.time(), _system_ns(), procstats.sample(pids)) if pids else None


def container_stats(h, name):
    store = open_store()
    record, pids = _running(store, name)
    stream = h.flag("stream", True)
    if not stream:
        before = None
        if not h.flag("one-shot") and pids:
            before = _sample(pids)
            time.sleep(STATS_INTERVAL)
        h.reply(200, stats_doc(record, pids, before, _sample(pids)))
        return
    r = _routes()
    write, end = h.stream()
    before = None
    while True:
        after = _sample(pids)
        write((json.dumps(stats_doc(record, pids, before, after)) + "\n").encode())
        before = after
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            if r._gone(h.connection):
                return
            time.sleep(0.05)
        record, pids = _running(store, record["Id"])
        if not pids:
            write((json.dumps(stats_doc(record, pids, None, None)) + "\n").encode())
            end()
            return


# -- update -------------------------------------------------------------------------------------

def container_update(h, name):
    """Docker's update body: RestartPolicy and the resource fields, as `update`'s flags."""
    from ..ops import update as update_ops
    from .createbody import limit_keywords
    body = h.json_body({}, bodytypes.UPDATE, "UpdateConfig")
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    record = _routes()._container(name)
    policy = body.get("RestartPolicy") or {}
    restart = None
    if policy.get("Name"):
        restart = policy["Name"]
        if policy.get("MaximumRetryCount"):
            restart += ":%d" % policy["MaximumRetryCount"]
    try:
        warnings = update_ops.update(open_store(), record["Id"], update_ops.UpdateOptions(
            restart=restart, **limit_keywords(body)))
    except errors.Conflict as exc:
        raise HTTPError(400, exc.message) from None  # dockerd: an invalid parameter
    h.reply(200, {"Warnings": warnings or None})


# -- changes, export, commit --------------------------------------------------------------------

_KINDS = {"C": 0, "A": 1, "D": 2}


def container_changes(h, name):
    record = _routes()._container(name)
    changes = _routes().FORK.call("changes", {"container": record["Id"]})
    h.reply(200, [{"Path": path, "Kind": _KINDS[kind]} for kind, path in changes] or None)


@_job("changes")
def changes_job(args, _fds, _progress):
    from ..ops.commit import diff
    from .jobs import _store
    idmap, store = _store()
    return [list(c) for c in diff(store, idmap, args["container"])]


def container_export(h, name):
    record = _routes()._container(name)
    _piped_out(h, "export", {"container": record["Id"]}, "application/x-tar")


@_job("export")
def export_job(args, fds, _progress):
    from ..ops.commit import export
    from .jobs import _store
    idmap, store = _store()
    try:
        export(store, idmap, args["container"], fds[0])
    finally:
        os.close(fds[0])
    return True


def commit(h):
    """POST /commit?container=&repo=&tag=&comment=&author=&changes=: a new image of the
    container's changes (ops/commit.commit); the body (a config to merge) is ignored."""
    name = h.arg("container") or ""
    record = _routes()._container(name)
    repo, tag = h.arg("repo") or "", h.arg("tag") or ""
    if tag and not repo:
        raise HTTPError(400, "tag is not allowed without a repository")
    h.json_body()  # read (a malformed one is Docker's 400 too)
    image_id = _routes().FORK.call("commit", {
        "container": record["Id"], "repository": repo + (":" + tag if tag else "") or None,
        "changes": [c for c in h.query.get("changes") or [] if c],
        "comment": h.arg("comment") or "", "author": h.arg("author") or ""})
    h.reply(201, {"Id": image_id})


@_job("commit")
def commit_job(args, _fds, _progress):
    from ..ops.commit import commit as commit_ops
    from .jobs import _store
    idmap, store = _store()
    return commit_ops(store, idmap, args["container"], args.get("repository"),
                      args.get("changes") or (), args.get("comment") or "",
                      args.get("author") or "")


# -- archive ------------------------------------------------------------------------------------

def _archive_path(h):
    path = h.arg("path")
    if not path:
        raise HTTPError(400, "path cannot be empty")
    return path


def _archive_error(exc):
    """ops/cp's errors as dockerd's statuses for the archive endpoints."""
    message = exc.message
    if isinstance(exc, errors.NotFound):
        return HTTPError(404, message)
    if "must be a directory" in message or "not a directory" in message:
        return HTTPError(400, message)
    if "read-only" in message:
        return HTTPError(403, message)
    return HTTPError(500 if not isinstance(exc, errors.UsageError) else 400, message)


def _stat_header(name, path):
    try:
        found = _routes().FORK.call("archive_stat", {"container": name, "path": path})
    except errors.BoxError as exc:
        raise _archive_error(exc) from None
    return base64.b64encode(json.dumps(found).encode()).decode()


def archive_head(h, name):
    _routes()._container(name)  # Docker's 404 first; the name as given is in its messages
    header = _stat_header(name, _archive_path(h))
    h.reply(200, b"", "application/json", [("X-Docker-Container-Path-Stat", header)])


def archive_get(h, name):
    _routes()._container(name)
    path = _archive_path(h)
    header = _stat_header(name, path)
    _piped_out(h, "archive_out", {"container": name, "path": path},
               "application/x-tar", [("X-Docker-Container-Path-Stat", header)])


def archive_put(h, name):
    """The request's tar, streamed to a worker that extracts it in the container."""
    _routes()._container(name)
    path = _archive_path(h)
    read_fd, write_fd = os.pipe()
    try:
        job = _routes().FORK.submit("archive_in", {
            "container": name, "path": path, "keep": h.flag("copyUIDGID")}, [read_fd])
    finally:
        os.close(read_fd)
    try:
        try:
            for chunk in _body_chunks(h):
                _write_all(write_fd, chunk)
        except BrokenPipeError:
            h.close_connection = True  # the worker failed early: the rest stays unread
        os.close(write_fd)
        write_fd = None
        try:
            answer(job)
        except errors.BoxError as exc:
            raise _archive_error(exc) from None
    finally:
        if write_fd is not None:
            os.close(write_fd)
        job.close()
    h.reply(200, b"", "text/plain")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _body_chunks(h, size=1 << 16):
    """The request body as it arrives (chunked or by Content-Length), never whole in memory;
    marked read, so the server does not read it again."""
    h._body = b""  # httpserver reads an unread body before the next request otherwise

    def pieces(left):
        while left:
            data = h.rfile.read(min(left, size))
            if not data:
                raise HTTPError(400, "the request body ended early")
            left -= len(data)
            yield data
    if h.headers.get("Transfer-Encoding", "").lower() != "chunked":
        yield from pieces(int(h.headers.get("Content-Length") or 0))
        return
    while True:
        length = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if length == 0:
            h.rfile.readline()
            return
        yield from pieces(length)
        h.rfile.readline()


def _piped_out(h, job_name, args, content_type, headers=()):
    """A worker's output on a pipe, streamed as the answer's chunked body; a failure before
    the first byte is a real status, one after it ends the connection."""
    read_fd, write_fd = os.pipe()
    try:
        job = _routes().FORK.submit(job_name, args, [write_fd])
    finally:
        os.close(write_fd)
    result = {}
    waiter = threading.Thread(target=_routes()._answer_into, args=(job, result),
                              daemon=True)
    waiter.start()
    try:
        first = os.read(read_fd, 1 << 16)
        if not first:
            waiter.join()
            if "error" in result:
                raise _archive_error(result["error"])
        h._start(200, [("Content-Type", content_type), ("Transfer-Encoding", "chunked")]
                 + list(headers))
        h.end_headers()
        data = first
        while data:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            data = os.read(read_fd, 1 << 16)
        waiter.join()
        if "error" in result:
            h.close_connection = True  # the tar is cut short: the client sees it
            return
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()
    finally:
        os.close(read_fd)  # a client gone: the worker's next write fails, it ends
        waiter.join()
        job.close()


@_job("archive_stat")
def archive_stat_job(args, _fds, _progress):
    from ..ops.cp import path_stat
    return path_stat(args["container"], args["path"])


@_job("archive_out")
def archive_out_job(args, fds, _progress):
    from ..ops.cp import archive_out
    try:
        return archive_out(args["container"], args["path"], fds[0])
    finally:
        os.close(fds[0])


@_job("archive_in")
def archive_in_job(args, fds, _progress):
    from ..ops.cp import archive_in
    try:
        return archive_in(args["container"], args["path"], fds[0], args.get("keep", False))
    finally:
        os.close(fds[0])


_ID = r"([^/]+)"
ROUTES = [
    ("GET", r"/containers/%s/top" % _ID, container_top),
    ("GET", r"/containers/%s/stats" % _ID, container_stats),
    ("POST", r"/containers/%s/update" % _ID, container_update),
    ("GET", r"/containers/%s/changes" % _ID, container_changes),
    ("GET", r"/containers/%s/export" % _ID, container_export),
    ("HEAD", r"/containers/%s/archive" % _ID, archive_head),
    ("GET", r"/containers/%s/archive" % _ID, archive_get),
    ("PUT", r"/containers/%s/archive" % _ID, archive_put),
    ("POST", r"/commit", commit),
]
