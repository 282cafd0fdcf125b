"""The registry auth logic a user never sees but always relies on: WWW-Authenticate parsing,
one token per scope reused until it expires, a refused token replaced once, Basic credentials
only where asked for, and secrets never sent to a plain-HTTP realm elsewhere. A recording fake
transport stands in for the network (the real registry flows are in
tests/integration/test_registry.py); NO_PROXY parsing is checked here too.
"""

import json
import urllib.parse

import pytest

from rootless_box.errors import AuthError, RegistryError
from rootless_box.registry import transport
from rootless_box.registry.auth import Authenticator, parse_challenge
from rootless_box.registry.credentials import Credentials


class FakeResponse:
    def __init__(self, status, body=b"", headers=None):
        self.status, self.reason, self._body = status, "R", body
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def read_limited(self, limit, what):
        return self._body


class FakeTransport:
    """Answers token requests with numbered tokens and records them."""

    def __init__(self, expires_in=300, status=200):
        self.requests = []
        self.expires_in, self.status = expires_in, status

    def request(self, method, url, headers=None, body=None):
        self.requests.append((method, url, dict(headers or {}), body))
        doc = {"token": "t%d" % len(self.requests)}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        return FakeResponse(self.status, json.dumps(doc).encode())


def challenge(header):
    return FakeResponse(401, headers={"WWW-Authenticate": header})


BEARER = 'Bearer realm="https://auth.example/token",service="registry.example"'


def test_parse_challenge_forms():
    assert parse_challenge(BEARER) == ("bearer", {"realm": "https://auth.example/token",
                                                  "service": "registry.example"})
    scheme, params = parse_challenge(
        'Bearer realm="https://a/t",service="s",scope="repository:x/y:pull,push",'
        'error="insufficient_scope"')
    assert params["scope"] == "repository:x/y:pull,push"
    assert params["error"] == "insufficient_scope"
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic",
                                                               {"realm": "Registry Realm"})
    # several challenges: Bearer is preferred whatever the order
    assert parse_challenge('Basic realm="r", Bearer realm="https://a/t"')[0] == "bearer"
    assert parse_challenge('Bearer realm="a\\"b"')[1]["realm"] == 'a"b'
    assert parse_challenge("") == ("", {})


def test_token_per_scope_is_cached_and_sent_with_credentials():
    fake = FakeTransport()
    auth = Authenticator("registry.example", lambda: Credentials("u", "p", None), fake)
    scopes = ["repository:x/y:pull"]
    assert auth.header(scopes) is None  # no challenge known yet: nothing to send
    assert auth.on_unauthorized(challenge(BEARER), scopes) == "Bearer t1"
    assert auth.header(scopes) == "Bearer t1"
    assert auth.header(scopes) == "Bearer t1"
    assert len(fake.requests) == 1
    method, url, headers, _body = fake.requests[0]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert method == "GET" and query == {"service": ["registry.example"],
                                         "scope": ["repository:x/y:pull"]}
    assert headers["Authorization"].startswith("Basic ")
    # another scope is another token
    assert auth.on_challenge(["repository:x/z:pull,push"]) == "Bearer t2"
    assert auth.header(scopes) == "Bearer t1"


def test_refused_token_is_replaced():
    fake = FakeTransport()
    auth = Authenticator("r", None, fake)
    scopes = ["repository:a:pull"]
    auth.on_unauthorized(challenge(BEARER), scopes)
    again = auth.on_unauthorized(challenge(BEARER + ',error="invalid_token"'), scopes)
    assert again == "Bearer t2" and auth.header(scopes) == "Bearer t2"
    # anonymous: the token request carries no credentials
    assert all("Authorization" not in r[2] for r in fake.requests)


def test_short_lived_tokens_count_as_sixty_seconds(monkeypatch):
    fake = FakeTransport(expires_in=1)
    auth = Authenticator("r", None, fake)
    now = [1000.0]
    monkeypatch.setattr("rootless_box.registry.auth.time.time", lambda: now[0])
    auth.on_unauthorized(challenge(BEARER), ["s"])
    now[0] += 30
    assert auth.header(["s"]) == "Bearer t1"
    now[0] += 30
    assert auth.header(["s"]) is None  # expired (with the early margin): fetch anew


def test_basic_challenge_uses_credentials_or_asks_for_login():
    auth = Authenticator("reg:5000", lambda: Credentials("u", "p", None), FakeTransport())
    header = auth.on_unauthorized(challenge('Basic realm="x"'), [])
    assert header == "Basic dTpw"
    assert auth.header(["anything"]) == "Basic dTpw"
    anonymous = Authenticator("reg:5000", lambda: None, FakeTransport())
    with pytest.raises(AuthError) as err:
        anonymous.on_unauthorized(challenge('Basic realm="x"'), [])
    assert "rootless-box login reg:5000" in err.value.hint


def test_credentials_never_go_to_a_plain_http_realm_elsewhere():
    fake = FakeTransport()
    auth = Authenticator("r", lambda: Credentials("u", "p", None), fake)
    with pytest.raises(AuthError):
        auth.on_unauthorized(challenge('Bearer realm="http://auth.example/t"'), ["s"])
    assert fake.requests == []
    # loopback is this machine: allowed, as for the registry itself
    auth.on_unauthorized(challenge('Bearer realm="http://127.0.0.1:9/t"'), ["s"])
    assert len(fake.requests) == 1


def test_identity_token_uses_the_refresh_grant():
    fake = FakeTransport()
    auth = Authenticator("r", lambda: Credentials("", "", "refresh-me"), fake)
    auth.on_unauthorized(challenge(BEARER), ["repository:a:pull"])
    method, _url, headers, body = fake.requests[0]
    form = urllib.parse.parse_qs(body.decode())
    assert method == "POST" and form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["refresh-me"] and "Authorization" not in headers


def test_token_server_refusal_and_garbage():
    auth = Authenticator("r", lambda: Credentials("u", "bad", None), FakeTransport(status=401))
    with pytest.raises(AuthError) as err:
        auth.on_unauthorized(challenge(BEARER), ["s"])
    assert "bad" not in str(err.value) and "access denied" in str(err.value)

    class Garbage(FakeTransport):
        def request(self, *a, **k):
            return FakeResponse(200, b"<html>")
    with pytest.raises(RegistryError):
        Authenticator("r", None, Garbage()).on_unauthorized(challenge(BEARER), ["s"])
    with pytest.raises(RegistryError):
        Authenticator("r", None, FakeTransport()).on_unauthorized(
            challenge('Bearer service="x"'), ["s"])


def test_no_proxy_rules(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example,10.0.0.1:5000")
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    host, port, headers = transport._proxy_for("https", "registry.example")
    assert (host, port) == ("proxy.example", 3128)
    assert headers["Proxy-Authorization"] == "Basic dXNlcjpwdw=="
    assert transport._proxy_for("https", "localhost") is None
    assert transport._proxy_for("https", "reg.internal.example") is None
    assert transport._proxy_for("https", "10.0.0.1") is None
    assert transport._proxy_for("http", "registry.example") is None  # no HTTP_PROXY set
    monkeypatch.setenv("NO_PROXY", "*")
    assert transport._proxy_for("https", "registry.example") is None
