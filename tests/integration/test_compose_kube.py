"""The round trip of issue 21: the three-service app of the compose tests (web -> app -> db,
each reaching the next by its service name) converted by `compose convert --format kube`,
played by `kube play`, serves as it did under compose; `kube play --down` leaves no
container, volume or network. Real namespaces, the real CLI, an unprivileged user."""

import json

import pytest

from conftest import needs_userns, wait_for
# user: the compose tests' fixture (both id mappings, base:latest imported, cleaned up)
from test_compose import APP, HTTPD, compose, fetch, free_port, project_dir, user  # noqa: F401

pytestmark = needs_userns
pytest.importorskip("yaml")


def serves(port):
    import http.client
    try:
        return fetch(port)
    except (OSError, http.client.HTTPException):
        return None


def test_three_service_app_converted_and_played_serves_as_under_compose(user, tmp_path):
    kv = pytest.importorskip("kubernetes_validate")
    import yaml
    port = free_port()
    d = project_dir(tmp_path, APP % {"httpd": HTTPD, "port": port})
    out = tmp_path / "app.yaml"
    proc = compose(user, d, "convert", "--format", "kube", "-o", str(out))
    assert proc.stdout == ""
    assert "web -> app" in proc.stderr  # depends_on named in one warning
    # base:latest was imported here: the cluster could not pull it
    assert "image docker.io/library/base:latest of container db is only in the local " \
        "store" in proc.stderr
    docs = list(yaml.safe_load_all(out.read_text()))
    for doc in docs:
        kv.validate(doc, kv.latest_version(), strict=True)
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in docs) == [
        ("Deployment", "app"), ("Deployment", "db"), ("Deployment", "web"),
        ("PersistentVolumeClaim", "p-data"),
        ("Service", "app"), ("Service", "db"), ("Service", "web")]
    # without --format kube, convert is config's alias, as in Compose v2
    assert compose(user, d, "convert").stdout == compose(user, d, "config").stdout
    # a service named: it and what it depends on, as config selects them
    only = list(yaml.safe_load_all(compose(user, d, "convert", "--format", "kube",
                                           "app").stdout))
    assert sorted({doc["metadata"]["name"] for doc in only}) == ["app", "db", "p-data"]
    assert user.ok("ps", "-a", "-q").out == ""  # converting made nothing

    user.ok("kube", "play", str(out))
    # web fetched app's page, which app fetched from db: each pod reached the next by its
    # Service's name
    assert wait_for(lambda: serves(port), what="the played web", timeout=60) == \
        "db-data\nhello\n"
    # play honoured the depends-on annotation: each pod started once the one it needs was
    # healthy, as `up` waited, so no container had to fail and restart meanwhile
    for name in ("app-pod-app", "web-pod-web"):
        assert json.loads(user.ok("inspect", name).out)[0]["RestartCount"] == 0, name
    infra = json.loads(user.ok("inspect", "db-pod-infra").out)[0]
    assert "db" in infra["NetworkSettings"]["Networks"]["rootless-box-kube"]["Aliases"]
    # a ClusterIP Service is not published on the host: only web's hostPort is
    assert json.loads(user.ok("inspect", "web-pod-infra").out)[0]["HostConfig"][
        "PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
    assert json.loads(user.ok("inspect", "app-pod-infra").out)[0]["HostConfig"][
        "PortBindings"] in ({}, None)

    proc = user.ok("kube", "play", "--down", str(out))
    assert sorted(proc.out.split()) == sorted(
        ["Pod", "removed:", "app-pod", "Pod", "removed:", "db-pod", "Pod", "removed:",
         "web-pod"])
    assert user.ok("ps", "-a", "-q").out == ""
    assert user.ok("volume", "ls", "-q").out == ""
    assert "rootless-box-kube" not in user.ok("network", "ls").out
