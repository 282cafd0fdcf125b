"""The Engine API's HTTP layer: the standard library's socketserver, one thread per
connection, and a small HTTP/1.1 request reader of our own.

Owns: the listening socket (a unix socket 0600 in a 0700 directory, an inherited one from
systemd's socket activation, or a loopback TCP port), the idle timeout (no connection open for
`idle` seconds: the service ends, as Podman's), and per request: the request line and headers
(with limits), reading the query and a JSON body, answering JSON, chunked streams, the 101
hijack, Docker's error body; and `/_ping`, the handshake every client opens with, answered
without loading the endpoints (a socket-activated service answers it within its start-up).
Why socketserver and not h11: it is in the standard library (nothing more in the frozen
binary), a handler owns its raw socket, so a hijack is writing `101 UPGRADED` and then using
the socket, and chunked streaming is a few lines; h11 would be a dependency plus our own
server loop and its state machine would have to be told to step aside after a 101.
Why not http.server's handler: importing it (http.client, email, ssl) took 17 ms of the
service's start, a third of the 50 ms a socket-activated first answer may take; what we
used of it is the 60 lines of request reading below.
Must not: know any endpoint but `/_ping` (api/routes.py), or fork (api/forkserver.py).
"""

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


_TOO_LARGE = "request body too large: a JSON body may have at most %d MiB" % (MAX_BODY >> 20)


def _number(text, base, what):
    try:
        value = int(text, base)
    except ValueError:
        raise HTTPError(400, "invalid %s" % what) from None
    if value < 0:
        raise HTTPError(400, "invalid %s" % what)
    return value


def ping(h):
    """`/_ping` (GET and HEAD): what clients negotiate the API version and builder with."""
    headers = [("Builder-Version", "1"), ("Docker-Experimental", "false"),
               ("Swarm", "inactive"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
               ("Pragma", "no-cache")]
    h.reply(200, b"OK", "text/plain; charset=utf-8", headers)


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


MAX_LINE = 65536     # a request line or header line (Go's net/http allows 1 MiB of headers)
MAX_HEADERS = 200
_REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content",
            304: "Not Modified", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            413: "Request Entity Too Large", 414: "Request-URI Too Long",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            501: "Not Implemented"}


class Headers(dict):
    """A request's headers, by lower-cased name (a repeated header: its last value)."""

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower())

    def __contains__(self, key):
        return dict.__contains__(self, key.lower())


class Handler(socketserver.StreamRequestHandler):
    """One connection's requests; api/routes.py dispatches them."""

    routes = None  # set by serve(): (method, path, handler) -> None
    hijacked = False
    close_connection = True

    def setup(self):
        super().setup()
        self.server.track(+1)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass  # a client gone before its answer was flushed
        finally:
            self.server.track(-1)

    def handle(self):
        self.handle_one_request()
        while not self.close_connection:
            self.handle_one_request()

    def _refuse(self, status, message):
        """A request we cannot read: its answer, and the connection closed."""
        self.command, self.sent, self.close_connection = "GET", False, True
        try:
            self.reply(status, {"message": message}, headers=[("Connection", "close")])
        except OSError:
            pass

    def handle_one_request(self):
        self.close_connection = True
        self.hijacked = False
        try:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.strip():
                if line in (b"\r\n", b"\n"):  # a stray empty line between requests
                    line = self.rfile.readline(MAX_LINE + 1)
                if not line.strip():
                    return  # the client closed its connection
            if len(line) > MAX_LINE:
                return self._refuse(414, "request line too long")
            words = line.decode("latin-1").split()
            if len(words) != 3 or not words[2].startswith("HTTP/1."):
                return self._refuse(400, "malformed HTTP request line")
            self.command, self.path, self.request_version = words
            headers = Headers()
            while True:
                line = self.rfile.readline(MAX_LINE + 1)
                if len(line) > MAX_LINE or len(headers) >= MAX_HEADERS:
                    return self._refuse(431, "request headers too large")
                if line in (b"\r\n", b"\n", b""):
                    break
                key, sep, value = line.decode("latin-1").partition(":")
                if not sep or not key.strip() or key != key.strip():
                    return self._refuse(400, "malformed HTTP header line")
                headers[key.lower()] = value.strip()
            self.headers = headers
        except OSError:
            return
        connection = headers.get("Connection", "").lower()
        self.close_connection = connection == "close" or (
            self.request_version == "HTTP/1.0" and connection != "keep-alive")
        if headers.get("Expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            return self._refuse(501, "method %s not supported" % self.command)
        try:
            method()
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def send_response(self, status):
        self._head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, "").encode()),
                      b"Server: Docker/%s (linux)\r\n" % config.VERSION.encode(),
                      time.strftime("Date: %a, %d %b %Y %H:%M:%S GMT\r\n",
                                    time.gmtime()).encode()]

    def send_header(self, key, value):
        if key.lower() == "connection" and value.lower() == "close":
            self.close_connection = True
        self._head.append(("%s: %s\r\n" % (key, value)).encode("latin-1"))

    def end_headers(self):
        self._head.append(b"\r\n")
        self.wfile.write(b"".join(self._head))
        self._head = []

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
            if path == "/_ping" and self.command in ("GET", "HEAD"):
                ping(self)  # with no endpoint module loaded yet (api/service.py)
            else:
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
        # a repeated parameter: its first value, as Go's r.FormValue (docker-py sends an
        # out-of-context Dockerfile as dockerfile=NAME&dockerfile=CONTENT)
        values = self.query.get(name)
        return values[0] if values else default

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
                data = bytearray()
                while True:
                    size = _number(self.rfile.readline(1024).split(b";")[0].strip() or b"0",
                                   16, "chunk size")
                    if size == 0:
                        self.rfile.readline(1024)
                        break
                    if len(data) + size > MAX_BODY:
                        raise HTTPError(413, _TOO_LARGE)
                    data += self.rfile.read(size)
                    self.rfile.readline(1024)
                data = bytes(data)
            else:
                length = _number(self.headers.get("Content-Length") or "0", 10,
                                 "Content-Length")
                if length > MAX_BODY:
                    raise HTTPError(413, _TOO_LARGE)
                data = self.rfile.read(length) if length else b""
                if len(data) < length:
                    self.close_connection = True
                    raise HTTPError(400, "the request body ended early")
            self._body = data
        return self._body

    def json_body(self, default=None, shape=None, where="body"):
        """The decoded body (default when empty); with shape (api/bodytypes.py), a field
        of a type dockerd's struct would refuse is its 400."""
        data = self.raw_body()
        if not data.strip():
            return default
        try:
            value = json.loads(data)
        except ValueError as exc:
            raise HTTPError(400, "invalid JSON: %s" % exc) from None
        if shape is not None:
            from . import bodytypes
            try:
                bodytypes.check(value, shape, where)
            except bodytypes.WrongType as exc:
                raise HTTPError(400, str(exc)) from None
        return value

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
    from ..userns.net import unsent
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            unread = unsent(conn.fileno())
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
    try:
        sock = socket.socket(fileno=3)
    except OSError:
        sock = None  # not a socket, or not open
    # fd 3 must be the listener systemd passed: when it was not passed, it may be the fork
    # server's own socket by now, which must stay as it is
    if sock is None or sock.type != socket.SOCK_STREAM or \
            not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        if sock is not None:
            sock.detach()
        raise errors.UsageError("LISTEN_FDS is set, but file descriptor 3 is no listening "
                                "socket", "start the service from its socket unit, or "
                                "without LISTEN_FDS and LISTEN_PID")
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
