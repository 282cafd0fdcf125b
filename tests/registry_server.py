"""A real registry for the registry tests: Debian's `docker-registry` (CNCF distribution 2.8)
started on a free loopback port as the test user, in four variants (plain HTTP, TLS with a
test CA, TLS + htpasswd basic auth, TLS + the bearer token flow with a token server written
here), plus images pushed to it by skopeo (busybox from this machine, a two-platform index, zstd
layers).

Owns: the test CA and certificates (made with the openssl CLI), the registry's config, storage
and process (killed on teardown even when a test fails, and by PR_SET_PDEATHSIG if pytest itself
dies), the token server (Docker's token endpoint: JWTs signed RS256 with an x5c header) and its
request log, the OCI layouts written by hand for skopeo to push. Never imports rootless_box: it
is the yardstick the client is measured with.

tests/conftest.py star-imports this module; `__all__` is the list of fixtures it exposes.
"""

import base64
import gzip
import hashlib
import io
import json
import math
import os
import platform
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

__all__ = ["registry_ca", "registry_factory", "plain_registry", "tls_registry",
           "auth_registry", "token_registry", "busybox_layout", "multiarch_layout"]

REGISTRY_BIN = "/usr/bin/docker-registry"
TEST_USER = "rbxuser"
TEST_PASSWORD = "rbx-secret-pw"
TOKEN_SERVICE = "rbx-test-registry"
TOKEN_ISSUER = "rbx-test-token-issuer"
# distribution 2.8 accepts a token until exp + 60 s and from nbf - 60 s (token.Leeway).
REGISTRY_LEEWAY = 60
START_TIMEOUT = 15.0


# -- what is missing ---------------------------------------------------------------------------

def missing(*tools):
    """The skip reason for the first tool not installed, or None."""
    packages = {"docker-registry": "docker-registry", "skopeo": "skopeo", "openssl": "openssl",
                "htpasswd": "apache2-utils", "curl": "curl"}
    for tool in tools:
        path = REGISTRY_BIN if tool == "docker-registry" else shutil.which(tool)
        if not path or not os.access(path, os.X_OK):
            return "%s is not installed (Debian package %s)" % (tool, packages.get(tool, tool))
    return None


def require(*tools):
    reason = missing(*tools)
    if reason:
        pytest.skip(reason)


def _run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (
            " ".join(map(str, argv)), proc.returncode,
            proc.stderr.decode(errors="replace").strip()))
    return proc.stdout


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- certificates ------------------------------------------------------------------------------

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = rootless-box test
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class TestCA:
    """A CA, one server certificate for 127.0.0.1/localhost (port-agnostic, so every registry
    and token server of the session shares it) and the token signer's self-signed RSA pair."""

    __test__ = False  # not a test class despite the name

    def __init__(self, directory):
        self.dir = directory
        cnf = os.path.join(directory, "openssl.cnf")
        with open(cnf, "w") as f:
            f.write(_OPENSSL_CNF)
        self.ca_file = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        self.cert_file = os.path.join(directory, "server.crt")
        self.key_file = os.path.join(directory, "server.key")
        self.signer_cert = os.path.join(directory, "token-signer.crt")
        self.signer_key = os.path.join(directory, "token-signer.key")
        # EC keys for TLS: generated in milliseconds where RSA takes a noticeable while.
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _run(["openssl", "req", "-x509", "-config", cnf, "-extensions", "v3_ca", *ec,
              "-keyout", self.ca_key, "-out", self.ca_file, "-days", "7",
              "-subj", "/CN=rootless-box test CA"])
        csr = os.path.join(directory, "server.csr")
        _run(["openssl", "req", "-new", "-config", cnf, *ec, "-keyout", self.key_file,
              "-out", csr, "-subj", "/CN=localhost"])
        _run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca_file, "-CAkey", self.ca_key,
              "-set_serial", str(int(time.time() * 1000)), "-days", "7", "-extfile", cnf,
              "-extensions", "v3_server", "-out", self.cert_file])
        # RS256 because distribution (libtrust) wants ES256 signatures as raw r||s, which
        # `openssl dgst -sign` does not write (it writes DER).
        _run(["openssl", "req", "-x509", "-config", cnf, "-extensions", "v3_ca",
              "-newkey", "rsa:2048", "-nodes", "-keyout", self.signer_key,
              "-out", self.signer_cert, "-days", "7", "-subj", "/CN=rbx test token signer"])
        with open(self.signer_cert) as f:
            self.signer_der = ssl.PEM_cert_to_DER_cert(f.read())

    def client_context(self):
        return ssl.create_default_context(cafile=self.ca_file)

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def sign_jwt(self, header, claims):
        signing_input = "%s.%s" % (b64url(json.dumps(header).encode()),
                                   b64url(json.dumps(claims).encode()))
        signature = _run(["openssl", "dgst", "-sha256", "-sign", self.signer_key],
                         input=signing_input.encode())
        return "%s.%s" % (signing_input, b64url(signature))


# -- the token server --------------------------------------------------------------------------

def parse_scope(scope):
    """'repository:host:5000/ns/name:pull,push' -> ('repository', 'host:5000/ns/name',
    ['pull', 'push']): the name may hold colons, so type ends at the first, actions start
    after the last (as Docker parses it)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, [a for a in actions.split(",") if a]


class TokenServer:
    """Docker's token endpoint (GET realm?service=S&scope=...&scope=...), standing in for
    auth.docker.io in front of a real registry.

    users: {name: password}; Basic credentials that do not match get 401. anonymous: "pull"
    (pull actions only, like public Docker Hub repositories), "none" (a token with no access,
    like Docker Hub for a private repository: the registry then says insufficient_scope) or
    "deny" (401 from this server). lifetime: seconds until the registry refuses the token
    (the exp claim is set back by distribution's 60 s leeway to make that true) and the
    expires_in answered. policy(user, type, name, actions) -> granted actions overrides the
    default grants. fail_next: a list of (status, body bytes) answered before any token.

    requests: one dict per request (method, path, query, user, scopes, status), for tests that
    check a client caches tokens per scope; count(scope=None) counts them.
    """

    def __init__(self, ca, users=None, anonymous="pull", lifetime=300, tls=True,
                 service=TOKEN_SERVICE, issuer=TOKEN_ISSUER):
        self.ca = ca
        self.users = dict(users or {})
        self.anonymous = anonymous
        self.lifetime = lifetime
        self.service = service
        self.issuer = issuer
        self.policy = None
        self.fail_next = []
        self.requests = []
        self.issued = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                server._handle(self)

            def do_POST(self):
                # Docker's OAuth2 form flow (grant_type=password/refresh_token) is not
                # served; a client must fall back to GET, as containers/image always uses.
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server._record(self, None, [], 404)
                server._reply(self, 404, {"details": "POST not served by the test token server"})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls:
            # The handshake in the handler's thread, not in accept(): a client that connects
            # and stalls must not block the server loop.
            self.httpd.socket = ca.server_context().wrap_socket(
                self.httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self.realm = "%s://127.0.0.1:%d/token" % (self.scheme, self.port)
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self._thread.join(5)
            self.httpd = None

    def count(self, scope=None):
        with self._lock:
            return sum(1 for r in self.requests if scope is None or scope in r["scopes"])

    def reset(self):
        with self._lock:
            self.requests.clear()
            self.issued.clear()

    def _record(self, handler, user, scopes, status):
        parsed = urllib.parse.urlsplit(handler.path)
        with self._lock:
            self.requests.append({
                "method": handler.command, "path": parsed.path,
                "query": urllib.parse.parse_qs(parsed.query), "user": user,
                "scopes": scopes, "status": status, "time": time.time()})

    def _reply(self, handler, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _grant(self, user, kind, name, actions):
        if self.policy is not None:
            return list(self.policy(user, kind, name, actions))
        if user is not None:
            return list(actions)
        if self.anonymous == "pull" and kind == "repository":
            return [a for a in actions if a == "pull"]
        return []

    def _handle(self, handler):
        parsed = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(parsed.query)
        # One scope parameter may itself hold several scopes separated by spaces (the
        # registry's challenge does that).
        scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
        user = None
        header = handler.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", None
            if self.users.get(user) != password or password is None:
                self._record(handler, user, scopes, 401)
                self._reply(handler, 401, {"details": "incorrect username or password"},
                            [("WWW-Authenticate", 'Basic realm="rbx test token server"')])
                return
        with self._lock:
            failure = self.fail_next.pop(0) if self.fail_next else None
        if failure is not None:
            self._record(handler, user, scopes, failure[0])
            self._reply(handler, failure[0], failure[1])
            return
        if parsed.path != "/token":
            self._record(handler, user, scopes, 404)
            self._reply(handler, 404, {"details": "not found"})
            return
        if user is None and self.anonymous == "deny":
            self._record(handler, None, scopes, 401)
            self._reply(handler, 401, {"details": "authentication required"},
                        [("WWW-Authenticate", 'Basic realm="rbx test token server"')])
            return
        access = []
        for scope in scopes:
            kind, name, actions = parse_scope(scope)
            granted = self._grant(user, kind, name, actions)
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        # Rounded up so that a token lives at least `lifetime` seconds at the registry,
        # which compares whole seconds.
        exp = int(math.ceil(time.time())) + self.lifetime - REGISTRY_LEEWAY
        claims = {
            "iss": self.issuer, "sub": user or "",
            # A string: distribution 2.8 unmarshals aud into a Go string, so a JSON array
            # makes the whole token "malformed".
            "aud": query.get("service", [self.service])[0],
            "exp": exp,
            "nbf": now, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(self.ca.signer_der).decode()]}
        token = self.ca.sign_jwt(header, claims)
        with self._lock:
            self.issued.append({"user": user, "claims": claims, "token": token})
        self._record(handler, user, scopes, 200)
        self._reply(handler, 200, {
            "token": token, "access_token": token, "expires_in": self.lifetime,
            "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))})


# -- the registry ------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """A command prefix that makes a pytest killed with SIGKILL take its registry along
    (PR_SET_PDEATHSIG survives the exec). setpriv rather than a preexec_fn: the token
    servers' threads may be running, and Python code between fork and exec can deadlock."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class Registry:
    """One running docker-registry. Attributes: host ("127.0.0.1:PORT"), url, scheme, ca_file,
    username, password, auth ("none", "htpasswd", "token"), token_server (or None), env (for the
    CLI: XDG_CONFIG_HOME of a config home of this registry's own, with the CA installed, so no
    login leaks into ~/.config), config_home, cert_dir (ca.crt alone, for skopeo's
    --cert-dir), storage (the filesystem driver's root), log_path (registry log with the access
    log), workdir, proc.

    Helper requests through request()/manifest() fetch their own token first, which the token
    server counts: call token_server.reset() before the client under test runs."""

    def __init__(self, workdir, ca=None, tls=False, auth="none", username=TEST_USER,
                 password=TEST_PASSWORD, anonymous="pull", token_lifetime=300):
        if (tls or auth == "token") and ca is None:
            raise ValueError("TLS and tokens need a TestCA")
        self.workdir = workdir
        self.ca = ca
        self.tls = tls
        self.auth = auth
        self.scheme = "https" if tls else "http"
        self.ca_file = ca.ca_file if tls else None
        self.username = username if auth != "none" else None
        self.password = password if auth != "none" else None
        self.token_server = None
        self.proc = None
        self.storage = os.path.join(workdir, "storage")
        self.log_path = os.path.join(workdir, "registry.log")
        self.config_home = os.path.join(workdir, "config")
        self.cert_dir = os.path.join(workdir, "certs")
        self.skopeo_env = {"REGISTRY_AUTH_FILE": os.path.join(workdir, "skopeo-auth.json"),
                           "XDG_DATA_HOME": os.path.join(workdir, "skopeo-data")}
        os.makedirs(self.storage, exist_ok=True)
        os.makedirs(self.config_home, exist_ok=True)
        try:
            self._start(anonymous, token_lifetime)
        except BaseException:
            self.stop()
            raise
        self.env = {"XDG_CONFIG_HOME": self.config_home}
        if tls:
            self.install_ca(self.config_home)
            os.makedirs(self.cert_dir, exist_ok=True)
            shutil.copy(self.ca_file, os.path.join(self.cert_dir, "ca.crt"))

    def _config(self, port):
        http = {"addr": "127.0.0.1:%d" % port, "secret": uuid.uuid4().hex,
                "headers": {"X-Content-Type-Options": ["nosniff"]}}
        if self.tls:
            http["tls"] = {"certificate": self.ca.cert_file, "key": self.ca.key_file}
        config = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": self.storage},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.auth == "htpasswd":
            config["auth"] = {"htpasswd": {"realm": "rbx-test-registry",
                                           "path": os.path.join(self.workdir, "htpasswd")}}
        elif self.auth == "token":
            bundle = os.path.join(self.workdir, "token-roots.pem")
            shutil.copy(self.ca.signer_cert, bundle)
            config["auth"] = {"token": {"realm": self.token_server.realm,
                                        "service": self.token_server.service,
                                        "issuer": self.token_server.issuer,
                                        "rootcertbundle": bundle}}
        return config

    def _start(self, anonymous, token_lifetime):
        if self.auth == "htpasswd":
            if missing("htpasswd"):
                pytest.skip(missing("htpasswd") + ": distribution needs bcrypt hashes")
            line = _run(["htpasswd", "-nbB", self.username, self.password]).decode().strip()
            with open(os.path.join(self.workdir, "htpasswd"), "w") as f:
                f.write(line + "\n")
        elif self.auth == "token":
            self.token_server = TokenServer(self.ca, {self.username: self.password},
                                            anonymous=anonymous, lifetime=token_lifetime,
                                            tls=self.tls)
        # REGISTRY_* variables override the config in distribution (REGISTRY_AUTH_FILE, set
        # for podman/skopeo, would turn into an auth.file section), so none get through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        for _ in range(5):
            port = free_port()
            config_path = os.path.join(self.workdir, "config.yml")
            with open(config_path, "w") as f:
                json.dump(self._config(port), f, indent=1)  # JSON is YAML
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    _die_with_parent() + [REGISTRY_BIN, "serve", config_path],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    cwd=self.workdir)
            finally:
                log.close()
            self.host = "127.0.0.1:%d" % port
            self.url = "%s://%s" % (self.scheme, self.host)
            if self._wait_ready():
                return
            if "address already in use" not in self.log_text():
                break
        raise RuntimeError("docker-registry did not start:\n" + self.log_text()[-4000:])

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.01
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, _ = self.request("GET", "/v2/", auth=False, timeout=1)
                if status in (200, 401):
                    return True
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        self.proc.kill()
        self.proc.wait()
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.token_server is not None:
            self.token_server.stop()

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- trusting and using it ------------------------------------------------------------------

    def install_ca(self, config_home):
        """Make config_home trust this registry as rootless-box reads it (Docker's certs.d
        layout): $XDG_CONFIG_HOME/rootless-box/certs.d/<host:port>/ca.crt. No-op over HTTP."""
        if not self.ca_file:
            return None
        directory = os.path.join(config_home, "rootless-box", "certs.d", self.host)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "ca.crt")
        shutil.copy(self.ca_file, path)
        return path

    def skopeo_args(self, role="dest", creds=True):
        """skopeo flags for this registry: role "dest" (copy to it), "src" (copy from it) or
        None (inspect, delete, list-tags)."""
        prefix = "--%s-" % role if role else "--"
        args = ["%stls-verify=%s" % (prefix, "true" if self.tls else "false")]
        if self.tls:
            args.append("%scert-dir=%s" % (prefix, self.cert_dir))
        if creds and self.username:
            args.append("%screds=%s:%s" % (prefix, self.username, self.password))
        return args

    def skopeo(self, *args, check=True, timeout=120, fresh_cache=False):
        """Run skopeo with an auth file and blob-info cache of this registry's own, so nothing
        from the user's ~/.local/share/containers leaks in (a cache entry for a port reused by
        an earlier registry would send skopeo after blobs that are not there). fresh_cache:
        an empty cache, for pushes that must recompress (with a cache, skopeo mounts the gzip
        blob it already pushed to another repository instead of writing zstd)."""
        env = dict(os.environ)
        env.update(self.skopeo_env)
        if fresh_cache:
            env["XDG_DATA_HOME"] = os.path.join(self.workdir, "skopeo-data-" + uuid.uuid4().hex)
        proc = subprocess.run(["skopeo", *map(str, args)], capture_output=True, env=env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("skopeo %s: exit %d\n%s" % (
                " ".join(map(str, args)), proc.returncode, proc.stderr.decode(errors="replace")))
        return proc

    def ref(self, repo, tag="latest"):
        return "%s/%s%s" % (self.host, repo, tag if tag.startswith("@") else ":" + tag)

    def ssl_context(self):
        return self.ca.client_context() if self.tls else None

    def token(self, scopes, creds=True):
        """A token from the token server (counted there like any client's request)."""
        query = [("service", self.token_server.service)] + [("scope", s) for s in scopes]
        url = self.token_server.realm + "?" + urllib.parse.urlencode(query)
        headers = {}
        if creds:
            headers["Authorization"] = _basic(self.username, self.password)
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, context=self.ssl_context(), timeout=10) as resp:
            return json.loads(resp.read())["token"]

    def request(self, method, path, headers=None, data=None, auth=True, scopes=(),
                timeout=30):
        """One HTTP request to the registry -> (status, headers, body bytes), never raising
        for an HTTP status. auth=True sends the test credentials (Basic, or a token for
        scopes from the token server)."""
        headers = dict(headers or {})
        if auth and self.auth == "htpasswd":
            headers["Authorization"] = _basic(self.username, self.password)
        elif auth and self.auth == "token":
            headers["Authorization"] = "Bearer " + self.token(scopes)
        req = urllib.request.Request(self.url + path, data=data, headers=headers,
                                     method=method)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(),
                                        timeout=timeout) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def manifest(self, repo, reference="latest", accept=None):
        """(status, content type, parsed JSON or None, digest header) of a manifest."""
        accept = accept or ", ".join(MANIFEST_TYPES)
        status, headers, body = self.request(
            "GET", "/v2/%s/manifests/%s" % (repo, reference), {"Accept": accept},
            scopes=["repository:%s:pull" % repo])
        parsed = json.loads(body) if status == 200 else None
        return status, headers.get("Content-Type"), parsed, headers.get(
            "Docker-Content-Digest")

    def blob_path(self, digest):
        """Where the filesystem driver keeps a blob's bytes (to corrupt it in a test)."""
        algo, hexpart = digest.split(":", 1)
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", algo,
                            hexpart[:2], hexpart, "data")


MANIFEST_TYPES = ("application/vnd.oci.image.index.v1+json",
                  "application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.list.v2+json",
                  "application/vnd.docker.distribution.manifest.v2+json")


def _basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


# -- images to push ----------------------------------------------------------------------------

OCI = {"index": "application/vnd.oci.image.index.v1+json",
       "manifest": "application/vnd.oci.image.manifest.v1+json",
       "config": "application/vnd.oci.image.config.v1+json",
       "layer": "application/vnd.oci.image.layer.v1.tar+gzip"}


def host_arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def busybox_binary():
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            return path
    return None


def _tar(entries):
    """entries: (name, kind, data or link target, mode) -> uncompressed tar bytes, with fixed
    owners and times so that the same input gives the same digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid = mode, 0, 0, 0
            info.uname = info.gname = "root"
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def busybox_rootfs_tar():
    """A rootfs of this machine's (static) busybox and a symlink per applet."""
    binary = busybox_binary()
    if binary is None:
        pytest.skip("busybox is not installed (Debian package busybox-static)")
    applets = subprocess.run([binary, "--list"], capture_output=True,
                             text=True).stdout.split()
    entries = [(d, "dir", None, 0o755) for d in ("bin", "etc", "root", "tmp", "var")]
    entries[3] = ("tmp", "dir", None, 0o1777)
    with open(binary, "rb") as f:
        entries.append(("bin/busybox", "file", f.read(), 0o755))
    entries += [("bin/" + a, "symlink", "busybox", 0o777) for a in sorted(set(applets))
                if a != "busybox" and "/" not in a]
    entries.append(("etc/passwd", "file",
                    b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
                    0o644))
    entries.append(("etc/group", "file", b"root:x:0:\nnogroup:x:65534:\n", 0o644))
    return _tar(entries)


class Layout:
    """An OCI image layout being written: blobs by digest, index.json entries by tag."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(os.path.join(directory, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(directory, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.entries = []

    def blob(self, data, media_type, **extra):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.dir, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        desc.update(extra)
        return desc

    def image(self, layer_tar, arch, cmd=("sh",), variant=None):
        """An image of one gzip layer -> its manifest descriptor (with platform)."""
        layer = self.blob(gzip.compress(layer_tar, mtime=0), OCI["layer"])
        config = {
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": list(cmd)},
            "rootfs": {"type": "layers",
                       "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
            "history": [{"created": "2024-01-01T00:00:00Z",
                         "created_by": "rootless-box tests: registry_server.py"}],
            "created": "2024-01-01T00:00:00Z"}
        if variant:
            config["variant"] = variant
        config_desc = self.blob(json.dumps(config).encode(), OCI["config"])
        manifest = {"schemaVersion": 2, "mediaType": OCI["manifest"], "config": config_desc,
                    "layers": [layer]}
        plat = {"architecture": arch, "os": "linux"}
        if variant:
            plat["variant"] = variant
        return self.blob(json.dumps(manifest).encode(), OCI["manifest"], platform=plat)

    def index_of(self, manifests):
        index = {"schemaVersion": 2, "mediaType": OCI["index"], "manifests": manifests}
        return self.blob(json.dumps(index).encode(), OCI["index"])

    def tag(self, desc, tag):
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.entries.append(entry)
        with open(os.path.join(self.dir, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "mediaType": OCI["index"],
                       "manifests": self.entries}, f)
        return "oci:%s:%s" % (self.dir, tag)


def write_busybox_layout(directory):
    """An OCI layout with tag `latest`: busybox for this machine's architecture."""
    layout = Layout(directory)
    return layout.tag(layout.image(busybox_rootfs_tar(), host_arch()), "latest")


def write_multiarch_layout(directory):
    """An OCI layout with tag `latest`: an index of linux/amd64 and linux/arm64 (the one for
    this machine is busybox; the other a one-file fake whose `sh` cannot run here)."""
    layout = Layout(directory)
    manifests = []
    for arch in ("amd64", "arm64"):
        if arch == host_arch():
            manifests.append(layout.image(busybox_rootfs_tar(), arch))
        else:
            fake = _tar([("bin", "dir", None, 0o755),
                         ("bin/sh", "file", b"#!fake %s shell\n" % arch.encode(), 0o755),
                         ("ARCH", "file", arch.encode() + b"\n", 0o644)])
            manifests.append(layout.image(fake, arch))
    return layout.tag(layout.index_of(manifests), "latest")


def push(registry, source, repo, tag="latest", fmt=None, compress=None, all_images=False,
         extra=()):
    """skopeo copy SOURCE docker://REGISTRY/REPO:TAG -> the pushed manifest's digest.
    fmt: None (keep OCI), "v2s2" (Docker schema2); compress: None (gzip as written) or
    "zstd"."""
    args = ["copy", "--quiet", *registry.skopeo_args("dest")]
    if fmt:
        args += ["--format", fmt]
    if compress:
        args += ["--dest-compress-format", compress]
    if all_images:
        args.append("--all")
    digest_file = os.path.join(registry.workdir, "digest-%s" % uuid.uuid4().hex)
    args += ["--digestfile", digest_file, *extra, source,
             "docker://" + registry.ref(repo, tag)]
    registry.skopeo(*args, fresh_cache=bool(compress))
    with open(digest_file) as f:
        digest = f.read().strip()
    os.unlink(digest_file)
    return digest


def push_busybox(registry, layout_ref, repo="library/busybox", tag="latest", fmt=None,
                 compress=None):
    return push(registry, layout_ref, repo, tag, fmt=fmt, compress=compress)


def push_multiarch(registry, layout_ref, repo="library/multi", tag="latest", fmt=None):
    return push(registry, layout_ref, repo, tag, fmt=fmt, all_images=True)


def inspect(registry, repo, tag="latest", raw=False):
    """skopeo inspect (parsed JSON) of REPO:TAG."""
    args = ["inspect", *registry.skopeo_args(None)]
    if raw:
        args.append("--raw")
    proc = registry.skopeo(*args, "docker://" + registry.ref(repo, tag))
    return json.loads(proc.stdout)


# -- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def registry_ca(tmp_path_factory):
    """The session's TestCA (CA, server certificate, token signer), made once."""
    require("openssl")
    return TestCA(str(tmp_path_factory.mktemp("registry-ca")))


class _Factory:
    def __init__(self, tmp_path_factory, ca):
        self.tmp_path_factory = tmp_path_factory
        self.ca = ca
        self.started = []

    def __call__(self, tls=False, auth="none", **kw):
        require("docker-registry")
        registry = Registry(str(self.tmp_path_factory.mktemp("registry")), self.ca, tls=tls,
                            auth=auth, **kw)
        self.started.append(registry)
        return registry

    def stop_all(self):
        for registry in self.started:
            registry.stop()


@pytest.fixture
def registry_factory(tmp_path_factory, registry_ca):
    """registry_factory(tls=False, auth="none"|"htpasswd"|"token", anonymous="pull",
    token_lifetime=300) -> a fresh Registry, stopped when the test ends."""
    factory = _Factory(tmp_path_factory, registry_ca)
    yield factory
    factory.stop_all()


def _module_registry(tmp_path_factory, registry_ca, **kw):
    factory = _Factory(tmp_path_factory, registry_ca)
    try:
        yield factory(**kw)
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory, registry_ca):
    """Plain HTTP, no auth."""
    yield from _module_registry(tmp_path_factory, registry_ca)


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, registry_ca):
    """HTTPS with a certificate of the test CA, no auth."""
    yield from _module_registry(tmp_path_factory, registry_ca, tls=True)


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory, registry_ca):
    """HTTPS + htpasswd basic auth (username/password attributes)."""
    yield from _module_registry(tmp_path_factory, registry_ca, tls=True, auth="htpasswd")


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory, registry_ca):
    """HTTPS + bearer tokens from .token_server (HTTPS too); anonymous users get pull."""
    yield from _module_registry(tmp_path_factory, registry_ca, tls=True, auth="token")


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory):
    """`oci:DIR:latest` of busybox for this machine, written once per session."""
    return write_busybox_layout(str(tmp_path_factory.mktemp("busybox-oci")))


@pytest.fixture(scope="session")
def multiarch_layout(tmp_path_factory):
    """`oci:DIR:latest` of a linux/amd64 + linux/arm64 index, written once per session."""
    return write_multiarch_layout(str(tmp_path_factory.mktemp("multiarch-oci")))
