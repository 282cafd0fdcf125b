"""The Engine API's second slice, driven by the docker CLI 28 and docker-py: create bodies
with the run flags' fields, networks, volumes, events, system df, the prunes, top, stats,
update, cp both ways (archive), diff, export and commit.

What a user relies on: `docker run --cap-add/--ulimit/--health-cmd/--mount/--network NET
--network-alias ...` means what `rootless-box run` with those flags means, refused with the
same words where the CLI refuses; networks and volumes made with `docker network/volume`
are the CLI's (one store) and read back as created; `docker events` streams the journal;
`docker cp` copies both ways with Docker's rules, a hostile tar never writes outside the
container; a client that leaves a stream leaves nothing running.
"""

import io
import json
import os
import subprocess
import tarfile

import pytest

from conftest import wait_for
from test_api import api_cli, docker, no_leftovers, request, service  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _cleanup_networks(api_cli):
    names = api_cli.ok("network", "ls", "-q", "--filter", "type=custom", "--format",
                       "{{.Name}}").out.split()
    for name in names:
        api_cli("network", "rm", name)


# -- create bodies ----------------------------------------------------------------------------

def test_run_flags_travel_in_the_create_body(docker, api_cli):
    flags = ["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--ulimit", "nofile=100:200",
             "--oom-score-adj", "500", "--shm-size", "1m", "--sysctl",
             "kernel.msgmax=12345"]
    script = ("grep CapEff /proc/self/status; ulimit -n; cat /proc/self/oom_score_adj; "
              "cat /proc/sys/kernel/msgmax; df -k /dev/shm | tail -1")
    theirs = docker("run", "--rm", *flags, "base", "sh", "-c", script)
    ours = api_cli("run", "--rm", *flags, "base", "sh", "-c", script)
    assert theirs.returncode == 0, theirs.err
    assert theirs.out == ours.out and "100\n500\n12345\n" in theirs.out
    docker("create", "--name", "hc", *flags, "--pid", "host", "--restart", "on-failure:2",
           "-l", "k=v", "--expose", "81", "base", "true")
    host = json.loads(docker("inspect", "-f", "{{json .HostConfig}}", "hc").out)
    assert host["CapAdd"] == ["CAP_NET_ADMIN"] and host["CapDrop"] == ["CAP_CHOWN"]
    # what the CLI warns about comes back as create's Warnings (the docker CLI prints them)
    out = docker("create", "--security-opt", "label=disable", "base", "true")
    assert "WARNING: --security-opt label=disable has no effect" in out.err, out.err
    assert host["Ulimits"] == [{"Name": "nofile", "Hard": 200, "Soft": 100}]
    assert (host["ShmSize"], host["OomScoreAdj"], host["PidMode"]) == (1 << 20, 500, "host")
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert host["Sysctls"] == {"kernel.msgmax": "12345"}
    assert docker("inspect", "-f", "{{json .Config.ExposedPorts}}", "hc").out.strip() == \
        '{"81/tcp":{}}'
    # --privileged: every capability, as the CLI's
    priv = "grep CapEff /proc/self/status"
    assert docker("run", "--rm", "--privileged", "base", "sh", "-c", priv).out == \
        api_cli.ok("run", "--rm", "--privileged", "base", "sh", "-c", priv).out


def test_health_mounts_and_limits_as_the_cli_has_them(docker, api_cli, service):
    docker("run", "-d", "--name", "hl", "--health-cmd", "true", "--health-interval", "1s",
           "--mount", "type=volume,source=mv,target=/data,volume-label=x=y",
           "--tmpfs", "/t:size=1m", "base", "sleep", "600")
    wait_for(lambda: docker("inspect", "-f", "{{.State.Health.Status}}", "hl").out
             == "healthy\n", what="the health check", timeout=60)
    mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", "hl").out)
    assert ("volume", "mv", "/data") in [(m["Type"], m.get("Name"), m["Destination"])
                                         for m in mounts]
    assert json.loads(api_cli.ok("volume", "inspect", "mv").out)[0]["Labels"] == {"x": "y"}
    assert "/t" in docker("exec", "hl", "grep", "tmpfs", "/proc/mounts").out
    # resource limits: refused or applied as the CLI's
    ours = api_cli("create", "--name", "lim", "-m", "64m", "base", "true")
    theirs = docker("create", "--name", "lim2", "-m", "64m", "base", "true")
    if ours.returncode == 0:
        assert theirs.returncode == 0
        assert docker("inspect", "-f", "{{.HostConfig.Memory}}", "lim2").out == "67108864\n"
    else:
        reason = ours.err.splitlines()[0].partition("error: ")[2]
        assert theirs.returncode == 1 and reason in theirs.err  # create: 1, run: 125
        # the machine's lack, not the request's: 500; a bad value stays dockerd's 400
        assert service.request("POST", "/containers/create", {
            "Image": "base", "HostConfig": {"Memory": 64 << 20}})[0] == 500
    status, _h, body = service.request("POST", "/containers/create", {
        "Image": "base", "HostConfig": {"Memory": 1024}})
    assert status == 400 and b"Minimum memory limit allowed is 6MB" in body
    # what the CLI refuses is refused, never dropped
    out = docker("run", "--rm", "--runtime", "runsc", "base", "true")
    ours = api_cli("run", "--rm", "--runtime", "runsc", "base", "true")
    reason = ours.err.splitlines()[0].partition("error: ")[2]
    assert out.returncode == 125 and reason.startswith("--runtime is not supported: ")
    assert "Error response from daemon: " + reason in out.err
    out = docker("run", "--rm", "--ulimit", "nofile=5:1", "base", "true")
    assert out.returncode == 125 and "soft limit must be less than or equal to hard" in out.err
    assert api_cli.ok("ps", "-a", "--format", "{{.Names}}").out.split().count("lim2") <= 1


# -- networks ---------------------------------------------------------------------------------

def test_networks_through_the_api_are_the_clis(docker, api_cli):
    try:
        out = docker("network", "create", "--label", "team=a", "-o", "com.x.opt=1",
                     "--subnet", "10.91.0.0/24", "apinet")
        assert out.returncode == 0, out.err
        net_id = out.out.strip()
        assert api_cli.ok("network", "ls", "-q", "--no-trunc", "--filter",
                          "name=apinet").out.strip() == net_id
        theirs = json.loads(docker("network", "inspect", "apinet").out)[0]
        ours = json.loads(api_cli.ok("network", "inspect", "apinet").out)[0]
        assert theirs == ours and theirs["Options"] == {"com.x.opt": "1"}
        assert docker("network", "ls", "--filter", "label=team=a", "--format",
                      "{{.Name}}").out == "apinet\n"
        out = docker("network", "create", "apinet")
        assert out.returncode == 1 and "network with name apinet already exists" in out.err
        docker("run", "-d", "--name", "w1", "--network", "apinet", "--network-alias", "web",
               "--ip", "10.91.0.50", "base", "sleep", "600")
        found = docker("run", "--rm", "--network", "apinet", "base", "nslookup", "web")
        assert found.returncode == 0 and "10.91.0.50" in found.out, found.out + found.err
        assert docker("network", "create", "apinet2").returncode == 0
        out = docker("network", "connect", "--alias", "second", "apinet2", "w1")
        assert out.returncode == 0, out.err
        nets = json.loads(docker("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                 "w1").out)
        assert sorted(nets) == ["apinet", "apinet2"] and "second" in nets["apinet2"]["Aliases"]
        members = json.loads(docker("network", "inspect", "apinet2").out)[0]["Containers"]
        assert [m["Name"] for m in members.values()] == ["w1"]
        assert docker("network", "disconnect", "apinet2", "w1").returncode == 0
        # created on two networks at once (the CLI sends both endpoints in the create body)
        out = docker("run", "--rm", "--network", "apinet", "--network",
                     "name=apinet2,alias=both", "base", "sh", "-c",
                     "ip -4 -o addr show | grep -c 'eth[01]'")
        assert (out.returncode, out.out) == (0, "2\n"), out.err
        out = docker("network", "rm", "apinet")
        assert out.returncode == 1 and "has active endpoints" in out.err
        out = docker("network", "inspect", "nonet")
        assert out.returncode == 1 and "network nonet not found" in out.err
        docker("rm", "-f", "w1")
        assert docker("network", "rm", "apinet").out == "apinet\n"
        out = docker("network", "prune", "-f")
        assert out.returncode == 0 and "Deleted Networks:\napinet2\n" in out.out
        assert api_cli.ok("network", "ls", "-q", "--filter", "type=custom").out == ""
    finally:
        api_cli("rm", "-f", "w1")
        _cleanup_networks(api_cli)


def test_ipv6_networks_through_the_api(docker, api_cli):
    """docker CLI 28's `network create --ipv6`, `run --ip6` and `network connect --ip6`
    (EnableIPv6, a second IPAM config, EndpointSettings.IPAMConfig.IPv6Address) make what
    the CLI makes; a container answers by name over IPv6."""
    try:
        out = docker("network", "create", "--ipv6", "--subnet", "fd00:db8:a::/64",
                     "--subnet", "10.92.0.0/24", "apinet6")
        assert out.returncode == 0, out.err
        theirs = json.loads(docker("network", "inspect", "apinet6").out)[0]
        assert theirs == json.loads(api_cli.ok("network", "inspect", "apinet6").out)[0]
        assert theirs["EnableIPv6"] is True
        assert [c["Subnet"] for c in theirs["IPAM"]["Config"]] == ["10.92.0.0/24",
                                                                    "fd00:db8:a::/64"]
        out = docker("run", "-d", "--name", "w6", "--network", "apinet6", "--ip6",
                     "fd00:db8:a::50", "base", "sleep", "600")
        assert out.returncode == 0, out.err
        entry = json.loads(docker("inspect", "w6").out)[0]["NetworkSettings"]["Networks"][
            "apinet6"]
        assert entry["IPAMConfig"]["IPv6Address"] == "fd00:db8:a::50"
        assert (entry["GlobalIPv6Address"], entry["GlobalIPv6PrefixLen"]) == \
            ("fd00:db8:a::50", 64)
        found = docker("run", "--rm", "--network", "apinet6", "base", "sh", "-c",
                       "nslookup -type=AAAA w6 && ping -c 1 -W 5 w6")
        assert found.returncode == 0, found.out + found.err
        assert "Address: fd00:db8:a::50" in found.out and " 1 packets received" in found.out
        assert docker("network", "create", "apinet4").returncode == 0
        docker("run", "-d", "--name", "w4", "--network", "apinet4", "base", "sleep", "600")
        out = docker("network", "connect", "--ip6", "fd00:db8:a::60", "apinet6", "w4")
        assert out.returncode == 0, out.err
        assert docker("inspect", "-f", "{{(index .NetworkSettings.Networks \"apinet6\")"
                      ".GlobalIPv6Address}}", "w4").out == "fd00:db8:a::60\n"
        # Docker's refusals, through the API: the CLI's exit codes
        out = docker("run", "--rm", "--network", "apinet6", "--ip6", "fd00:db9::5", "base",
                     "true")
        assert out.returncode == 125, out.err
        assert "no configured subnet contains IP address fd00:db9::5" in out.err
        out = docker("network", "connect", "--ip6", "fd00:db8:a::61", "apinet4", "w6")
        assert out.returncode == 1 and "no configured subnet contains IP address" in out.err
    finally:
        api_cli("rm", "-f", "w6", "w4")
        _cleanup_networks(api_cli)


# -- volumes ----------------------------------------------------------------------------------

def test_volumes_through_the_api_are_the_clis(docker, api_cli):
    try:
        assert docker("volume", "create", "--label", "l=1", "vol1").out == "vol1\n"
        theirs = json.loads(docker("volume", "inspect", "vol1").out)[0]
        assert theirs == json.loads(api_cli.ok("volume", "inspect", "vol1").out)[0]
        assert theirs["Labels"] == {"l": "1"} and theirs["Driver"] == "local"
        assert docker("volume", "ls", "-q", "--filter", "label=l=1").out == "vol1\n"
        docker("run", "-d", "--name", "v1", "-v", "vol1:/data", "-v", "/anon", "base", "sh",
               "-c", "echo kept > /data/f; exec sleep 600")
        wait_for(lambda: api_cli("run", "--rm", "-v", "vol1:/d", "base", "cat", "/d/f").out
                 == "kept\n", what="the volume's file")
        out = docker("volume", "rm", "vol1")
        assert out.returncode == 1 and "volume is in use" in out.err
        out = docker("volume", "inspect", "novol")
        assert out.returncode == 1 and "no such volume" in out.err
        docker("rm", "-f", "v1")
        # prune: anonymous volumes only, named ones with -a (Docker 23+)
        out = docker("volume", "prune", "-f")
        assert out.returncode == 0 and "Total reclaimed space" in out.out
        assert "vol1" in docker("volume", "ls", "-q").out
        out = docker("volume", "prune", "-af")
        assert "vol1" in out.out and docker("volume", "ls", "-q").out == ""
    finally:
        api_cli("rm", "-f", "v1")
        api_cli("volume", "prune", "-af")


# -- events, df, prunes -----------------------------------------------------------------------

def test_events_stream_and_past_ranges(docker, service, api_cli):
    import time
    start = time.time()
    watcher = subprocess.Popen(
        ["docker", "events", "--filter", "type=container", "--format",
         "{{.Status}} {{.Actor.Attributes.name}}"],
        env=dict(os.environ, DOCKER_HOST=service.uri), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    try:
        # the stream is up once a first event reaches it
        wait_for(lambda: docker("run", "--rm", "--name", "ev0", "base", "true").returncode
                 == 0, what="a first run")
        assert watcher.stdout.readline().decode().split()[1] == "ev0"
        api_cli.ok("run", "--rm", "--name", "ev1", "base", "true")  # the CLI's, same journal
        seen = []
        while "destroy ev1" not in seen:
            seen.append(watcher.stdout.readline().decode().strip())
        assert [s for s in seen if s.endswith("ev1")][:2] == ["create ev1", "start ev1"]
    finally:
        watcher.kill()
        watcher.wait()
    out = docker("events", "--since", "%.3f" % start, "--until", "%.3f" % time.time(),
                 "--filter", "container=ev1", "--format", "{{.Action}}")
    assert out.returncode == 0 and out.out.split()[:2] == ["create", "start"]
    out = docker("events", "--filter", "nope=1", "--until", "1")
    assert out.returncode == 1 and "invalid filter 'nope'" in out.err


def test_system_df_and_prunes(docker, api_cli):
    docker("create", "--name", "keep", "base", "true")
    docker("run", "--name", "gone", "base", "sh", "-c", "echo x > /f")
    assert docker("commit", "gone", "committed:1").returncode == 0
    out = docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}")
    assert out.returncode == 0, out.err
    rows = dict((line.split()[0], line.split()[1:]) for line in out.out.splitlines())
    assert rows["Images"] == ["2", "1"] and rows["Containers"][0] == "2"
    out = docker("container", "prune", "-f", "--filter", "label=absent")
    assert "gone" in docker("ps", "-a", "--format", "{{.Names}}").out
    out = docker("container", "prune", "-f")
    assert out.returncode == 0 and "Deleted Containers:" in out.out
    assert docker("ps", "-a", "--format", "{{.Names}}").out == ""
    docker("create", "--name", "keep", "base", "true")
    out = docker("image", "prune", "-af")
    assert out.returncode == 0 and "untagged: committed:1" in out.out.lower()
    assert docker("images", "--format", "{{.Repository}}").out == "base\n"
    out = docker("container", "prune", "-f", "--filter", "until=bad")
    assert out.returncode == 1 and "until=bad" in out.err


# -- top, stats, update -----------------------------------------------------------------------

def test_top_stats_update(docker, api_cli):
    docker("run", "-d", "--name", "ts", "base", "sleep", "600")
    top = docker("top", "ts").out.splitlines()
    assert top[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert top[1].endswith("sleep 600")
    withps = docker("top", "ts", "-o", "pid,comm").out.splitlines()
    assert withps[0].split() == ["PID", "COMMAND"] and withps[1].split()[1] == "sleep"
    out = docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.MemUsage}}")
    assert out.returncode == 0, out.err
    name, pids, usage = out.out.split(" ", 2)
    assert (name, pids) == ("ts", "1") and "/" in usage and not usage.startswith("0B")
    assert docker("update", "--restart", "always", "ts").out == "ts\n"
    assert docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "ts").out == \
        "always\n"
    ours = api_cli("update", "-m", "64m", "ts")
    theirs = docker("update", "-m", "64m", "ts")
    assert (theirs.returncode == 0) == (ours.returncode == 0)
    docker("stop", "-t", "0", "ts")
    out = docker("top", "ts")
    assert out.returncode == 1 and "is not running" in out.err


# -- cp, diff, export, commit -----------------------------------------------------------------

def test_cp_both_ways_diff_export_commit(docker, api_cli, tmp_path):
    docker("run", "-d", "--name", "cp1", "base", "sleep", "600")
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a").write_text("a\n")
    assert docker("cp", str(src), "cp1:/tmp/").returncode == 0
    assert docker("cp", str(src), "cp1:/tmp/renamed").returncode == 0
    assert docker("cp", str(tmp_path / "dir"), "cp1:/tmp/d2").returncode == 0
    assert docker("exec", "cp1", "cat", "/tmp/in.txt", "/tmp/renamed", "/tmp/d2/a").out == \
        "hello\nhello\na\n"
    assert docker("exec", "cp1", "stat", "-c", "%u", "/tmp/in.txt").out == "0\n"
    out = docker("cp", "cp1:/etc/hostname", str(tmp_path / "h"))
    assert out.returncode == 0, out.err
    assert (tmp_path / "h").read_text() == docker("exec", "cp1", "cat", "/etc/hostname").out
    assert docker("cp", "cp1:/tmp/d2", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back" / "a").read_text() == "a\n"
    out = docker("cp", "cp1:/nope", str(tmp_path))
    assert out.returncode == 1 and "Could not find the file /nope in container cp1" in out.err
    # the tar stream forms, and a stopped container
    tar = docker("cp", "cp1:/tmp/in.txt", "-").stdout
    assert tarfile.open(fileobj=io.BytesIO(tar)).getnames() == ["in.txt"]
    changes = docker("diff", "cp1").out.splitlines()
    assert "A /tmp/in.txt" in changes and "C /tmp" in changes
    assert changes == api_cli.ok("diff", "cp1").out.splitlines()
    docker("stop", "-t", "0", "cp1")
    assert docker("cp", str(src), "cp1:/stopped.txt").returncode == 0
    tar = docker("cp", "cp1:/stopped.txt", "-").stdout  # out of a stopped one too
    assert tarfile.open(fileobj=io.BytesIO(tar)).extractfile("stopped.txt").read() == \
        b"hello\n"
    names = tarfile.open(fileobj=io.BytesIO(docker("export", "cp1").stdout)).getnames()
    assert "stopped.txt" in names and "tmp/d2/a" in names and "etc/hostname" in names
    out = docker("commit", "-c", "CMD [\"cat\", \"/stopped.txt\"]", "-m", "msg", "cp1",
                 "snap:1")
    assert out.returncode == 0 and out.out.startswith("sha256:"), out.err
    assert docker("run", "--rm", "snap:1").out == "hello\n"
    assert docker("image", "inspect", "-f", "{{.Comment}}", "snap:1").out in ("msg\n", "\n")
    docker("rmi", "snap:1")


def test_archive_endpoints_refuse_what_docker_refuses(service, docker):
    cid = docker("run", "-d", "--name", "ar", "base", "sleep", "600").out.strip()
    status, headers, _body = service.request("HEAD", "/v1.44/containers/ar/archive?path=/etc")
    assert status == 200
    import base64
    stat = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert stat["name"] == "etc" and stat["mode"] & (1 << 31)
    status, _h, body = service.request("GET", "/containers/ar/archive?path=/nowhere")
    assert status == 404 and b"Could not find the file /nowhere" in body
    # a hostile entry: a path out of the directory (the extraction is chrooted in the
    # container's root besides, so nothing reaches the host even through a link)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("../../escape"), io.BytesIO(b""))
    status, _h, body = service.request("PUT", "/containers/ar/archive?path=/tmp",
                                       data.getvalue())
    assert status >= 400 and json.loads(body)["message"], body
    assert docker("exec", "ar", "ls", "/escape").returncode == 1
    # an absolute name lands inside the directory, as dockerd's untar puts it
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("/abs"), io.BytesIO(b""))
    assert service.request("PUT", "/containers/ar/archive?path=/tmp", data.getvalue())[0] \
        == 200
    assert docker("exec", "ar", "ls", "/tmp/abs").returncode == 0
    status, _h, body = service.request("PUT", "/containers/ar/archive?path=/etc/hostname",
                                       b"")
    assert status == 400 and b"must be a directory" in body
    status, _h, body = service.request("PUT", "/containers/ar/archive?path=/absent", b"")
    assert status == 404 and b"Could not find the file /absent in container ar" in body
    status, _h, _b = service.request("GET", "/containers/nope/archive?path=/")
    assert status == 404
    assert len(cid) == 64


def test_bad_requests_get_dockers_json_errors(service, api_cli):
    for method, path, body, status, words in (
            ("POST", "/networks/create", b"{bad", 400, "invalid JSON"),
            ("POST", "/networks/create", {"Name": "x", "Labels": 5}, 400, "Labels"),
            ("POST", "/networks/create", {"Name": "bad/name"}, 400, "invalid network name"),
            ("POST", "/networks/create", {"Name": "host"}, 403, "predefined"),
            ("POST", "/volumes/create", {"Name": "v", "DriverOpts": []}, 400, "DriverOpts"),
            ("POST", "/volumes/create", {"Driver": "nfs"}, 404, "plugin"),  # moby: not found
            ("GET", "/networks?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D", None, 400,
             "invalid filter 'bogus'"),
            ("GET", "/events?since=yesterday", None, 400, "since"),
            ("POST", "/networks/none/connect", {"Container": "absent"}, 404,
             "No such container: absent"),
            ("DELETE", "/volumes/absent", None, 404, "no such volume"),
            ("GET", "/containers/absent/stats?stream=0", None, 404, "No such container"),
            ("POST", "/commit?container=absent", None, 404, "No such container"),
            ("POST", "/containers/prune?filters=%7B%22until%22%3A%5B%22soon%22%5D%7D", None,
             400, "until=soon")):
        got, headers, answer = service.request(method, path, body)
        assert got == status, (path, answer)
        assert headers["content-type"] == "application/json"
        assert words in json.loads(answer)["message"], (path, answer)
    assert api_cli.ok("network", "ls", "-q", "--filter", "type=custom").out == ""
    assert api_cli.ok("volume", "ls", "-q").out == ""


# -- docker-py --------------------------------------------------------------------------------

def test_docker_py_objects(service, api_cli):
    dockerpy = pytest.importorskip("docker")
    client = dockerpy.DockerClient(base_url=service.uri, version="auto")
    try:
        net = client.networks.create("pynet", labels={"a": "b"})
        assert client.networks.get("pynet").attrs["Labels"] == {"a": "b"}
        vol = client.volumes.create("pyvol", labels={"c": "d"})
        assert client.volumes.get("pyvol").attrs["Labels"] == {"c": "d"}
        ctr = client.containers.run(
            "base", ["sleep", "600"], detach=True, name="py2", cap_add=["NET_RAW"],
            ulimits=[dockerpy.types.Ulimit(name="nofile", soft=64, hard=64)],
            volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, network="pynet",
            healthcheck={"test": ["CMD", "true"], "interval": 1000000000})
        ctr.reload()
        assert ctr.attrs["HostConfig"]["CapAdd"] == ["CAP_NET_RAW"]
        assert ctr.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "true"]
        assert b" 64 " in ctr.exec_run(["grep", "open files", "/proc/1/limits"]).output
        net.reload()
        assert list(net.attrs["Containers"]) == [ctr.id]
        data = io.BytesIO()
        with tarfile.open(fileobj=data, mode="w") as archive:
            info = tarfile.TarInfo("put.txt")
            info.size = 3
            archive.addfile(info, io.BytesIO(b"py\n"))
        assert ctr.put_archive("/v", data.getvalue())
        stream, stat = ctr.get_archive("/v/put.txt")
        assert stat["name"] == "put.txt" and stat["size"] == 3
        got = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
        assert got.extractfile("put.txt").read() == b"py\n"
        assert "sleep 600" in ctr.top()["Processes"][0][-1]
        stats = ctr.stats(stream=False)
        assert stats["pids_stats"]["current"] == 1 and stats["memory_stats"]["usage"] > 0
        assert {"Path": "/v", "Kind": 0} not in (ctr.diff() or [])
        ctr.exec_run(["touch", "/made"])
        assert {"Path": "/made", "Kind": 1} in ctr.diff()
        ctr.update(restart_policy={"Name": "unless-stopped"})
        ctr.reload()
        assert ctr.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        image = ctr.commit("pycommit", "1")
        assert "pycommit:1" in image.tags
        ctr.remove(force=True)
        assert client.containers.prune()["SpaceReclaimed"] >= 0
        client.containers.create("base", ["true"], name="keeps-base")  # base stays
        assert "pycommit:1" in str(client.images.prune(filters={"dangling": False}))
        assert [i.tags for i in client.images.list()] == [["base:latest"]]
        net.remove()
        vol.remove()
        with pytest.raises(dockerpy.errors.NotFound):
            client.volumes.get("pyvol")
        with pytest.raises(dockerpy.errors.NotFound):
            client.networks.get("pynet")
    finally:
        api_cli("rm", "-f", "py2", "keeps-base")
        api_cli("rmi", "pycommit:1")
        api_cli("volume", "rm", "pyvol")
        _cleanup_networks(api_cli)
        client.close()


def test_an_auxiliary_name_in_both_families_keeps_both_addresses(service, api_cli):
    """Each IPAM config of the API's create body has its own AuxiliaryAddresses: a name in
    the IPv4 one and the IPv6 one reserves both addresses (neither is given to a container)."""
    dockerpy = pytest.importorskip("docker")
    from docker.types import IPAMConfig, IPAMPool
    client = dockerpy.DockerClient(base_url=service.uri, version="auto")
    try:
        ipam = IPAMConfig(pool_configs=[
            IPAMPool(subnet="10.94.0.0/29", aux_addresses={"r": "10.94.0.2"}),
            IPAMPool(subnet="fd00:db8:c::/64", aux_addresses={"r": "fd00:db8:c::2"})])
        client.api.create_network("auxnet", ipam=ipam, enable_ipv6=True)
        confs = client.api.inspect_network("auxnet")["IPAM"]["Config"]
        assert [c.get("AuxiliaryAddresses") for c in confs] == [
            {"r": "10.94.0.2"}, {"r": "fd00:db8:c::2"}]
        ctr = client.containers.run("base", ["sleep", "600"], detach=True, name="auxc",
                                    network="auxnet")
        entry = client.api.inspect_container(ctr.id)["NetworkSettings"]["Networks"]["auxnet"]
        assert (entry["IPAddress"], entry["GlobalIPv6Address"]) == ("10.94.0.3",
                                                                    "fd00:db8:c::3")
    finally:
        api_cli("rm", "-f", "auxc")
        _cleanup_networks(api_cli)
        client.close()


def test_docker_py_network_endpoints(service, api_cli):
    """What docker-py's own suite reads back: IPAM as created (null Options stays null, the
    auxiliary addresses kept and never given to a container), a name with a space, the
    endpoint's aliases with the short ID (API 1.44, as dockerd's; the CLI's inspect shows the
    aliases as given), its driver options and MAC address, links that resolve for the linking
    container, and a running container connected again after it left its only network."""
    dockerpy = pytest.importorskip("docker")
    from docker.types import IPAMConfig, IPAMPool
    client = dockerpy.DockerClient(base_url=service.uri, version="auto")
    api = client.api
    try:
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.93.0.0/29", gateway="10.93.0.6",
                                                 aux_addresses={"r": "10.93.0.1"})])
        net_id = api.create_network("py net", ipam=ipam)["Id"]
        got = api.inspect_network("py net")["IPAM"]
        assert got["Options"] is None and got["Config"] == [{
            "Subnet": "10.93.0.0/29", "Gateway": "10.93.0.6",
            "AuxiliaryAddresses": {"r": "10.93.0.1"}}]
        ctr = client.containers.run(
            "base", ["sleep", "600"], detach=True, name="pyep", network="py net",
            mac_address="02:00:00:00:aa:01",
            networking_config={"py net": api.create_endpoint_config(
                aliases=["hello"], driver_opt={"k": "v"}, links=[("pyup", "bar")])})
        entry = ctr.attrs["NetworkSettings"]["Networks"]["py net"]  # as created
        assert entry["Aliases"] == ["hello", ctr.id[:12]]
        assert (entry["DriverOpts"], entry["Links"]) == ({"k": "v"}, ["pyup:bar"])
        ctr.reload()
        entry = ctr.attrs["NetworkSettings"]["Networks"]["py net"]
        assert entry["IPAddress"] == "10.93.0.2"  # .1 is reserved as an auxiliary address
        assert entry["MacAddress"] == "02:00:00:00:aa:01"
        assert b"02:00:00:00:aa:01" in ctr.exec_run(["ip", "link", "show", "eth0"]).output
        ours = json.loads(api_cli.ok("inspect", "pyep").out)[0]
        assert ours["NetworkSettings"]["Networks"]["py net"]["Aliases"] == ["hello"]
        up = client.containers.run("base", ["sleep", "600"], detach=True, name="pyup",
                                   network="py net")
        up_ip = api.inspect_container("pyup")["NetworkSettings"]["Networks"]["py net"][
            "IPAddress"]
        found = ctr.exec_run(["nslookup", "bar"])
        assert found.exit_code == 0 and up_ip.encode() in found.output, found.output
        assert b"can't find bar" in up.exec_run(["nslookup", "bar"]).output  # pyep's alone
        # left its only network while running, then back with an address of its choice
        api.disconnect_container_from_network("pyep", net_id)
        api.connect_container_to_network("pyep", net_id, ipv4_address="10.93.0.4")
        entry = api.inspect_container("pyep")["NetworkSettings"]["Networks"]["py net"]
        assert (entry["IPAMConfig"]["IPv4Address"], entry["IPAddress"]) == ("10.93.0.4",) * 2
        assert b"10.93.0.4" in ctr.exec_run(["ip", "-4", "addr"]).output
        found = ctr.exec_run(["ping", "-c", "1", "-W", "5", "pyup"])
        assert found.exit_code == 0, found.output
        # a created container joins with the MAC address asked for
        late = api.create_container("base", ["sleep", "600"], name="pylate")
        api.connect_container_to_network(late, net_id, mac_address="02:00:00:00:aa:02")
        assert api.inspect_container(late)["NetworkSettings"]["Networks"]["py net"][
            "MacAddress"] == "02:00:00:00:aa:02"
        with pytest.raises(dockerpy.errors.APIError) as info:
            api.create_container("base", ["true"], mac_address="01:00:00:00:00:01",
                                 host_config=api.create_host_config(network_mode="py net"))
        assert info.value.status_code == 400 and "multicast" in str(info.value)
        # the private namespace is Docker's "bridge": its endpoint's driver options shown
        # as given; what the CLI refuses (--link-local-ip) is refused, never dropped
        bridged = api.create_container(
            "base", ["true"], name="pybr", host_config=api.create_host_config(
                network_mode="bridge"), networking_config=api.create_networking_config(
                {"bridge": api.create_endpoint_config(driver_opt={"k": "v"})}))
        assert api.inspect_container(bridged)["NetworkSettings"]["Networks"]["bridge"][
            "DriverOpts"] == {"k": "v"}
        with pytest.raises(dockerpy.errors.APIError) as info:
            api.create_container("base", ["true"], networking_config=(
                api.create_networking_config({"bridge": api.create_endpoint_config(
                    link_local_ips=["169.254.8.8"])})))
        assert info.value.status_code == 400 and "--link-local-ip is not supported" in str(
            info.value)
        # legacy links on the host's network (the default): Docker's record and removal
        api.create_container("base", ["sleep", "600"], name="pyhost", environment={"A": "1"})
        api.start("pyhost")
        linker = api.create_container("base", ["env"], name="pylinker",
                                      host_config=api.create_host_config(
                                          links={"pyhost": "mylink"}))
        api.start(linker)
        assert api.wait(linker)["StatusCode"] == 0
        assert b"MYLINK_ENV_A=1\n" in api.logs(linker)
        assert api.inspect_container(linker)["HostConfig"]["Links"] == [
            "/pyhost:/pylinker/mylink"]
        api.remove_container("pylinker/mylink", link=True)
        assert api.inspect_container(linker)["HostConfig"]["Links"] is None
        for c in ("pyep", "pyup", "pylate", "pybr", "pyhost", "pylinker"):
            api.remove_container(c, force=True)
        api.remove_network("py net")
        with pytest.raises(dockerpy.errors.NotFound):
            api.inspect_network("py net")
    finally:
        api_cli("rm", "-f", "pyep", "pyup", "pylate", "pybr", "pyhost", "pylinker")
        _cleanup_networks(api_cli)
        client.close()


def test_a_client_leaving_events_or_stats_leaves_no_thread(service, docker):
    threads = lambda: len(os.listdir("/proc/%d/task" % service.proc.pid))  # noqa: E731
    before = threads()
    docker("run", "-d", "--name", "st", "base", "sleep", "600")
    clients = []
    for argv in (["docker", "events"], ["docker", "stats", "st"]):
        clients.append(subprocess.Popen(argv, env=dict(os.environ, DOCKER_HOST=service.uri),
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
    # an event for the first client, once its stream is open
    import select
    wait_for(lambda: docker("restart", "-t", "0", "st").returncode == 0 and
             select.select([clients[0].stdout], [], [], 1)[0], what="an event")
    assert clients[0].stdout.readline()
    assert clients[1].stdout.readline()
    for proc in clients:
        proc.kill()
        proc.wait()
    wait_for(lambda: threads() <= before, what="the streams' threads to end", timeout=30)
    assert request(service.path, "GET", "/_ping")[0] == 200
