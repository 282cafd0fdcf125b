"""Kubernetes YAML: what `generate kube` writes (each mapped key, every document validated
strictly against the OpenAPI schemas of each Kubernetes minor version kubernetes-validate
carries) and how `kube play` reads a file (errors with the document's index and the field's
path, kinds left out, references to ConfigMaps and Secrets)."""

import base64

import pytest
import yaml

from rootless_box import errors
from rootless_box.ops import kube, kubeplay

kv = pytest.importorskip("kubernetes_validate")
from kubernetes_validate import utils as kv_utils  # noqa: E402


def versions():
    """One version per minor that kubernetes-validate carries (1.25 ... its latest)."""
    seen = {}
    for version in kv_utils.all_versions():
        seen.setdefault(kv_utils.major_minor(version), version)
    return sorted(seen.values())


def validate_all(docs):
    assert versions()
    for doc in docs:
        for version in versions():
            kv.validate(doc, version, strict=True)  # raises on an unknown field


def test_strict_validation_rejects_an_unknown_field():
    """The check the other tests rely on can fail."""
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "x", "image": "busybox", "nonsense": 1}]}}
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, versions()[-1], strict=True)


IMAGE_CONFIG = {"Env": ["PATH=/usr/bin:/bin", "IMAGE_ONLY=1"], "Cmd": ["sh"],
                "Entrypoint": None}


def record(**over):
    """A container record as inspect shows it: every key generate kube maps."""
    rec = {
        "Id": "a" * 64, "Name": "/Web_1", "Image": "sha256:" + "b" * 64,
        "Config": {"Image": "registry.example:5000/team/web:1.0",
                   "Cmd": ["-f", "-p", "80"], "Entrypoint": ["httpd"],
                   "Env": ["PATH=/usr/bin:/bin", "IMAGE_ONLY=1", "HOSTNAME=aaaaaaaaaaaa",
                           "GREETING=hi there"],
                   "Hostname": "aaaaaaaaaaaa", "WorkingDir": "/srv", "User": "1000:1000",
                   "Labels": {"tier": "front", "com.example/owner": "team a b",
                              "io.rootless-box.kube.pod": "played"},
                   "Healthcheck": {"Test": ["CMD-SHELL", "wget -q -O- localhost"],
                                   "Interval": 5 * 10 ** 9, "Timeout": 2 * 10 ** 9,
                                   "Retries": 4, "StartPeriod": 10 * 10 ** 9}},
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                                        "53/udp": [{"HostIp": "127.0.0.1",
                                                    "HostPort": "5353"}]},
                       "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 0},
                       "Memory": 64 * 2 ** 20, "MemoryReservation": 32 * 2 ** 20,
                       "NanoCpus": 500000000},
        "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": True},
                   {"Type": "volume", "Name": "c" * 64, "Destination": "/anon", "RW": True},
                   {"Type": "bind", "Source": "/home/u/src", "Destination": "/src",
                    "RW": False},
                   {"Type": "tmpfs", "Source": "", "Destination": "/run", "RW": True}]}
    rec.update(over)
    return rec


def test_spec_from_record_keeps_what_the_container_changed():
    spec = kube.spec_from_record(record(), IMAGE_CONFIG, image_local=False)
    assert spec["name"] == "Web_1"
    assert spec["env"] == {"GREETING": "hi there"}  # not the image's, not HOSTNAME
    assert spec["entrypoint"] == ["httpd"] and spec["command"] == ["-f", "-p", "80"]
    assert {"container": 80, "protocol": "tcp", "host": 8080, "host_ip": None} in spec["ports"]
    assert [m["type"] for m in spec["mounts"]] == ["volume", "anonymous", "bind", "tmpfs"]
    assert spec["restart"] == "on-failure" and spec["memory"] == 64 * 2 ** 20


def test_a_pod_maps_each_key_and_validates():
    spec = kube.spec_from_record(record(), IMAGE_CONFIG, image_local=False)
    docs, warnings = kube.documents([spec])
    validate_all(docs)
    pod = docs[0]
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "web-1"
    c = pod["spec"]["containers"][0]
    assert c["name"] == "web-1" and c["image"] == "registry.example:5000/team/web:1.0"
    assert c["command"] == ["httpd"] and c["args"] == ["-f", "-p", "80"]
    assert c["workingDir"] == "/srv"
    assert c["env"] == [{"name": "GREETING", "value": "hi there"}]
    assert {"containerPort": 80, "protocol": "TCP", "hostPort": 8080} in c["ports"]
    assert {"containerPort": 53, "protocol": "UDP", "hostPort": 5353,
            "hostIP": "127.0.0.1"} in c["ports"]
    assert c["resources"] == {"limits": {"memory": str(64 * 2 ** 20), "cpu": "500m"},
                              "requests": {"memory": str(32 * 2 ** 20)}}
    assert c["livenessProbe"] == {"exec": {"command": ["/bin/sh", "-c",
                                                       "wget -q -O- localhost"]},
                                  "periodSeconds": 5, "timeoutSeconds": 2,
                                  "failureThreshold": 4, "initialDelaySeconds": 10}
    assert c["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "/src" not in mounts  # the bind mount is refused ...
    assert any("/home/u/src:/src" in w for w in warnings)  # ... with a warning naming it
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"] == {"claimName": "data"}
    assert volumes[mounts["/anon"]]["emptyDir"] == {}
    assert volumes[mounts["/run"]]["emptyDir"] == {"medium": "Memory"}
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert pod["metadata"]["labels"] == {"app": "web-1", "tier": "front"}
    # a value Kubernetes would refuse as a label travels as an annotation
    assert pod["metadata"]["annotations"] == {"com.example/owner": "team a b"}
    claim = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert [d["metadata"]["name"] for d in claim] == ["data"]
    assert not any("local store" in w for w in warnings)


def test_a_deployment_with_a_service_validates():
    specs = [kube.spec_from_record(record(), IMAGE_CONFIG),
             kube.spec_from_record(record(Name="/db", Mounts=[]), IMAGE_CONFIG,
                                   image_local=True)]
    docs, warnings = kube.documents(specs, kind="deployment", replicas=3, service=True)
    validate_all(docs)
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Deployment", "PersistentVolumeClaim", "Service"]
    dep = docs[0]
    assert dep["spec"]["replicas"] == 3 and dep["metadata"]["name"] == "web-1-pod"
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "web-1-pod"}
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == "web-1-pod"
    pod = dep["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["web-1", "db"]
    assert "restartPolicy" not in pod  # a Deployment's is Always
    # with -s the Service publishes: no hostPort in the pod
    assert all("hostPort" not in p for c in pod["containers"] for p in c.get("ports", []))
    service = docs[-1]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["selector"] == {"app": "web-1-pod"}
    assert {"name": "8080-tcp", "port": 8080, "targetPort": 80,
            "protocol": "TCP"} in service["spec"]["ports"]
    assert any("only in the local store" in w and "db" in w for w in warnings)
    assert any("restartPolicy: Always" in w for w in warnings)


def test_dump_is_plain_yaml_that_reads_back():
    docs, _ = kube.documents([kube.spec_from_record(record(), IMAGE_CONFIG)],
                             kind="deployment")
    text = kube.dump(docs)
    assert "&id" not in text and "*id" not in text  # no anchors for kubectl to trip on
    assert list(yaml.safe_load_all(text)) == docs


def test_a_user_name_and_the_image_s_own_command_are_left_out():
    rec = record(Config=dict(record()["Config"], User="www", Cmd=["sh"], Entrypoint=None,
                             Healthcheck=None))
    docs, warnings = kube.documents([kube.spec_from_record(rec, IMAGE_CONFIG)])
    c = docs[0]["spec"]["containers"][0]
    assert "command" not in c and "args" not in c and "securityContext" not in c
    assert "livenessProbe" not in c
    assert any("'www'" in w for w in warnings)


def test_no_containers_is_an_error():
    with pytest.raises(errors.UsageError):
        kube.documents([])


# -- kube play: reading -------------------------------------------------------------------------

def test_invalid_yaml_names_the_document_and_line():
    with pytest.raises(kubeplay.Bad) as info:
        kubeplay.load("kind: Pod\n---\nkind: Pod\nmetadata: {name: [x}\n")
    assert "document 1" in info.value.message and "line 4" in info.value.message


def test_a_bad_field_names_its_path():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x"},
                                   {"name": "b", "ports": [{"containerPort": "eighty"}],
                                    "image": "x"}]}}
    result = kubeplay.plan([(3, doc)])
    _pod, d, path, spec, _labels, _meta, _kind = result.pods[0]
    items = d.items(spec, path, "containers")
    with pytest.raises(kubeplay.Bad) as info:
        kubeplay._options(d, items[1][0], items[1][1], "p", {}, result, "always")
    assert info.value.message == \
        "document 3: spec.containers[1].ports[0].containerPort: must be an integer"
    with pytest.raises(kubeplay.Bad) as info:
        kubeplay.plan([(0, {"kind": "Pod", "metadata": {}})])
    assert info.value.message == "document 0: metadata.name: required"


def test_unsupported_kinds_are_collected_and_deployments_noted():
    docs = kubeplay.load("""
kind: Ingress
metadata: {name: front}
---
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: x}]}
---
kind: StatefulSet
metadata: {name: db}
""")
    result = kubeplay.plan(docs)
    assert result.unsupported == ["Ingress/front", "StatefulSet/db"]
    assert [p[0] for p in result.pods] == ["web-pod"]
    assert any("3 replicas" in n for n in result.notes)


PLAY = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast, LEVEL: "3"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
data: {TOKEN: %s}
stringData: {USER: admin}
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: base
    command: [sh]
    args: [-c, run]
    workingDir: /w
    securityContext: {runAsUser: 5, runAsGroup: 6}
    envFrom: [{configMapRef: {name: settings}, prefix: CFG_}]
    env:
    - {name: PLAIN, value: one}
    - name: FROM_MAP
      valueFrom: {configMapKeyRef: {name: settings, key: MODE}}
    - name: FROM_SECRET
      valueFrom: {secretKeyRef: {name: creds, key: TOKEN}}
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: MAYBE
      valueFrom: {configMapKeyRef: {name: absent, key: X, optional: true}}
    livenessProbe:
      httpGet: {port: 80, path: /health}
      periodSeconds: 7
      failureThreshold: 2
""" % base64.b64encode(b"s3cret").decode()


def test_env_from_config_maps_secrets_and_fields_and_probes():
    result = kubeplay.plan(kubeplay.load(PLAY))
    assert result.secrets["creds"] == {"TOKEN": b"s3cret", "USER": b"admin"}
    _pod, d, path, spec, _labels, _meta, _kind = result.pods[0]
    cpath, c = d.items(spec, path, "containers")[0]
    image, kw, policy, _ports = kubeplay._options(d, cpath, c, "p", {}, result, "always")
    assert image == "base" and policy == "IfNotPresent"
    assert kw["name"] == "p-app" and kw["network"] == "container:p-infra"
    assert kw["entrypoint"] == ["sh"] and kw["command"] == ["-c", "run"]
    assert kw["workdir"] == "/w" and kw["user"] == "5:6"
    assert kw["env"] == ["CFG_LEVEL=3", "CFG_MODE=fast", "PLAIN=one", "FROM_MAP=fast",
                         "FROM_SECRET=s3cret", "POD=p"]
    assert kw["health_cmd"] == "wget -q -O /dev/null http://localhost:80/health"
    assert kw["health_interval"] == "7s" and kw["health_retries"] == "2"
    assert kw["restart"] == "always"


def test_a_missing_config_map_is_one_clear_error():
    text = PLAY.replace("name: settings}, prefix", "name: nowhere}, prefix")
    result = kubeplay.plan(kubeplay.load(text))
    _pod, d, path, spec, _labels, _meta, _kind = result.pods[0]
    cpath, c = d.items(spec, path, "containers")[0]
    with pytest.raises(errors.NotFound) as info:
        kubeplay._options(d, cpath, c, "p", {}, result, "always")
    assert info.value.message == \
        "document 2: spec.containers[0].envFrom[0].configMapRef: ConfigMap nowhere not found"


def test_specs_from_run_options_as_compose_makes_them():
    """compose convert --format kube feeds documents() the RunOptions it makes per
    service: the same mapping, nothing created."""
    from rootless_box.ops.run import RunOptions
    web = RunOptions("web:1", ["-f"], name="proj-web-1", env=["A=1", "FROM_HOST"],
                     publish=["127.0.0.1:8080:80", "9000:9000/udp"],
                     volumes=["data:/data:ro", "/anon", "./src:/src"], tmpfs=["/run:size=1m"],
                     entrypoint="httpd", workdir="/srv", user="33", labels=["tier=front"],
                     health_cmd="true", health_interval="10s", restart="on-failure:3",
                     memory="64m", cpus="1.5")
    db = RunOptions("db", name="proj-db-1", restart="always")
    specs = [kube.spec_from_options(web), kube.spec_from_options(db, image_local=True)]
    assert specs[0]["env"] == {"A": "1"}
    assert specs[0]["restart"] == "on-failure" and specs[0]["nano_cpus"] == 1500000000
    docs, warnings = kube.documents(specs, name="proj", kind="deployment", service=True)
    validate_all(docs)
    pod = docs[0]["spec"]["template"]["spec"]
    web_c, db_c = pod["containers"]
    assert web_c["image"] == "docker.io/library/web:1" and web_c["command"] == ["httpd"]
    assert web_c["args"] == ["-f"] and web_c["securityContext"] == {"runAsUser": 33}
    assert web_c["resources"]["limits"] == {"memory": str(64 * 2 ** 20), "cpu": "1500m"}
    assert web_c["livenessProbe"]["exec"]["command"] == ["/bin/sh", "-c", "true"]
    assert web_c["livenessProbe"]["periodSeconds"] == 10
    mounts = {m["mountPath"]: m for m in web_c["volumeMounts"]}
    assert mounts["/data"]["readOnly"] is True and "/src" not in mounts
    assert any("./src:/src" in w for w in warnings)
    assert db_c == {"name": "proj-db-1", "image": "docker.io/library/db:latest"}
    service = docs[-1]["spec"]["ports"]
    assert {p["port"] for p in service} == {8080, 9000}
    assert [d["metadata"]["name"] for d in docs] == ["proj", "data", "proj"]


def test_resources_become_run_limits():
    assert kubeplay.quantity("64Mi") == 64 * 2 ** 20
    assert kubeplay.quantity("1G") == 10 ** 9 and kubeplay.quantity("500m") == 0.5
    with pytest.raises(ValueError):
        kubeplay.quantity("lots")
    doc = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"},
                                                  "requests": {"memory": "32Mi"}}},
        {"name": "d", "image": "x", "resources": {"limits": {"memory": "much"}}}]}}
    result = kubeplay.plan([(0, doc)])
    _pod, d, path, spec, _labels, _meta, _kind = result.pods[0]
    items = d.items(spec, path, "containers")
    _image, kw, _policy, _ports = kubeplay._options(d, items[0][0], items[0][1], "p", {},
                                                     result, "always")
    assert (kw["memory"], kw["cpus"], kw["memory_reservation"]) == \
        (str(64 * 2 ** 20), "0.25", str(32 * 2 ** 20))
    with pytest.raises(kubeplay.Bad) as info:
        kubeplay._options(d, items[1][0], items[1][1], "p", {}, result, "always")
    assert "spec.containers[1].resources.limits.memory" in info.value.message
