"""The issue's three-service app on Debian: a Python web service built by `compose up` from a
Dockerfile that installs Python with apt, a store it keeps its data in (a named volume), a
worker that writes to the store; `up -d --wait` gated on health checks, reached through the
published port; `logs`, `exec`; `up` again touches nothing; a changed environment value
recreates only its service; `down -v` leaves nothing behind. Both id mappings.

Needs the Debian base tarball (RBX_TEST_DEBIAN_TAR) and its apt mirror, as test_debian.py.
"""

import json
import socket
import subprocess
import textwrap
import urllib.request

import pytest

from conftest import DEBIAN_TAR, Cli, has_subuid, needs_userns, wait_for

pytestmark = needs_userns
pytest.importorskip("yaml")
pytest.importorskip("jsonschema")

DOCKERFILE = """\
FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3 \\
    && rm -rf /var/lib/apt/lists/*
COPY app.py /app.py
CMD ["python3", "/app.py"]
"""
# one program, three roles: the store keeps lines in /data, the web page shows them with
# its greeting, the worker adds one
APP = """\
import http.server, os, sys, time, urllib.request
role = sys.argv[1]
if role == "worker":
    for _ in range(600):
        try:
            urllib.request.urlopen("http://store:9000/add?worker-was-here")
            print("worker stored a line", flush=True)
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(100000)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if role == "store":
            path = "/data/lines"
            if self.path.startswith("/add?"):
                with open(path, "a") as f:
                    f.write(self.path[5:] + "\\n")
            body = open(path).read() if os.path.exists(path) else ""
        else:
            stored = urllib.request.urlopen("http://store:9000/").read().decode()
            body = os.environ["GREETING"] + "\\n" + stored
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

port = 9000 if role == "store" else 8000
print(role, "listening", flush=True)
http.server.HTTPServer(("0.0.0.0", port), H).serve_forever()
"""
COMPOSE = """\
services:
  web:
    build: ./app
    image: compose-debian-app:1
    command: ["python3", "/app.py", "web"]
    environment:
      GREETING: ${GREETING:-hello}
    ports: ["%(port)d:8000"]
    depends_on:
      store: {condition: service_healthy}
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://localhost:8000/')"]
      interval: 200ms
      retries: 100
  store:
    build: ./app
    image: compose-debian-app:1
    command: ["python3", "/app.py", "store"]
    volumes: [data:/data]
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request as u; u.urlopen('http://localhost:9000/')"]
      interval: 200ms
      retries: 100
  worker:
    image: compose-debian-app:1
    command: ["python3", "/app.py", "worker"]
    depends_on: [store]
volumes:
  data:
"""


def _mirror_reason():
    from test_debian import _mirror_reason as reason
    return reason()


@pytest.fixture(params=["subuid", "single"])
def user(request, tmp_path):
    if DEBIAN_TAR is None:
        pytest.skip("no Debian base tarball (RBX_TEST_DEBIAN_TAR)")
    if request.param == "subuid" and not has_subuid():
        pytest.skip("needs /etc/subuid and /etc/subgid ranges and newuidmap")
    reason = _mirror_reason()
    if reason:
        pytest.skip(reason)
    cli = Cli(str(tmp_path / "data"), env={"RBX_USERNS": request.param})
    cli.ok("import", "-c", 'CMD ["bash"]', DEBIAN_TAR, "debian:bookworm", timeout=300)
    yield cli
    for cid in cli.ok("ps", "-a", "-q", "--no-trunc").out.split():
        cli("rm", "-f", cid)
    for name in cli.ok("network", "ls", "-q", "--filter", "type=custom",
                       "--format", "{{.Name}}").out.split():
        cli("network", "rm", name)
    cli("system", "prune", "-a", "-f", "--volumes", timeout=300)


def compose(cli, cwd, *args, env=None, check=0, timeout=600):
    full_env = dict(cli.env, **(env or {}))
    proc = subprocess.run(cli.argv("compose", *args), cwd=str(cwd), capture_output=True,
                          text=True, env=full_env, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout[-3000:], proc.stderr)
    return proc


def ids(cli):
    return dict(line.split() for line in cli.ok(
        "ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}").out.splitlines())


def test_python_app_built_with_apt(user, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = tmp_path / "shop"
    (d / "app").mkdir(parents=True)
    (d / "app" / "Dockerfile").write_text(DOCKERFILE)
    (d / "app" / "app.py").write_text(APP)
    (d / "compose.yaml").write_text(textwrap.dedent(COMPOSE % {"port": port}))

    proc = compose(user, d, "up", "-d", "--wait")
    assert "Service store  Built" in proc.stderr  # web shares its image: built once
    assert "Container shop-store-1  Healthy" in proc.stderr
    assert "Container shop-web-1  Healthy" in proc.stderr

    def page():
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""
    # the worker's line went into the store, the web page reads it back through the store
    wait_for(lambda: page() == "hello\nworker-was-here\n", what="the worker's line")
    logs = compose(user, d, "logs", "--no-color", "worker", "store").stdout
    assert "worker-1  | worker stored a line\n" in logs
    assert "store-1   | store listening\n" in logs
    out = compose(user, d, "exec", "-T", "store", "cat", "/data/lines").stdout
    assert out == "worker-was-here\n"

    before = ids(user)
    proc = compose(user, d, "up", "-d", "--wait")
    assert ids(user) == before and "Recreate" not in proc.stderr  # nothing touched
    proc = compose(user, d, "up", "-d", "--wait", env={"GREETING": "bonjour"})
    assert "Container shop-web-1  Recreated" in proc.stderr
    after = ids(user)
    assert after["shop-web-1"] != before["shop-web-1"]
    assert {k: v for k, v in after.items() if k != "shop-web-1"} == \
        {k: v for k, v in before.items() if k != "shop-web-1"}
    wait_for(lambda: page() == "bonjour\nworker-was-here\n", what="the new greeting")
    state = [json.loads(x) for x in compose(user, d, "ps", "--format", "json").stdout.split(
        "\n") if x]
    assert {r["Service"]: r["State"] for r in state} == {"web": "running", "store": "running",
                                                         "worker": "running"}

    compose(user, d, "down", "-v", "-t", "1")
    assert user.ok("ps", "-a", "-q").out == ""
    assert "shop_" not in user.ok("network", "ls").out + user.ok("volume", "ls").out
