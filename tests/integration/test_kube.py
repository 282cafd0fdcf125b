"""`kube play` of hand-written manifests (a pod whose two containers talk over localhost, an
init container, a Deployment with a ConfigMap, a Secret and a PVC) and of what `generate kube`
wrote from running containers; `--down` leaves nothing; bad files fail in one line."""

import json
import os
import socket
import urllib.request

import pytest

from conftest import assert_one_error, inspect1, needs_userns, wait_for

pytestmark = needs_userns


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def names(cli):
    return sorted(cli.ok("ps", "-a", "--format", "{{.Names}}").out.split())


def volume_names(cli):
    return sorted(cli.ok("volume", "ls", "-q").out.split())


def fetch(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return None


def logs_with(cli, name, text):
    return wait_for(lambda: text in cli.ok("logs", name).out and cli.ok("logs", name).out,
                    what="%r in the logs of %s" % (text, name))


@pytest.fixture
def write(tmp_path):
    def write(text, name="play.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: duo
  labels: {app: duo}
spec:
  restartPolicy: OnFailure
  initContainers:
  - name: prep
    image: base:latest
    command: [sh, -c, "echo made by init > /www/index.html"]
    volumeMounts: [{name: www, mountPath: /www}]
  containers:
  - name: web
    image: base:latest
    command: [httpd, -f, -p, "8000", -h, /www]
    volumeMounts: [{name: www, mountPath: /www}]
    ports: [{containerPort: 8000, hostPort: %d}]
    livenessProbe:
      exec: {command: [wget, -q, -O, /dev/null, "http://localhost:8000/"]}
      periodSeconds: 3
  - name: client
    image: base:latest
    command: [sh, -c]
    args: ["until wget -q -O - http://localhost:8000/; do sleep 0.1; done; exec sleep 1000"]
  volumes:
  - {name: www, emptyDir: {}}
"""


def test_a_pod_s_containers_share_localhost_and_down_leaves_nothing(cli, image, write):
    before_volumes = volume_names(cli)
    port = free_port()
    path = write(POD % port)
    proc = cli.ok("kube", "play", path)
    assert "duo-web" in proc.out and "duo-client" in proc.out
    assert names(cli) == ["duo-client", "duo-infra", "duo-web"]  # the init one ran and left
    # the client reached the server on localhost: they share one network namespace
    logs_with(cli, "duo-client", "made by init")
    # the hostPort is published on the host
    assert wait_for(lambda: fetch(port), what="the pod's hostPort") == "made by init\n"
    web = inspect1(cli, "duo-web")
    assert web["HostConfig"]["NetworkMode"] == "container:" + inspect1(cli, "duo-infra")["Id"]
    assert web["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    # the pod's hostname is the pod's name, in each container (one UTS namespace)
    assert cli.ok("exec", "duo-client", "hostname").out.strip() == "duo"
    assert web["Config"]["Healthcheck"]["Test"] == \
        ["CMD-SHELL", "wget -q -O /dev/null http://localhost:8000/"]
    assert web["Config"]["Labels"]["app"] == "duo"
    # a second play of the same file is refused ...
    assert_one_error(cli("kube", "play", path))
    # ... --replace plays it again
    cli.ok("kube", "play", "--replace", path)
    logs_with(cli, "duo-client", "made by init")
    proc = cli.ok("kube", "play", "--down", path)
    assert "duo" in proc.out
    assert names(cli) == []
    assert volume_names(cli) == before_volumes
    assert not os.path.exists(os.path.join(cli.root, "kube", "duo"))


DEPLOYMENT = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  GREETING: hello
  app.conf: |
    mode=fast
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {TOKEN: s3cret}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: kube-data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: front}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: main
        image: base:latest
        command: [sh, -c]
        args:
        - >-
          echo "greeting=$GREETING token=$TOKEN";
          cat /etc/app/app.conf;
          echo "n=$(cat /data/n 2>/dev/null)"; echo 1 >> /data/n;
          exec sleep 1000
        env:
        - name: GREETING
          valueFrom: {configMapKeyRef: {name: settings, key: GREETING}}
        envFrom: [{secretRef: {name: creds}}]
        resources: {limits: {memory: 64Mi}}
        volumeMounts:
        - {name: conf, mountPath: /etc/app}
        - {name: data, mountPath: /data}
      volumes:
      - name: conf
        configMap: {name: settings, items: [{key: app.conf, path: app.conf}]}
      - name: data
        persistentVolumeClaim: {claimName: kube-data}
"""


def test_a_deployment_with_a_config_map_a_secret_and_a_claim(cli, image, write):
    path = write(DEPLOYMENT)
    proc = cli.ok("kube", "play", path)
    # one warning for the kinds left out, a note for the replicas
    assert "Ingress/front" in proc.err and "2 replicas" in proc.err
    out = logs_with(cli, "app-pod-main", "n=")
    assert "greeting=hello token=s3cret" in out and "mode=fast" in out
    assert "kube-data" in volume_names(cli)
    # the limit is applied where a delegated cgroup allows it, else left out with a warning
    memory = inspect1(cli, "app-pod-main")["HostConfig"]["Memory"]
    assert memory == 64 * 2 ** 20 or ("resources left out" in proc.err and memory == 0)
    # configMap files are read-only, as a kubelet mounts them
    proc = cli("exec", "app-pod-main", "sh", "-c", "echo x > /etc/app/app.conf")
    assert proc.returncode != 0
    # the claim's volume outlives a replay: the data is still there
    cli.ok("kube", "play", "--replace", path)
    wait_for(lambda: "n=1" in cli.ok("logs", "app-pod-main").out, what="the claim's data")
    cli.ok("kube", "down", path)
    assert names(cli) == [] and "kube-data" not in volume_names(cli)


def test_generate_then_play_round_trip(cli, image, write, tmp_path):
    port = free_port()
    cli.ok("volume", "create", "site")
    cli.ok("run", "--rm", "-v", "site:/www", image, "sh", "-c",
           "echo round trip > /www/index.html")
    cli.ok("run", "-d", "--name", "rt", "-p", "%d:80" % port, "-e", "MODE=x",
           "-v", "site:/www", "--tmpfs", "/scratch", "--health-cmd", "true",
           image, "httpd", "-f", "-p", "80", "-h", "/www")
    assert wait_for(lambda: fetch(port), what="the original container") == "round trip\n"
    out = tmp_path / "rt.yaml"
    proc = cli.ok("generate", "kube", "-f", str(out), "rt")
    assert "only in the local store" in proc.err
    import kubernetes_validate as kv
    import yaml
    docs = list(yaml.safe_load_all(out.read_text()))
    assert [d["kind"] for d in docs] == ["Pod", "PersistentVolumeClaim"]
    for doc in docs:
        kv.validate(doc, kv.latest_version(), strict=True)
    cli.ok("rm", "-f", "rt")
    cli.ok("kube", "play", str(out))
    assert wait_for(lambda: fetch(port), what="the played pod") == "round trip\n"
    played = inspect1(cli, "rt-rt")
    assert "MODE=x" in played["Config"]["Env"]
    assert played["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    cli.ok("kube", "play", "--down", str(out))
    assert names(cli) == []
    assert "site" in volume_names(cli)  # it existed before the play: kept
    cli.ok("volume", "rm", "site")


def test_generate_deployment_with_a_service_plays_on_the_service_port(cli, image, write,
                                                                      tmp_path):
    port, other = free_port(), free_port()
    cli.ok("create", "--name", "svc", "-p", "%d:80" % port, image, "httpd", "-f", "-p", "80")
    proc = cli.ok("kube", "generate", "-s", "--type", "deployment", "svc")
    docs = [d for d in __import__("yaml").safe_load_all(proc.out)]
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert docs[1]["spec"]["ports"][0]["port"] == port
    cli.ok("rm", "svc")
    path = write(proc.out, "svc.yaml")

    def bound():
        ports = json.loads(cli.ok("inspect", "svc-pod-infra").out)[0]["HostConfig"][
            "PortBindings"]
        return [b["HostPort"] for b in ports["80/tcp"]]
    # the Service's port is published to the container port it targets
    cli.ok("kube", "play", path)
    assert bound() == [str(port)]
    # --publish moves the container's port 80 to another host port
    cli.ok("kube", "play", "--replace", "--publish", "%d:80" % other, path)
    assert bound() == [str(other)]
    cli.ok("kube", "play", "--down", path)
    assert names(cli) == []


def test_bad_files_fail_in_one_line_and_make_nothing(cli, image, write):
    proc = cli("kube", "play", write("kind: Pod\n---\nmetadata: {name: [x}\n"))
    assert_one_error(proc)
    assert "document 1" in proc.err
    proc = cli("kube", "play", write(
        "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
        "    image: base:latest\n    envFrom: [{configMapRef: {name: nowhere}}]\n"))
    assert_one_error(proc)
    assert "ConfigMap nowhere not found" in proc.err
    assert names(cli) == []
    proc = cli("kube", "play", write(
        "kind: ConfigMap\nmetadata: {name: conf}\ndata: {a: b}\n---\n"
        "kind: PersistentVolumeClaim\nmetadata: {name: new-claim}\n---\n"
        "kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
        "    image: no-such-image-here\n    imagePullPolicy: Never\n"
        "    volumeMounts: [{name: f, mountPath: /f}, {name: d, mountPath: /d}]\n"
        "  volumes:\n  - {name: f, configMap: {name: conf}}\n"
        "  - {name: d, persistentVolumeClaim: {claimName: new-claim}}\n"))
    assert_one_error(proc)
    assert "no-such-image-here" in proc.err
    # nothing half made: no infra container, no claim's volume, no config files
    assert names(cli) == [] and "new-claim" not in volume_names(cli)
    assert not os.path.exists(os.path.join(cli.root, "kube", "p"))
    proc = cli("kube", "play", write(
        "kind: Pod\nmetadata: {name: bad}\nspec:\n  initContainers:\n  - name: fail\n"
        "    image: base:latest\n    command: [sh, -c, 'echo broken setup; exit 3']\n"
        "  containers:\n  - {name: c, image: base:latest, command: [sleep, '100']}\n"))
    assert_one_error(proc)
    assert "exited with code 3: broken setup" in proc.err
    assert names(cli) == []


def test_generate_push_names_the_registry_and_play_pulls_from_it(cli, image, tmp_path,
                                                                 plain_registry):
    cli.ok("create", "--name", "pushme", image, "sleep", "1000")
    out = tmp_path / "pushed.yaml"
    proc = cli.ok("generate", "kube", "--push", plain_registry.host, "-f", str(out), "pushme")
    assert "only in the local store" not in proc.err
    pushed = "%s/library/base:latest" % plain_registry.host
    assert "pushed docker.io/library/base:latest as %s" % pushed in proc.err
    import yaml
    pod = next(yaml.safe_load_all(out.read_text()))
    assert pod["spec"]["containers"][0]["image"] == pushed
    cli.ok("rm", "pushme")
    # imagePullPolicy unset: pulled because it is missing under that name
    proc = cli.ok("kube", "play", str(out))
    assert inspect1(cli, "pushme-pushme")["Config"]["Image"] == pushed
    assert inspect1(cli, "pushme-pushme")["State"]["Running"]
    cli.ok("kube", "down", str(out))
    assert names(cli) == []
