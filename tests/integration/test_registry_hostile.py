"""Issue 5's "Bad input, faults, security", through the CLI as a user runs it: registries that
do not exist or do not answer, refuse credentials, lack a tag, rate-limit, send bad JSON, an
oversized manifest or bytes that do not match their digest (a blob corrupted on a real
registry's disk among them), redirect blobs to another host (followed, without credentials),
cut a layer download in the middle (resumed with Range), or have no image for the platform
asked for; and HTTP_PROXY / NO_PROXY honoured.

Every failure must be one `rootless-box: error:` line (and an optional hint), exit 125, no
traceback, and nothing half-made: no image, no blob, no layer directory, nothing left in tmp/.

A real docker-registry (tests/registry_server.py) serves wherever it can produce the case; a
small fake registry in this file serves only answers a real one never gives (429, bad JSON, a
manifest over 4 MiB, wrong bytes for a digest, a cross-host redirect). The CLI runs as a
subprocess with the transport's real retries and backoff, so nothing in it is patched.
"""

import gzip
import hashlib
import json
import os
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import registry_server as rs
from conftest import Cli, assert_one_error, layer_dir, listing, needs_userns, store_dir

pytestmark = needs_userns

_REAL = rs.missing("docker-registry", "skopeo", "openssl")
needs_registry = pytest.mark.skipif(_REAL is not None, reason=_REAL or "")

_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
               "NO_PROXY", "all_proxy", "ALL_PROXY", "REGISTRY_AUTH_FILE")


@pytest.fixture
def fresh(tmp_path):
    """A CLI with a store, config home and Docker config of its own: a failed pull is judged
    by what it left in an otherwise empty store, and no login of another test helps it."""
    made = []

    def make(config_home=None, env=None):
        cli = Cli(str(tmp_path / "data"))
        for name in _PROXY_VARS:
            cli.env.pop(name, None)
        cli.env["XDG_CONFIG_HOME"] = config_home or str(tmp_path / "config")
        cli.env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
        cli.env.update(env or {})
        made.append(cli)
        return cli
    yield make
    # layers unpacked under a subuid mapping: pytest alone cannot remove them later
    for cli in made:
        ids = cli("images", "-q", "-a").out.split()
        if ids:
            cli("rmi", "-f", *ids)


def assert_nothing_made(cli):
    # tmp/ first: the next locked command (`images`) would sweep a dead pid's leftovers
    tmp = store_dir(cli, "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == [], os.listdir(tmp)
    made = listing(cli)
    assert made["layers"] == [] and made["blobs/sha256"] == [], made
    assert cli.ok("images", "-q", "-a").out.strip() == ""


def assert_pulled(cli, name):
    out = cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}").out.split()
    assert name in out, out
    assert not os.listdir(store_dir(cli, "tmp"))


def error_text(proc):
    return proc.err.split("rootless-box: error: ", 1)[1]


# -- a fake registry for answers a real one never gives -----------------------------------------

def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def small_image(payload=b"hello from a fake registry\n"):
    """{manifest, config, layer (gzip), layer_digest, config_digest}: one file in one layer."""
    layer_tar = rs._tar([("etc", "dir", None, 0o755), ("etc/hello", "file", payload, 0o644)])
    layer = gzip.compress(layer_tar, mtime=0)
    config = json.dumps({
        "architecture": rs.host_arch(), "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(layer_tar)]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer), "size": len(layer)}]}).encode()
    return {"manifest": manifest, "config": config, "layer": layer,
            "config_digest": digest_of(config), "layer_digest": digest_of(layer)}


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up on an oversized answer is the point, not a failure


class FakeServer:
    """An HTTP server on a loopback port. routes: {path: (status, headers, body)} or a
    callable(handler) -> that triple; GET /v2/ answers 200 unless routed; anything else 404
    with distribution's error body. basic=(user, password) demands Basic auth everywhere.
    requests: (method, path, headers as a lower-cased dict) of each request."""

    def __init__(self, routes=None, basic=None):
        self.routes = dict(routes or {})
        self.basic = basic
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server._handle(self)

            def do_HEAD(self):
                server._handle(self, head=True)

            def log_message(self, *args):
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.host = "127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def _handle(self, handler, head=False):
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.requests.append((handler.command, handler.path, headers))
        if self.basic and headers.get("authorization") != rs._basic(*self.basic):
            answer = (401, {"WWW-Authenticate": 'Basic realm="fake"'},
                      b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication '
                      b'required"}]}')
        else:
            answer = self.routes.get(handler.path)
            if callable(answer):
                answer = answer(handler)
            if answer is None:
                answer = (200, {}, b"{}") if handler.path == "/v2/" else \
                    (404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest '
                              b'unknown"}]}')
        status, extra, body = answer
        try:
            handler.send_response(status)
            extra = dict(extra)
            extra.setdefault("Content-Type", "application/json")
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if not head:
                handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def fake():
    servers = []

    def start(routes=None, basic=None):
        servers.append(FakeServer(routes, basic))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()


def image_routes(image, repo="x/img", tag="1"):
    return {
        "/v2/%s/manifests/%s" % (repo, tag): (200, {"Content-Type": OCI_MANIFEST},
                                              image["manifest"]),
        "/v2/%s/blobs/%s" % (repo, image["config_digest"]): (200, {}, image["config"]),
        "/v2/%s/blobs/%s" % (repo, image["layer_digest"]): (200, {}, image["layer"]),
    }


# -- a TCP relay: a proxy that records requests, and can cut a response short ------------------

class Relay:
    """Forwards bytes between a client and a server, recording each request head the client
    sends. upstream=(host, port): a transparent relay; None: an HTTP forward proxy, which
    connects where the first absolute-URI request line says (the registry is Go's net/http,
    which serves absolute-form requests as they come). cut(head) -> a byte count after which
    the response to that request is cut off (both sockets closed), or None."""

    def __init__(self, upstream=None, cut=None):
        self.upstream = upstream
        self.cut = cut
        self.heads = []
        self.cuts = 0
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def request_lines(self):
        with self._lock:
            return [h.split("\r\n", 1)[0] for h in self.heads]

    def close(self):
        self._stop = True
        self._sock.close()
        for s in list(self._conns):
            _close(s)

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        state = {"limit": None, "sent": 0, "buf": b""}
        upstream = None
        try:
            if self.upstream:
                upstream = socket.create_connection(self.upstream)
            else:
                while b"\r\n" not in state["buf"]:
                    data = client.recv(65536)
                    if not data:
                        return _close(client)
                    state["buf"] += data
                target = state["buf"].split(b" ", 2)[1].decode()
                parts = urllib.parse.urlsplit(target)
                upstream = socket.create_connection((parts.hostname, parts.port or 80))
                pending, state["buf"] = state["buf"], b""
                self._from_client(state, pending, upstream)
            self._conns.append(upstream)
        except OSError:
            return _close(client)
        threading.Thread(target=self._pump_down, args=(upstream, client, state),
                         daemon=True).start()
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                self._from_client(state, data, upstream)
        except OSError:
            pass
        _close(upstream)

    def _from_client(self, state, data, upstream):
        state["buf"] += data
        # requests of a pull carry no body: every head ends a request
        while b"\r\n\r\n" in state["buf"]:
            head, state["buf"] = state["buf"].split(b"\r\n\r\n", 1)
            head = head.decode("latin-1")
            with self._lock:
                self.heads.append(head)
                limit = self.cut(head) if self.cut and not self.cuts else None
            # decided before the request goes on, so the whole answer is counted
            state["limit"], state["sent"] = limit, 0
        upstream.sendall(data)

    def _pump_down(self, upstream, client, state):
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                limit = state["limit"]
                if limit is not None and state["sent"] + len(data) >= limit:
                    client.sendall(data[:limit - state["sent"]])
                    with self._lock:
                        self.cuts += 1
                    break
                state["sent"] += len(data)
                client.sendall(data)
        except OSError:
            pass
        _close(client)
        _close(upstream)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture
def relays():
    made = []

    def start(**kw):
        made.append(Relay(**kw))
        return made[-1]
    yield start
    for relay in made:
        relay.close()


# -- a busybox on a real registry ----------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_busybox(plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout)
    return plain_registry


# == 1. nobody there ===========================================================================

def test_unknown_registry_is_a_dns_error(fresh):
    cli = fresh()
    proc = cli("pull", "nonexistent.invalid/x:1")
    assert_one_error(proc)
    assert "cannot resolve nonexistent.invalid" in proc.err, proc.err
    assert_nothing_made(cli)


def test_connection_refused(fresh):
    cli = fresh()
    port = rs.free_port()  # bound and released: nothing listens there now
    proc = cli("pull", "127.0.0.1:%d/x:1" % port)
    assert_one_error(proc)
    assert "cannot reach 127.0.0.1:%d" % port in proc.err, proc.err
    assert "refused" in proc.err.lower(), proc.err
    assert_nothing_made(cli)


# == 2. credentials ============================================================================

@needs_registry
def test_401_without_credentials_says_to_log_in(fresh, auth_registry, busybox_layout, tmp_path):
    rs.push_busybox(auth_registry, busybox_layout)
    config = str(tmp_path / "config")
    auth_registry.install_ca(config)
    cli = fresh(config)
    proc = cli("pull", auth_registry.ref("library/busybox"))
    assert_one_error(proc)
    assert "authentication required" in proc.err, proc.err
    assert "hint: log in with 'rootless-box login %s'" % auth_registry.host in proc.err
    assert_nothing_made(cli)


@needs_registry
def test_login_with_a_wrong_password_saves_nothing(fresh, auth_registry, tmp_path):
    config = str(tmp_path / "config")
    auth_registry.install_ca(config)
    cli = fresh(config)
    proc = cli("login", "-u", auth_registry.username, "--password-stdin", auth_registry.host,
               input=b"not-the-password\n")
    assert_one_error(proc)
    assert "credentials are wrong" in proc.err, proc.err
    assert "not-the-password" not in proc.err + proc.out
    assert "Login Succeeded" not in proc.out
    assert not os.path.exists(os.path.join(config, "rootless-box", "auth.json"))


# == 3. a tag that is not there ================================================================

@needs_registry
def test_404_tag_names_the_manifest(fresh, plain_busybox):
    cli = fresh()
    proc = cli("pull", plain_busybox.ref("library/busybox", "no-such-tag"))
    assert_one_error(proc)
    assert "manifest library/busybox:no-such-tag: not found" in proc.err, proc.err
    assert_nothing_made(cli)


# == 4. rate limit =============================================================================

HUB_429 = ("You have reached your pull rate limit. You may increase the limit by "
           "authenticating and upgrading: https://www.docker.com/increase-rate-limit")


def test_429_shows_the_registrys_message(fresh, fake):
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": HUB_429}]}).encode()
    server = fake({"/v2/library/busybox/manifests/latest": (429, {"Retry-After": "1"}, body)})
    cli = fresh()
    started = time.monotonic()
    proc = cli("pull", server.host + "/library/busybox")
    elapsed = time.monotonic() - started
    assert_one_error(proc)
    assert "You have reached your pull rate limit." in proc.err, proc.err
    manifest_gets = [r for r in server.requests if "/manifests/" in r[1]]
    assert len(manifest_gets) == 4, manifest_gets  # retried with backoff, then given up
    assert elapsed < 15, elapsed
    assert_nothing_made(cli)


# == 5. answers that cannot be trusted =========================================================

def test_manifest_that_is_not_json(fresh, fake):
    server = fake({"/v2/x/img/manifests/1": (200, {"Content-Type": OCI_MANIFEST},
                                             b'{"schemaVersion": 2, "layers": [')})
    cli = fresh()
    proc = cli("pull", server.host + "/x/img:1")
    assert_one_error(proc)
    assert "manifest x/img:1 is not valid JSON" in proc.err, proc.err
    assert_nothing_made(cli)


def test_manifest_over_4_mib(fresh, fake):
    # valid JSON, only too big: the limit must bite before any parsing
    big = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "annotations": {"pad": "x" * (4 << 20)}}).encode()
    server = fake({"/v2/x/img/manifests/1": (200, {"Content-Type": OCI_MANIFEST}, big)})
    cli = fresh()
    proc = cli("pull", server.host + "/x/img:1")
    assert_one_error(proc)
    assert "manifest x/img:1" in proc.err and "is larger than %d bytes" % (4 << 20) in proc.err
    assert_nothing_made(cli)


def test_manifest_by_digest_with_other_bytes(fresh, fake):
    image = small_image()
    asked = digest_of(image["manifest"] + b" ")  # what a tampering mirror would be asked for
    server = fake({"/v2/x/img/manifests/" + asked: (200, {"Content-Type": OCI_MANIFEST},
                                                    image["manifest"])})
    cli = fresh()
    proc = cli("pull", "%s/x/img@%s" % (server.host, asked))
    assert_one_error(proc)
    assert "manifest x/img@%s: the registry sent content with digest %s" % (
        asked, digest_of(image["manifest"])) in proc.err, proc.err
    assert_nothing_made(cli)


def test_config_blob_with_other_bytes(fresh, fake):
    image = small_image()
    routes = image_routes(image)
    routes["/v2/x/img/blobs/" + image["config_digest"]] = (
        200, {}, image["config"].replace(b'"sh"', b'"id"'))
    server = fake(routes)
    cli = fresh()
    proc = cli("pull", server.host + "/x/img:1")
    assert_one_error(proc)
    assert "does not match its digest %s" % image["config_digest"] in proc.err, proc.err
    assert not [r for r in server.requests if image["layer_digest"] in r[1]]
    assert_nothing_made(cli)


def _corrupt_header_mtime(data):
    # bytes 4-7 of a gzip member are its MTIME: nothing checks them, so the layer still
    # decompresses to the same tar (same diff ID) and only the blob digest can tell
    return data[:4] + b"\x01\x02\x03\x04" + data[8:]


def _corrupt_middle(data):
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + \
        data[middle + 64:]


@needs_registry
@pytest.mark.parametrize("corrupt", [_corrupt_header_mtime, _corrupt_middle],
                         ids=["gzip-header", "deflate-stream"])
def test_layer_corrupted_on_the_registrys_disk(fresh, registry_factory, busybox_layout,
                                               corrupt):
    registry = registry_factory()
    rs.push_busybox(registry, busybox_layout)
    _status, _type, manifest, _digest = registry.manifest("library/busybox")
    layer = manifest["layers"][0]["digest"]
    path = registry.blob_path(layer)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(corrupt(data))  # same size: only the content is wrong
    cli = fresh()
    proc = cli("pull", registry.ref("library/busybox"))
    assert_one_error(proc)
    assert "layer %s does not match its digest" % layer in proc.err, proc.err
    assert_nothing_made(cli)


# == 6. blobs redirected to another host =======================================================

def test_blob_redirect_to_another_host_gets_no_credentials(fresh, fake):
    image = small_image()
    storage = fake({"/s3/layer": (200, {"Content-Type": "application/octet-stream"},
                                  image["layer"])})
    routes = image_routes(image)
    # another host *name* (localhost, not 127.0.0.1) as an S3 back-end would be
    routes["/v2/x/img/blobs/" + image["layer_digest"]] = (
        307, {"Location": "http://localhost:%d/s3/layer" % storage.port}, b"")
    registry = fake(routes, basic=("alice", "s3cret-pw"))
    cli = fresh()
    cli.ok("login", "-u", "alice", "--password-stdin", registry.host, input=b"s3cret-pw\n")
    cli.ok("pull", registry.host + "/x/img:1")
    assert_pulled(cli, registry.host + "/x/img:1")
    redirected = [r for r in registry.requests if image["layer_digest"] in r[1]]
    assert redirected and all("authorization" in r[2] for r in redirected), redirected
    assert storage.requests, "the redirect was not followed"
    for method, path, headers in storage.requests:
        assert "authorization" not in headers, (method, path, headers)
        assert "s3cret" not in json.dumps(headers)


# == 7. a connection cut in the middle of a layer ==============================================

@needs_registry
def test_connection_cut_mid_layer_resumes_with_range(fresh, plain_busybox, relays):
    port = int(plain_busybox.host.rpartition(":")[2])

    def cut(head):
        line, _, rest = head.partition("\r\n")
        if line.startswith("GET ") and "/blobs/sha256:" in line and \
                "range:" not in rest.lower():
            return 64 << 10  # the config is smaller: only the layer's answer reaches this
        return None
    relay = relays(upstream=("127.0.0.1", port), cut=cut)
    cli = fresh()
    name = "127.0.0.1:%d/library/busybox:latest" % relay.port
    cli.ok("pull", name)
    assert relay.cuts == 1
    ranges = [int(m.group(1)) for h in relay.heads
              for m in [re.search(r"(?im)^range: bytes=(\d+)-\s*$", h)] if m]
    assert ranges and ranges[0] > 0, relay.heads
    assert_pulled(cli, name)


# == 8. no image for the platform ==============================================================

@needs_registry
def test_platform_missing_from_the_index_lists_what_is_there(fresh, plain_registry,
                                                             multiarch_layout):
    rs.push_multiarch(plain_registry, multiarch_layout)
    cli = fresh()
    proc = cli("pull", "--platform", "linux/s390x", plain_registry.ref("library/multi"))
    assert_one_error(proc)
    assert "linux/s390x" in proc.err and "linux/amd64" in proc.err and \
        "linux/arm64" in proc.err, proc.err
    assert_nothing_made(cli)


# == HTTP_PROXY and NO_PROXY ===================================================================

@needs_registry
def test_http_proxy_is_used(fresh, plain_busybox, relays):
    proxy = relays()
    url = "http://127.0.0.1:%d" % proxy.port
    cli = fresh(env={"HTTP_PROXY": url, "http_proxy": url})
    cli.ok("pull", plain_busybox.ref("library/busybox"))
    lines = proxy.request_lines()
    prefix = "GET http://%s/v2/" % plain_busybox.host
    assert "%s HTTP/1.1" % prefix in lines, lines
    assert any(line.startswith(prefix + "library/busybox/blobs/") for line in lines), lines
    assert_pulled(cli, plain_busybox.ref("library/busybox"))


@needs_registry
def test_no_proxy_bypasses_the_proxy(fresh, plain_busybox, relays):
    proxy = relays()
    url = "http://127.0.0.1:%d" % proxy.port
    cli = fresh(env={"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": "127.0.0.1",
                     "no_proxy": "127.0.0.1"})
    cli.ok("pull", plain_busybox.ref("library/busybox"))
    assert proxy.request_lines() == []
    assert_pulled(cli, plain_busybox.ref("library/busybox"))
