"""Third-party clients of the Engine API, as their users run them against `rootless-box
system service`: testcontainers-python (a container with a wait strategy, its mapped port,
exec, removal) and Debian's docker-compose 1.29 (`up -d`, `ps`, `exec`, `down` of a
two-service project).

testcontainers runs with its reaper disabled (TESTCONTAINERS_RYUK_DISABLED=true: Ryuk is a
Docker Hub image) and, because this machine is itself a container (/.dockerenv), with
TESTCONTAINERS_CONNECTION_MODE=docker_host: inside a container testcontainers otherwise reads
the container's bridge gateway, which a private network here does not have.
A compose project on its default network with a named volume needs the networks and volumes
endpoints; it runs where the service serves them and is skipped, saying so, where not.
"""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import registry_server as rs
from conftest import wait_for
from test_api import api_cli, no_leftovers, service  # noqa: F401

COMPOSE = shutil.which("docker-compose")


def _client_env(service, **extra):
    env = dict(os.environ, DOCKER_HOST=service.uri, **extra)
    env.pop("DOCKER_CONFIG", None)
    return env


TESTCONTAINERS_SCRIPT = textwrap.dedent("""\
    import sys, urllib.request
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy
    port = int(sys.argv[1])
    server = (DockerContainer("base")
              .with_command(["sh", "-c", "mkdir -p /w; echo served > /w/index.html; "
                             "exec httpd -f -p %d -h /w" % port])
              .with_exposed_ports(port)
              .waiting_for(HttpWaitStrategy(port, "/index.html").for_status_code(200)))
    with server:
        host, mapped = server.get_container_host_ip(), server.get_exposed_port(port)
        print("body", urllib.request.urlopen("http://%s:%s/index.html" % (host, mapped),
                                             timeout=10).read().decode().strip())
        result = server.exec(["sh", "-c", "echo from-exec; exit 3"])
        print("exec", result.exit_code, result.output.decode().strip())
        print("id", server.get_wrapped_container().id)
    """)


def test_testcontainers_runs_a_container_with_a_wait_strategy(service, api_cli, tmp_path):
    pytest.importorskip("testcontainers")
    script = tmp_path / "tc.py"
    script.write_text(TESTCONTAINERS_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), "8080"], capture_output=True,
                          text=True, timeout=180,
                          env=_client_env(service, TESTCONTAINERS_RYUK_DISABLED="true",
                                          TESTCONTAINERS_CONNECTION_MODE="docker_host"))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert lines["body"] == "served" and lines["exec"] == "3 from-exec"
    # its labels were kept, and leaving the `with` removed the container
    assert api_cli.ok("ps", "-aq").out == ""


def _compose(service, project_dir, *args, timeout=180):
    proc = subprocess.run([COMPOSE, "-p", "rbxproj"] + list(args), cwd=str(project_dir),
                          capture_output=True, text=True, timeout=timeout,
                          env=_client_env(service))
    return proc


needs_compose = pytest.mark.skipif(not COMPOSE, reason="docker-compose is not installed "
                                   "(Debian package docker-compose)")


@needs_compose
def test_compose_up_ps_exec_down_of_two_services(service, api_cli, tmp_path):
    """Both services on the host's network (no network to create), one built from a
    Dockerfile: one reaches the other on its port; compose finds its containers by its
    labels."""
    port = rs.free_port()
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent("""\
        version: "3"
        services:
          web:
            image: base
            network_mode: host
            command: ["sh", "-c",
                      "mkdir -p /w; echo served > /w/index.html; exec httpd -f -p %d -h /w"]
          client:
            build: ./client
            network_mode: host
            command: ["sleep", "600"]
        """ % port))
    (tmp_path / "client").mkdir()
    (tmp_path / "client" / "Dockerfile").write_text("FROM base\nRUN echo built > /marker\n")
    try:
        out = _compose(service, tmp_path, "up", "-d")
        assert out.returncode == 0, out.stderr
        assert re.search(r"^Creating rbxproj_web_1 +\.\.\. done$", out.stderr, re.M), out.stderr
        out = _compose(service, tmp_path, "ps")
        rows = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
        assert sorted(rows) == ["rbxproj_client_1", "rbxproj_web_1"]
        assert all(" Up " in row + " " for row in rows.values()), out.stdout
        # the same containers in the one store, with compose's labels
        assert api_cli.ok("ps", "--filter", "label=com.docker.compose.service=web",
                          "--format", "{{.Names}}").out == "rbxproj_web_1\n"

        def fetched():
            got = _compose(service, tmp_path, "exec", "-T", "client", "wget", "-qO-",
                           "http://127.0.0.1:%d/index.html" % port)
            return got.stdout == "served\n"
        assert wait_for(fetched, what="the client to reach the web service", timeout=60)
        # the client's image was built through the service (compose runs `docker build`)
        assert _compose(service, tmp_path, "exec", "-T", "client", "cat", "/marker").stdout \
            == "built\n"
        out = _compose(service, tmp_path, "down")
        assert out.returncode == 0, out.stderr
        assert api_cli.ok("ps", "-aq").out == ""
    finally:
        _compose(service, tmp_path, "down", "-t", "1")


@needs_compose
def test_compose_project_on_its_network_with_a_named_volume(service, api_cli, tmp_path):
    """The usual project: a default network where services reach each other by name, and a
    named volume; `ps` and `logs` through the service as well."""
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent("""\
        version: "3"
        services:
          web:
            image: base
            command: ["sh", "-c", "echo served > /data/index.html; echo web-ready; exec httpd -f -p 8080 -h /data"]
            volumes: ["data:/data"]
          client:
            image: base
            command: ["sleep", "600"]
        volumes:
          data: {}
        """))
    try:
        out = _compose(service, tmp_path, "up", "-d")
        assert out.returncode == 0, out.stderr

        def fetched():
            got = _compose(service, tmp_path, "exec", "-T", "client", "wget", "-qO-",
                           "http://web:8080/index.html")
            return got.stdout == "served\n"
        assert wait_for(fetched, what="the client to reach web by its name", timeout=60)
        out = _compose(service, tmp_path, "ps")
        assert out.returncode == 0 and "_web_1" in out.stdout and "Up" in out.stdout, out
        out = _compose(service, tmp_path, "logs", "--no-color", "web")
        assert out.returncode == 0 and "web-ready" in out.stdout, out
        out = _compose(service, tmp_path, "down", "-v")
        assert out.returncode == 0, out.stderr
        assert api_cli.ok("ps", "-aq").out == ""
        assert "rbxproj_data" not in api_cli.ok("volume", "ls", "-q").out
    finally:
        _compose(service, tmp_path, "down", "-v", "-t", "1")
