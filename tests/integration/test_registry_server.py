"""Proof that the test registry variants of tests/registry_server.py work, using only skopeo,
curl and urllib (never rootless-box): each variant takes a push and answers an inspect, and the
auth variants challenge as Docker clients expect.

Owns: these checks of the test infrastructure; the registry client's own tests live in
test_registry.py.
"""

import json
import os
import socket
import subprocess
import time

import pytest

import registry_server as rs

pytestmark = pytest.mark.skipif(rs.missing("docker-registry", "skopeo", "openssl") is not None,
                                reason=rs.missing("docker-registry", "skopeo", "openssl") or "")


def curl(*args):
    if rs.missing("curl"):
        pytest.skip(rs.missing("curl"))
    return subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args],
                          capture_output=True, text=True, timeout=30)


def check_busybox(registry, repo="library/busybox"):
    info = rs.inspect(registry, repo)
    assert info["Architecture"] == rs.host_arch()
    assert info["Os"] == "linux"
    assert len(info["Layers"]) == 1
    return info


def test_plain_http(plain_registry, busybox_layout):
    r = plain_registry
    assert r.scheme == "http" and r.ca_file is None and r.username is None
    assert r.url == "http://" + r.host and r.host.startswith("127.0.0.1:")
    assert curl(r.url + "/v2/").stdout == "200"
    digest = rs.push_busybox(r, busybox_layout)
    assert digest.startswith("sha256:")
    check_busybox(r)
    status, ctype, manifest, header_digest = r.manifest("library/busybox")
    assert status == 200 and ctype == rs.OCI["manifest"] and header_digest == digest
    layer = manifest["layers"][0]["digest"]
    assert os.path.getsize(r.blob_path(layer)) == manifest["layers"][0]["size"]
    status, _, body = r.request("GET", "/v2/_catalog")
    assert status == 200 and json.loads(body)["repositories"] == ["library/busybox"]


def test_tls(tls_registry, busybox_layout, tmp_path):
    r = tls_registry
    assert r.scheme == "https" and r.url == "https://" + r.host
    # curl exit 60: the certificate is not trusted without the test CA.
    assert curl(r.url + "/v2/").returncode == 60
    assert curl("--cacert", r.ca_file, r.url + "/v2/").stdout == "200"
    assert curl("--cacert", r.ca_file, "https://localhost:%s/v2/" % r.host.split(":")[1]
                ).stdout == "200"
    installed = r.install_ca(str(tmp_path))
    assert installed == str(tmp_path / "rootless-box" / "certs.d" / r.host / "ca.crt")
    assert open(installed).read() == open(r.ca_file).read()
    assert os.path.exists(os.path.join(r.env["XDG_CONFIG_HOME"], "rootless-box", "certs.d",
                                       r.host, "ca.crt"))
    rs.push_busybox(r, busybox_layout, fmt="v2s2")
    check_busybox(r)
    raw = rs.inspect(r, "library/busybox", raw=True)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"


def test_htpasswd(auth_registry, busybox_layout):
    r = auth_registry
    status, headers, _ = r.request("GET", "/v2/", auth=False)
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="rbx-test-registry"'
    assert r.request("GET", "/v2/")[0] == 200
    assert curl("--cacert", r.ca_file, "-u", "%s:wrong" % r.username, r.url + "/v2/"
                ).stdout == "401"
    rs.push_busybox(r, busybox_layout)
    check_busybox(r)
    anonymous = r.skopeo("inspect", *r.skopeo_args(None, creds=False),
                         "docker://" + r.ref("library/busybox"), check=False)
    assert anonymous.returncode != 0


def test_htpasswd_over_plain_http(registry_factory, busybox_layout):
    # distribution 2.8 only documents that htpasswd "MUST be used under TLS"; it does not
    # enforce it, so a loopback HTTP registry with basic auth is a case clients meet.
    r = registry_factory(auth="htpasswd")
    assert r.scheme == "http"
    status, headers, _ = r.request("GET", "/v2/", auth=False)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert r.request("GET", "/v2/")[0] == 200
    rs.push_busybox(r, busybox_layout)
    check_busybox(r)


def test_token_flow(token_registry, busybox_layout):
    r = token_registry
    ts = r.token_server
    status, headers, _ = r.request("GET", "/v2/", auth=False)
    assert status == 401
    challenge = headers["WWW-Authenticate"]
    assert challenge == 'Bearer realm="%s",service="%s"' % (ts.realm, rs.TOKEN_SERVICE)
    status, headers, _ = r.request("GET", "/v2/library/busybox/tags/list", auth=False)
    assert status == 401
    assert 'scope="repository:library/busybox:pull"' in headers["WWW-Authenticate"]

    ts.reset()
    rs.push_busybox(r, busybox_layout)
    assert ts.count() >= 1
    assert any(req["user"] == r.username and req["status"] == 200 for req in ts.requests)
    assert any("push" in c["access"][0]["actions"] for c in
               (i["claims"] for i in ts.issued) if c["access"])
    check_busybox(r)

    # Anonymous users may pull, not push.
    info = r.skopeo("inspect", *r.skopeo_args(None, creds=False),
                    "docker://" + r.ref("library/busybox"))
    assert json.loads(info.stdout)["Os"] == "linux"
    pushed = r.skopeo("copy", "--quiet", *r.skopeo_args("dest", creds=False), busybox_layout,
                      "docker://" + r.ref("library/other"), check=False)
    assert pushed.returncode != 0
    assert any(req["user"] is None for req in ts.requests)

    # A pull token is refused for a push: insufficient_scope, as the registry says it.
    token = r.token(["repository:library/busybox:pull"])
    ts.reset()
    status, headers, _ = r.request(
        "POST", "/v2/library/busybox/blobs/uploads/", {"Authorization": "Bearer " + token},
        auth=False)
    assert status == 401
    assert 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert ts.count() == 0

    # Several scopes in one request, counted per scope.
    assert r.request("GET", "/v2/_catalog", scopes=["registry:catalog:*",
                                                    "repository:library/busybox:pull"])[0] == 200
    assert ts.count("registry:catalog:*") == 1
    assert ts.count("repository:library/busybox:pull") == 1


def test_token_server_refuses_bad_credentials(token_registry):
    r = token_registry
    r.password, good = "wrong", r.password
    try:
        with pytest.raises(rs.urllib.error.HTTPError) as err:
            r.token(["repository:library/busybox:pull"])
        assert err.value.code == 401
    finally:
        r.password = good


def test_token_expiry_over_http(registry_factory):
    # Plain HTTP for both registry and realm here, the other combination clients meet.
    r = registry_factory(tls=False, auth="token", token_lifetime=1, anonymous="deny")
    assert r.token_server.realm.startswith("http://")
    status, _, _ = r.request("GET", "/v2/", auth=False)
    assert status == 401
    token = r.token(["repository:x/y:pull"])
    bearer = {"Authorization": "Bearer " + token}
    assert r.request("GET", "/v2/", bearer, auth=False)[0] == 200
    time.sleep(2.1)
    status, headers, _ = r.request("GET", "/v2/", bearer, auth=False)
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    with pytest.raises(rs.urllib.error.HTTPError):
        r.token(["repository:x/y:pull"], creds=False)


def test_multiarch_index(plain_registry, multiarch_layout):
    r = plain_registry
    rs.push_multiarch(r, multiarch_layout)
    raw = rs.inspect(r, "library/multi", raw=True)
    assert raw["mediaType"] == rs.OCI["index"]
    platforms = sorted((m["platform"]["os"], m["platform"]["architecture"])
                       for m in raw["manifests"])
    assert platforms == [("linux", "amd64"), ("linux", "arm64")]
    for m in raw["manifests"]:
        status, _, manifest, _ = r.manifest("library/multi", m["digest"])
        assert status == 200 and len(manifest["layers"]) == 1
    check_busybox(r, "library/multi")


def test_zstd_layers(plain_registry, busybox_layout):
    r = plain_registry
    rs.push_busybox(r, busybox_layout, repo="library/busybox-zstd", compress="zstd")
    raw = rs.inspect(r, "library/busybox-zstd", raw=True)
    assert [layer["mediaType"] for layer in raw["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+zstd"]
    with open(r.blob_path(raw["layers"][0]["digest"]), "rb") as f:
        assert f.read(4) == b"\x28\xb5\x2f\xfd"


def test_stop_leaves_nothing(registry_factory):
    r = registry_factory(tls=True, auth="token")
    pid, port, token_port = r.proc.pid, int(r.host.split(":")[1]), r.token_server.port
    r.stop()
    assert not os.path.exists("/proc/%d" % pid) or r.proc.returncode is not None
    for p in (port, token_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0
