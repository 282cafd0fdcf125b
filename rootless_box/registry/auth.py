"""Registry authentication: challenges, bearer tokens, basic auth.

Owns: parsing WWW-Authenticate (RFC 7235), Docker's token flow (GET realm?service=&scope= with
the user's credentials, or the OAuth2 refresh-token grant for an identity token), the token
cache per scope (reused until it expires, dropped on a 401), and Basic auth.
Must not: read credential files (credentials.py does, through the callable it is given), log or
put a secret into an error message, or send credentials over plain HTTP to a host that is not
the registry's own token realm.
Spec: distribution's docs/spec/auth/token.md and oauth.md.
"""

import base64
import time
import urllib.parse

from .. import fastjson
from ..errors import AuthError, RegistryError

# A token that expires within this many seconds is fetched again rather than used.
_EARLY = 10
_TOKEN_LIMIT = 1 << 20


def parse_challenge(header):
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"}). Of several
    challenges, Bearer is preferred over Basic; unknown schemes give (scheme, {})."""
    challenges = []
    text = header or ""
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " ,":
            i += 1
        start = i
        while i < n and text[i] not in " ,=":
            i += 1
        scheme = text[start:i].lower()
        if not scheme:
            break
        params = {}
        while i < n:
            j = i
            while j < n and text[j] == " ":
                j += 1
            k = j
            while k < n and text[k] not in "=, ":
                k += 1
            if k >= n or text[k] != "=" or k == j:
                break  # the next token is a new scheme
            name = text[j:k].lower()
            k += 1
            if k < n and text[k] == '"':
                k += 1
                value = []
                while k < n and text[k] != '"':
                    if text[k] == "\\" and k + 1 < n:
                        k += 1
                    value.append(text[k])
                    k += 1
                k += 1
                value = "".join(value)
            else:
                end = k
                while end < n and text[end] != ",":
                    end += 1
                value, k = text[k:end].strip(), end
            params[name] = value
            while k < n and text[k] == " ":
                k += 1
            if k < n and text[k] == ",":
                k += 1
            i = k
        challenges.append((scheme, params))
    for wanted in ("bearer", "basic"):
        for scheme, params in challenges:
            if scheme == wanted:
                return scheme, params
    return challenges[0] if challenges else ("", {})


def basic_header(username, password):
    raw = ("%s:%s" % (username, password)).encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authenticator:
    """Authorization headers for one registry. credentials: a callable returning a
    credentials.Credentials (or None) when the registry first asks for them."""

    def __init__(self, registry, credentials=None, transport=None):
        self.registry = registry
        self._credentials = credentials
        self._creds_loaded = False
        self._creds = None
        self.transport = transport
        self.challenge = None      # (scheme, params) from the registry's last 401
        self._tokens = {}          # scope string -> (token, expires at)
        self.token_requests = 0

    def credentials(self):
        if not self._creds_loaded:
            self._creds_loaded = True
            self._creds = self._credentials() if self._credentials else None
        return self._creds

    def set_credentials(self, creds):
        self._creds, self._creds_loaded = creds, True
        self._tokens.clear()

    def header(self, scopes):
        """The Authorization header for a request needing scopes, from what is known (no
        network): a cached token, or Basic credentials; None before any challenge."""
        if self.challenge is None:
            return None
        scheme, _params = self.challenge
        if scheme == "basic":
            creds = self.credentials()
            return basic_header(creds.username, creds.password) if creds else None
        if scheme == "bearer":
            entry = self._tokens.get(_scope_key(scopes))
            if entry and entry[1] > time.time() + _EARLY:
                return "Bearer " + entry[0]
        return None

    def on_challenge(self, scopes):
        """A bearer token for scopes, fetched before the request once the registry's challenge
        is known (saves the 401 round trip per repository)."""
        return "Bearer " + self._fetch_token(self.challenge[1], scopes)

    def on_unauthorized(self, response, scopes):
        """After a 401: learn the challenge and get what it asks for. Returns the header to
        retry with, or raises AuthError when there is nothing left to try."""
        header = response.header("www-authenticate")
        scheme, params = parse_challenge(header)
        self.challenge = (scheme, params)
        if scheme == "basic":
            creds = self.credentials()
            if creds is None:
                raise self.denied()
            return basic_header(creds.username, creds.password)
        if scheme == "bearer":
            self._tokens.pop(_scope_key(scopes), None)
            return "Bearer " + self._fetch_token(params, scopes)
        raise RegistryError("unsupported authentication scheme from %s: %r" % (
            self.registry, header), "rootless-box speaks Bearer and Basic auth")

    def denied(self):
        """The error for a request refused even with what the registry asked for."""
        if self.credentials() is None:
            return AuthError("%s: authentication required" % self.registry,
                             "log in with 'rootless-box login %s'" % self.registry)
        return AuthError("%s: access denied (the credentials are wrong, or do not allow this)"
                         % self.registry,
                         "check the name, or log in again with 'rootless-box login %s'"
                         % self.registry)

    def _fetch_token(self, params, scopes):
        realm = params.get("realm")
        if not realm:
            raise RegistryError("%s asked for a bearer token but named no realm" % self.registry)
        parts = urllib.parse.urlsplit(realm)
        if parts.scheme not in ("http", "https"):
            raise RegistryError("%s named an invalid token realm: %s" % (self.registry, realm))
        creds = self.credentials()
        if creds is not None and parts.scheme == "http" and not _loopback(parts.hostname):
            raise AuthError("%s wants credentials sent to %s over plain HTTP" % (
                self.registry, realm), "use an https token realm")
        scope_list = list(scopes) or ([params["scope"]] if params.get("scope") else [])
        query = [("service", params["service"])] if params.get("service") else []
        self.token_requests += 1
        if creds is not None and creds.identity_token:
            form = urllib.parse.urlencode(query + [
                ("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                ("client_id", "rootless-box"), ("scope", " ".join(scope_list))]).encode()
            resp = self.transport.request("POST", realm, body=form, headers={
                "Content-Type": "application/x-www-form-urlencoded"})
        else:
            query += [("scope", s) for s in scope_list]
            headers = {}
            if creds is not None:
                headers["Authorization"] = basic_header(creds.username, creds.password)
            url = realm + ("&" if parts.query else "?") + urllib.parse.urlencode(query)
            resp = self.transport.request("GET", url, headers=headers)
        body = resp.read_limited(_TOKEN_LIMIT, "token response")
        if resp.status in (401, 403):
            raise self.denied()
        if resp.status != 200:
            raise RegistryError("token server %s answered %d %s" % (
                parts.netloc, resp.status, resp.reason), "try again later")
        try:
            doc = fastjson.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token, doc = None, {}
        if not isinstance(token, str) or not token:
            raise RegistryError("token server %s answered without a token" % parts.netloc)
        expires_in = doc.get("expires_in")
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 60:
            # the spec's default and minimum (token.md); a shorter token that is refused
            # early brings a new one through the 401 path
            expires_in = 60
        self._tokens[_scope_key(scopes)] = (token, time.time() + expires_in)
        return token


def _scope_key(scopes):
    return " ".join(sorted(scopes))


def _loopback(host):
    return host in ("localhost", "::1") or (host or "").startswith("127.")
