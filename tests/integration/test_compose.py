"""`rootless-box compose` making containers: up/down/ps/logs/exec/run and the other verbs,
as a user runs them in a project directory, on busybox images.

What a user relies on: a three-service app (web -> app -> db, found by service name on the
project network, each gated on the previous one's health check) comes up with `up -d`, is
reached through its published port, its containers carry Compose's names and labels; `up`
again touches nothing, a changed value recreates only that service; `down -v` leaves no
container, network or volume behind. depends_on's conditions fail as Compose's do; the
attached `up` prefixes output and returns --exit-code-from's code; --scale, orphans, --build,
one-off `run`, and the lifecycle verbs. Real namespaces, the real CLI, an unprivileged user.
"""

import json
import os
import signal
import socket
import subprocess
import textwrap
import time
import urllib.request

import pytest

from conftest import Cli, find_named, has_subuid, needs_userns, run_in_pty, wait_for

pytestmark = needs_userns
pytest.importorskip("yaml")
pytest.importorskip("jsonschema")

HTTPD = "exec busybox httpd -f -p 80 -h /www"
APP = """\
services:
  db:
    image: base
    init: true
    command: ["sh", "-c", "mkdir -p /www && echo db-data > /www/index.html && echo db up && %(httpd)s"]
    volumes: [data:/www]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/"]
      interval: 100ms
      retries: 100
  app:
    image: base
    init: true
    depends_on:
      db: {condition: service_healthy}
    command: ["sh", "-c", "mkdir -p /www && wget -q -O /www/index.html http://db/ && echo app got $$(cat /www/index.html) && %(httpd)s"]
    healthcheck:
      test: wget -q -O /dev/null http://localhost/
      interval: 100ms
      retries: 100
  web:
    image: base
    stop_grace_period: 1s
    depends_on:
      app: {condition: service_healthy}
    environment:
      GREETING: ${GREETING:-hello}
    ports: ["%(port)d:80"]
    command: ["sh", "-c", "mkdir -p /www && wget -q -O- http://app/ > /www/index.html && echo $$GREETING >> /www/index.html && %(httpd)s"]
volumes:
  data:
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose(cli, cwd, *args, env=None, check=0, timeout=120, input=None):
    full_env = dict(cli.env)
    full_env.update(env or {})
    proc = subprocess.run(cli.argv("compose", *args), cwd=str(cwd), capture_output=True,
                          text=True, env=full_env, timeout=timeout, input=input)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def project_dir(tmp_path, text, name="p"):
    d = tmp_path / name
    d.mkdir()
    (d / "compose.yaml").write_text(textwrap.dedent(text))
    return d


def fetch(port):
    """The page, or None while nothing serves it yet: a started service's command may still be
    on its way to its server (web fetches app's page first)."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return None


def ids(cli):
    return dict(line.split() for line in cli.ok(
        "ps", "-a", "--no-trunc", "--format", "{{.Names}} {{.ID}}").out.splitlines())


def cleanup(cli):
    for cid in cli.ok("ps", "-a", "-q", "--no-trunc").out.split():
        cli("rm", "-f", cid)
    for name in cli.ok("network", "ls", "-q", "--filter", "type=custom",
                       "--format", "{{.Name}}").out.split():
        cli("network", "rm", name)


@pytest.fixture(params=["subuid", "single"])
def user(request, tmp_path, rootfs_tar):
    if request.param == "subuid" and not has_subuid():
        pytest.skip("needs /etc/subuid and /etc/subgid ranges and newuidmap")
    cli = Cli(str(tmp_path / "data"), env={"RBX_USERNS": request.param})
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    yield cli
    cleanup(cli)


@pytest.fixture(scope="module")
def mod(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("data")))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    yield cli
    cleanup(cli)


def test_three_service_app_up_reused_recreated_down(user, tmp_path):
    port = free_port()
    d = project_dir(tmp_path, APP % {"httpd": HTTPD, "port": port})
    proc = compose(user, d, "up", "-d")
    assert proc.stdout == ""
    for line in ("Network p_default  Created", 'Volume "p_data"  Created',
                 "Container p-db-1  Created", "Container p-db-1  Started",
                 "Container p-db-1  Healthy", "Container p-app-1  Healthy",
                 "Container p-web-1  Started"):
        assert " %s\n" % line in proc.stderr, proc.stderr
    # app started only once db was healthy, web once app was: web's page holds db's data
    assert wait_for(lambda: fetch(port), what="web's page") == "db-data\nhello\n"
    info = json.loads(user.ok("inspect", "p-web-1").out)[0]
    labels = info["Config"]["Labels"]
    assert labels["com.docker.compose.project"] == "p"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "1"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert len(labels["com.docker.compose.config-hash"]) == 64
    assert labels["com.docker.compose.project.working_dir"] == str(d)
    assert info["NetworkSettings"]["Networks"]["p_default"]["Aliases"] == ["web"]
    net = json.loads(user.ok("network", "inspect", "p_default").out)[0]
    assert net["Labels"]["com.docker.compose.network"] == "default"
    assert net["Labels"]["com.docker.compose.project"] == "p"

    rows = [json.loads(x) for x in compose(user, d, "ps", "--format", "json").stdout.split(
        "\n") if x]
    by_name = {r["Name"]: r for r in rows}
    assert sorted(by_name) == ["p-app-1", "p-db-1", "p-web-1"]
    assert by_name["p-db-1"]["Service"] == "db" and by_name["p-db-1"]["Health"] == "healthy"
    assert by_name["p-web-1"]["State"] == "running"
    assert by_name["p-web-1"]["Publishers"] == [
        {"URL": "0.0.0.0", "TargetPort": 80, "PublishedPort": port, "Protocol": "tcp"}]
    table = compose(user, d, "ps").stdout.splitlines()
    assert table[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS",
                                "PORTS"]
    assert compose(user, d, "ps", "--services").stdout == "app\ndb\nweb\n"

    logs = compose(user, d, "logs", "--no-color", "app", "db").stdout
    assert "app-1  | app got db-data\n" in logs and "db-1   | db up\n" in logs
    assert compose(user, d, "logs", "--no-log-prefix", "db").stdout == "db up\n"
    out = compose(user, d, "exec", "-T", "web", "wget", "-q", "-O-", "http://app/").stdout
    assert out == "db-data\n"
    assert compose(user, d, "exec", "-T", "db", "sh", "-c", "exit 3", check=3)

    before = ids(user)
    proc = compose(user, d, "up", "-d")
    assert ids(user) == before  # nothing changed: nothing touched
    assert "Container p-web-1  Running" in proc.stderr and "Recreate" not in proc.stderr
    proc = compose(user, d, "up", "-d", env={"GREETING": "changed"})
    assert "Container p-web-1  Recreated" in proc.stderr
    assert "p-db-1  Recreate" not in proc.stderr and "p-app-1  Recreate" not in proc.stderr
    after = ids(user)
    assert after["p-web-1"] != before["p-web-1"]
    assert after["p-db-1"] == before["p-db-1"] and after["p-app-1"] == before["p-app-1"]
    wait_for(lambda: fetch(port) == "db-data\nchanged\n", what="the recreated web")

    proc = compose(user, d, "down", "-v")
    for line in ("Container p-web-1  Removed", "Container p-db-1  Removed",
                 "Network p_default  Removed", "Volume p_data  Removed"):
        assert line in proc.stderr
    # dependents stop first
    assert proc.stderr.index("p-web-1  Stopped") < proc.stderr.index("p-db-1  Stopping")
    assert user.ok("ps", "-a", "-q").out == ""
    assert "p_default" not in user.ok("network", "ls").out
    assert "p_data" not in user.ok("volume", "ls").out


def test_dependency_conditions_fail_as_compose(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          init:
            image: base
            command: ["sh", "-c", "exit 3"]
          web:
            image: base
            command: ["sleep", "1000"]
            depends_on:
              init: {condition: service_completed_successfully}
        """, "cond")
    proc = compose(mod, d, "up", "-d", check=1)
    assert proc.stderr.strip().splitlines()[-1] == (
        'rootless-box: error: service "init" didn\'t complete successfully: exit 3')
    assert "cond-web-1  Started" not in proc.stderr
    compose(mod, d, "down", "-t", "0")

    d = project_dir(tmp_path, """\
        services:
          db:
            image: base
            command: ["sleep", "1000"]
            healthcheck: {test: ["CMD", "false"], interval: 100ms, retries: 1}
          nocheck:
            image: base
            command: ["sleep", "1000"]
          web:
            image: base
            command: ["sleep", "1000"]
            depends_on:
              db: {condition: service_healthy}
        """, "sick")
    proc = compose(mod, d, "up", "-d", check=1)
    assert "rootless-box: error: dependency failed to start: container sick-db-1 is " \
           "unhealthy" in proc.stderr
    assert "sick-web-1  Started" not in proc.stderr
    compose(mod, d, "down", "-t", "0")

    (d / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          nocheck:
            image: base
            command: ["sleep", "1000"]
          web:
            image: base
            command: ["true"]
            depends_on:
              nocheck: {condition: service_healthy}
        """))
    proc = compose(mod, d, "up", "-d", check=1)
    assert "container sick-nocheck-1 has no healthcheck configured" in proc.stderr
    compose(mod, d, "down", "-t", "0")

    (d / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          slow:
            image: base
            command: ["sleep", "1000"]
            healthcheck: {test: ["CMD", "false"], interval: 100ms, start_period: 1h}
        """))
    proc = compose(mod, d, "up", "--wait", "--wait-timeout", "1", check=1)
    assert "timeout waiting for container sick-slow-1 to be healthy" in proc.stderr
    compose(mod, d, "down", "-t", "0")


def test_attached_up_prefixes_and_returns_the_exit_code_from(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          job:
            image: base
            command: ["sh", "-c", "echo job says hi; exit 7"]
          server:
            image: base
            init: true
            command: ["sleep", "1000"]
        """, "att")
    proc = compose(mod, d, "up", "--exit-code-from", "job", check=7)
    assert "job-1     | job says hi\n" in proc.stdout
    assert "job-1 exited with code 7\n" in proc.stdout
    assert "Aborting on container exit..." in proc.stdout
    assert "Container att-server-1  Stopped" in proc.stderr
    assert compose(mod, d, "ps", "-q").stdout == ""  # everything stopped
    # on a terminal the prefixes are coloured (a colour per service, rotating)
    out, status = run_in_pty(mod, ["compose", "--project-directory", str(d), "up",
                                   "--exit-code-from", "job"], timeout=60)
    assert status == 7
    assert "\x1b[36mjob-1     | \x1b[0mjob says hi" in out, out
    assert out.count("job says hi") == 1  # this run's output, not the first run's too
    compose(mod, d, "down")


def test_attached_up_stops_everything_on_ctrl_c(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          ticker:
            image: base
            init: true
            command: ["sh", "-c", "echo started; exec sleep 1000"]
        """, "cc")
    proc = subprocess.Popen(mod.argv("compose", "up", "--no-color"), cwd=str(d),
                            env=mod.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = ""
        while "started" not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        assert line == "ticker-1  | started\n"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Gracefully stopping..." in err and "Container cc-ticker-1  Stopped" in err
    rows = json.loads(mod.ok("inspect", "cc-ticker-1").out)
    assert rows[0]["State"]["Status"] == "exited"
    compose(mod, d, "down")


def test_scale_orphans_and_wait(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          web:
            image: base
            init: true
            command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && %s"]
          probe:
            image: base
            init: true
            command: ["sleep", "1000"]
            healthcheck: {test: "true", interval: 100ms}
        """ % HTTPD, "sc")
    proc = compose(mod, d, "up", "-d", "--wait", "--scale", "web=2")
    assert "Container sc-web-2  Started" in proc.stderr
    assert "Container sc-probe-1  Healthy" in proc.stderr
    # the service name answers for both replicas; each container by its own name
    out = compose(mod, d, "exec", "-T", "probe", "sh", "-c",
                  "wget -q -O- http://sc-web-1/ && wget -q -O- http://sc-web-2/ && "
                  "wget -q -O- http://web/").stdout.split()
    assert len(out) == 3 and out[2] in out[:2] and out[0] != out[1]
    proc = compose(mod, d, "up", "-d", "--scale", "web=1")
    assert "Container sc-web-2  Removed" in proc.stderr
    assert "sc-web-2" not in ids(mod)
    assert compose(mod, d, "exec", "-T", "--index", "2", "web", "true", check=1)

    (d / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          probe:
            image: base
            init: true
            command: ["sleep", "1000"]
        """))
    proc = compose(mod, d, "up", "-d")
    assert "Found orphan containers ([sc-web-1])" in proc.stderr
    assert "Container sc-probe-1  Recreated" in proc.stderr  # its healthcheck went
    proc = compose(mod, d, "up", "-d", "--remove-orphans")
    assert "Container sc-web-1  Removed" in proc.stderr
    assert sorted(ids(mod)) == ["sc-probe-1"]
    proc = compose(mod, d, "up", "-d", "--force-recreate")
    assert "Container sc-probe-1  Recreated" in proc.stderr
    compose(mod, d, "down", "-t", "0")


def test_build_run_and_lifecycle_verbs(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          svc:
            build:
              context: ./ctx
              args: {WHAT: built-by-compose}
            command: ["sleep", "1000"]
            stop_grace_period: 1s
        """, "lc")
    (d / "ctx").mkdir()
    (d / "ctx" / "Dockerfile").write_text("FROM base\nARG WHAT\nRUN echo $WHAT > /what\n")
    proc = compose(mod, d, "up", "-d")
    assert "Service svc  Built" in proc.stderr
    assert proc.stdout == ""  # the build's progress is on stderr
    assert compose(mod, d, "exec", "-T", "svc", "cat", "/what").stdout == \
        "built-by-compose\n"
    assert "lc-svc" in mod.ok("images").out
    proc = compose(mod, d, "up", "-d")
    assert "Built" not in proc.stderr and "Recreate" not in proc.stderr
    (d / "ctx" / "Dockerfile").write_text("FROM base\nARG WHAT\nRUN echo $WHAT v2 > /what\n")
    proc = compose(mod, d, "up", "-d", "--build")
    assert "Container lc-svc-1  Recreated" in proc.stderr  # the image changed
    assert compose(mod, d, "exec", "-T", "svc", "cat", "/what").stdout == \
        "built-by-compose v2\n"
    (d / "ctx" / "Dockerfile").write_text("FROM base\nARG WHAT\nRUN echo $WHAT > /what\n")
    compose(mod, d, "build")
    compose(mod, d, "up", "-d")
    images = compose(mod, d, "images").stdout
    assert images.splitlines()[0].split()[:2] == ["CONTAINER", "REPOSITORY"]
    assert "lc-svc-1" in images

    out = compose(mod, d, "run", "--rm", "-e", "X=from-run", "svc", "sh", "-c",
                  "echo $X; cat /what").stdout
    assert out == "from-run\nbuilt-by-compose\n"
    assert sorted(ids(mod)) == ["lc-svc-1"]  # --rm: the one-off is gone
    assert compose(mod, d, "run", "--rm", "-T", "svc", "cat", input="piped in\n").stdout \
        == "piped in\n"  # run keeps stdin open (-i), as Compose's
    name = compose(mod, d, "run", "-d", "svc").stdout.strip()
    assert name.startswith("lc-svc-run-")
    labels = json.loads(mod.ok("inspect", name).out)[0]["Config"]["Labels"]
    assert labels["com.docker.compose.oneoff"] == "True"
    assert compose(mod, d, "ps", "-q").stdout.count("\n") == 1  # ps leaves one-offs out

    (tmp_path / "in.txt").write_text("copied in\n")
    compose(mod, d, "cp", str(tmp_path / "in.txt"), "svc:/tmp/in.txt")
    compose(mod, d, "cp", "svc:/what", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "built-by-compose\n"
    assert compose(mod, d, "exec", "-T", "svc", "cat", "/tmp/in.txt").stdout == "copied in\n"
    assert "Container lc-svc-1  Stopped" in compose(mod, d, "stop").stderr
    assert compose(mod, d, "ps", "-q").stdout == ""
    assert "Container lc-svc-1  Started" in compose(mod, d, "start").stderr
    assert "Container lc-svc-1  Started" in compose(mod, d, "restart").stderr
    paused = compose(mod, d, "pause", check=None)
    if "needs cgroup v2" not in paused.stderr:  # the freezer needs a delegated cgroup
        assert "Container lc-svc-1  Paused" in paused.stderr and paused.returncode == 0
        assert json.loads(mod.ok("inspect", "lc-svc-1").out)[0]["State"]["Status"] == \
            "paused"
        assert "Container lc-svc-1  Unpaused" in compose(mod, d, "unpause").stderr
    assert "Container lc-svc-1  Killed" in compose(mod, d, "kill").stderr
    wait_for(lambda: compose(mod, d, "ps", "-q").stdout == "", what="the kill")
    ls = compose(mod, d, "ls", "-a", "--format", "json").stdout
    assert json.loads(ls)[0]["Name"] == "lc"
    compose(mod, d, "rm", "-f")
    assert "lc-svc-1" not in ids(mod)
    proc = compose(mod, d, "down", "--rmi", "local")
    assert "Image lc-svc  Removed" in proc.stderr
    assert "lc-svc" not in mod.ok("images").out
    mod("rm", "-f", name)


def test_bad_input_is_one_error(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          a:
            image: base
            command: ["sleep", "1000"]
        """, "bad")
    for args, text in ((("up", "-d", "nosuch"), "no such service: nosuch"),
                       (("up", "--scale", "a"), "invalid --scale"),
                       (("up", "-d", "--abort-on-container-exit"), "are incompatible"),
                       (("exec", "a", "true"), 'service "a" is not running'),
                       (("down", "--rmi", "some"), 'invalid --rmi option "some"')):
        proc = compose(mod, d, *args, check=1)
        assert proc.stderr.startswith("rootless-box: error: ") and text in proc.stderr, \
            (args, proc.stderr)
    assert compose(mod, d, "version", "--short").stdout.strip().startswith("2.")
    (d / "compose.yaml").write_text("services:\n  a:\n    image: nosuch/thing:1\n"
                                    "    pull_policy: never\n")
    proc = compose(mod, d, "up", "-d", check=1)
    assert "rootless-box: error: no such image: nosuch/thing:1" in proc.stderr
    assert "Unable to find image" not in proc.stderr  # never: no pull tried
    assert "bad_default" not in mod.ok("network", "ls").out


def test_a_failed_up_undoes_what_it_made(mod, tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = project_dir(tmp_path, """\
            services:
              a:
                image: base
                init: true
                command: ["sleep", "1000"]
              b:
                image: base
                command: ["sleep", "1000"]
                ports: ["%d:80"]
            """ % port, "half")
        proc = compose(mod, d, "up", "-d", check=1)
    assert "Address already in use" in proc.stderr.splitlines()[-2]
    assert proc.stderr.splitlines()[-2].startswith("rootless-box: error: ")
    for line in ("Container half-a-1  Started", "Container half-a-1  Removed",
                 "Container half-b-1  Removed", "Network half_default  Removed"):
        assert line in proc.stderr
    assert not [n for n in ids(mod) if n.startswith("half-")]
    assert "half_default" not in mod.ok("network", "ls").out


def test_service_keys_become_the_containers_settings(mod, tmp_path):
    d = project_dir(tmp_path, """\
        name: keys
        services:
          srv:
            image: base
            init: true
            command: ["sh", "-c", "mkdir -p /www && echo srv > /www/index.html && %s"]
            environment: {REV: "${REV:-1}"}
            networks:
              front:
                aliases: [api]
              back: {}
          side:
            image: base
            network_mode: service:srv
            init: true
            command: ["sleep", "1000"]
            depends_on: [srv]
          cli:
            image: base
            command: ["sleep", "1000"]
            networks: [front]
            env_file: [app.env]
            environment: {FROM_FILE_TOO: overridden}
            working_dir: /tmp
            hostname: clihost
            user: "1000:1000"
            labels: {mine: "yes"}
            volumes:
              - ./data:/data:ro
              - type: volume
                source: cache
                target: /cache
              - /anon
            tmpfs: [/scratch]
            secrets: [token, envtok]
            configs:
              - source: greeting
                target: /etc/greeting
            extra_hosts: ["extra.example:10.1.2.3"]
            restart: unless-stopped
            read_only: true
            cap_drop: [NET_RAW]
            x-ignored: 1
            mac_address: "02:42:ac:11:00:02"
        networks:
          front: {}
          back: {internal: true}
        volumes:
          cache: {}
        secrets:
          token: {file: ./token.txt}
          envtok: {environment: TOKEN}
        configs:
          greeting: {content: "hello $${TOKEN}"}
        """ % HTTPD, "keysdir")
    (d / "app.env").write_text("FROM_FILE=1\nFROM_FILE_TOO=2\n")
    (d / "token.txt").write_text("s3cret\n")
    (d / "data").mkdir()
    (d / "data" / "f").write_text("bound\n")
    proc = compose(mod, d, "up", "-d", env={"TOKEN": "from-env"})
    # one warning per key not supported, never silently dropped
    assert 'service "cli": mac_address is not supported by rootless-box yet' in proc.stderr
    assert "x-ignored" not in proc.stderr
    assert "Network keys_front  Created" in proc.stderr
    assert "Network keys_back  Created" in proc.stderr
    info = json.loads(mod.ok("inspect", "keys-cli-1").out)[0]
    assert info["Config"]["Labels"]["mine"] == "yes"
    assert info["Config"]["Hostname"] == "clihost"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    srv = json.loads(mod.ok("inspect", "keys-srv-1").out)[0]
    assert sorted(srv["NetworkSettings"]["Networks"]) == ["keys_back", "keys_front"]
    assert srv["NetworkSettings"]["Networks"]["keys_front"]["Aliases"] == ["srv", "api"]
    script = ("echo $FROM_FILE $FROM_FILE_TOO; pwd; id -u; cat /data/f; "
              "cat /run/secrets/token; cat /run/secrets/envtok; echo; cat /etc/greeting; "
              "echo; grep extra.example /etc/hosts; "
              "wget -q -O- http://api/")
    out = compose(mod, d, "exec", "-T", "cli", "sh", "-c", script).stdout.splitlines()
    assert out[:5] == ["1 overridden", "/tmp", "1000", "bound", "s3cret"]
    assert out[5:7] == ["from-env", "hello ${TOKEN}"]  # $$: no interpolation
    assert out[7].split() == ["10.1.2.3", "extra.example"]
    assert out[8:] == ["srv"]
    out = compose(mod, d, "exec", "-T", "-u", "0", "cli", "sh", "-c",
                  "touch /x 2>/dev/null || echo read-only; touch /scratch/t /cache/t /anon/t "
                  "&& echo writable").stdout
    assert out == "read-only\nwritable\n"
    name = compose(mod, d, "run", "-d", "--no-deps", "srv", "sleep", "1000").stdout.strip()
    nets = json.loads(mod.ok("inspect", name).out)[0]["NetworkSettings"]["Networks"]
    assert sorted(nets) == ["keys_back", "keys_front"]  # a one-off on all its networks
    assert nets["keys_front"]["Aliases"] == ["api"]  # and not the service's name
    mod.ok("rm", "-f", name)
    # in the foreground too: its interfaces, one per network, and the alias on front
    out = compose(mod, d, "run", "--rm", "--no-deps", "srv", "sh", "-c",
                  "ip -4 -o addr show | grep -c 'eth[01]'; nslookup api").stdout
    assert out.startswith("2\n"), out
    # side shares srv's network namespace: srv's server is on its localhost
    assert compose(mod, d, "exec", "-T", "side", "wget", "-q", "-O-",
                   "http://127.0.0.1/").stdout == "srv\n"
    # srv recreated (a changed value): side, in srv's namespace, is recreated with it
    side_id = json.loads(mod.ok("inspect", "keys-side-1").out)[0]["Id"]
    proc = compose(mod, d, "up", "-d", env={"TOKEN": "from-env", "REV": "2"})
    assert "Container keys-srv-1  Recreated" in proc.stderr, proc.stderr
    assert "Container keys-side-1  Recreated" in proc.stderr, proc.stderr
    assert json.loads(mod.ok("inspect", "keys-side-1").out)[0]["Id"] != side_id
    assert wait_for(lambda: compose(mod, d, "exec", "-T", "side", "wget", "-q", "-O-",
                                    "http://127.0.0.1/", check=None).stdout == "srv\n",
                    what="srv's server on side's localhost again", timeout=60)
    assert find_named(mod.root, "envtok")  # the secret's file, under the store
    compose(mod, d, "down", "-v", "-t", "0")
    assert find_named(mod.root, "envtok") == []  # down takes it away
    assert "keys_cache" not in mod.ok("volume", "ls").out
    assert mod.ok("volume", "ls", "-q").out == ""  # the anonymous volume went too


def test_a_project_by_name_alone_without_its_file(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          a:
            image: base
            init: true
            command: ["sh", "-c", "echo from-a; exec sleep 1000"]
            volumes: [vol:/v]
        volumes:
          vol: {}
        """, "named")
    compose(mod, d, "up", "-d")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert compose(mod, elsewhere, "-p", "named", "ps", "-q").stdout.count("\n") == 1
    wait_for(lambda: "a-1  | from-a" in compose(mod, elsewhere, "-p", "named", "logs",
                                                "--no-color").stdout, what="a's output")
    assert "no configuration file" in compose(mod, elsewhere, "ps", check=1).stderr
    proc = compose(mod, elsewhere, "-p", "named", "down", "-v")
    for line in ("Container named-a-1  Removed", "Network named_default  Removed",
                 "Volume named_vol  Removed"):
        assert line in proc.stderr
    assert "named" not in mod.ok("ps", "-a").out + mod.ok("network", "ls").out + \
        mod.ok("volume", "ls").out


def test_logs_follow_prefixes_new_lines_until_the_containers_stop(mod, tmp_path):
    d = project_dir(tmp_path, """\
        services:
          talker:
            image: base
            command: ["sh", "-c", "echo one; while [ ! -e /flag/go ]; do sleep 0.05; done; echo two"]
            volumes: ["./flag:/flag"]
        """, "lf")
    (d / "flag").mkdir()
    compose(mod, d, "up", "-d")
    proc = subprocess.Popen(mod.argv("compose", "logs", "-f", "-t", "--no-color"),
                            cwd=str(d), env=mod.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("talker-1  | 20") and first.endswith(" one\n"), first
        (d / "flag" / "go").write_text("")
        rest, err = proc.communicate(timeout=60)  # it ends when the container has stopped
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert rest.endswith(" two\n") and rest.startswith("talker-1  | ")
    assert compose(mod, d, "logs", "--tail", "1", "--no-log-prefix").stdout == "two\n"
    compose(mod, d, "down")


def test_a_dependent_with_restart_true_restarts_when_its_dependency_is_recreated(mod,
                                                                                  tmp_path):
    text = """\
        services:
          db:
            image: base
            init: true
            environment: {V: "%s"}
            command: ["sleep", "1000"]
          app:
            image: base
            init: true
            command: ["sleep", "1000"]
            depends_on:
              db: {condition: service_started, restart: true}
          other:
            image: base
            init: true
            command: ["sleep", "1000"]
            depends_on: [db]
        """
    d = project_dir(tmp_path, text % "1", "rs")
    compose(mod, d, "up", "-d")

    def started_at(name):
        return json.loads(mod.ok("inspect", name).out)[0]["State"]["StartedAt"]
    before = ids(mod), started_at("rs-app-1"), started_at("rs-other-1")
    (d / "compose.yaml").write_text(textwrap.dedent(text % "2"))
    proc = compose(mod, d, "up", "-d")
    assert "Container rs-db-1  Recreated" in proc.stderr
    assert "Container rs-app-1  Restarting" in proc.stderr
    assert "Container rs-other-1  Running" in proc.stderr
    after = ids(mod)
    assert after["rs-app-1"] == before[0]["rs-app-1"]  # the same container, restarted
    assert started_at("rs-app-1") != before[1]
    assert started_at("rs-other-1") == before[2]
    compose(mod, d, "down", "-t", "0")


def test_an_ipv6_network_of_a_project(mod, tmp_path):
    """`enable_ipv6: true` with an IPv4 and an IPv6 `ipam.config` entry, and a service's
    `ipv6_address`, as Compose passes them to the engine: the service is reached by name
    over IPv6 from another."""
    d = project_dir(tmp_path, """\
        name: six
        services:
          srv:
            image: base
            command: ["sh", "-c", "mkdir -p /www && echo srv6 > /www/index.html && %s"]
            networks:
              dual: {ipv6_address: "fd00:db8:6::60"}
          cli:
            image: base
            command: ["sleep", "1000"]
            networks: [dual]
        networks:
          dual:
            enable_ipv6: true
            ipam:
              config:
                - subnet: 10.96.0.0/24
                - subnet: fd00:db8:6::/64
        """ % HTTPD, "sixdir")
    compose(mod, d, "up", "-d")
    try:
        net = json.loads(mod.ok("network", "inspect", "six_dual").out)[0]
        assert net["EnableIPv6"] is True
        assert [c["Subnet"] for c in net["IPAM"]["Config"]] == ["10.96.0.0/24",
                                                                 "fd00:db8:6::/64"]
        entry = json.loads(mod.ok("inspect", "six-srv-1").out)[0]["NetworkSettings"][
            "Networks"]["six_dual"]
        assert entry["GlobalIPv6Address"] == "fd00:db8:6::60"
        out = compose(mod, d, "exec", "-T", "cli", "sh", "-c",
                      "nslookup -type=AAAA srv && (for i in $(seq 200); do wget -q -O- "
                      "'http://[fd00:db8:6::60]/' && exit 0; sleep 0.05; done; exit 1)").stdout
        assert "Address: fd00:db8:6::60" in out and out.endswith("srv6\n"), out
    finally:
        compose(mod, d, "down", "-t", "0")
