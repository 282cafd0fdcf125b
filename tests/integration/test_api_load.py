"""The Engine API under load and against bad clients: many clients at once, slow ones, bodies
over the limit, malformed and mistyped JSON, clients that leave in the middle of a transfer.

What a user relies on: the service keeps answering everyone while long streams are open (a
`docker logs -f`, a `docker events`) and while one client dawdles (sends its body byte by byte,
or stops reading a large answer); a bad request gets one JSON error with Docker's status (400,
413) and makes nothing; a client that goes away mid-upload or mid-download leaves no worker
process, thread or temporary file behind.
"""

import io
import json
import os
import select
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from conftest import wait_for
from test_api import api_cli, docker, no_leftovers, request, service  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _send(path, head, body=b""):
    """A connection with head (and body) sent, nothing read yet."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(60)
    conn.connect(path)
    conn.sendall(head + body)
    return conn


def _head(conn):
    """(status, the bytes after the headers read so far)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, "the service closed the connection before answering: %r" % data
        data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    return int(top.split()[1]), rest


def _read_until(conn, needle, data=b""):
    while needle not in data:
        chunk = conn.recv(65536)
        assert chunk, "the stream ended before %r" % needle
        data += chunk
    return data


def _threads(service):
    return len(os.listdir("/proc/%d/task" % service.proc.pid))


def _children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _alive(pid):
    """Not gone, nor a zombie (the fork server reaps its workers once a second)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _workers(service):
    """The fork server's workers now running (the fork server is the service's child)."""
    return [p for p in sum((_children(p) for p in _children(service.proc.pid)), [])
            if _alive(p)]


def _temporaries(api_cli):
    top = os.path.join(api_cli.root, "tmp")
    return sorted(os.listdir(top)) if os.path.isdir(top) else []


# -- many clients -------------------------------------------------------------------------------

def test_fifty_clients_are_served_while_streams_stay_open(service, docker, api_cli):
    assert docker("run", "-d", "--name", "ticker", "base", "sh", "-c",
                  "while true; do echo tick; sleep 0.1; done").returncode == 0
    logs = _send(service.path, b"GET /v1.44/containers/ticker/logs?follow=1&stdout=1 HTTP/1.1\r\n"
                 b"Host: d\r\n\r\n")
    events = _send(service.path, b"GET /v1.44/events HTTP/1.1\r\nHost: d\r\n\r\n")
    try:
        status, seen = _head(logs)
        assert status == 200
        _read_until(logs, b"tick", seen)
        assert _head(events)[0] == 200
        barrier = threading.Barrier(50)
        answers = [None] * 50

        def client(i):
            barrier.wait(timeout=60)
            ping = request(service.path, "GET", "/_ping")
            listed = request(service.path, "GET", "/v1.44/containers/json?all=1")
            answers[i] = (ping[0], ping[2], listed[0],
                          [c["Names"] for c in json.loads(listed[2])])
        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert answers == [(200, b"OK", 200, [["/ticker"]])] * 50
        # both streams outlived the burst: the log still flows, the journal still streams
        _read_until(logs, b"tick")
        assert docker("create", "--name", "evt", "base", "true").returncode == 0
        data = _read_until(events, b'"evt"')
        assert b'"create"' in data
    finally:
        logs.close()
        events.close()


def test_requests_share_a_connection_and_bad_request_lines_are_refused(service):
    # two requests pipelined on one connection: two answers, in order
    conn = _send(service.path, b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"
                 b"GET /v1.44/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    conn.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.count(b"HTTP/1.1 200 OK") == 2
    assert b'"ApiVersion": "1.44"' in data
    for head, status in ((b"garbage\r\n\r\n", 400),
                         (b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Big: " + b"x" * 70000 +
                          b"\r\n\r\n", 431),
                         (b"POST /containers/create HTTP/1.1\r\nContent-Length: many\r\n\r\n",
                          400),
                         (b"BREW /_ping HTTP/1.1\r\nHost: d\r\n\r\n", 501)):
        conn = _send(service.path, head)
        got, rest = _head(conn)
        assert got == status
        conn.close()
    assert service.request("GET", "/_ping")[0] == 200


# -- slow clients -------------------------------------------------------------------------------

def test_a_client_sending_its_body_byte_by_byte_stalls_no_one(service, api_cli):
    body = json.dumps({"Image": "base", "Cmd": ["true"]}).encode()
    slow = _send(service.path, b"POST /v1.44/containers/create?name=slow HTTP/1.1\r\n"
                 b"Host: d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                 % len(body))
    try:
        half = len(body) // 2
        for i in range(half):
            slow.sendall(body[i:i + 1])
        # its request is half read: everyone else is answered meanwhile
        for _ in range(5):
            assert service.request("GET", "/_ping")[0] == 200
            assert service.request("GET", "/v1.44/containers/json?all=1")[0] == 200
        for i in range(half, len(body)):
            slow.sendall(body[i:i + 1])
            time.sleep(0.01)  # a slow client's pace, not a wait for the service
        status, _rest = _head(slow)
        assert status == 201
    finally:
        slow.close()
    assert api_cli.ok("ps", "-a", "--format", "{{.Names}}").out == "slow\n"


def test_a_client_that_stops_reading_a_large_answer_stalls_no_one(service, api_cli):
    before = _threads(service)
    # `docker save`'s tar of the base image is larger than the socket's buffers
    stuck = [_send(service.path, b"GET /v1.44/images/base/get HTTP/1.1\r\nHost: d\r\n"
                   b"Connection: close\r\n\r\n") for _ in range(2)]
    try:
        for _ in range(5):
            assert service.request("GET", "/_ping")[0] == 200
            status, _h, body = service.request("GET", "/v1.44/images/json")
            assert status == 200 and json.loads(body)[0]["RepoTags"] == ["base:latest"]
        # the first one reads at last: its answer is whole
        conn = stuck[0]
        status, data = _head(conn)
        assert status == 200
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        assert data.endswith(b"0\r\n\r\n")
        assert len(data) > 1 << 20
        # the second one leaves without reading: its thread does not stay
        stuck[1].close()
    finally:
        for conn in stuck:
            conn.close()
    wait_for(lambda: _threads(service) <= before, what="the stalled answers' threads to end")


# -- bad bodies ---------------------------------------------------------------------------------

def test_a_json_body_over_64_mib_is_refused_with_a_json_error(service, api_cli):
    for head in (b"POST /v1.44/containers/create HTTP/1.1\r\nHost: d\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                 % ((64 << 20) + 1),
                 # chunked: refused at the chunk that would pass the limit, before it is read
                 b"POST /v1.44/networks/create HTTP/1.1\r\nHost: d\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n%x\r\n" % (64 << 20)):
        conn = _send(service.path, head)
        data = _read_until(conn, b"}\n")
        conn.close()
        top, _, body = data.partition(b"\r\n\r\n")
        assert top.startswith(b"HTTP/1.1 413 ")
        assert b"Content-Type: application/json" in top
        assert json.loads(body) == {"message": "request body too large: a JSON body may have "
                                               "at most 64 MiB"}
    assert api_cli.ok("ps", "-aq").out == ""
    assert service.request("GET", "/_ping")[0] == 200


BAD_BODIES = [
    # (endpoint, body, what the message says)
    ("/containers/create", b"{bad", "invalid JSON"),
    ("/containers/create", b"[]", "cannot unmarshal array into Go value"),
    ("/containers/create", {"Image": 5}, "ContainerConfig.Image of type string"),
    ("/containers/create", {"Image": "base", "Tty": "yes"}, "ContainerConfig.Tty of type bool"),
    ("/containers/create", {"Image": "base", "Labels": [1]}, "ContainerConfig.Labels of type"),
    ("/containers/create", {"Image": "base", "StopTimeout": "10"}, "of type int64"),
    ("/containers/create", {"Image": "base", "Hostname": 5}, "ContainerConfig.Hostname"),
    ("/containers/create", {"Image": "base", "HostConfig": {"RestartPolicy": "always"}},
     "HostConfig.RestartPolicy"),
    ("/containers/create", {"Image": "base", "HostConfig": {"PortBindings": {"80/tcp": [5]}}},
     "HostConfig.PortBindings"),
    ("/containers/create", {"Image": "base", "HostConfig": {"Memory": "1g"}},
     "HostConfig.Memory of type int64"),
    ("/containers/create", {"Image": "base", "NetworkingConfig": "x"}, "NetworkingConfig"),
    ("/containers/target/exec", b'"true"', "cannot unmarshal string into Go value"),
    ("/containers/target/exec", {"Cmd": ["true"], "Env": "A=1"}, "ExecConfig.Env"),
    ("/containers/target/update", {"RestartPolicy": "x"}, "UpdateConfig.RestartPolicy"),
    ("/containers/target/update", {"Memory": "x"}, "UpdateConfig.Memory"),
    ("/networks/create", {"Name": "n", "IPAM": "x"}, "NetworkCreateRequest.IPAM"),
    ("/networks/create", {"Name": "n", "IPAM": {"Config": [5]}}, "IPAM.Config"),
    ("/networks/create", {"Name": 5}, "NetworkCreateRequest.Name"),
    ("/volumes/create", {"Name": "v", "Labels": [1]}, "VolumeCreateBody.Labels"),
    ("/volumes/create", b"{", "invalid JSON"),
]


def test_malformed_json_and_wrong_types_are_400_and_make_nothing(service, docker, api_cli):
    assert docker("run", "-d", "--name", "target", "base", "sleep", "600").returncode == 0
    for endpoint, body, wording in BAD_BODIES:
        status, headers, answer = service.request("POST", "/v1.44" + endpoint, body,
                                                  {"Content-Type": "application/json"})
        assert status == 400, (endpoint, body, answer)
        assert headers["content-type"] == "application/json"
        assert wording in json.loads(answer)["message"], (endpoint, body, answer)
    assert api_cli.ok("ps", "-a", "--format", "{{.Names}}").out == "target\n"
    assert api_cli.ok("network", "ls", "-q", "--filter", "name=^n$").out == ""
    assert api_cli.ok("volume", "ls", "-q").out == ""
    # unknown fields are ignored, as dockerd ignores them
    status, _h, _b = service.request("POST", "/v1.44/containers/create?name=ok",
                                     {"Image": "base", "Cmd": ["true"], "NoSuchField": [1]})
    assert status == 201


# -- clients that leave -------------------------------------------------------------------------

def _partial_tar():
    """The first half of a tar: an upload cut short."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = os.urandom(256 << 10)
        info = tarfile.TarInfo("big")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()[:128 << 10]


def test_a_client_leaving_mid_transfer_leaves_nothing_behind(service, docker, api_cli):
    assert docker("run", "-d", "--name", "keep", "base", "sleep", "600").returncode == 0
    # the run's own workers end just after they answered
    wait_for(lambda: _workers(service) == [], what="the run's workers to end")
    before = _threads(service)
    part = _partial_tar()
    uploads = [
        b"POST /v1.44/build?t=cut:1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(part), part),
        b"PUT /v1.44/containers/keep/archive?path=/tmp HTTP/1.1\r\nHost: d\r\n"
        b"Content-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n%s"
        % (len(part) * 2, part),
        b"POST /v1.44/images/load HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(part) * 2, part),
    ]
    for head in uploads:
        earlier = set(_workers(service))
        conn = _send(service.path, head)
        # the service is at work on it (a worker of its own unpacks), or already answered
        wait_for(lambda: set(_workers(service)) - earlier or
                 select.select([conn], [], [], 0)[0], what="the service to take the upload")
        conn.close()  # mid-upload: the body's second half never comes
    downloads = [b"GET /v1.44/images/base/get HTTP/1.1\r\nHost: d\r\n\r\n",
                 b"GET /v1.44/containers/keep/export HTTP/1.1\r\nHost: d\r\n\r\n"]
    for head in downloads:
        conn = _send(service.path, head)
        assert _head(conn)[0] == 200
        conn.close()
    wait_for(lambda: _workers(service) == [], what="the transfers' workers to end")
    wait_for(lambda: _threads(service) <= before, what="the transfers' threads to end")
    api_cli.ok("ps")  # an opening of the store takes what dead pids left in its tmp/
    wait_for(lambda: _temporaries(api_cli) == [], what="no temporaries")
    assert api_cli.ok("images", "--format", "{{.Repository}}").out == "base\n"
    # the service still answers, and the container it was given is untouched
    assert docker("exec", "keep", "true").returncode == 0


def test_socket_activation_without_the_socket_is_refused_cleanly(api_cli):
    # LISTEN_FDS says fd 3 is the listener, but nothing was passed there
    script = ("import os, sys; os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1');"
              " os.execv(sys.argv[1], sys.argv[1:])")
    proc = subprocess.run([sys.executable, "-c", script] +
                          api_cli.argv("system", "service", "--time", "1"),
                          env=api_cli.env, capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert err.splitlines()[0] == ("rootless-box: error: LISTEN_FDS is set, but file "
                                   "descriptor 3 is no listening socket")
    assert "Traceback" not in err
