"""The Engine API's HTTP layer: the standard library's http.server, one thread per connection.

Owns: the listening socket (a unix socket 0600 in a 0700 directory, an inherited one from
systemd's socket activation, or a loopback TCP port), the idle timeout (no connection open for
`idle` seconds: the service ends, as Podman's), and per request: reading the query and a JSON
body, answering JSON, chunked streams, the 101 hijack, Docker's error body.
Why http.server and not h11: it is in the standard library (nothing more in the frozen binary),
a handler owns its raw socket, so a hijack is writing `101 UPGRADED` and then using the socket,
and chunked streaming is a few lines; h11 would be a dependency plus our own server loop and
its state machine would have to be told to step aside after a 101.
Must not: know any endpoint (api/routes.py), or fork (api/forkserver.py).
"""

import http.server
import json
import os
import socket
import socketserver
import threading
import time
import urllib.parse

from .. import config, errors

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
MAX_BODY = 64 << 20


class HTTPError(Exception):
    """An answer other than success: Docker's status and message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def status_of(exc):
    """A BoxError -> Docker's HTTP status (404 missing, 409 conflict, 400 bad input)."""
    if isinstance(exc, errors.NotFound):
        return 404
    if isinstance(exc, errors.Conflict):
        return 409
    if isinstance(exc, errors.UsageError):
        return 400
    return 500


class Handler(http.server.BaseHTTPRequestHandler):
    """One connection's requests; api/routes.py dispatches them."""

    protocol_version = "HTTP/1.1"
    server_version = "Docker/%s" % config.VERSION
    sys_version = ""
    routes = None  # set by serve(): (method, path, handler) -> None
    hijacked = False

    def log_message(self, *_args):
        pass  # Docker's daemon logs nothing per request by default

    def version_string(self):
        return "Docker/%s (linux)" % config.VERSION

    def setup(self):
        super().setup()
        self.server.track(+1)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(-1)

    def _dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/v1.") or path.startswith("/v0."):
            path = "/" + path.split("/", 2)[2] if path.count("/") > 1 else "/"
        self.route_path = path
        self._body = None
        self.sent = False
        try:
            self.routes(self, self.command, path)
        except HTTPError as exc:
            self.error(exc.status, exc.message)
        except errors.BoxError as exc:
            self.error(status_of(exc), exc.message)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # no request can kill the service
            self.error(500, "internal error: %s: %s" % (type(exc).__name__, exc))
        if self.hijacked:
            self.close_connection = True
        elif self._body is None and not self.close_connection:
            try:
                self.raw_body()  # a body nobody read would be taken for the next request
            except (HTTPError, OSError, ValueError):
                self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    # -- input ---------------------------------------------------------------------------------

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def number(self, name, default=None):
        value = self.arg(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise HTTPError(400, "invalid %s: %r is not a number" % (name, value)) from None

    def flag(self, name, default=False):
        value = self.arg(name)
        if value is None:
            return default
        return value.lower() not in ("", "0", "false", "no")

    def raw_body(self):
        if self._body is None:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    data += self.rfile.read(size)
                    self.rfile.readline()
                    if len(data) > MAX_BODY:
                        raise HTTPError(413, "request body too large")
            else:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    raise HTTPError(413, "request body too large")
                data = self.rfile.read(length) if length else b""
            self._body = data
        return self._body

    def json_body(self, default=None):
        data = self.raw_body()
        if not data.strip():
            return default
        try:
            return json.loads(data)
        except ValueError as exc:
            raise HTTPError(400, "invalid JSON: %s" % exc) from None

    # -- output --------------------------------------------------------------------------------

    def _start(self, status, headers):
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Ostype", "linux")
        for key, value in headers:
            self.send_header(key, value)
        self.sent = True

    def reply(self, status, body=b"", content_type="application/json", headers=()):
        if not isinstance(body, bytes):
            body = (json.dumps(body) + "\n").encode()
        self._start(status, list(headers) + ([("Content-Type", content_type)]
                                             if body or status not in (204, 304) else []))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def error(self, status, message):
        if self.sent:  # an error after the answer began: the stream carries it, or nothing
            self.close_connection = True
            return
        self.reply(status, {"message": message})

    def stream(self, content_type="application/json"):
        """Begin a chunked answer (flushed at once); -> write(bytes) and end()."""
        self._start(200, [("Content-Type", content_type), ("Transfer-Encoding", "chunked")])
        self.end_headers()
        self.wfile.flush()

        def write(data):
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        def end():
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        return write, end

    def hijack(self, content_type):
        """Docker's upgrade: exactly `101 UPGRADED` (the CLI checks the number), flushed
        before any output byte (docker-py reads the raw socket under its buffered reader);
        -> the raw socket. A client that did not ask to upgrade gets a 200 and the raw
        stream, as dockerd answers one."""
        self.hijacked = True
        if self.headers.get("Upgrade"):
            self.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\n"
                             b"Connection: Upgrade\r\nUpgrade: tcp\r\n"
                             b"Api-Version: %s\r\n\r\n" % (content_type.encode(),
                                                           API_VERSION.encode()))
        else:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                             b"Api-Version: %s\r\n\r\n" % (content_type.encode(),
                                                           API_VERSION.encode()))
        self.wfile.flush()
        self.sent = True
        _headers_taken(self.connection)
        return self.connection


def _headers_taken(conn, limit=5.0):
    """Wait until the client has read the headers: docker-py reads them through a buffered
    reader and the stream from the raw socket beneath, so bytes that arrive with the
    headers are lost to it (an exited container's log replayed at once came back empty).
    The condition is the socket's unread count at 0, waited for at most `limit` s."""
    import fcntl
    import struct
    import termios
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            unread = struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ,
                                                    b"\0\0\0\0"))[0]
        except OSError:
            return
        if unread == 0:
            return
        time.sleep(0.002)


class _ServerMixin:
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def handle_error(self, request, client_address):
        import sys
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away is no error of the service's
        if config.debug():
            super().handle_error(request, client_address)

    def init_tracking(self, idle):
        self.idle = idle
        self.active = 0
        self.last = time.monotonic()
        self._count_lock = threading.Lock()

    def track(self, delta):
        with self._count_lock:
            self.active += delta
            self.last = time.monotonic()

    def is_idle(self):
        with self._count_lock:
            return bool(self.idle) and self.active == 0 and \
                time.monotonic() - self.last >= self.idle


class UnixServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    def get_request(self):
        conn, _addr = self.socket.accept()
        return conn, ("unix", 0)  # http.server wants an (address, port) pair


class TCPServer(_ServerMixin, socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True


def parse_uri(uri):
    """`unix://PATH` or `tcp://127.0.0.1:PORT` -> ("unix", path) or ("tcp", (host, port))."""
    if uri.startswith("unix://"):
        path = uri[len("unix://"):]
        if not path.startswith("/"):
            raise errors.UsageError("invalid URI %r: a unix socket needs an absolute path"
                                    % uri)
        return "unix", path
    if uri.startswith("tcp://"):
        host, _, port = uri[len("tcp://"):].rstrip("/").rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not host:
            raise errors.UsageError("invalid URI %r" % uri, "write tcp://127.0.0.1:PORT")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise errors.UsageError(
                "refusing to serve the API on %s: anyone who reaches it runs containers as "
                "you" % uri, "serve on a unix socket, or on tcp://127.0.0.1:PORT")
        return "tcp", (host, int(port))
    raise errors.UsageError("invalid URI %r" % uri, "use unix:///PATH or tcp://127.0.0.1:PORT")


def default_uri():
    return "unix://" + os.path.join(config.runtime_root(), "docker.sock")


def _activated():
    """The listening socket systemd passed (LISTEN_FDS/LISTEN_PID), or None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS") or 0)
    except ValueError:
        return None
    for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(key, None)
    if count < 1:
        return None
    sock = socket.socket(fileno=3)
    os.set_inheritable(3, False)
    return sock


def make_server(uri, idle, routes):
    """The listening server (not yet serving): -> (server, where it listens)."""
    handler = type("APIHandler", (Handler,), {"routes": staticmethod(routes)})
    inherited = _activated()
    if inherited is not None:
        cls = UnixServer if inherited.family == socket.AF_UNIX else TCPServer
        server = cls(inherited.getsockname(), handler, bind_and_activate=False)
        server.socket.close()
        server.socket = inherited
        server.init_tracking(idle)
        return server, "socket activation (fd 3)"
    kind, where = parse_uri(uri)
    if kind == "tcp":
        server = TCPServer(where, handler)
        server.init_tracking(idle)
        return server, "tcp://%s:%d" % where
    directory = os.path.dirname(where)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if os.stat(directory).st_uid == os.getuid():
        os.chmod(directory, 0o700)
    try:
        os.unlink(where)
    except FileNotFoundError:
        pass
    old = os.umask(0o177)  # the socket is 0600 from its first moment
    try:
        server = UnixServer(where, handler)
    finally:
        os.umask(old)
    server.init_tracking(idle)
    return server, "unix://" + where


def serve(server):
    """Answer requests until the idle timeout passes (never with idle 0) or SIGTERM/^C."""
    server.timeout = 0.5
    try:
        while not server.is_idle():
            server.handle_request()
    finally:
        server.server_close()
