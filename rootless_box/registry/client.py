"""The distribution-spec API of one registry endpoint: manifests, blobs, uploads, tags.

Owns: the /v2/ URLs, the scheme choice (HTTPS; plain HTTP only for an endpoint marked insecure,
as Docker falls back for insecure registries and loopback), the auth retry loop (a 401 brings
a token or Basic credentials, and the request is sent once more), manifest digests checked
against what was asked and what the registry claims, blob reads that resume with Range after a
broken connection, and pushes (HEAD, cross-repository mount, monolithic or chunked upload,
manifest PUT).
Must not: touch the store, print, or trust a byte from the registry before checking it: a
manifest fetched by digest must hash to it, sizes must match descriptors, and lengths are
capped before anything is read whole.
Spec: opencontainers/distribution-spec spec.md.
"""

import hashlib
import io
import urllib.parse

from .. import fastjson
from ..errors import AuthError, NotFound, RegistryError
from ..oci import image as oci_image
from .auth import Authenticator
from .transport import CONNECTION_ERRORS, Transport

MANIFEST_TYPES = (oci_image.MT_MANIFEST, oci_image.MT_DOCKER_MANIFEST, oci_image.MT_OCI_INDEX,
                  oci_image.MT_DOCKER_LIST)
# distribution refuses manifests over 4 MiB; more is a hostile answer.
MANIFEST_LIMIT = 4 << 20
_RESUMES = 5
CHUNK = 1 << 20


def pull_scope(repo):
    return "repository:%s:pull" % repo


def push_scope(repo):
    return "repository:%s:pull,push" % repo


class Registry:
    """One endpoint (host[:port]), its connections and its auth state. name: the registry as
    users know it (credentials are looked up by it, also when a mirror serves); insecure:
    plain HTTP allowed and TLS unverified (try HTTPS first); ca_files and client_cert: from
    certs.d."""

    def __init__(self, host, name=None, insecure=False, credentials=None, ca_files=(),
                 client_cert=None):
        self.host = host
        self.name = name or host
        self.insecure = insecure
        self.transport = Transport(verify=not insecure, ca_files=ca_files,
                                   client_cert=client_cert)
        self.auth = Authenticator(self.name, credentials, self.transport)
        self.scheme = None

    def forget_connections(self):
        self.transport.forget_connections()

    def close(self):
        self.transport.close()

    # -- plumbing ---------------------------------------------------------------------------
    def url(self, path):
        return "%s://%s/v2/%s" % (self._scheme(), self.host, path)

    def _scheme(self):
        if self.scheme is None:
            self.ping()
        return self.scheme

    def ping(self):
        """GET /v2/: choose the scheme and learn the auth challenge. -> HTTP status."""
        schemes = ("https", "http") if self.insecure else ("https",)
        error = None
        for scheme in schemes:
            try:
                resp = self.transport.request("GET", "%s://%s/v2/" % (scheme,
                                                                      self.host))
            except RegistryError as exc:
                error = error or exc
                continue
            resp.read_limited(MANIFEST_LIMIT, "ping")
            if resp.status == 401:
                from .auth import parse_challenge
                self.auth.challenge = parse_challenge(resp.header("www-authenticate"))
            elif resp.status != 200:
                if resp.status == 404 and scheme == "https" and len(schemes) > 1:
                    continue
                raise RegistryError("%s does not speak the registry API (GET /v2/ answered "
                                    "%d %s)" % (self.host, resp.status, resp.reason),
                                    "check the registry's address")
            self.scheme = scheme
            return resp.status
        raise error

    def request(self, method, path, scopes, headers=None, body=None, url=None):
        """A request with auth: a known token or credentials go along; a 401 fetches what the
        challenge asks for and the request is sent once more; a second 401 is an AuthError."""
        url = url or self.url(path)
        headers = dict(headers or {})
        auth = self.auth.header(scopes)
        if auth is None and self.auth.challenge and self.auth.challenge[0] == "bearer":
            auth = self.auth.on_challenge(scopes)
        for attempt in (0, 1):
            if auth:
                headers["Authorization"] = auth
            if body is not None and hasattr(body, "seek"):
                body.seek(0)
            resp = self.transport.request(method, url, headers=headers, body=body)
            if resp.status != 401:
                return resp
            resp.read_limited(MANIFEST_LIMIT, "error")
            if attempt:
                raise self.auth.denied()
            auth = self.auth.on_unauthorized(resp, scopes)
        raise AssertionError("unreachable")

    def _error(self, resp, what):
        """An error for a failed answer, with the registry's own message when it gave one."""
        try:
            body = resp.read_limited(1 << 16, "error")
        except RegistryError:
            body = b""
        detail = _error_detail(body)
        codes = _error_codes(body)
        if resp.status == 404 or "MANIFEST_UNKNOWN" in codes or "NAME_UNKNOWN" in codes:
            return NotFound("%s: not found%s" % (what, ": " + detail if detail else ""),
                            "check the name and tag; a private repository needs "
                            "'rootless-box login %s' first" % self.name)
        if resp.status == 403 or "DENIED" in codes or "UNAUTHORIZED" in codes:
            return AuthError("%s: denied%s" % (what, ": " + detail if detail else ""),
                             "check that you may access it; log in with 'rootless-box login "
                             "%s'" % self.name)
        if resp.status == 429 or "TOOMANYREQUESTS" in codes:
            return RegistryError("%s: the registry's rate limit was reached%s" % (
                what, ": " + detail if detail else ""),
                "wait, or log in: registries allow logged-in users more")
        return RegistryError("%s: %d %s%s" % (what, resp.status, resp.reason,
                                              ": " + detail if detail else ""))

    # -- pull side --------------------------------------------------------------------------
    def get_manifest(self, repo, reference, accept=MANIFEST_TYPES):
        """-> (bytes, media type, digest). By digest: the bytes must hash to it. By tag: the
        digest is computed from the bytes (Docker-Content-Digest is only a claim)."""
        path = "%s/manifests/%s" % (repo, reference)
        resp = self.request("GET", path, [pull_scope(repo)],
                            headers={"Accept": ", ".join(accept)})
        what = "manifest %s:%s" % (repo, reference) if not reference.startswith("sha256:") \
            else "manifest %s@%s" % (repo, reference)
        if resp.status != 200:
            raise self._error(resp, what)
        data = resp.read_limited(MANIFEST_LIMIT, what)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError("%s: the registry sent content with digest %s" % (what, digest),
                                "the registry or something between is corrupting data")
        media_type = (resp.header("content-type") or "").split(";")[0].strip()
        try:
            doc = fastjson.loads(data)
        except ValueError as exc:
            raise RegistryError("%s is not valid JSON: %s" % (what, exc)) from None
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
            media_type = doc["mediaType"]
        elif isinstance(doc, dict) and media_type not in MANIFEST_TYPES:
            media_type = oci_image.MT_OCI_INDEX if "manifests" in doc else \
                oci_image.MT_MANIFEST
        if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
            raise RegistryError("%s is a Docker schema 1 manifest, which is no longer "
                                "supported" % what, "push the image again with a current "
                                                    "docker, podman or skopeo")
        return data, media_type, digest, doc

    def get_blob_bytes(self, repo, digest, limit, what):
        resp = self.request("GET", "%s/blobs/%s" % (repo, digest),
                            [pull_scope(repo)])
        if resp.status != 200:
            raise self._error(resp, what)
        data = resp.read_limited(limit, what)
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryError("%s does not match its digest %s" % (what, digest),
                                "the registry or something between is corrupting data")
        return data

    def open_blob(self, repo, digest, size=None):
        """A readable stream of the blob that resumes after a broken connection. The caller
        checks the digest of what it read (the stream does not buffer the whole blob)."""
        return BlobReader(self, repo, digest, size)

    def tags(self, repo):
        """Every tag of repo (following the Link header's pages)."""
        path = "%s/tags/list?n=1000" % repo
        url, result = None, []
        for _page in range(1000):
            resp = self.request("GET", path, [pull_scope(repo)], url=url)
            if resp.status != 200:
                raise self._error(resp, "tags of %s" % repo)
            try:
                doc = fastjson.loads(resp.read_limited(MANIFEST_LIMIT, "tag list"))
                tags = doc.get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError("the tag list of %s is not valid JSON" % repo) from None
            result.extend(t for t in tags if isinstance(t, str))
            link = _next_link(resp.header("link"))
            if not link:
                return result
            url = urllib.parse.urljoin(self.url(""), link)
        return result

    # -- push side --------------------------------------------------------------------------
    def blob_exists(self, repo, digest):
        resp = self.request("HEAD", "%s/blobs/%s" % (repo, digest),
                            [push_scope(repo)])
        resp.read()
        resp.close()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise self._error(resp, "blob %s in %s" % (digest, repo))

    def mount_blob(self, repo, digest, source_repo):
        """Cross-repository mount: True when the registry linked the blob, False when it
        opened an upload instead (which is then cancelled)."""
        path = "%s/blobs/uploads/?%s" % (repo, urllib.parse.urlencode(
            [("mount", digest), ("from", source_repo)]))
        try:
            resp = self.request("POST", path, [push_scope(repo), pull_scope(source_repo)],
                                body=b"")
        except AuthError:
            return False
        resp.read()
        resp.close()
        if resp.status == 201:
            return True
        if resp.status == 202 and resp.header("location"):
            self._cancel(repo, resp.header("location"))
        return False

    def _cancel(self, repo, location):
        try:
            resp = self.request("DELETE", None, [push_scope(repo)],
                                url=self._location(location))
            resp.read()
            resp.close()
        except RegistryError:
            pass  # an abandoned upload expires on the registry by itself

    def _location(self, location):
        return urllib.parse.urljoin(self.url(""), location)

    def upload_blob(self, repo, digest, size, fileobj, chunk_size=0, progress=None):
        """Upload a blob: one PUT with the whole body (monolithic), or PATCH chunks of
        chunk_size and a closing PUT. progress(bytes sent so far)."""
        resp = self.request("POST", "%s/blobs/uploads/" % repo,
                            [push_scope(repo)], body=b"")
        resp.read()
        resp.close()
        if resp.status != 202 or not resp.header("location"):
            raise self._error(resp, "starting the upload of %s to %s" % (digest, repo))
        location = self._location(resp.header("location"))
        sent = 0
        if chunk_size and size > chunk_size:
            while sent < size:
                data = fileobj.read(chunk_size)
                if not data:
                    raise RegistryError("blob %s ended early while uploading" % digest)
                resp = self.request("PATCH", None, [push_scope(repo)], url=location, body=data,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Range": "%d-%d" % (
                                                 sent, sent + len(data) - 1)})
                resp.read()
                resp.close()
                if resp.status != 202 or not resp.header("location"):
                    raise self._error(resp, "uploading %s to %s" % (digest, repo))
                location = self._location(resp.header("location"))
                sent += len(data)
                if progress:
                    progress(sent)
            body, length = b"", 0
        else:
            body, length = _ProgressReader(fileobj, progress), size
        sep = "&" if urllib.parse.urlsplit(location).query else "?"
        resp = self.request("PUT", None, [push_scope(repo)],
                            url=location + sep + urllib.parse.urlencode({"digest": digest}),
                            body=body, headers={"Content-Type": "application/octet-stream",
                                                "Content-Length": str(length)})
        resp.read()
        resp.close()
        if resp.status != 201:
            raise self._error(resp, "uploading %s to %s" % (digest, repo))

    def put_manifest(self, repo, reference, data, media_type):
        """-> the digest the registry gives the manifest (checked against the bytes)."""
        resp = self.request("PUT", "%s/manifests/%s" % (repo, reference),
                            [push_scope(repo)], body=data,
                            headers={"Content-Type": media_type})
        if resp.status not in (200, 201):
            raise self._error(resp, "pushing the manifest of %s:%s" % (repo, reference))
        resp.read()
        resp.close()
        return "sha256:" + hashlib.sha256(data).hexdigest()


class _ProgressReader:
    """A file for http.client to send from, reporting how much went out."""

    def __init__(self, fileobj, progress):
        self._f, self._progress, self._sent = fileobj, progress, 0

    def read(self, size=-1):
        data = self._f.read(CHUNK if size is None or size < 0 else size)
        self._sent += len(data)
        if self._progress and data:
            self._progress(self._sent)
        return data

    def seek(self, pos):
        self._f.seek(pos)
        self._sent = pos


class BlobReader(io.RawIOBase):
    """A blob as a stream; a connection that breaks is reopened with Range from where it
    stopped (or, on a server that ignores Range, read again and skipped to there)."""

    def __init__(self, registry, repo, digest, size):
        self._registry, self._repo, self._digest, self._size = registry, repo, digest, size
        self._resp = None
        self.offset = 0
        self.resumes = 0

    def readable(self):
        return True

    def _open(self):
        headers = {}
        if self.offset:
            headers["Range"] = "bytes=%d-" % self.offset
        path = "%s/blobs/%s" % (self._repo, self._digest)
        resp = self._registry.request("GET", path, [pull_scope(self._repo)], headers=headers)
        if resp.status == 206 and self.offset:
            start = (resp.header("content-range") or "").replace("bytes ", "").split("-")[0]
            if start != str(self.offset):
                resp.close()
                raise RegistryError("blob %s: the registry resumed at the wrong offset"
                                    % self._digest)
        elif resp.status == 200:
            skip = self.offset
            while skip:
                data = resp.read(min(skip, CHUNK))
                if not data:
                    raise RegistryError("blob %s: the registry sent less than before"
                                        % self._digest)
                skip -= len(data)
        else:
            raise self._registry._error(resp, "blob %s of %s" % (self._digest, self._repo))
        self._resp = resp

    def readinto(self, buffer):
        while True:
            try:
                if self._resp is None:
                    self._open()
                n = self._resp._raw.readinto(buffer)
            except CONNECTION_ERRORS + (OSError,) as exc:
                if self.resumes >= _RESUMES:
                    raise RegistryError("downloading %s broke off after %d bytes: %s" % (
                        self._digest, self.offset, exc), "try again") from None
                self._drop()
                self.resumes += 1
                continue
            if n == 0 and self._size is not None and self.offset < self._size:
                # the server ended the body early (a proxy's timeout): pick it up again
                if self.resumes >= _RESUMES:
                    raise RegistryError("downloading %s ended after %d of %d bytes" % (
                        self._digest, self.offset, self._size), "try again")
                self._drop()
                self.resumes += 1
                continue
            self.offset += n
            if self._size is not None and self.offset > self._size:
                raise RegistryError("blob %s is larger than its descriptor says (%d bytes)"
                                    % (self._digest, self._size),
                                    "the registry's answer cannot be trusted")
            return n

    def _drop(self):
        if self._resp is not None:
            try:
                self._resp._raw.close()
                self._resp._conn.close()
            except Exception:
                pass
            self._resp = None

    def close(self):
        if self._resp is not None:
            self._resp.close()
            self._resp = None
        super().close()


def _error_codes(body):
    try:
        doc = fastjson.loads(body)
        return {e.get("code") for e in doc.get("errors") or [] if isinstance(e, dict)}
    except (ValueError, AttributeError, TypeError):
        return set()


def _error_detail(body):
    try:
        doc = fastjson.loads(body)
        messages = [str(e.get("message") or e.get("code")) for e in doc.get("errors") or []
                    if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError):
        return ""
    return "; ".join(m for m in messages if m)[:300]


def _next_link(header):
    """The URL of Link: <url>; rel="next"."""
    for part in (header or "").split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return url.strip().strip("<>")
    return None
