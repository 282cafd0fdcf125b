"""The Engine API's builder and image transfers, driven by the docker CLI 28 and docker-py as
users run them (DOCKER_HOST at `rootless-box system service`).

What a user relies on: `docker build` (CLI 28 with no buildx plugin falls back to the classic
builder, as it does against dockerd) streams Docker's steps and ends with `Successfully built`
and `Successfully tagged`, honours build args, labels, -f, --target, -q, the cache, and fails
with the step's error and exit 1; docker-py's images.build returns the image; BuildKit
(version=2) and a hostile context are refused with a 400; save/load/import/history behave as
with Docker; push uses the client's login (X-Registry-Auth), `docker login` checks through
/auth and the service saves nothing; search of a registry without search is refused clearly.
"""

import json
import os
import re
import subprocess
import tarfile

import pytest

import registry_server as rs
from conftest import Cli, tar_bytes, wait_for
# the service, its store and the docker CLI pointed at it: the same fixtures as test_api's
from test_api import Service, api_cli, docker, no_leftovers, service  # noqa: F401

pytestmark = [pytest.mark.skipif(not rs.shutil.which("docker"), reason="no docker CLI")]


def _context(tmp_path, dockerfile, files=None):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def _in(ctx, docker):
    """docker run from the context directory, as a user types `docker build .`."""
    def call(*args, **kw):
        cwd = os.getcwd()
        os.chdir(str(ctx))
        try:
            return docker(*args, **kw)
        finally:
            os.chdir(cwd)
    return call


DOCKERFILE = """\
FROM base AS first
ARG A=1
RUN echo "built $A" > /f && echo "run says $A"
COPY hello.txt /
LABEL from=dockerfile
CMD ["cat", "/f", "/hello.txt"]

FROM first AS second
RUN echo second > /g
"""


def test_docker_build_streams_the_classic_builders_steps(docker, api_cli, tmp_path):
    ctx = _context(tmp_path, DOCKERFILE, {"hello.txt": "hello\n"})
    build = _in(ctx, docker)
    out = build("build", "-t", "built:1", "--build-arg", "A=2", "--label", "l=v",
                "--target", "first", ".", timeout=300)
    assert out.returncode == 0, out.err
    # no buildx: the CLI says it falls back to the legacy builder, as against dockerd
    assert "legacy builder is deprecated" in out.err
    assert "Step 1/6 : FROM base" in out.out and "Step 3/6 : RUN" in out.out
    assert "run says 2\n" in out.out and "second" not in out.out  # --target first
    built = re.search(r"^Successfully built ([0-9a-f]{12})$", out.out, re.M)
    assert built and out.out.endswith("Successfully tagged built:1\n")
    # one store: the CLI sees the image, with the build's label and the Dockerfile's
    image_id = api_cli.ok("image", "inspect", "-f", "{{.Id}}", "built:1").out.strip()
    assert image_id[7:19] == built.group(1)
    assert json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}",
                             "built:1").out) == {"from": "dockerfile", "l": "v"}
    assert docker("run", "--rm", "built:1").out == "built 2\nhello\n"
    # the same build again: every step from the cache, the same image
    out = build("build", "-t", "built:2", "--build-arg", "A=2", "--label", "l=v",
                "--target", "first", ".", timeout=300)
    assert out.returncode == 0, out.err
    assert "Using cache" in out.out and "run says 2\n" not in out.out
    assert "Successfully built %s\n" % built.group(1) in out.out
    # -q: the image ID alone; --iidfile from the stream's aux
    out = build("build", "-q", "--build-arg", "A=2", "--label", "l=v", "--target", "first",
                ".", timeout=300)
    assert (out.returncode, out.out) == (0, image_id + "\n"), out.err
    iid = tmp_path / "iid"
    out = build("build", "--iidfile", str(iid), "--build-arg", "A=2", "--label", "l=v",
                "--target", "first", ".", timeout=300)
    assert out.returncode == 0 and iid.read_text() == image_id
    # --no-cache runs the steps again; several tags
    out = build("build", "--no-cache", "-t", "nc:1", "-t", "nc:2", "--target", "first", ".",
                timeout=300)
    assert out.returncode == 0, out.err
    assert "run says 1\n" in out.out and "Using cache" not in out.out
    assert out.out.endswith("Successfully tagged nc:1\nSuccessfully tagged nc:2\n")


def test_docker_build_with_a_dockerfile_elsewhere_and_a_failing_step(docker, tmp_path):
    ctx = _context(tmp_path, "FROM base\nRUN exit 3\n")
    other = tmp_path / "Other.Dockerfile"
    other.write_text("FROM base\nRUN echo from-other > /o\n")
    build = _in(ctx, docker)
    # -f outside the context: the CLI adds it to the tar under a name of its own; and a
    # gzip-compressed context (--compress)
    out = build("build", "--compress", "-f", str(other), "-t", "other:1", ".", timeout=300)
    assert out.returncode == 0, out.err
    assert docker("run", "--rm", "other:1", "cat", "/o").out == "from-other\n"
    # a Dockerfile on stdin and no context (the CLI wraps it in a tar)
    out = docker("build", "-t", "stdin:1", "-", input=b"FROM base\nRUN echo piped > /p\n",
                 timeout=300)
    assert out.returncode == 0, out.err
    assert docker("run", "--rm", "stdin:1", "cat", "/p").out == "piped\n"
    out = build("build", "-t", "fails:1", ".", timeout=300)
    assert out.returncode == 1
    # the classic builder's words, as dockerd's
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in out.err, out.err
    assert "Successfully built" not in out.out
    assert docker("image", "inspect", "fails:1").returncode == 1
    out = build("build", "-f", "Nope", ".", timeout=300)
    assert out.returncode == 1 and "Nope" in out.err


def test_build_refusals_are_400s(service):
    context = tar_bytes([({"name": "Dockerfile"}, b"FROM base\n")])
    status, _h, body = service.request("POST", "/v1.44/build?version=2", context)
    assert status == 400 and "BuildKit" in json.loads(body)["message"]
    status, _h, body = service.request("POST", "/v1.44/build?remote=https://x/y.git", context)
    assert status == 400 and "remote" in json.loads(body)["message"]
    status, _h, body = service.request("POST", "/v1.44/build?buildargs=[1]", context)
    assert status == 400 and "buildargs" in json.loads(body)["message"]
    status, _h, body = service.request("POST", "/v1.44/build?t=Bad:Name", context)
    assert status == 400
    # a context that climbs out of itself: refused, no image, nothing unpacked outside
    hostile = tar_bytes([({"name": "Dockerfile"}, b"FROM base\n"),
                         ({"name": "../../escaped"}, b"x")])
    status, _h, body = service.request("POST", "/v1.44/build?t=hostile:1", hostile)
    assert status == 400 and "'..'" in json.loads(body)["message"]
    assert service.request("GET", "/v1.44/images/hostile:1/json")[0] == 404
    status, _h, body = service.request("POST", "/v1.44/build?t=junk:1", b"no tar here" * 99)
    assert status == 400 and "build context" in json.loads(body)["message"]
    status, _h, body = service.request("POST", "/v1.44/build?dockerfile=../../etc/passwd",
                                       context)
    assert status == 400 and "Cannot locate specified Dockerfile" in json.loads(body)["message"]


def test_docker_py_images_build(service, tmp_path):
    dockerpy = pytest.importorskip("docker")
    ctx = _context(tmp_path, "FROM base\nARG WHO\nRUN echo hi $WHO > /w\n")
    client = dockerpy.DockerClient(base_url=service.uri, version="auto")
    try:
        image, logs = client.images.build(path=str(ctx), tag="py:1", buildargs={"WHO": "py"},
                                          rm=True, forcerm=True, timeout=300)
        assert "py:1" in image.tags
        assert any("Successfully built" in chunk.get("stream", "") for chunk in logs)
        assert client.containers.run("py:1", ["cat", "/w"], remove=True) == b"hi py\n"
        (ctx / "Dockerfile").write_text("FROM base\nRUN false\n")
        with pytest.raises(dockerpy.errors.BuildError):
            client.images.build(path=str(ctx), tag="py:2")
        # save and load round trip, as docker-py's users write them
        data = b"".join(client.images.get("py:1").save(named=True))
        client.images.remove("py:1")
        loaded = client.images.load(data)
        assert [i.id for i in loaded] == [image.id] and "py:1" in loaded[0].tags
        assert client.images.get("py:1").history()[0]["Id"] == image.id
    finally:
        client.close()


# -- save, load, import, history ---------------------------------------------------------------

def test_save_load_import_and_history(docker, service, rootfs_tar, tmp_path):
    docker("tag", "base", "saved:1")
    archive = tmp_path / "two.tar"
    out = docker("save", "-o", str(archive), "saved:1", "base")
    assert out.returncode == 0, out.err
    with tarfile.open(str(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert sorted(t for m in manifest for t in m["RepoTags"]) == ["base:latest", "saved:1"]
    assert docker("rmi", "saved:1").returncode == 0
    # load from a file: the CLI asks quietly when its output is no terminal
    out = docker("load", "-i", str(archive))
    assert out.returncode == 0, out.err
    assert "Loaded image: saved:1\n" in out.out and "Loaded image: base:latest\n" in out.out
    assert docker("image", "inspect", "saved:1").returncode == 0
    # stdout too (save to a pipe), and the progress form of load: a line per new layer
    out = docker("import", "-", "fresh:1", input=tar_bytes([({"name": "only-here"}, b"1")]))
    assert out.returncode == 0, out.err
    out = docker("save", "fresh:1")
    assert out.returncode == 0 and out.stdout[257:262] == b"ustar"
    docker("rmi", "fresh:1")
    status, headers, body = service.request("POST", "/v1.44/images/load?quiet=0", out.stdout)
    assert status == 200 and headers["content-type"] == "application/json"
    messages = [json.loads(line) for line in body.split(b"\r\n") if line.startswith(b"{")]
    assert messages[-1] == {"stream": "Loaded image: fresh:1\n"}
    assert [m["status"] for m in messages[:-1]] == ["Loading layer"]
    out = docker("save", "-o", str(tmp_path / "x.tar"), "nope:1")
    assert out.returncode == 1 and "No such image: nope:1" in out.err
    out = docker("load", input=b"not a tar at all" * 64)  # dockerd's 200, the error in-stream
    assert out.returncode == 1 and "cannot read the archive" in out.err
    # import: a rootfs tarball on stdin, with a change and a message
    with open(rootfs_tar, "rb") as f:
        out = docker("import", "-c", "ENV IMPORTED=yes", "-m", "by test", "-", "imp:1",
                     input=f.read())
    assert out.returncode == 0, out.err
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", out.out)
    assert docker("run", "--rm", "imp:1", "sh", "-c", "echo $IMPORTED").out == "yes\n"
    # history: the top row carries the ID and tags, older ones <missing>
    rows = [line.split("\t") for line in docker(
        "history", "--no-trunc", "--format", "{{.ID}}\t{{.CreatedBy}}\t{{.Comment}}",
        "imp:1").out.splitlines()]
    assert rows[0][0] == out.out.strip() and rows[0][2] == "by test"
    assert docker("history", "nope:1").returncode == 1


def test_history_through_the_api_matches_the_cli(service, api_cli):
    status, _h, body = service.request("GET", "/v1.44/images/base/history")
    rows = json.loads(body)
    assert status == 200 and "base:latest" in rows[0]["Tags"]
    assert rows[0]["Id"] == api_cli.ok("image", "inspect", "-f", "{{.Id}}", "base").out.strip()
    assert [r["CreatedBy"] for r in rows] == api_cli.ok(
        "history", "--no-trunc", "--format", "{{.CreatedBy}}", "base").out.splitlines()
    assert service.request("GET", "/v1.44/images/nope/history")[0] == 404


# -- registries --------------------------------------------------------------------------------

def test_push_to_a_registry_and_search_refused(docker, plain_registry, api_cli):
    name = plain_registry.ref("team/pushed", "1")
    docker("tag", "base", name)
    out = docker("push", name)
    assert out.returncode == 0, out.err
    assert "The push refers to repository [%s]" % name.rsplit(":", 1)[0] in out.out
    digest = re.search(r"^1: digest: (sha256:[0-9a-f]{64}) size: \d+$", out.out, re.M)
    assert digest, out.out
    assert rs.inspect(plain_registry, "team/pushed", "1")["Digest"] == digest.group(1)
    out = docker("push", plain_registry.ref("team/absent", "1"))
    assert out.returncode == 1 and "does not exist locally" in out.err
    # a build FROM an image that is not here pulls it, its lines in the build's stream
    assert docker("rmi", name).returncode == 0
    out = docker("build", "-t", "onpulled:1", "-", input=("FROM %s\nRUN echo on-pulled\n"
                                                           % name).encode(), timeout=300)
    assert out.returncode == 0, out.err
    assert "Digest: %s" % digest.group(1) in out.out and "on-pulled" in out.out
    assert docker("image", "inspect", name).returncode == 0
    # the registry has no search endpoint (a v2 registry has none): said so, exit 1
    out = docker("search", "%s/team" % plain_registry.host)
    assert out.returncode == 1 and "offers no search" in out.err


def test_login_checks_through_the_service_and_push_uses_the_clients_login(
        auth_registry, rootfs_tar, tmp_path):
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    user = Cli(str(tmp_path / "data"), env={"XDG_CONFIG_HOME": str(tmp_path / "config"),
                                            "RBX_REGISTRIES_CONF": str(conf)})
    auth_registry.install_ca(user.env["XDG_CONFIG_HOME"])
    user.ok("import", rootfs_tar, "base:latest")
    svc = Service(user, str(tmp_path / "run" / "docker.sock"))
    env = dict(os.environ, DOCKER_HOST=svc.uri, DOCKER_CONFIG=str(tmp_path / "dockercfg"))

    def docker(*args, input=None):
        proc = subprocess.run(["docker"] + list(args), input=input, capture_output=True,
                              env=env, timeout=120)
        proc.out, proc.err = proc.stdout.decode(), proc.stderr.decode()
        return proc
    try:
        out = docker("login", "-u", auth_registry.username, "--password-stdin",
                     auth_registry.host, input=b"wrong\n")
        assert out.returncode == 1 and "Error response from daemon" in out.err, out.err
        out = docker("login", "-u", auth_registry.username, "--password-stdin",
                     auth_registry.host, input=auth_registry.password.encode() + b"\n")
        assert out.returncode == 0 and "Login Succeeded" in out.out, out.err
        # the client keeps the login; the service saved nothing of it
        saved = json.loads((tmp_path / "dockercfg" / "config.json").read_text())
        assert auth_registry.host in saved["auths"]
        assert not os.path.exists(tmp_path / "config" / "rootless-box" / "auth.json")
        name = auth_registry.ref("team/authed", "2")
        docker("tag", "base", name)
        out = docker("push", name)
        assert out.returncode == 0 and "2: digest: sha256:" in out.out, out.err
        docker("logout", auth_registry.host)
        docker("rmi", name)
        out = docker("pull", name)  # no login now: the registry's refusal
        assert out.returncode == 1
        # docker-py: login (a check), then a push with its auth_config
        dockerpy = pytest.importorskip("docker")
        client = dockerpy.DockerClient(base_url=svc.uri, version="auto")
        try:
            with pytest.raises(dockerpy.errors.APIError) as refused:
                client.login(auth_registry.username, "wrong", registry=auth_registry.host,
                             reauth=True)
            assert refused.value.status_code == 401
            assert client.login(auth_registry.username, auth_registry.password,
                                registry=auth_registry.host,
                                reauth=True)["Status"] == "Login Succeeded"
            pushed = auth_registry.ref("team/frompy", "3")
            client.images.get("base").tag(pushed)
            output = client.images.push(pushed, auth_config={
                "username": auth_registry.username, "password": auth_registry.password})
            assert "3: digest: sha256:" in output and "errorDetail" not in output
        finally:
            client.close()
        assert not os.path.exists(tmp_path / "config" / "rootless-box" / "auth.json")
    finally:
        svc.stop()


def test_bad_transfer_requests_are_400s(service):
    status, _h, body = service.request("POST", "/v1.44/images/base/push?tag=latest",
                                       headers={"X-Registry-Auth": "%%%"})
    assert status == 400 and "X-Registry-Auth" in json.loads(body)["message"]
    status, _h, body = service.request("POST", "/v1.44/auth", b"[1]")
    assert status == 400
    status, _h, body = service.request("POST", "/v1.44/auth", {"password": "p"})
    assert status == 400 and "username" in json.loads(body)["message"]
    status, _h, body = service.request("POST", "/v1.44/images/create?fromSrc=http://x/y.tar")
    assert status == 400 and "request body" in json.loads(body)["message"]
    status, _h, body = service.request("GET", "/v1.44/images/get")
    assert status == 400
    status, _h, body = service.request("GET", "/v1.44/images/search?term=x&limit=0")
    assert status == 400 and "limit" in json.loads(body)["message"]


def test_a_build_whose_client_leaves_stops_and_leaves_nothing(service, api_cli, tmp_path):
    ctx = _context(tmp_path, "FROM base\nRUN echo step-begins; sleep 600\n")
    tmp_dir = os.path.join(api_cli.root, "tmp")
    proc = subprocess.Popen(["docker", "build", "-t", "left:1", str(ctx)],
                            env=dict(os.environ, DOCKER_HOST=service.uri,
                                     DOCKER_CONFIG=str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in proc.stdout:
            if line == b"step-begins\n":
                break
        # the context, unpacked: kept by its tar's digest (ops/contextcache.py), held
        kept = os.path.join(api_cli.root, "buildcache-contexts")
        assert any("build-context" in n for n in os.listdir(tmp_dir)) or os.listdir(kept)
    finally:
        proc.kill()
        proc.wait()

    def sleepers():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.stat("/proc/" + pid).st_uid != os.getuid():
                    continue  # another user's (a parallel run's) sleep is not this build's
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    if f.read() == b"sleep\x00600\x00":
                        found.append(pid)
            except OSError:
                pass
        return found
    wait_for(lambda: not sleepers(), what="the build's step to end", timeout=60)

    def context_left():
        # a killed build's temporaries go when the store is next opened (any request)
        assert service.request("GET", "/v1.44/images/left:1/json")[0] == 404
        return [n for n in os.listdir(tmp_dir) if "build-context" in n]
    wait_for(lambda: not context_left(), what="the build's context to be removed", timeout=60)
    assert service.request("GET", "/_ping")[0] == 200


def test_search_asks_the_registrys_v1_search(docker):
    """A registry that has Docker's v1 search (a stand-in on loopback): its results, the
    CLI's filters and limit applied."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    asked = []

    class Search(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            if self.path.startswith("/v1/search?"):
                body = json.dumps({"results": [
                    {"name": "team/one", "description": "first", "star_count": 5,
                     "is_official": False, "is_automated": False},
                    {"name": "team/two", "description": "second", "star_count": 1,
                     "is_official": False, "is_automated": False}]}).encode()
            elif self.path == "/v2/":
                body = b"{}"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Search)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = "127.0.0.1:%d" % server.server_address[1]
        out = docker("search", "--filter", "stars=3", "--limit", "7", "--format",
                     "{{.Name}} {{.StarCount}} {{.Description}}", host + "/team")
        assert (out.returncode, out.out) == (0, "team/one 5 first\n"), out.err
        assert "/v1/search?q=team&n=7" in asked
    finally:
        server.shutdown()
        server.server_close()
