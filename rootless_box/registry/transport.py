"""HTTP(S) for the registry client, on the standard library's http.client.

Owns: connections (kept alive and reused per scheme/host/port), TLS (the system CA store plus a
registry's certs.d CA files and client certificate, or no verification when the user asked for
it), HTTP(S)_PROXY / NO_PROXY (CONNECT tunnels for https), redirects (Authorization is never
sent to another host), retries with backoff for idempotent requests on 5xx / 429 / dropped
connections, and response bodies read as streams.
Must not: know about registries, auth or digests (client.py and auth.py do), print, or keep a
connection it inherited across fork(): `forget_connections()` is called in a forked child.

Why not requests/urllib3: blob bodies are streamed into a hashing, decompressing tar reader,
resumed with Range after a broken connection, and read in forked helpers; http.client gives
that control in ~300 lines with no import cost on the `run` path and no extra dependency in
the one-file binary.
"""

import http.client
import os
import socket
import ssl
import time
import urllib.parse

from ..errors import RegistryError

USER_AGENT = "rootless-box/0.1"
TIMEOUT = 60
_REDIRECTS = (301, 302, 303, 307, 308)
_RETRY_STATUS = (429, 500, 502, 503, 504)
_IDEMPOTENT = ("GET", "HEAD", "PUT", "DELETE")
# Backoff before the 2nd, 3rd, 4th attempt of a request that failed in a way worth retrying.
BACKOFF = (0.5, 1.5, 4.0)
# Errors of a connection the server (or a proxy) dropped: a kept-alive socket can go stale.
CONNECTION_ERRORS = (ConnectionError, http.client.RemoteDisconnected,
                     http.client.IncompleteRead, socket.timeout, http.client.BadStatusLine)


class Response:
    """A response whose body is read as a stream; close() returns the connection to the pool
    when the body was read to its end."""

    def __init__(self, transport, key, conn, raw, url):
        self._transport, self._key, self._conn, self._raw = transport, key, conn, raw
        self.status = raw.status
        self.reason = raw.reason
        self.headers = {k.lower(): v for k, v in raw.getheaders()}
        self.url = url

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def read(self, size=-1):
        return self._raw.read() if size is None or size < 0 else self._raw.read(size)

    def read_limited(self, limit, what):
        """The whole body, refusing one larger than limit (a hostile server's endless JSON)."""
        data = self._raw.read(limit + 1)
        if len(data) > limit:
            self.close()
            raise RegistryError("%s from %s is larger than %d bytes" % (
                what, self.url, limit), "the registry's answer cannot be trusted")
        self.close()
        return data

    def close(self):
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        if self._raw.isclosed() and not self._raw.will_close:
            self._transport._release(self._key, conn)
        else:
            self._raw.close()
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Transport:
    """Connections for one registry endpoint's TLS settings.

    verify: check the server's certificate (False: --tls-verify=false or an insecure registry);
    ca_files: extra PEM CA files (certs.d); client_cert: (cert file, key file) or None.
    """

    def __init__(self, verify=True, ca_files=(), client_cert=None, timeout=TIMEOUT):
        self.verify = verify
        self.ca_files = tuple(ca_files)
        self.client_cert = client_cert
        self.timeout = timeout
        self._idle = {}
        self._ssl = None

    # -- connections ------------------------------------------------------------------------
    def _context(self):
        if self._ssl is None:
            ctx = ssl.create_default_context()
            for path in self.ca_files:
                try:
                    ctx.load_verify_locations(cafile=path)
                except (OSError, ssl.SSLError) as exc:
                    raise RegistryError("cannot load CA certificate %s: %s" % (path, exc),
                                        "fix or remove that file") from None
            if self.client_cert:
                try:
                    ctx.load_cert_chain(*self.client_cert)
                except (OSError, ssl.SSLError) as exc:
                    raise RegistryError("cannot load client certificate %s: %s" % (
                        self.client_cert[0], exc), "fix or remove that file") from None
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    def _connect(self, scheme, host, port):
        proxy = _proxy_for(scheme, host)
        if scheme == "https":
            if proxy:
                conn = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=self.timeout,
                                                   context=self._context())
                conn.set_tunnel(host, port, headers=proxy[2])
            else:
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                                   context=self._context())
        elif proxy:
            conn = _PlainProxyConnection(proxy[0], proxy[1], timeout=self.timeout)
            conn.proxy_headers = proxy[2]
        else:
            conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return conn

    def _acquire(self, key):
        idle = self._idle.get(key)
        if idle:
            return idle.pop(), True
        return self._connect(*key), False

    def _release(self, key, conn):
        self._idle.setdefault(key, []).append(conn)

    def close(self):
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle = {}

    def forget_connections(self):
        """In a forked child: the parent's sockets are the parent's; drop them unused."""
        self._idle = {}

    # -- requests ---------------------------------------------------------------------------
    def request(self, method, url, headers=None, body=None, redirects=5, retry=True):
        """Send a request and return a Response (any status). Redirects are followed for GET
        and HEAD; Authorization goes only to the host it was meant for."""
        headers = dict(headers or {})
        origin = urllib.parse.urlsplit(url).netloc
        attempts = len(BACKOFF) + 1 if retry and method in _IDEMPOTENT and \
            (body is None or isinstance(body, bytes)) else 1
        for hop in range(redirects + 1):
            resp = self._send_retrying(method, url, headers, body, attempts)
            if resp.status not in _REDIRECTS or method not in ("GET", "HEAD"):
                return resp
            location = resp.header("location")
            resp.read()
            resp.close()
            if not location:
                raise RegistryError("redirect without a location from %s" % url)
            url = urllib.parse.urljoin(url, location)
            if urllib.parse.urlsplit(url).netloc != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError("too many redirects from %s" % url)

    def _send_retrying(self, method, url, headers, body, attempts):
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._send(method, url, headers, body)
            except ConnectionRefusedError as exc:
                # nothing listens: no use waiting (and a dead mirror must not hold up the
                # next endpoint)
                raise _connection_error(url, exc) from None
            except CONNECTION_ERRORS as exc:
                if last:
                    raise _connection_error(url, exc) from None
            except OSError as exc:
                # DNS, unreachable networks, TLS failures: the same answer next time
                raise _connection_error(url, exc) from None
            else:
                if resp.status not in _RETRY_STATUS or last:
                    return resp
                resp.read()
                resp.close()
            time.sleep(BACKOFF[attempt])
        raise AssertionError("unreachable")

    def _send(self, method, url, headers, body):
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise RegistryError("invalid URL from the registry: %s" % url)
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        send_headers = {"User-Agent": USER_AGENT}
        send_headers.update(headers)
        for fresh_try in (0, 1):
            conn, reused = self._acquire(key)
            try:
                if isinstance(conn, _PlainProxyConnection):
                    conn.request(method, url, body=body,
                                 headers=dict(send_headers, **conn.proxy_headers))
                else:
                    conn.request(method, path, body=body, headers=send_headers)
                raw = conn.getresponse()
            except CONNECTION_ERRORS + (BrokenPipeError,):
                conn.close()
                # a kept-alive socket the server had closed: one more try on a new one
                if reused and not fresh_try:
                    if body is not None and hasattr(body, "seek"):
                        body.seek(0)
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            return Response(self, key, conn, raw, url)
        raise AssertionError("unreachable")


class _PlainProxyConnection(http.client.HTTPConnection):
    """An HTTP proxy for plain-HTTP registries: the request line carries the whole URL."""
    proxy_headers = {}


def _connection_error(url, exc):
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RegistryError("TLS certificate of %s not trusted: %s" % (host, exc.verify_message
                                                                         or exc),
                             "put its CA in ~/.config/rootless-box/certs.d/%s/ca.crt, or use "
                             "--tls-verify=false if you trust the network" % host)
    if isinstance(exc, ssl.SSLError):
        return RegistryError("TLS handshake with %s failed: %s" % (host, exc.reason or exc),
                             "a plain-HTTP registry must be marked insecure in registries.conf"
                             " (or use --tls-verify=false)")
    if isinstance(exc, socket.gaierror):
        return RegistryError("cannot resolve %s: %s" % (host.rpartition(":")[0] or host,
                                                        exc.strerror or exc),
                             "check the registry name and this machine's DNS")
    if isinstance(exc, socket.timeout):
        return RegistryError("timed out talking to %s" % host, "try again later")
    return RegistryError("cannot reach %s: %s" % (host, getattr(exc, "strerror", None) or exc),
                         "check that the registry is running and reachable")


# -- proxies -------------------------------------------------------------------------------------

def _proxy_for(scheme, host):
    """(proxy host, port, headers) from HTTPS_PROXY/HTTP_PROXY unless NO_PROXY covers host."""
    env = os.environ
    value = env.get(scheme + "_proxy") or env.get(scheme.upper() + "_PROXY")
    if not value or _no_proxy(host):
        return None
    if "://" not in value:
        value = "http://" + value
    parts = urllib.parse.urlsplit(value)
    if not parts.hostname:
        return None
    headers = {}
    if parts.username:
        import base64
        creds = "%s:%s" % (urllib.parse.unquote(parts.username),
                           urllib.parse.unquote(parts.password or ""))
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
    return parts.hostname, parts.port or 80, headers


def _no_proxy(host):
    value = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    host = host.lower().strip("[]")
    for entry in value.split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.rpartition(":")[0] if entry.count(":") == 1 else entry
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False
