"""The Engine API (`system service`) driven by Docker's own clients: the docker CLI 28 and
docker-py, as a user points them at it with DOCKER_HOST.

What a user relies on: `docker run` (attached, -i, -t, -d, --rm) behaves and exits as with
Docker, the real exit code kept with --rm; exec, logs, inspect, stop, rm, ps, images, pull
from a registry work; one store with the CLI (`rootless-box ps` shows what `docker run`
started); Docker's status codes and wording for bad input; a client that leaves mid-stream
leaves nothing running in the service; the socket is private, the service ends when idle, a
TCP address others could reach is refused, and systemd's socket activation is honoured.
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys

import pytest

import registry_server as rs
from conftest import Cli, needs_userns, wait_for

pytestmark = [needs_userns,
              pytest.mark.skipif(not shutil.which("docker"), reason="no docker CLI")]


class Service:
    """`rootless-box system service` on a socket of the test's, stopped at the end."""

    def __init__(self, cli, sock_path, idle="0", env=None, extra=None, **popen):
        self.cli = cli
        self.path = sock_path
        self.uri = "unix://" + sock_path
        full = dict(cli.env)
        full.update(env or {})
        where = extra if extra is not None else (self.uri,)
        self.proc = subprocess.Popen(
            cli.argv("system", "service", "--time", idle, *where),
            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
        self.banner = self.proc.stderr.readline().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)

    def request(self, method, path, body=None, headers=None):
        return request(self.path, method, path, body, headers)


def request(sock_path, method, path, body=None, headers=None):
    """One raw HTTP/1.1 request -> (status, headers dict, body bytes)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(sock_path)
    data = body if isinstance(body, bytes) else (json.dumps(body).encode()
                                                 if body is not None else b"")
    head = "%s %s HTTP/1.1\r\nHost: docker\r\nContent-Length: %d\r\nConnection: close\r\n" \
        % (method, path, len(data))
    for key, value in (headers or {}).items():
        head += "%s: %s\r\n" % (key, value)
    conn.sendall(head.encode() + b"\r\n" + data)
    raw = b""
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        raw += chunk
    conn.close()
    top, _, rest = raw.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, hdrs, rest


@pytest.fixture(scope="module")
def api_cli(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("apidata")))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return cli


@pytest.fixture(autouse=True)
def no_leftovers(request):
    """Each test starts with no container (one test's failure is not the next one's)."""
    yield
    if "api_cli" in request.fixturenames:
        cli = request.getfixturevalue("api_cli")
        ids = cli.ok("ps", "-aq").out.split()
        if ids:
            cli("rm", "-f", *ids)


@pytest.fixture(scope="module")
def service(api_cli, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("apirun")
    svc = Service(api_cli, str(run_dir / "api" / "docker.sock"))
    assert "listening on " + svc.uri in svc.banner
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def docker(service, tmp_path_factory):
    config_dir = str(tmp_path_factory.mktemp("dockercfg"))

    def call(*args, input=None, timeout=60):
        env = dict(os.environ, DOCKER_HOST=service.uri, DOCKER_CONFIG=config_dir)
        proc = subprocess.run(["docker"] + list(args), input=input, capture_output=True,
                              env=env, timeout=timeout)
        proc.out = proc.stdout.decode(errors="replace")
        proc.err = proc.stderr.decode(errors="replace")
        return proc
    return call


# -- the docker CLI ---------------------------------------------------------------------------

def test_version_negotiates_api_1_44(docker, service):
    out = docker("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}} "
                 "{{.Client.APIVersion}}")
    assert out.returncode == 0, out.err
    assert out.out.split() == ["1.44", "1.24", "1.44"]
    for path in ("/_ping", "/v1.41/_ping", "/v1.50/_ping"):
        status, headers, body = service.request("HEAD", path)
        assert status == 200 and body == b""
        assert headers["api-version"] == "1.44" and headers["builder-version"] == "1"
        assert headers["ostype"] == "linux" and headers["swarm"] == "inactive"
    status, _headers, body = service.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    # /info is `info --format json`'s document (one builder), with Docker's counters
    ours = json.loads(service.cli.ok("info", "--format", "json").out)
    out = docker("info", "--format", "{{.OSType}} {{.ServerVersion}} {{.Driver}} {{.Images}}")
    assert out.out.split() == ["linux", ours["ServerVersion"], ours["Driver"], "1"]


def test_run_attached_keeps_output_streams_and_the_exit_code_with_rm(docker, api_cli):
    out = docker("run", "--rm", "base", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert out.returncode == 5
    assert out.out == "out\n" and out.err == "err\n"
    assert api_cli.ok("ps", "-aq").out == ""  # --rm: gone, in the one store


def test_run_attached_with_a_restart_policy_returns_at_the_first_exit(docker, service,
                                                                     api_cli):
    # the attach stream ends at the first exit, and the wait (next-exit) answers it, while
    # the container's monitor restarts it
    out = docker("run", "--name", "ra", "--restart", "always", "base", "sh", "-c",
                 "[ -e /ran ] && exec sleep 30; touch /ran; echo first; exit 3")
    assert (out.returncode, out.out) == (3, "first\n"), out.err
    wait_for(lambda: docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "ra")
             .out.split() == ["running", "1"], timeout=20, what="restarted")
    out = docker("run", "-t", "--name", "rt", "--restart", "on-failure:1", "base", "sh", "-c",
                 "tty; exit 4")
    assert out.returncode == 4 and out.out.count("/dev/pts/") == 1, (out.out, out.err)
    wait_for(lambda: docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "rt")
             .out.split() == ["exited", "1"], timeout=20, what="restarted once")
    # dockerd's refusal of --rm with a policy (docker's CLI refuses it before asking)
    status, _h, body = service.request("POST", "/containers/create", {
        "Image": "base", "HostConfig": {"AutoRemove": True,
                                        "RestartPolicy": {"Name": "on-failure"}}})
    assert (status, json.loads(body)["message"]) == (
        400, "can't create 'AutoRemove' container with restart policy")
    assert sorted(api_cli.ok("ps", "-aq", "--no-trunc").out.split()) == sorted(
        docker("inspect", "-f", "{{.Id}}", "ra", "rt").out.split())



def test_run_waits_for_the_first_exit_and_wait_for_a_restarting_ones_next(docker):
    # run's wait (next-exit) answers the first run's 7 while on-failure restarts it 3 times
    out = docker("run", "--name", "of", "--restart", "on-failure:3", "base", "sh", "-c",
                 "exit 7")
    assert (out.returncode, out.out) == (7, ""), out.err
    wait_for(lambda: docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}} "
                            "{{.State.ExitCode}}", "of").out.split() == ["exited", "3", "7"],
             timeout=30, what="three restarts")
    # each run n exits with n; the backoff doubles, so it is soon caught restarting: a
    # restarting container is running to dockerd, and `wait` answers at its next exit, not
    # with the exit it is restarting from
    script = "echo >> /runs; exit $(wc -l < /runs)"
    assert docker("run", "-d", "--name", "rs", "--restart", "always", "base", "sh", "-c",
                  script).returncode == 0
    caught = []

    def restarting():
        state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "rs").out
        if state.split()[0] != "restarting" or int(state.split()[1]) < 3:
            return False
        caught.append(int(state.split()[1]))
        return True
    wait_for(restarting, timeout=30, what="restarting after its third run")
    out = docker("wait", "rs")
    assert out.returncode == 0 and int(out.out) > caught[0], (out.out, out.err, caught)
    assert docker("rm", "-f", "rs", "of").returncode == 0

def test_run_with_entrypoint_env_workdir_user(docker):
    out = docker("run", "--rm", "--entrypoint", "sh", "-e", "A=1", "-w", "/tmp", "-u", "5:6",
                 "base", "-c", 'echo "$A $(pwd) $(id -u):$(id -g)"')
    assert (out.returncode, out.out) == (0, "1 /tmp 5:6\n"), out.err


def test_run_interactive_feeds_stdin_until_eof(docker):
    out = docker("run", "-i", "--rm", "base", "sh", "-c", "cat; echo end", input=b"a\nb\n")
    assert (out.returncode, out.out) == (0, "a\nb\nend\n"), out.err



def test_run_interactive_with_a_restart_policy_feeds_the_first_run_only(docker):
    # the input reaches the first run, the client ends at its exit, and the restarted run
    # is not given the first client's input (nor its end: its cat waits on)
    out = docker("run", "-i", "--name", "ri", "--restart", "always", "base", "sh", "-c",
                 "echo run; cat", input=b"in\n")
    assert (out.returncode, out.out) == (0, "run\nin\n"), out.err
    wait_for(lambda: docker("logs", "ri").out == "run\nin\nrun\n", timeout=20,
             what="the restart's first line")
    status = docker("inspect", "-f", "{{.State.Status}} {{.RestartCount}}", "ri").out.split()
    assert status == ["running", "1"]
    assert docker("stop", "-t", "1", "ri").returncode == 0
    assert docker("logs", "ri").out == "run\nin\nrun\n"
    assert docker("rm", "ri").returncode == 0

def test_run_with_tty_is_a_terminal_of_the_clients_size(docker):
    out = docker("run", "-t", "--rm", "base", "sh", "-c", "tty; exit 3")
    assert out.returncode == 3
    assert out.out.startswith("/dev/pts/") and out.out.endswith("\r\n")


def _in_pty(argv, env, rows, cols):
    """argv on a new terminal of rows x cols -> its output."""
    import fcntl
    import pty
    import struct
    import termios
    pid, master = pty.fork()
    if pid == 0:
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    os.close(master)
    return out.decode(errors="replace")


def test_a_terminal_gets_the_clients_size(docker, service, tmp_path):
    env = dict(os.environ, DOCKER_HOST=service.uri, DOCKER_CONFIG=str(tmp_path))
    assert _in_pty(["docker", "run", "-t", "--rm", "base", "stty", "size"], env, 33, 111) \
        .split() == ["33", "111"]
    docker("run", "-d", "-t", "--name", "t2", "base", "sh")
    assert _in_pty(["docker", "exec", "-t", "t2", "stty", "size"], env, 44, 99) \
        .split() == ["44", "99"]


def test_a_published_port_without_a_host_port_gets_a_random_one(docker):
    docker("run", "-d", "--name", "p1", "-p", "8080", "base", "sh", "-c",
           "mkdir -p /w; echo served > /w/index.html; exec httpd -f -p 8080 -h /w")
    ports = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Ports}}", "p1").out)
    host_port = ports["8080/tcp"][0]["HostPort"]
    assert isinstance(host_port, str) and int(host_port) > 0
    assert docker("port", "p1").out == "8080/tcp -> 0.0.0.0:%s\n" % host_port

    def fetch():
        try:
            with socket.create_connection(("127.0.0.1", int(host_port)), timeout=5) as conn:
                conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                data = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return data
                    data += chunk
        except OSError:
            return b""
    assert wait_for(lambda: b"served" in fetch(), what="the published server", timeout=30)


def test_detached_container_through_both_front_ends(docker, api_cli):
    cid = docker("run", "-d", "--name", "d1", "base", "sh", "-c",
                 "echo started; exec sleep 600").out.strip()
    assert len(cid) == 64
    try:
        # one store: the CLI sees what docker started, and its inspect is the same JSON
        assert api_cli.ok("ps", "--format", "{{.Names}} {{.State}}").out == "d1 running\n"
        assert docker("ps", "--format", "{{.Names}} {{.Status}}").out.startswith("d1 Up ")
        ours = json.loads(api_cli.ok("inspect", "d1").out)[0]
        theirs = json.loads(docker("inspect", "d1").out)[0]
        assert theirs["Id"] == ours["Id"] == cid and theirs["Name"] == "/d1"
        assert theirs["HostConfig"]["LogConfig"]["Type"] == "json-file"
        wait_for(lambda: docker("logs", "d1").out == "started\n", what="the log", timeout=30)
        out = docker("exec", "d1", "sh", "-c", "echo in; echo ex >&2; exit 7")
        assert (out.returncode, out.out, out.err) == (7, "in\n", "ex\n")
        out = docker("exec", "-i", "d1", "cat", input=b"fed\n")
        assert (out.returncode, out.out) == (0, "fed\n")
        assert docker("exec", "-t", "d1", "tty").out.startswith("/dev/pts/")
        assert docker("ps", "-q", "--filter", "name=d1").out.strip() == cid[:12]
        assert docker("ps", "-q", "--filter", "status=exited").out == ""
        out = docker("rm", "d1")
        assert out.returncode == 1
        assert "You cannot remove a running container %s. Stop the container before " \
            "attempting removal or force remove" % cid in out.err
        assert docker("stop", "-t", "1", "d1").returncode == 0
        assert docker("stop", "d1").returncode == 0  # 304: not an error
        assert docker("inspect", "-f", "{{.State.Status}}", "d1").out == "exited\n"
        out = docker("exec", "d1", "true")
        assert out.returncode == 1 and "Container %s is not running" % cid in out.err
        assert docker("rm", "d1").out == "d1\n"
        assert api_cli.ok("ps", "-aq").out == ""
    finally:
        api_cli("rm", "-f", "d1")


def test_create_start_attach_wait_kill_restart_rename(docker):
    assert len(docker("create", "--name", "c1", "base", "sh", "-c", "echo once; exit 4")
               .out.strip()) == 64
    out = docker("start", "-a", "c1")
    assert (out.returncode, out.out) == (4, "once\n")
    assert docker("wait", "c1").out == "4\n"
    assert docker("rename", "c1", "c2").returncode == 0
    assert docker("ps", "-a", "--format", "{{.Names}} {{.Status}}").out.startswith(
        "c2 Exited (4) ")
    docker("run", "-d", "--name", "k1", "base", "sleep", "600")
    assert docker("kill", "k1").out == "k1\n"
    assert docker("wait", "k1").out == "137\n"
    out = docker("kill", "k1")
    assert out.returncode == 1 and "is not running" in out.err
    assert docker("restart", "-t", "0", "k1").returncode == 0
    assert docker("inspect", "-f", "{{.State.Running}}", "k1").out == "true\n"
    assert docker("exec", "-d", "k1", "sh", "-c", "echo bg > /tmp/mark").returncode == 0
    wait_for(lambda: docker("exec", "k1", "cat", "/tmp/mark").out == "bg\n",
             what="the detached exec's file", timeout=30)
    docker("run", "-d", "-i", "--name", "at1", "base", "sh", "-c", "read x; echo got $x")
    out = docker("attach", "at1", input=b"in\n")
    assert (out.returncode, out.out) == (0, "got in\n")
    # an untyped inspect falls through to images on the container's 404, as with Docker
    assert docker("inspect", "-f", "{{.RepoTags}}", "base").out == "[base:latest]\n"


def test_pause_answers_as_the_cli_does(docker, api_cli):
    docker("run", "-d", "--name", "pz", "base", "sleep", "600")
    ours = api_cli("pause", "pz")
    if ours.returncode == 0:  # a delegated cgroup: both front ends freeze
        api_cli.ok("unpause", "pz")
        assert docker("pause", "pz").returncode == 0
        assert docker("inspect", "-f", "{{.State.Status}}", "pz").out == "paused\n"
        assert docker("unpause", "pz").returncode == 0
    else:  # none: the same reason, as Docker's daemon error
        out = docker("pause", "pz")
        reason = ours.err.splitlines()[0].partition("error: ")[2]
        assert out.returncode == 1 and reason in out.err
    assert docker("inspect", "-f", "{{.State.Status}}", "pz").out == "running\n"
    out = docker("unpause", "pz")
    assert out.returncode == 1 and "is not paused" in out.err


def test_fifty_clients_at_once(service):
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _i: service.request("GET", "/v1.44/containers/json"
                                                                  "?all=1")[0], range(50)))
    assert answers == [200] * 50


def test_missing_objects_answer_dockers_404(docker, service):
    out = docker("logs", "nope")
    assert out.returncode == 1 and "No such container: nope" in out.err
    status, _h, body = service.request("GET", "/v1.44/images/nope:1/json")
    assert status == 404 and json.loads(body) == {"message": "No such image: nope:1"}
    status, _h, body = service.request("GET", "/v1.44/no/such/endpoint")
    assert status == 404 and json.loads(body) == {"message": "page not found"}


def test_malformed_json_is_400_and_makes_nothing(service, api_cli):
    status, headers, body = service.request("POST", "/v1.44/containers/create", b"{bad",
                                            {"Content-Type": "application/json"})
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body)["message"].startswith("invalid JSON")
    status, _h, body = service.request("POST", "/containers/create",
                                       {"Image": "base", "Cmd": "true", "Env": 5})
    assert status == 400 and "Env" in json.loads(body)["message"]
    status, _h, body = service.request("GET", "/containers/json?limit=many")
    assert status == 400 and "limit" in json.loads(body)["message"]
    # a body over the limit is refused from its header, before it is read
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(service.path)
    conn.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                 b"Content-Length: 999999999999\r\n\r\n")
    assert conn.recv(65536).startswith(b"HTTP/1.1 413 ")
    conn.close()
    assert api_cli.ok("ps", "-aq").out == ""


def test_filters_in_both_encodings(service, docker, api_cli):
    api_cli.ok("create", "--name", "f1", "-l", "k=v", "base", "true")
    try:
        for filters in ({"label": {"k=v": True}}, {"label": ["k=v"]}):
            status, _h, body = service.request(
                "GET", "/containers/json?all=1&filters=" + json.dumps(filters).replace(" ", ""))
            assert status == 200
            assert [c["Names"] for c in json.loads(body)] == [["/f1"]]
        status, _h, body = service.request("GET", "/containers/json?all=1&filters="
                                           + json.dumps({"label": ["k=other"]}).replace(" ", ""))
        assert json.loads(body) == []
    finally:
        api_cli.ok("rm", "f1")


def test_images_tag_inspect_and_rmi(docker):
    assert docker("images", "--format", "{{.Repository}}:{{.Tag}}").out == "base:latest\n"
    assert docker("tag", "base", "other:2").returncode == 0
    assert docker("image", "inspect", "-f", "{{.RepoTags}}", "other:2").out == \
        "[base:latest other:2]\n"
    # the filters of `images --filter`, in the API's encoding
    assert docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                  "reference=oth*").out == "other:2\n"
    assert docker("images", "-q", "--filter", "dangling=true").out == ""
    out = docker("rmi", "other:2")
    assert out.returncode == 0 and "Untagged: other:2" in out.out


def test_pull_from_a_registry_streams_progress(docker, plain_registry, busybox_layout,
                                               api_cli):
    digest = rs.push_busybox(plain_registry, busybox_layout, "library/apibb")
    name = plain_registry.ref("library/apibb", "latest")
    out = docker("pull", name)
    assert out.returncode == 0, out.err
    assert "Digest: %s" % digest in out.out
    assert "Status: Downloaded newer image for %s" % name in out.out
    assert docker("run", "--rm", name, "echo", "pulled").out == "pulled\n"
    assert name in api_cli.ok("images", "--format", "{{.Repository}}:{{.Tag}}").out
    # a run of an image that is not here: create's 404, the CLI's pull, create again
    assert docker("rmi", name).returncode == 0
    out = docker("run", "--rm", name, "echo", "again")
    assert (out.returncode, out.out) == (0, "again\n"), out.err
    assert "Unable to find image" in out.err
    out = docker("pull", plain_registry.ref("library/absent", "1"))
    assert out.returncode == 1 and "pull access denied" in out.err or "not found" in out.err


def test_a_client_leaving_mid_stream_leaves_nothing_behind(service, docker, api_cli):
    threads = lambda: len(os.listdir("/proc/%d/task" % service.proc.pid))  # noqa: E731
    before = threads()
    # `run -d` drops the wait it asked for: that request's thread must not stay
    docker("run", "-d", "--name", "chatty", "base", "sh", "-c",
           "while true; do echo tick; sleep 0.1; done")
    try:
        clients = []
        for _ in range(3):
            proc = subprocess.Popen(["docker", "logs", "-f", "chatty"],
                                    env=dict(os.environ, DOCKER_HOST=service.uri),
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout.readline() == b"tick\n"
            clients.append(proc)
        # an exec'd process whose client left: its output has nowhere to go, it ends
        proc = subprocess.Popen(["docker", "exec", "chatty", "sh", "-c",
                                 "while true; do echo exec-tick; sleep 0.05; done"],
                                env=dict(os.environ, DOCKER_HOST=service.uri),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout.readline() == b"exec-tick\n"
        clients.append(proc)
        # an attached client too (a hijacked connection)
        proc = subprocess.Popen(["docker", "attach", "chatty"],
                                env=dict(os.environ, DOCKER_HOST=service.uri),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout.readline() == b"tick\n"
        clients.append(proc)
        for proc in clients:
            proc.kill()
            proc.wait()
        wait_for(lambda: threads() <= before, what="the streams' threads to end", timeout=30)
        # the service still answers
        assert docker("ps", "-q").out.strip() != ""
    finally:
        api_cli("rm", "-f", "chatty")


# -- docker-py --------------------------------------------------------------------------------

def test_docker_py_runs_execs_and_lists(service, api_cli):
    dockerpy = pytest.importorskip("docker")
    client = dockerpy.DockerClient(base_url=service.uri, version="auto")
    assert client.version()["ApiVersion"] == "1.44"
    assert client.containers.run("base", ["sh", "-c", "echo hi"], remove=True) == b"hi\n"
    container = client.containers.run("base", ["sleep", "600"], detach=True, name="py1")
    try:
        assert container.status in ("created", "running")
        container.reload()
        assert container.status == "running" and container.name == "py1"
        code, output = container.exec_run(["sh", "-c", "echo from-exec; exit 2"])
        assert (code, output) == (2, b"from-exec\n")
        assert [c.name for c in client.containers.list()] == ["py1"]
        assert "base:latest" in [t for i in client.images.list() for t in i.tags]
        container.stop(timeout=1)
        assert container.wait()["StatusCode"] == 143 or container.wait()["StatusCode"] == 137
        with pytest.raises(dockerpy.errors.NotFound):
            client.containers.get("absent")
        with pytest.raises(dockerpy.errors.ImageNotFound):
            client.images.get("absent:1")
    finally:
        api_cli("rm", "-f", "py1")
        client.close()


# -- the service itself -----------------------------------------------------------------------

def test_default_socket_is_private_and_the_service_ends_when_idle(api_cli, tmp_path):
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    svc = Service(api_cli, "", idle="1", env={"XDG_RUNTIME_DIR": str(runtime)}, extra=[])
    path = runtime / "rootless-box" / "docker.sock"
    svc.uri = "unix://%s" % path
    try:
        assert "listening on unix://%s" % path in svc.banner
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        # a container started through it outlives it (and run -d's dropped wait keeps no
        # connection open: the service still goes idle)
        out = subprocess.run(["docker", "run", "-d", "--name", "outlives", "base", "sleep",
                              "600"], env=dict(os.environ, DOCKER_HOST=svc.uri,
                                               DOCKER_CONFIG=str(tmp_path)),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert svc.proc.wait(timeout=30) == 0  # idle for a second: it leaves by itself
        assert not path.exists()
        assert api_cli.ok("ps", "--format", "{{.Names}} {{.State}}").out == \
            "outlives running\n"
    finally:
        svc.stop()
    info = api_cli.ok("info", env={"XDG_RUNTIME_DIR": str(runtime)}).out
    assert "DOCKER_HOST=unix://%s\n" % path in info


def test_tcp_only_on_loopback_and_with_a_warning(api_cli):
    out = api_cli("system", "service", "tcp://0.0.0.0:2375")
    assert out.returncode == 1 and out.err.startswith("rootless-box: error: refusing")
    assert "hint:" in out.err
    port = rs.free_port()
    svc = Service(api_cli, "", extra=["tcp://127.0.0.1:%d" % port])
    try:
        assert "warning: serving the API on tcp://127.0.0.1:%d without TLS" % port in svc.banner
        line = svc.proc.stderr.readline().decode()
        assert "listening on tcp://127.0.0.1:%d" % port in line
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(b"GET /v1.44/version HTTP/1.0\r\n\r\n")
        data = b""
        while not data.endswith(b"}\n"):
            data += conn.recv(65536)
        assert b'"ApiVersion": "1.44"' in data
        conn.close()
    finally:
        svc.stop()


def test_socket_activation_takes_the_inherited_listener(api_cli, tmp_path):
    path = str(tmp_path / "activated.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    fd = listener.fileno()
    # as systemd execs a service: the socket as fd 3, LISTEN_PID the service's own pid
    script = ("import os, sys; os.dup2(%d, 3); os.environ.update(LISTEN_PID=str(os.getpid()),"
              " LISTEN_FDS='1'); os.execv(sys.argv[1], sys.argv[1:])" % fd)
    proc = subprocess.Popen([sys.executable, "-c", script] +
                            api_cli.argv("system", "service", "--time", "2"),
                            env=api_cli.env, pass_fds=(fd,), stderr=subprocess.PIPE)
    listener.close()
    try:
        assert "socket activation" in proc.stderr.readline().decode()
        status, _h, body = request(path, "GET", "/v1.44/version")
        assert status == 200 and json.loads(body)["ApiVersion"] == "1.44"
        assert proc.wait(timeout=30) == 0  # idle: gone, until systemd starts it again
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_generate_systemd_service_writes_a_socket_and_its_service(api_cli, tmp_path):
    proc = subprocess.run(api_cli.argv("generate", "systemd", "--service", "--files"),
                          env=api_cli.env, cwd=str(tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    sock = (tmp_path / "rootless-box.socket").read_text()
    svc = (tmp_path / "rootless-box.service").read_text()
    assert "ListenStream=%t/rootless-box/docker.sock" in sock
    assert "SocketMode=0600" in sock and "DirectoryMode=0700" in sock
    assert "Requires=rootless-box.socket" in svc
    assert "system service --time 5" in svc
    assert sorted(proc.stdout.split()) == sorted([str(tmp_path / "rootless-box.socket"),
                                                 str(tmp_path / "rootless-box.service")])
    # without a container and without --service: a usage error
    assert api_cli("generate", "systemd").returncode == 1


def test_pull_uses_x_registry_auth(auth_registry, busybox_layout, tmp_path):
    """The client's credentials (X-Registry-Auth) are used for that pull, and nothing of
    them is saved; without them the registry's refusal is Docker's 404."""
    import base64
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    user = Cli(str(tmp_path / "data"), env={"XDG_CONFIG_HOME": str(tmp_path / "config"),
                                            "RBX_REGISTRIES_CONF": str(conf)})
    auth_registry.install_ca(user.env["XDG_CONFIG_HOME"])
    rs.push_busybox(auth_registry, busybox_layout, "library/authbb")
    name = auth_registry.ref("library/authbb", "latest")
    svc = Service(user, str(tmp_path / "run" / "docker.sock"))
    try:
        path = "/v1.44/images/create?fromImage=%s&tag=latest" % name.rsplit(":", 1)[0]
        status, _h, body = svc.request("POST", path, headers={"X-Registry-Auth": "e30="})
        assert status == 404 and b"pull access denied" in body
        auth = base64.urlsafe_b64encode(json.dumps({
            "username": auth_registry.username, "password": auth_registry.password,
            "serveraddress": auth_registry.host}).encode()).decode().rstrip("=")
        status, _h, body = svc.request("POST", path, headers={"X-Registry-Auth": auth})
        assert status == 200 and b"Status: Downloaded newer image for" in body, body
        assert name in user.ok("images", "--format", "{{.Repository}}:{{.Tag}}").out
        assert not os.path.exists(os.path.join(user.env["XDG_CONFIG_HOME"], "rootless-box",
                                               "auth.json"))
    finally:
        svc.stop()
