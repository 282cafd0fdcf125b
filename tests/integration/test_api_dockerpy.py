"""The Engine API as docker-py 7's own integration suite reads it: the answers that suite
(tests/external/dockerpy_suite.py runs it) taught us, kept here as our tests.

What a user relies on: a volume made without a name is anonymous, so a plain `prune_volumes()`
takes it, as dockerd 23+; a volume driver that is not there is a 404 (docker.errors.NotFound);
`prune_builds()` (`POST /build/prune`) answers Docker's shape and empties the build cache.
"""

import contextlib
import io
import socket

import pytest

from conftest import needs_userns
from test_api import api_cli, no_leftovers, service  # noqa: F401

pytestmark = [needs_userns, pytest.mark.usefixtures("no_leftovers")]
dockerpy = pytest.importorskip("docker")


@pytest.fixture
def client(service):
    c = dockerpy.APIClient(base_url=service.uri, version="auto")
    yield c
    c.close()


def test_a_volume_made_without_a_name_is_anonymous_and_a_plain_prune_takes_it(client,
                                                                                api_cli):
    named = client.create_volume("keepme")
    anonymous = client.create_volume()
    try:
        assert "com.docker.volume.anonymous" in anonymous["Labels"]
        deleted = client.prune_volumes()["VolumesDeleted"]
        assert anonymous["Name"] in deleted and "keepme" not in deleted
        assert named["Name"] in api_cli.ok("volume", "ls", "-q").out.split()
    finally:
        api_cli("volume", "rm", "-f", "keepme", anonymous["Name"])


def test_a_volume_driver_that_is_not_there_is_not_found(client, api_cli):
    with pytest.raises(dockerpy.errors.NotFound, match="plugin"):
        client.create_volume("nodriver", driver="invalid.driver")
    assert "nodriver" not in api_cli.ok("volume", "ls", "-q").out.split()


def test_build_prune_answers_dockers_shape(client, api_cli, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM base\nRUN echo cached > /f\n")
    list(client.build(path=str(tmp_path), tag="pruneme", decode=True))
    api_cli.ok("rmi", "pruneme")  # its layers stay in the step cache until a prune
    result = client.prune_builds(all=True)
    assert set(result) == {"CachesDeleted", "SpaceReclaimed"}
    assert result["SpaceReclaimed"] > 0
    again = client.prune_builds(all=True)
    assert again["SpaceReclaimed"] == 0 and not again["CachesDeleted"]


def test_wait_answers_at_an_exit_a_restart_policy_follows(client):
    cid = client.create_container("base", ["sh", "-c", "sleep 1; exit 3"], host_config=
                                  client.create_host_config(restart_policy={"Name": "always"}))
    try:
        client.start(cid)
        assert client.wait(cid, timeout=30)["StatusCode"] == 3
        with pytest.raises(dockerpy.errors.APIError, match="Stop the container before"):
            client.remove_container(cid)
    finally:
        client.remove_container(cid, force=True)



def test_wait_conditions_as_dockerd_answers_them(service, api_cli):
    high = dockerpy.DockerClient(base_url=service.uri, version="auto")
    ran = high.containers.create("base", ["sh", "-c", "exit 5"])

    @contextlib.contextmanager
    def waiting(condition):
        """A wait whose headers came (the condition holds from then on, as for the docker
        CLI, which starts the container once it has them) -> a reader of its answer."""
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as raw:
            raw.settimeout(30)
            raw.connect(service.uri[len("unix://"):])
            raw.sendall(b"POST /containers/%s/wait?condition=%s HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 0\r\n\r\n" % (ran.id.encode(), condition))
            assert _read_until(raw, b"\r\n\r\n").startswith(b"HTTP/1.1 200")
            yield lambda: _read_until(raw, b"}")
    try:
        # not-running: a created container is not running
        assert ran.wait(condition="not-running", timeout=30) == {"StatusCode": 0,
                                                                  "Error": None}
        with waiting(b"next-exit") as answer:
            ran.start()
            assert b'{"StatusCode": 5, "Error": null}' in answer()
        assert ran.wait(condition="not-running", timeout=30)["StatusCode"] == 5
        with pytest.raises(dockerpy.errors.APIError, match='invalid condition: "gone"'):
            ran.wait(condition="gone", timeout=30)
        with waiting(b"removed") as answer:  # the status it had, once rm took it
            ran.remove()
            assert b'"StatusCode": 5' in answer()
    finally:
        api_cli("rm", "-f", ran.id)
        high.close()


def test_the_detach_keys_end_an_attach_and_leave_the_container_running(client):
    cid = client.create_container("base", "cat", stdin_open=True, tty=True)["Id"]
    try:
        client.start(cid)
        for query, keys in (({}, b"\x10\x11"), ({"detachKeys": "ctrl-x"}, b"\x18")):
            sock = client.attach_socket(cid, dict(query, stdin=True, stream=True))
            raw = sock._sock
            raw.settimeout(20)
            for key in keys:  # one read each: a held prefix is not forwarded yet
                raw.sendall(bytes([key]))
            assert raw.recv(128) == b""  # the service hung up
            sock.close()
            assert client.inspect_container(cid)["State"]["Running"]
    finally:
        client.remove_container(cid, force=True)


def test_hostconfig_reads_back_as_sent_and_env_names_stay_as_sent(client):
    host = client.create_host_config(isolation="default", cgroupns="private",
                                     mem_swappiness=40)
    cid = client.create_container("base", ["true"], host_config=host,
                                  environment={"Foo": None, "Other": "one", "Blank": ""})["Id"]
    try:
        got = client.inspect_container(cid)
        assert (got["HostConfig"]["Isolation"], got["HostConfig"]["CgroupnsMode"],
                got["HostConfig"]["MemorySwappiness"]) == ("default", "private", 40)
        env = got["Config"]["Env"]
        assert "Foo" in env and "Other=one" in env and "Blank=" in env
    finally:
        client.remove_container(cid, force=True)


def test_a_log_driver_that_is_not_there_is_refused_in_dockers_words(client, api_cli):
    before = api_cli.ok("ps", "-aq").out
    host = client.create_host_config(log_config=dockerpy.types.LogConfig(type="asdf"))
    with pytest.raises(dockerpy.errors.APIError) as caught:
        client.create_container("base", ["true"], host_config=host)
    assert caught.value.explanation == "logger: no log driver named 'asdf' is registered"
    assert api_cli.ok("ps", "-aq").out == before


def test_log_driver_none_runs_and_its_logs_answer_dockers_error(client):
    cid = client.create_container("base", "echo hello", host_config=client.create_host_config(
        log_config=dockerpy.types.LogConfig(type="none")))["Id"]
    try:
        attached = client.attach_socket(cid, {"stdout": 1, "stream": 1})
        client.start(cid)
        assert client.wait(cid, timeout=30)["StatusCode"] == 0
        # the output still reaches an attached client (the docker CLI's run), framed
        assert _read_until(attached._sock, b"hello\n").endswith(b"hello\n")
        attached.close()
        assert client.inspect_container(cid)["HostConfig"]["LogConfig"]["Type"] == "none"
        with pytest.raises(dockerpy.errors.APIError) as caught:
            client.logs(cid)
        assert caught.value.status_code == 501
        assert caught.value.explanation == "configured logging driver does not support reading"
    finally:
        client.remove_container(cid, force=True)


def test_attach_without_stream_gives_the_log_of_an_exited_container_and_ends(client):
    cid = client.create_container("base", "echo hello")["Id"]
    try:
        client.start(cid)
        client.wait(cid, condition="not-running", timeout=30)
        assert client.attach(cid, stream=False, logs=True) == b"hello\n"
    finally:
        client.remove_container(cid, force=True)


def test_config_volumes_are_anonymous_volumes_and_a_bind_wins(client, api_cli, tmp_path):
    cid = client.create_container("base", ["sh", "-c", "echo kept > /vol1/f; ls /vol2"],
                                  volumes=["/vol1", "/vol2"], host_config=client.
                                  create_host_config(binds=["%s:/vol2" % tmp_path]))["Id"]
    (tmp_path / "mine").write_text("")
    try:
        client.start(cid)
        assert client.wait(cid, timeout=30)["StatusCode"] == 0
        assert client.logs(cid) == b"mine\n"
        mounts = {m["Destination"]: m["Type"] for m in client.inspect_container(cid)["Mounts"]}
        assert mounts == {"/vol1": "volume", "/vol2": "bind"}
        stream, _stat = client.get_archive(cid, "/vol1/f")
        assert b"kept\n" in b"".join(stream)
    finally:
        client.remove_container(cid, force=True, v=True)


def test_swarm_endpoints_answer_as_dockerd_outside_swarm_mode(client):
    assert client.leave_swarm(force=True) is True  # dockerd's 503, taken as done
    with pytest.raises(dockerpy.errors.APIError, match="not part of a swarm"):
        client.inspect_swarm()


def test_a_started_container_with_a_health_check_is_starting_before_its_first_check(client):
    cid = client.create_container("base", ["sleep", "60"], healthcheck={
        "test": ["CMD", "true"], "interval": 3600 * 10 ** 9, "start_period": 3600 * 10 ** 9})
    try:
        assert "Health" not in client.inspect_container(cid)["State"]  # not started
        client.start(cid)
        assert client.inspect_container(cid)["State"]["Health"]["Status"] == "starting"
        assert client.info()["ExperimentalBuild"] is False
        assert client.inspect_container(cid)["HostConfig"]["Runtime"] == "runc"
    finally:
        client.remove_container(cid, force=True)


def test_kill_answers_once_the_container_is_down(client):
    cid = client.create_container("base", ["sleep", "9999"])["Id"]
    try:
        client.start(cid)
        client.kill(cid)
        state = client.inspect_container(cid)["State"]
        assert (state["Running"], state["ExitCode"]) == (False, 137)
    finally:
        client.remove_container(cid, force=True)


def test_an_exec_has_the_terminal_its_create_asked_for(client):
    cid = client.create_container("base", "cat", stdin_open=True)["Id"]
    try:
        client.start(cid)
        made = client.exec_create(cid, ["sh", "-c", "echo hello; test -t 1"], tty=True)
        assert client.exec_start(made) == b"hello\r\n"  # docker-py sends Tty false here
        assert client.exec_inspect(made)["ExitCode"] == 0
    finally:
        client.remove_container(cid, force=True)


def _read_until(raw, want):
    got = b""
    while want not in got:
        data = raw.recv(1024)
        assert data, "the stream ended before %r (got %r)" % (want, got)
        got += data
    return got


@pytest.fixture
def cat(client):
    """A running container whose `cat` waits on its open stdin."""
    cid = client.create_container("base", "cat", stdin_open=True)["Id"]
    client.start(cid)
    yield cid
    client.remove_container(cid, force=True)


def test_the_detach_keys_end_an_exec_with_a_terminal_and_leave_it_running(client, cat):
    for keys, typed in ((None, b"\x10\x11"), ("ctrl-x", b"\x18")):
        made = client.exec_create(cat, "cat", stdin=True, tty=True, detach_keys=keys)
        raw = client.exec_start(made, tty=True, socket=True)._sock
        raw.settimeout(20)
        raw.sendall(b"typed\n")
        _read_until(raw, b"typed\r\ntyped\r\n")  # the terminal's echo, then cat's
        for key in typed:  # one read each: a held prefix is not forwarded yet
            raw.sendall(bytes([key]))
        assert raw.recv(128) == b""  # the service hung up
        raw.close()
        assert client.exec_inspect(made)["Running"]
    # a client that hangs up (the docker CLI detaches by itself, then closes) leaves it too:
    # dockerd never closes a terminal's input for its client
    made = client.exec_create(cat, "cat", stdin=True, tty=True)
    raw = client.exec_start(made, tty=True, socket=True)._sock
    raw.settimeout(20)
    raw.sendall(b"typed\n")
    _read_until(raw, b"typed\r\ntyped\r\n")
    raw.shutdown(socket.SHUT_RDWR)  # docker-py's response holds the fd too: close() is not all
    raw.close()
    # the detached cats still run in the container, beside its own (asked several times: the
    # hang-up reaches the service meanwhile)
    for _ in range(3):
        ps = client.exec_start(client.exec_create(cat, ["ps", "-o", "args"]))
        assert ps.decode().split().count("cat") == 4
    assert client.exec_inspect(made)["Running"]


def test_an_exec_that_cannot_start_exits_126_as_under_dockerd(client, cat):
    for cmd in ("no-such-cmd", "/etc/passwd"):  # dockerd: 126 for either, unlike run
        made = client.exec_create(cat, cmd)
        client.exec_start(made)
        assert client.exec_inspect(made)["ExitCode"] == 126


def test_a_bad_archive_to_load_is_an_error_in_the_stream_as_from_dockerd(client, service):
    status, _headers, body = service.request("POST", "/v1.44/images/load", b"abc")
    assert status == 200
    assert b'"error": "cannot read the archive' in body
    with pytest.raises(dockerpy.errors.ImageLoadError, match="cannot read the archive"):
        dockerpy.DockerClient(base_url=service.uri, version="auto").images.load(b"abc")


def test_a_failed_run_step_is_told_in_the_classic_builders_words(service):
    client = dockerpy.DockerClient(base_url=service.uri, version="auto")
    for dockerfile, command in ((b"FROM base\nRUN exit 1", "/bin/sh -c exit 1"),
                                (b'FROM base\nRUN ["sh", "-c", "exit 1"]', "sh -c exit 1")):
        with pytest.raises(dockerpy.errors.BuildError) as caught:
            client.images.build(fileobj=io.BytesIO(dockerfile))
        assert caught.value.msg == "The command '%s' returned a non-zero code: 1" % command
        assert any("Step 2/2" in chunk.get("stream", "") for chunk in caught.value.build_log)


def test_a_dockerfile_out_of_the_context_builds_and_stays_out_of_it(client, tmp_path):
    ctx, elsewhere = tmp_path / "ctx", tmp_path / "elsewhere"
    ctx.mkdir()
    elsewhere.mkdir()
    (ctx / "file.txt").write_text("hello")
    (elsewhere / "Dockerfile").write_text("FROM base\nCOPY . /src\n")
    # docker-py puts it in the tar as .dockerfile.<random> and sends dockerfile= twice (that
    # name, then its text): the first one counts, as in Go's FormValue
    chunks = list(client.build(path=str(ctx), dockerfile=str(elsewhere / "Dockerfile"),
                               tag="ooc:1", decode=True))
    assert chunks[-1] == {"stream": "Successfully tagged ooc:1\n"}, chunks
    cid = client.create_container("ooc:1", ["ls", "-a", "/src"])["Id"]
    try:
        client.start(cid)
        client.wait(cid, timeout=30)
        assert client.logs(cid).split() == [b".", b"..", b"file.txt"]
    finally:
        client.remove_container(cid, force=True)
        client.remove_image("ooc:1")


def test_build_streams_a_message_a_line_stderr_in_red_and_honours_cachefrom(client):
    script = b"FROM base\nENV FOO=bar\nRUN echo out; echo err >&2\nRUN touch /b\n"

    def build(tag, **kw):
        return list(client.build(fileobj=io.BytesIO(script), tag=tag, decode=True, **kw))
    first = build("cf1:1")
    assert {"stream": "\x1b[91merr\n\x1b[0m"} in first  # the classic builder's stderr
    assert {"stream": "out\n"} in first
    assert all(c["stream"].count("\n") <= 1 for c in first if "stream" in c)
    try:
        cached = [c for c in build("cf2:1") if "Using cache" in c.get("stream", "")]
        assert cached == [{"stream": " ---> Using cache\n"}] * 3
        # cachefrom: a cached step counts only when it is in those images (dockerd's)
        assert sum("Using cache" in c.get("stream", "")
                   for c in build("cf2:1", cache_from=["cf1:1"])) == 3
        assert not any("Using cache" in c.get("stream", "")
                       for c in build("cf2:1", cache_from=["nosuchtag"]))
    finally:
        client.remove_image("cf2:1")
        client.remove_image("cf1:1")


@contextlib.contextmanager
def _started(client, cmd):
    cid = client.create_container("base", cmd)["Id"]
    try:
        client.start(cid)
        yield cid
    finally:
        client.remove_container(cid, force=True)


def test_logs_right_after_the_start_of_a_short_command_have_its_output(client):
    """docker-py's users start a container and read its logs at once: the output the command
    wrote by then is there (the watcher's last write waited for, not raced)."""
    for _ in range(5):
        with _started(client, ["echo", "said"]) as cid:
            assert client.logs(cid) == b"said\n"


def test_a_committed_image_names_its_parent(client):
    with _started(client, ["touch", "/made"]) as cid:
        client.wait(cid, timeout=30)
        made = client.commit(cid)["Id"]
        assert client.inspect_image(made)["Parent"] == client.inspect_image("base")["Id"]
        client.remove_image(made)


def test_attach_to_a_restarting_container_is_dockerds_conflict(client):
    """dockerd answers 409 to an attach while a container waits out its restart delay (the
    stream would be of a run that has ended); after five restarts the delay is 3.2 s."""
    import time
    cid = client.create_container("base", ["sh", "-c", "exit 1"], host_config=
                                  client.create_host_config(restart_policy={"Name": "always"}))
    try:
        client.start(cid)
        deadline = time.monotonic() + 120
        while True:
            state = client.inspect_container(cid)
            if state["RestartCount"] >= 5 and state["State"]["Restarting"]:
                break
            assert time.monotonic() < deadline, state["State"]
            time.sleep(0.05)
        with pytest.raises(dockerpy.errors.APIError) as caught:
            client.attach(cid, stream=False, logs=False)
        assert caught.value.response.status_code == 409
        assert "is restarting, wait until the container is running" in str(caught.value)
    finally:
        client.remove_container(cid, force=True)
