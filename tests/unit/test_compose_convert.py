"""`compose convert --format kube`: what each compose key becomes (a Deployment and a Service
per service, claims, probes, resources, depends_on as annotations), the keys left out with a
warning naming them, and every document validated strictly for each Kubernetes minor version
kubernetes-validate carries; `kube play`'s reading of the Services it writes."""

import textwrap

import pytest
import yaml

from rootless_box import errors
from rootless_box.compose import convert, loader
from rootless_box.compose.project import Project
from rootless_box.ops import kubeplay

pytest.importorskip("kubernetes_validate")
from test_kube_pure import validate_all  # noqa: E402

APP = """\
services:
  db:
    image: registry.example:5000/db:1
    init: true
    command: ["sh", "-c", "exec httpd -f -p 80"]
    volumes: [data:/www, ./src:/src:ro, {type: tmpfs, target: /cache}]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/"]
      interval: 2s
      retries: 7
    deploy:
      replicas: 2
      resources:
        limits: {cpus: "64", memory: 64M}
        reservations: {cpus: "0.25", memory: 32M}
  app:
    image: base
    entrypoint: ["/bin/app"]
    user: "1000:1000"
    working_dir: /srv
    depends_on:
      db: {condition: service_healthy}
    expose: ["8080", "9000-9001/udp"]
    labels: {tier: back, "com.example/note": "two words"}
    volumes: [data:/shared]
  web:
    image: base
    depends_on: [app]
    environment:
      GREETING: hi
    ports: ["8081:80", "127.0.0.1:5353:53/udp"]
    network_mode: host
    stop_grace_period: 1m30s
volumes:
  data:
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    d = tmp_path / "p"
    d.mkdir()
    (d / "compose.yaml").write_text(textwrap.dedent(APP))
    loaded = loader.load(loader.Options(files=[str(d / "compose.yaml")],
                                        cache_dir=str(tmp_path / "cache")))
    services = loader.resolve_environment(loaded, loaded.model["services"])
    return Project(loaded, services)


def by(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_each_service_becomes_a_deployment_and_a_service_that_validate(project, tmp_path):
    docs, warnings = convert.documents(project)
    validate_all(docs)
    # dependency order, one claim for the volume two services mount
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Deployment", "db"), ("PersistentVolumeClaim", "p-data"), ("Service", "db"),
        ("Deployment", "app"), ("Service", "app"), ("Deployment", "web"), ("Service", "web")]
    db = by(docs, "Deployment", "db")
    assert db["spec"]["replicas"] == 2
    pod = db["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["name"] == "db" and c["image"] == "registry.example:5000/db:1"
    assert c["args"] == ["sh", "-c", "exec httpd -f -p 80"] and "command" not in c
    # a cluster's CPUs, not this machine's: 64 is not refused here
    assert c["resources"] == {"limits": {"memory": str(64 * 2 ** 20), "cpu": "64000m"},
                              "requests": {"memory": str(32 * 2 ** 20), "cpu": "250m"}}
    assert c["livenessProbe"]["exec"]["command"] == ["wget", "-q", "-O", "/dev/null",
                                                     "http://localhost/"]
    assert c["livenessProbe"]["periodSeconds"] == 2
    assert c["livenessProbe"]["failureThreshold"] == 7
    assert {"name": "p-data", "persistentVolumeClaim": {"claimName": "p-data"}} in pod["volumes"]
    assert {"name": "p-data", "mountPath": "/www"} in c["volumeMounts"]
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/www", "/cache"]  # no bind
    # a service with no ports: a headless Service, its name resolving to the pods
    assert by(docs, "Service", "db")["spec"] == {"selector": {"app": "db"},
                                                 "clusterIP": "None"}
    app = by(docs, "Deployment", "app")
    c = app["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["/bin/app"] and c["workingDir"] == "/srv"
    assert c["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    assert app["metadata"]["labels"] == {"app": "app", "tier": "back"}
    assert app["metadata"]["annotations"] == {"com.example/note": "two words",
                                              convert.DEPENDS_ANNOTATION: "db"}
    assert app["spec"]["template"]["metadata"]["annotations"][
        convert.DEPENDS_ANNOTATION] == "db"  # kube play reads it there
    assert not any(k.startswith("com.docker.compose")
                   for d in docs for k in (d["metadata"].get("labels") or {}))
    svc = by(docs, "Service", "app")["spec"]
    assert svc["type"] == "ClusterIP" and svc["selector"] == {"app": "app"}
    assert [(p["port"], p["targetPort"], p["protocol"]) for p in svc["ports"]] == [
        (8080, 8080, "TCP"), (9000, 9000, "UDP"), (9001, 9001, "UDP")]
    web_pod = by(docs, "Deployment", "web")["spec"]["template"]["spec"]
    assert web_pod["terminationGracePeriodSeconds"] == 90
    web = web_pod["containers"][0]
    assert web["env"] == [{"name": "GREETING", "value": "hi"}]
    # published ports keep their host ports (kube play publishes them, as compose did)
    assert {"containerPort": 80, "protocol": "TCP", "hostPort": 8081} in web["ports"]
    assert {"containerPort": 53, "protocol": "UDP", "hostPort": 5353,
            "hostIP": "127.0.0.1"} in web["ports"]
    assert [(p["port"], p["protocol"]) for p in by(docs, "Service", "web")["spec"]["ports"]] \
        == [(80, "TCP"), (53, "UDP")]
    text = "\n".join(warnings)
    assert 'service "db": init: no Kubernetes mapping here' in text
    assert 'service "web": network_mode: no Kubernetes mapping here' in text
    assert "bind mount %s:/src left out" % (tmp_path / "p" / "src") in text
    assert "app -> db, web -> app" in text
    assert "reservations" not in text  # mapped, not warned about
    assert not (tmp_path / "p" / "src").exists()  # convert makes nothing on disk


def test_the_yaml_plays_back_as_services_selecting_their_pods(project):
    text, _warnings = convert.to_yaml(project)
    result = kubeplay.plan(kubeplay.load(text))
    assert sorted(p[0] for p in result.pods) == ["app-pod", "db-pod", "web-pod"]
    services = {s[0]: s for s in result.services}
    assert services["app"][3] == "ClusterIP" and services["db"][2] == []
    pods = {p[0]: p[4] for p in result.pods}
    for name, (_n, selector, _ports, _kind) in services.items():
        assert [p for p, labels in pods.items() if kubeplay._selects(selector, labels)] == \
            [name + "-pod"]


def test_two_services_with_one_kubernetes_name_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "compose.yaml").write_text(
        "services:\n  Web_a: {image: base}\n  web-a: {image: base}\n")
    loaded = loader.load(loader.Options(files=[str(tmp_path / "compose.yaml")],
                                        cache_dir=str(tmp_path / "cache")))
    p = Project(loaded, loader.resolve_environment(loaded, loaded.model["services"]))
    with pytest.raises(errors.UsageError, match="same Kubernetes name: web-a"):
        convert.documents(p)


def test_cluster_service_shapes():
    from rootless_box.ops import kube
    validate_all([kube.cluster_service("x", []), kube.cluster_service("x", [(80, "tcp")])])
    assert yaml.safe_load(kube.dump([kube.cluster_service("Web_1", [])]))["metadata"][
        "name"] == "web-1"
