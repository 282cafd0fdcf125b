"""User-defined networks: containers on one network reach each other by IP, name and alias,
with no tun device (a bridge in the per-user network holder, a veth per container).

What a user relies on: `network create/ls/inspect/rm/prune/connect/disconnect` as Docker's;
`run --network NAME [--network-alias] [--ip]`; busybox's wget and nslookup find a container by
name (DNS answered by the holder, scoped to the asker's networks; AAAA of a known name is an
empty NOERROR so nslookup exits 0); two networks are isolated; a restarted container is
reached by its name again; `-p` publishes a port of a container on a network; a holder killed
with `kill -9` is started again by the next command. Both id mappings. Real namespaces, the
real CLI, an unprivileged user.
"""

import json
import os
import signal
import struct
import sys
import time

import pytest

from conftest import Cli, assert_one_error, has_subuid, needs_userns
from rootless_box.ops.ports import outbound_helper
from test_ports import _outbound_reason, fetch, host_address

pytestmark = needs_userns

HTTPD = ("mkdir -p /www && echo hello-from-%s > /www/index.html && "
         "exec busybox httpd -f -p 80 -h /www")
# waits (for the server to listen) on a condition, not a time: retried until it answers
# (no `wget -T`: busybox 1.35's wget crashes with it on an address)
FETCH = "(for i in $(seq 200); do wget -q -O- http://%s/ && exit 0; sleep 0.05; done; exit 1)"


@pytest.fixture(params=["subuid", "single"])
def user(request, tmp_path, rootfs_tar):
    if request.param == "subuid" and not has_subuid():
        pytest.skip("needs /etc/subuid and /etc/subgid ranges and newuidmap")
    cli = Cli(str(tmp_path / "data"), env={"RBX_USERNS": request.param})
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    yield cli
    for cid in cli.ok("ps", "-a", "-q", "--no-trunc").out.split():
        cli("rm", "-f", cid)
    for name in cli.ok("network", "ls", "-q", "--filter", "type=custom",
                       "--format", "{{.Name}}").out.split():
        cli("network", "rm", name)  # the holder leaves once no network is left


def unreachable(cli, ctr, name, ip):
    """From ctr, `name` does not resolve and `ip` does not answer: a negative check that
    ends in seconds (no retries: a reachable address answers the first ping at once)."""
    proc = cli("exec", ctr, "sh", "-c", "nslookup %s; ping -c 1 -W 2 %s" % (name, ip))
    assert "can't find %s" % name in proc.out, proc.out
    assert " 0 packets received" in proc.out, proc.out


def holder_pid(cli):
    import glob
    for path in glob.glob(os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"),
                                       "rootless-box", "net-*", "holder.json")):
        st = os.stat(cli.root)
        if "-%x-%x-" % (st.st_dev, st.st_ino) in path:
            with open(path) as f:
                return json.load(f)["pid"]
    return None


def serve(cli, net, name, *extra):
    return cli.ok("run", "-d", "--name", name, "--network", net, *extra, "base", "sh", "-c",
                  HTTPD % name).out.strip()


def test_containers_reach_each_other_by_ip_name_and_alias(user):
    out = user.ok("network", "create", "app")
    assert len(out.out.strip()) == 64
    # without a usable tun device: one warning, saying why
    assert ("no way out" in out.err) == (outbound_helper() is None), out.err
    serve(user, "app", "web", "--network-alias", "www")
    info = json.loads(user.ok("inspect", "web").out)[0]
    entry = info["NetworkSettings"]["Networks"]["app"]
    assert entry["IPAddress"].startswith("172.") and entry["Gateway"].endswith(".1")
    assert entry["Aliases"] == ["www"]
    ip = entry["IPAddress"]
    script = " && ".join(FETCH % target for target in (ip, "web", "www", "web." +
                                                      "dns.rootless-box"))
    proc = user.ok("run", "--rm", "--network", "app", "base", "sh", "-c",
                   script + " && nslookup web && nslookup www")
    assert proc.out.count("hello-from-web") == 4
    assert ip in proc.out  # nslookup's answer (exit 0: AAAA was no NXDOMAIN)
    # unknown names: nslookup fails, nothing hangs
    assert user("run", "--rm", "--network", "app", "base", "nslookup",
                "nosuchcontainer").returncode != 0
    listed = user.ok("network", "inspect", "app").out
    net = json.loads(listed)[0]
    assert net["Name"] == "app" and net["Driver"] == "bridge"
    members = {v["Name"]: v["IPv4Address"] for v in net["Containers"].values()}
    assert members == {"web": ip + "/16"}


def test_networks_are_isolated_and_inspect_rm_prune(user):
    user.ok("network", "create", "--subnet", "10.77.0.0/24", "--ip-range", "10.77.0.128/25",
            "--label", "team=a", "one")
    user.ok("network", "create", "--internal", "two")
    serve(user, "one", "a1")
    info = json.loads(user.ok("inspect", "a1").out)[0]
    assert info["NetworkSettings"]["Networks"]["one"]["IPAddress"] == "10.77.0.128"
    assert info["HostConfig"]["NetworkMode"] == "one"
    # from another network (with a default route): neither the name nor the address
    user.ok("network", "create", "three")
    proc = user("run", "--rm", "--network", "three", "base", "sh", "-c",
                "nslookup a1; ping -c 1 -W 2 10.77.0.128")
    assert proc.returncode != 0 and "can't find a1" in proc.out
    assert " 0 packets received" in proc.out, proc.out
    # the same ping from its own network passes
    user.ok("run", "--rm", "--network", "one", "base", "ping", "-c", "1", "-W", "5", "a1")
    # --internal: no default route
    assert "default" not in user.ok("run", "--rm", "--network", "two", "base", "ip",
                                    "route").out
    # --ip
    out = user.ok("run", "--rm", "--network", "one", "--ip", "10.77.0.200", "base", "ip",
                  "addr").out
    assert "10.77.0.200/24" in out
    ls = user.ok("network", "ls").out.splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1] for line in ls[1:]] == ["bridge", "host", "none", "one", "three",
                                                       "two"]
    assert user.ok("network", "ls", "--filter", "label=team=a", "--format",
                   "{{.Name}}").out == "one\n"
    proc = user("network", "rm", "one")
    assert_one_error(proc, 1)
    assert "has active endpoints" in proc.err
    user.ok("rm", "-f", "a1")
    user.ok("network", "create", "four")
    assert user.ok("network", "prune", "-f", "--filter", "label=team=a").out.split() == [
        "Deleted", "Networks:", "one"]
    assert user.ok("system", "prune", "-f").out.startswith(
        "Deleted Networks:\nfour\nthree\ntwo\n")
    assert user.ok("network", "ls", "-q", "--filter", "type=custom").out == ""


def test_bad_input(user):
    user.ok("network", "create", "--subnet", "10.88.0.0/16", "n")
    for args, code, text in (
            (("network", "create", "n"), 1, "already exists"),
            (("network", "create", "--subnet", "10.88.4.0/24", "m"), 1, "overlaps"),
            (("network", "create", "--subnet", "10.89.0.0/16", "--gateway", "10.90.0.1",
              "m"), 1, "gateway"),
            (("network", "rm", "nope"), 1, "not found"),
            (("run", "--rm", "--network", "nope", "base", "true"), 125, "not found"),
            (("create", "--network", "n", "--ip", "10.99.0.5", "base"), 125, "subnet"),
            (("run", "--rm", "--ip", "10.88.0.5", "base", "true"), 125, "user defined"),
            (("run", "--rm", "--network-alias", "x", "base", "true"), 125, "user defined")):
        proc = user(*args)
        assert_one_error(proc, code)
        assert text in proc.err, (args, proc.err)
    assert user.ok("ps", "-a", "-q").out == ""  # nothing half made
    # a container on a user network has a user namespace of its own (nested in the
    # holder's): another container's pid/ipc/uts namespaces cannot be joined from it
    user.ok("run", "-d", "--name", "donor", "base", "sleep", "300")
    proc = user("run", "--rm", "--network", "n", "--pid", "container:donor", "base", "true")
    assert_one_error(proc, 125)
    assert "user-defined network" in proc.err
    assert user.ok("ps", "-a", "--format", "{{.Names}}").out.split() == ["donor"]


def test_connect_disconnect_restart_and_publish(user):
    user.ok("network", "create", "front")
    user.ok("network", "create", "back")
    port = _free_port()
    serve(user, "back", "db", "-p", "%d:80" % port)
    # -p publishes the port of a container on a user network (retried while its server
    # starts: the forwarder resets a connection made before it listens, as Docker's)
    assert fetch(port, "/", timeout=30) == b"hello-from-db\n"
    user.ok("run", "-d", "--name", "app", "--network", "front", "base", "sleep", "300")

    def reach(target):
        return user("exec", "app", "sh", "-c", FETCH % target)
    db_ip = json.loads(user.ok("inspect", "db").out)[0]["NetworkSettings"]["Networks"][
        "back"]["IPAddress"]
    unreachable(user, "app", "db", db_ip)
    user.ok("network", "connect", "--alias", "backend", "back", "app")
    assert "hello-from-db" in reach("db").out
    nets = json.loads(user.ok("inspect", "app").out)[0]["NetworkSettings"]["Networks"]
    assert set(nets) == {"front", "back"} and nets["back"]["Aliases"] == ["backend"]
    # the alias is the connected container's, on that network
    out = user.ok("exec", "db", "nslookup", "backend").out
    assert nets["back"]["IPAddress"] in out and nets["front"]["IPAddress"] not in out
    proc = user("network", "connect", "back", "app")
    assert_one_error(proc, 1)
    user.ok("network", "disconnect", "back", "app")
    unreachable(user, "app", "db", db_ip)
    # a restarted server is found by its name again
    user.ok("network", "connect", "back", "app")
    user.ok("restart", "-t", "1", "db")
    assert "hello-from-db" in reach("db").out


def test_several_networks_on_one_run(user):
    """`--network` repeated (Docker's CLI 25+): one interface per network, the long syntax's
    aliases and address per network, the default route through the first."""
    user.ok("network", "create", "--subnet", "10.61.0.0/24", "left")
    user.ok("network", "create", "--subnet", "10.62.0.0/24", "right")
    serve(user, "left", "lweb")
    serve(user, "right", "rweb")
    user.ok("run", "-d", "--name", "both", "--network", "left", "--network-alias", "l1",
            "--network", "name=right,alias=r1,alias=r2,ip=10.62.0.50", "base", "sleep", "300")
    nets = json.loads(user.ok("inspect", "both").out)[0]["NetworkSettings"]["Networks"]
    assert list(nets) == ["left", "right"]
    assert nets["left"]["Aliases"] == ["l1"] and nets["right"]["Aliases"] == ["r1", "r2"]
    assert nets["right"]["IPAddress"] == "10.62.0.50"
    left_ip = nets["left"]["IPAddress"]
    assert left_ip.startswith("10.61.0.")
    out = user.ok("exec", "both", "sh", "-c", "ip -o -4 addr; ip route; " + FETCH % "lweb" +
                  " && " + FETCH % "rweb").out
    addrs = {line.split()[1]: line.split()[3] for line in out.splitlines() if " inet " in line}
    assert addrs["eth0"] == left_ip + "/24" and addrs["eth1"] == "10.62.0.50/24", out
    assert "default via 10.61.0.1" in out
    assert "hello-from-lweb" in out and "hello-from-rweb" in out
    # each network's aliases answer on that network only, with that network's address
    out = user.ok("exec", "rweb", "sh", "-c", "nslookup r2 && nslookup both").out
    assert out.count("10.62.0.50") == 2 and left_ip not in out
    proc = user("exec", "lweb", "sh", "-c", "nslookup l1 && nslookup r1")
    assert left_ip in proc.out and "can't find r1" in proc.out
    # the two servers still cannot reach each other
    unreachable(user, "lweb", "rweb", "10.62.0.50")
    # bad input: one line, exit 125, nothing made
    for args, text in (
            (("--network", "left", "--network", "left"), 'network "left" is specified'),
            (("--network", "left", "--network", "host"), "conflicting options"),
            (("--network", "name=left,color=red"), "invalid field key color"),
            (("--network", "alias=x"), "network name/id is not specified"),
            (("--network", "name=left,alias=a", "--network-alias", "b"),
             "cannot specify both --network-alias and per-network alias"),
            (("--network", "left", "--network", "name=right,ip=10.99.0.1"), "subnet"),
            (("--network", "left", "--network", "nope"), "not found")):
        proc = user("run", "--rm", "--name", "bad", *args, "base", "true")
        assert_one_error(proc, 125)
        assert text in proc.err, (args, proc.err)
    assert "bad" not in user.ok("ps", "-a", "--format", "{{.Names}}").out.split()


def test_connect_a_container_of_another_network_mode(user):
    """A created container (any mode but none/container:) joins a user network and is wired
    at its start; a running one outside user networks is refused: its user namespace is
    not nested in the holder's, so no veth can reach it without a restart."""
    user.ok("network", "create", "net")
    serve(user, "net", "srv")
    user.ok("create", "--name", "late", "base", "sh", "-c", HTTPD % "late")
    user.ok("network", "connect", "--alias", "tardy", "net", "late")
    info = json.loads(user.ok("inspect", "late").out)[0]
    assert info["HostConfig"]["NetworkMode"] == "net"
    assert info["NetworkSettings"]["Networks"]["net"]["Aliases"] == ["tardy"]
    user.ok("start", "late")
    out = user.ok("exec", "srv", "sh", "-c", FETCH % "late" + " && " + FETCH % "tardy").out
    assert out.count("hello-from-late") == 2
    assert "hello-from-srv" in user.ok("exec", "late", "sh", "-c", FETCH % "srv").out
    # running, on the host's network (the default) or its own (-p / bridge): refused
    user.ok("run", "-d", "--name", "hosted", "base", "sleep", "300")
    user.ok("run", "-d", "--name", "bridged", "--network", "bridge", "base", "sleep", "300")
    for name, mode in (("hosted", "host"), ("bridged", "private")):
        proc = user("network", "connect", "net", name)
        assert_one_error(proc, 1)
        assert "network mode %s" % mode in proc.err and "--network net" in proc.err
        info = json.loads(user.ok("inspect", name).out)[0]
        assert info["HostConfig"]["NetworkMode"] == mode and info["State"]["Running"]
        # Docker's name for the private namespace is "bridge", as users ask for it
        assert list(info["NetworkSettings"]["Networks"]) == [
            "bridge" if mode == "private" else mode]
    user.ok("create", "--name", "nonet", "--network", "none", "base", "true")
    proc = user("network", "connect", "net", "nonet")
    assert_one_error(proc, 1)
    assert "none" in proc.err


def test_mac_address_links_and_joining_again(user):
    """--mac-address is the veth's address, kept at a restart; --link NAME:ALIAS on a user
    network resolves ALIAS to NAME for the linking container alone, though NAME started
    after it; a running container that left its only network joins it again, with the
    address asked for; a network's name may hold a space; outside user networks both flags
    are refused, nothing made."""
    user.ok("network", "create", "--subnet", "10.62.0.0/24", "my net")
    user.ok("run", "-d", "--name", "c", "--network", "my net", "--mac-address",
            "02:00:00:00:aa:01", "--link", "up:bar", "base", "sleep", "300")
    serve(user, "my net", "up")
    serve(user, "my net", "other")
    up_ip = json.loads(user.ok("inspect", "up").out)[0]["NetworkSettings"]["Networks"][
        "my net"]["IPAddress"]
    assert up_ip in user.ok("exec", "c", "nslookup", "bar").out
    assert "hello-from-up" in user.ok("exec", "c", "sh", "-c", FETCH % "bar").out
    assert "can't find bar" in user("exec", "other", "nslookup", "bar").out
    user.ok("restart", "-t", "0", "c")
    entry = json.loads(user.ok("inspect", "c").out)[0]["NetworkSettings"]["Networks"][
        "my net"]
    assert (entry["MacAddress"], entry["Links"]) == ("02:00:00:00:aa:01", ["up:bar"])
    assert "02:00:00:00:aa:01" in user.ok("exec", "c", "ip", "link", "show", "eth0").out
    user.ok("network", "disconnect", "my net", "c")
    user.ok("network", "connect", "--ip", "10.62.0.99", "my net", "c")
    assert "10.62.0.99/24" in user.ok("exec", "c", "ip", "-4", "addr", "show").out
    assert "hello-from-up" in user.ok("exec", "c", "sh", "-c", FETCH % "up").out
    for args, words in ((("--network", "bridge", "--link", "up:bar"),
                         "--link is not supported with network mode bridge"),
                        (("--mac-address", "02:00:00:00:aa:02"),
                         "--mac-address is not supported with network mode host")):
        proc = user("run", "--rm", *args, "base", "true")
        assert_one_error(proc, 125)
        assert words in proc.err, proc.err
    proc = user("run", "--rm", "--network", "my net", "--mac-address", "01:00:00:00:00:01",
                "base", "true")
    assert_one_error(proc, 125)
    assert "multicast" in proc.err
    assert sorted(user.ok("ps", "-a", "--format", "{{.Names}}").out.split()) == [
        "c", "other", "up"]


def test_legacy_links_on_the_hosts_network(user):
    """`--link NAME:ALIAS` between containers on the host's network (the default here): they
    share its loopback, so ALIAS is 127.0.0.1 in /etc/hosts, with Docker's link environment
    (NAME, PORT*, ENV_*); `rm --link CTR/ALIAS` drops it from the record; a link to a missing
    container or to one in a private namespace is refused, nothing made."""
    user.ok("run", "-d", "--name", "srv", "-e", "FOO=1", "--expose", "8080", "base",
            "sleep", "300")
    out = user.ok("run", "--name", "lnk", "--link", "srv:db", "base", "sh", "-c",
                  "env | grep ^DB_ | sort; grep -w db /etc/hosts").out
    for line in ("DB_ENV_FOO=1", "DB_NAME=/lnk/db", "DB_PORT=tcp://127.0.0.1:8080",
                 "DB_PORT_8080_TCP_ADDR=127.0.0.1", "DB_PORT_8080_TCP_PORT=8080",
                 "127.0.0.1\tdb srv"):
        assert line + "\n" in out, out
    assert "DB_ENV_PATH" not in out
    assert json.loads(user.ok("inspect", "lnk").out)[0]["HostConfig"]["Links"] == [
        "/srv:/lnk/db"]
    assert user.ok("rm", "--link", "lnk/db").out == "lnk/db\n"
    assert json.loads(user.ok("inspect", "lnk").out)[0]["HostConfig"]["Links"] is None
    proc = user("rm", "--link", "lnk/db")
    assert_one_error(proc, 1)
    assert "Could not find the link lnk/db" in proc.err
    user.ok("run", "-d", "--name", "priv", "--network", "private", "base", "sleep", "300")
    # the private namespace is Docker's "bridge" in ps as in inspect
    assert user.ok("ps", "--filter", "name=priv", "--format", "{{.Networks}}").out == \
        "bridge\n"
    assert list(json.loads(user.ok("inspect", "priv").out)[0]["NetworkSettings"][
        "Networks"]) == ["bridge"]
    for target, words in (("nope:x", "could not get container for nope"),
                          ("priv:x", "cannot link to priv")):
        proc = user("run", "--rm", "--link", target, "base", "true")
        assert_one_error(proc, 125)
        assert words in proc.err, proc.err
    assert sorted(user.ok("ps", "-a", "--format", "{{.Names}}").out.split()) == [
        "lnk", "priv", "srv"]


def test_container_killed_while_being_connected(user):
    """A container killed while `network connect` wires it: the command ends with success
    (connected as a stopped container is) or one error line, and no veth or name of it
    is left; started again, it is on both networks."""
    import subprocess
    user.ok("network", "create", "one")
    user.ok("network", "create", "two")
    serve(user, "two", "peer")
    for attempt in range(4):
        name = "victim%d" % attempt
        user.ok("run", "-d", "--name", name, "--network", "one", "base", "sleep", "300")
        pid = json.loads(user.ok("inspect", name).out)[0]["State"]["Pid"]
        proc = subprocess.Popen(user.argv("network", "connect", "two", name),
                                env=user.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.08 * attempt)  # a different point of the connect each time
        os.kill(pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 1), err
        assert b"Traceback" not in err and len(err.splitlines()) <= 2, err
        deadline = time.monotonic() + 30
        while json.loads(user.ok("inspect", name).out)[0]["State"]["Running"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # no veth of it in the holder's namespace (the kernel tears a dead namespace's
        # veths down asynchronously: waited for), so no name answers for it
        short = json.loads(user.ok("inspect", name).out)[0]["Id"][:9]
        while short in _holder_links(user):
            assert time.monotonic() < deadline, _holder_links(user)
            time.sleep(0.05)
        proc = user("exec", "peer", "nslookup", name)
        assert "can't find" in proc.out, proc.out
        nets = json.loads(user.ok("inspect", name).out)[0]["NetworkSettings"]["Networks"]
        if proc.returncode == 0:
            assert set(nets) == {"one", "two"}
    # the last one, started again, is wired to each network it is recorded on
    user.ok("start", name)
    nets = json.loads(user.ok("inspect", name).out)[0]["NetworkSettings"]["Networks"]
    if "two" in nets:
        assert "hello-from-peer" in user.ok("exec", name, "sh", "-c", FETCH % "peer").out
    user.ok("exec", name, "ping", "-c", "1", "-W", "5", nets["one"]["Gateway"])


# the real CLI (or service) with one fault injected: os.open of the path named in
# RBX_TEST_NETNS_FAILS fails with EACCES, as opening a live container's network namespace
# would if the kernel refused it (it does not for the namespace's owner, so it cannot be
# made to happen for real here); everything else runs unchanged
NETNS_FAILS = """
import errno, os, runpy, sys
_real_open, _doomed = os.open, os.environ["RBX_TEST_NETNS_FAILS"]
def _open(path, *args, **kw):
    if path == _doomed:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    return _real_open(path, *args, **kw)
os.open = _open
runpy.run_module("rootless_box", run_name="__main__", alter_sys=True)
"""


class NetnsFails(Cli):
    def argv(self, *args):
        return [sys.executable, "-c", NETNS_FAILS] + [str(a) for a in args]


def _holder_files(cli):
    """The holder's pid and its DNS table's text."""
    import glob
    pid = holder_pid(cli)
    st = os.stat(cli.root)
    [table] = glob.glob(os.path.join(os.environ["XDG_RUNTIME_DIR"], "rootless-box",
                                     "net-%x-%x-*" % (st.st_dev, st.st_ino), "dns.json"))
    with open(table) as f:
        return pid, f.read()


def test_connect_refused_when_a_live_containers_namespace_cannot_be_opened(user, tmp_path):
    """`network connect` of a running container whose network namespace cannot be opened
    (the process still the container's): one error line and exit 1 (the API: Docker's JSON
    error, 500), and nothing changed: not on the network in either inspect, the holder,
    its links and its DNS table as they were; a later connect works."""
    from test_api import Service, request
    user.ok("network", "create", "one")
    user.ok("network", "create", "two")
    serve(user, "two", "peer")
    user.ok("run", "-d", "--name", "ctr", "--network", "one", "base", "sleep", "300")
    info = json.loads(user.ok("inspect", "ctr").out)[0]
    path = "/proc/%d/ns/net" % info["State"]["Pid"]
    faulty = NetnsFails(user.data_home, env={"RBX_USERNS": user.env["RBX_USERNS"],
                                             "RBX_TEST_NETNS_FAILS": path})
    before, links = _holder_files(user), _holder_links(user)

    def unchanged():
        nets = json.loads(user.ok("inspect", "ctr").out)[0]["NetworkSettings"]["Networks"]
        assert set(nets) == {"one"}
        members = json.loads(user.ok("network", "inspect", "two").out)[0]["Containers"]
        assert [m["Name"] for m in members.values()] == ["peer"]
        assert _holder_files(user) == before and _holder_links(user) == links  # no veth

    proc = faulty("network", "connect", "two", "ctr")
    assert_one_error(proc, 1)
    assert "network namespace" in proc.err and "Permission denied" in proc.err, proc.err
    unchanged()
    # the Engine API's front end: Docker's JSON error, nothing changed either
    service = Service(faulty, str(tmp_path / "api.sock"))
    try:
        assert "listening on" in service.banner, service.banner
        status, _headers, body = request(service.path, "POST", "/v1.44/networks/two/connect",
                                         {"Container": "ctr"})
        assert status == 500 and "network namespace" in json.loads(body)["message"], body
    finally:
        service.stop()
    unchanged()
    user.ok("network", "connect", "two", "ctr")
    assert "hello-from-peer" in user.ok("exec", "ctr", "sh", "-c", FETCH % "peer").out


def _holder_links(cli):
    """Names of the links in the holder's network namespace (its /proc/PID/net/dev)."""
    with open("/proc/%d/net/dev" % holder_pid(cli)) as f:
        return " ".join(line.split(":")[0].strip() for line in f.readlines()[2:])


def test_holder_killed_with_a_foreground_container_running(user):
    """`kill -9` of the holder while a foreground (not detached) container serves: the next
    command wires it back as it does a detached one."""
    import subprocess
    user.ok("network", "create", "n")
    fg = subprocess.Popen(user.argv("run", "--rm", "--name", "fg", "--network", "n", "base",
                                    "sh", "-c", HTTPD % "fg"),
                          env=user.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # started at once with fg: each gets an address of its own
        proc = user.ok("run", "--rm", "--network", "n", "base", "sh", "-c", FETCH % "fg")
        assert "hello-from-fg" in proc.out
        first = holder_pid(user)
        os.kill(first, signal.SIGKILL)
        proc = user.ok("run", "--rm", "--network", "n", "base", "sh", "-c", FETCH % "fg")
        assert "hello-from-fg" in proc.out and holder_pid(user) != first
        assert fg.poll() is None  # the foreground run still waits on its container
    finally:
        user("kill", "fg")
        fg.communicate(timeout=60)
    assert fg.returncode == 137


def test_holder_killed_is_started_again_and_rewires_running_containers(user):
    user.ok("network", "create", "--ipv6", "--subnet", "fd00:db8:4::/64", "n")
    serve(user, "n", "w")
    ip = json.loads(user.ok("inspect", "w").out)[0]["NetworkSettings"]["Networks"]["n"][
        "IPAddress"]
    first = holder_pid(user)
    assert first
    os.kill(first, signal.SIGKILL)
    # the next command starts a new holder, wires `w` (still running) to it with its
    # addresses (IPv6 too), and the name answers again
    proc = user.ok("run", "--rm", "--network", "n", "base", "sh", "-c",
                   FETCH % "w" + " && " + FETCH % "[fd00:db8:4::2]")
    assert proc.out == "hello-from-w\n" * 2, proc.out
    second = holder_pid(user)
    assert second not in (None, first)
    info = json.loads(user.ok("inspect", "w").out)[0]
    assert info["State"]["Running"] and \
        info["NetworkSettings"]["Networks"]["n"]["IPAddress"] == ip
    # a holder started by `run` (whose signal forwarder it was forked from) still ends on
    # SIGTERM; the next command starts and wires one again
    os.kill(second, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _running(second) and time.monotonic() < deadline:
        time.sleep(0.05)  # until it is gone (a condition, not a time)
    assert not _running(second)
    proc = user.ok("run", "--rm", "--network", "n", "base", "sh", "-c", FETCH % "w")
    assert "hello-from-w" in proc.out and holder_pid(user) != second


def test_twenty_containers_on_one_network(user):
    user.ok("network", "create", "many")
    for i in range(20):
        user.ok("run", "-d", "--name", "c%d" % i, "--network", "many", "base", "sleep", "300")
    proc = user.ok("run", "--rm", "--network", "many", "base", "sh", "-c",
                   "for i in $(seq 0 19); do ping -c 1 -W 2 c$i >/dev/null || exit 1; done")
    assert proc.returncode == 0


def _state_dirs(cli):
    """The holder runtime dirs ($XDG_RUNTIME_DIR/rootless-box/net-*) of cli's store."""
    import glob
    st = os.stat(cli.root)
    return [path for path in glob.glob(os.path.join(
        os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "rootless-box", "net-*"))
        if "-%x-%x-" % (st.st_dev, st.st_ino) in path]


def test_holder_runtime_dirs_do_not_pile_up(user, tmp_path, request):
    """The holder's runtime dir goes with it: when it leaves (the store's last network
    removed by rm, prune or system prune), and a killed one's at the next holder start of
    any store; a network removed with no holder makes none."""
    from conftest import wait_for
    user.ok("network", "create", "n")
    user.ok("network", "rm", "n")
    assert _state_dirs(user) == []
    for remove in (("network", "rm", "n"), ("network", "prune", "-f"),
                   ("system", "prune", "-f")):
        user.ok("network", "create", "n")
        user.ok("run", "--rm", "--network", "n", "base", "true")
        pid = holder_pid(user)
        assert pid and len(_state_dirs(user)) == 1
        user.ok(*remove)
        wait_for(lambda: not _state_dirs(user) and not _running(pid), 30,
                 "the holder and its runtime dir to go after %s" % " ".join(remove))
    # killed: its dir stays until the next holder start, here another store's
    user.ok("network", "create", "n")
    serve(user, "n", "web")
    killed = _state_dirs(user)
    os.kill(holder_pid(user), signal.SIGKILL)
    other = Cli(str(tmp_path / "other"), env={"RBX_USERNS": request.node.callspec.params[
        "user"]})
    other.ok("import", "-c", 'CMD ["sh"]', request.getfixturevalue("rootfs_tar"),
             "base:latest")
    other.ok("network", "create", "m")
    try:
        other.ok("run", "--rm", "--network", "m", "base", "true")
        assert len(_state_dirs(other)) == 1 and not any(map(os.path.exists, killed))
        # the first store's running container, whose holder.json went with the sweep, is
        # wired to the next holder of its store and found by its name again
        assert "hello-from-web" in user.ok("run", "--rm", "--network", "n", "base", "sh",
                                           "-c", FETCH % "web").out
    finally:
        other("network", "rm", "m")


def _lowest_port(net_fd, bridge, add):
    """In the holder (a child entered in its U0): add or remove a port of `bridge` with
    the lowest unicast MAC there is, as a new container's veth may happen to have."""
    import socket
    from rootless_box.userns import libc
    from rootless_box.userns import netlink as nlk
    libc.setns(net_fd, libc.CLONE_NEWNET)
    with nlk.Netlink() as nl:
        if not add:
            nl.delete("rbxlow")
            return
        peer = nlk._IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + \
            nlk._attr(nlk.IFLA_IFNAME, "rbxlowp")
        body = nlk._IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + \
            nlk._attr(nlk.IFLA_IFNAME, "rbxlow") + \
            nlk._attr(nlk.IFLA_ADDRESS, bytes.fromhex("000000000001")) + \
            nlk._attr(nlk.IFLA_MASTER, struct.pack("=I", socket.if_nametoindex(bridge))) + \
            nlk._attr(nlk.IFLA_LINKINFO, nlk._attr(nlk.IFLA_INFO_KIND, "veth") + nlk._attr(
                nlk.IFLA_INFO_DATA, nlk._attr(nlk.VETH_INFO_PEER, peer)))
        nl.request(nlk.RTM_NEWLINK, body, nlk.NLM_F_CREATE | nlk.NLM_F_EXCL)


def test_names_answer_after_the_port_with_the_lowest_mac_left(user):
    """The gateway (the holder's DNS) keeps one MAC while containers come and go. A Linux
    bridge with no MAC of its own takes the lowest of its ports': a container that learnt
    it, then saw that port's container leave, sent its questions to a MAC nobody had and
    got no answer for as long as its ARP entry lived (intermittent: veths' MACs are
    random). Here the port with the lowest MAC is made to leave on purpose."""
    from rootless_box.userns import netholder
    user.ok("network", "create", "n")
    serve(user, "n", "web")
    bridge = "rb-" + json.loads(user.ok("network", "inspect", "n").out)[0]["Id"][:12]
    netholder.enter_and(holder_pid(user), _lowest_port, bridge, True)
    user.ok("run", "-d", "--name", "asker", "--network", "n", "base", "sleep", "300")
    user.ok("exec", "asker", "nslookup", "web")  # its ARP entry for the gateway is made
    netholder.enter_and(holder_pid(user), _lowest_port, bridge, False)
    proc = user("exec", "asker", "nslookup", "web")  # at once: no retries, no waiting
    assert proc.returncode == 0 and "Address" in proc.out.split("Name:")[-1], proc.out


@pytest.mark.parametrize("helper", ["pasta", "slirp4netns"])
def test_outbound_through_the_holders_uplink(user, helper, tmp_path):
    """Where /dev/net/tun opens, the holder's namespace gets an uplink (pasta or
    slirp4netns) and forwards a non-internal network's traffic out, masqueraded; networks
    stay isolated from each other and an --internal one stays closed even with a route."""
    import subprocess
    import sys
    reason = _outbound_reason(helper)
    if reason:
        pytest.skip(reason)
    env = {"RBX_OUTBOUND": helper}
    out = user.ok("network", "create", "out", env=env)
    assert "no way out" not in out.err
    user.ok("network", "create", "--internal", "closed", env=env)
    user.ok("network", "create", "other", env=env)
    other_ip = json.loads(user.ok("inspect", serve(user, "other", "o1")).out)[0][
        "NetworkSettings"]["Networks"]["other"]["IPAddress"]
    (tmp_path / "hello.txt").write_text("from-the-host\n")
    server = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "-b", "0.0.0.0",
                               "-d", str(tmp_path), "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        # "Serving HTTP on 0.0.0.0 port N ...": listening once it says so
        port = int(server.stdout.readline().split(b" port ")[1].split()[0])
        url = "http://%s:%d/hello.txt" % (host_address(), port)
        proc = user.ok("run", "--rm", "--network", "out", "base", "wget", "-qO-", url,
                       env=env)
        assert proc.out == "from-the-host\n"
        gateway = json.loads(user.ok("network", "inspect", "closed").out)[0]["IPAM"][
            "Config"][0]["Gateway"]
        proc = user("run", "--rm", "--network", "closed", "--cap-add", "NET_ADMIN", "base",
                    "sh", "-c", "ip route add default via %s && ip route && "
                    "timeout 3 wget -qO- %s; echo status=$?" % (gateway, url), env=env)
        # the route is there, the same fetch that passed from `out` does not
        assert "default via " + gateway in proc.out, proc.out + proc.err
        assert "from-the-host" not in proc.out and "status=0" not in proc.out and \
            "status=127" not in proc.out, proc.out
        proc = user("run", "--rm", "--network", "out", "base", "ping", "-c", "1", "-W",
                    "2", other_ip, env=env)
        assert " 0 packets received" in proc.out, proc.out
    finally:
        server.kill()
        server.wait()


def _running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_libc_resolver_finds_names_in_debian(cli, debian_image, rootfs_tar):
    """glibc's resolver (getent hosts) asks the holder's DNS, search domain included."""
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    cli.ok("network", "create", "deb")
    try:
        cli.ok("run", "-d", "--name", "dweb", "--network", "deb", "--network-alias", "api",
               "base", "sleep", "300")
        ip = json.loads(cli.ok("inspect", "dweb").out)[0]["NetworkSettings"]["Networks"][
            "deb"]["IPAddress"]
        out = cli.ok("run", "--rm", "--network", "deb", debian_image, "sh", "-c",
                     "getent hosts dweb && getent hosts api && getent ahostsv4 dweb").out
        assert out.count(ip) >= 3, out
        assert cli("run", "--rm", "--network", "deb", debian_image, "getent", "hosts",
                   "nosuchname").returncode == 2
        # over TCP (glibc's `options use-vc`, as after a truncated answer): served too
        proc = cli.ok("run", "--rm", "--network", "deb", "--dns-option", "use-vc",
                      debian_image, "sh", "-c", "cat /etc/resolv.conf; getent hosts api")
        assert "options use-vc" in proc.out and ip in proc.out, proc.out
    finally:
        cli("rm", "-f", "dweb")
        cli("network", "rm", "deb")


def test_a_network_made_right_after_one_was_removed_answers_names(user):
    """Its subnet is the removed one's: the old bridge (same gateway address) must be gone
    from the holder, or the DNS answers go out through it (compose down, then up of another
    project, within the holder's lifetime)."""
    user.ok("network", "create", "first")
    user.ok("run", "--rm", "--network", "first", "base", "true")  # its bridge is made
    user.ok("network", "rm", "first")
    user.ok("network", "create", "second")
    serve(user, "second", "named")
    out = user.ok("run", "--rm", "--network", "second", "base", "sh", "-c",
                  FETCH % "named").out
    assert out == "hello-from-named\n"


# -- IPv6 ---------------------------------------------------------------------------------------

def test_ipv6_network_addresses_names_and_reach(user):
    """`network create --ipv6` with an IPv4 and an IPv6 subnet: each container gets both
    families (a fixed --ip6, or the lowest free), inspect shows them as Docker's, the holder
    answers AAAA for names and aliases, and containers reach each other over IPv6."""
    user.ok("network", "create", "--ipv6", "--subnet", "fd00:db8:1::/64", "--subnet",
            "10.66.0.0/24", "v6net")
    net = json.loads(user.ok("network", "inspect", "v6net").out)[0]
    assert net["EnableIPv6"] is True
    assert net["IPAM"]["Config"] == [{"Subnet": "10.66.0.0/24", "Gateway": "10.66.0.1"},
                                     {"Subnet": "fd00:db8:1::/64", "Gateway": "fd00:db8:1::1"}]
    assert user.ok("network", "ls", "--filter", "name=v6net", "--format",
                   "{{.Name}} {{.IPv6}}").out == "v6net true\n"
    serve(user, "v6net", "web", "--ip6", "fd00:db8:1::80", "--network-alias", "www")
    entry = json.loads(user.ok("inspect", "web").out)[0]["NetworkSettings"]["Networks"]["v6net"]
    assert entry["IPAMConfig"] == {"IPv6Address": "fd00:db8:1::80"}
    assert (entry["GlobalIPv6Address"], entry["GlobalIPv6PrefixLen"], entry["IPv6Gateway"]) \
        == ("fd00:db8:1::80", 64, "fd00:db8:1::1")
    assert entry["IPAddress"] == "10.66.0.2"
    user.ok("run", "-d", "--name", "peer", "--network", "v6net", "base", "sleep", "600")
    peer = json.loads(user.ok("inspect", "peer").out)[0]["NetworkSettings"]["Networks"]
    assert peer["v6net"]["GlobalIPv6Address"] == "fd00:db8:1::2"  # the lowest free one
    members = {v["Name"]: v["IPv6Address"] for v in json.loads(
        user.ok("network", "inspect", "v6net").out)[0]["Containers"].values()}
    assert members == {"web": "fd00:db8:1::80/64", "peer": "fd00:db8:1::2/64"}
    # the interface has it, and no v6 default route: no uplink carries IPv6, so an outside
    # v6 address fails at once (the client goes on to IPv4) instead of timing out
    out = user.ok("exec", "peer", "sh", "-c", "ip -6 addr show eth0; ip -6 route").out
    assert "fd00:db8:1::2/64" in out and "default" not in out, out
    proc = user("exec", "peer", "ping", "-c", "1", "-W", "60", "2001:db8:ff::1")
    assert proc.returncode != 0 and "unreachable" in (proc.out + proc.err).lower(), proc
    # AAAA for the name and the alias (A still answers the IPv4 one), a connection over v6
    out = user.ok("exec", "peer", "sh", "-c",
                  "nslookup -type=AAAA web && nslookup -type=AAAA www && nslookup -type=A web"
                  " && " + FETCH % "[fd00:db8:1::80]" + " && ping -c 1 -W 5 fd00:db8:1::80"
                  ).out
    assert out.count("Address: fd00:db8:1::80") == 2, out  # web and www, as AAAA
    assert "Address: 10.66.0.2" in out, out
    assert "hello-from-web" in out and " 1 packets received" in out, out
    # connect --ip6: a container of an IPv4-only network joins this one with a fixed address
    user.ok("network", "create", "--subnet", "10.67.0.0/24", "v4only")
    serve(user, "v4only", "other")
    user.ok("network", "connect", "--ip6", "fd00:db8:1::90", "v6net", "other")
    entry = json.loads(user.ok("inspect", "other").out)[0]["NetworkSettings"]["Networks"]
    assert entry["v6net"]["GlobalIPv6Address"] == "fd00:db8:1::90"
    assert entry["v4only"]["GlobalIPv6Address"] == ""
    out = user.ok("exec", "peer", "sh", "-c", FETCH % "[fd00:db8:1::90]").out
    assert out == "hello-from-other\n"


def test_ipv6_bad_input_and_defaults(user):
    """Docker's errors for an --ip6 outside the subnet or on a network without IPv6 (one
    line, 125 for run/create, 1 for connect, nothing made); an IPv6 subnet without --ipv6
    is dockerd 28's half-way (with a warning); --ipv6 alone gets a ULA /64."""
    user.ok("network", "create", "--ipv6", "--subnet", "fd00:db8:7::/64", "v6")
    user.ok("network", "create", "v4")
    user.ok("network", "create", "v4b")
    user.ok("create", "--name", "idle", "--network", "v4", "base", "true")
    for args, code, text in (
            (("run", "--rm", "--network", "v6", "--ip6", "fd00:dead::5", "base", "true"),
             125, "no configured subnet contains IP address fd00:dead::5"),
            (("create", "--network", "v4", "--ip6", "fd00:db8:7::5", "base"), 125,
             "no configured subnet contains IP address fd00:db8:7::5"),
            (("run", "--rm", "--network", "v6", "--ip6", "zz", "base", "true"), 125,
             "invalid IPv6 address: zz"),
            (("run", "--rm", "--ip6", "fd00:db8:7::5", "base", "true"), 125, "user defined"),
            (("network", "connect", "--ip6", "fd00:db8:7::5", "v4b", "idle"), 1,
             "no configured subnet contains IP address"),
            (("network", "create", "--ipv6", "--subnet", "fd00:db8:7:0:1::/80", "m"), 1,
             "overlaps"),
            (("network", "create", "--ipv6", "--subnet", "fd00:db8:8::/64", "--gateway",
              "fd00:db8:9::1", "m"), 1, "gateway"),
            (("network", "create", "--ipv6", "--subnet", "fd00:db8:8::/127", "m"), 1,
             "IPv6 CIDR")):
        proc = user(*args)
        assert_one_error(proc, code)
        assert text in proc.err, (args, proc.err)
    assert user.ok("ps", "-a", "-q").out.split() == [
        user.ok("inspect", "-f", "{{.Id}}", "idle").out.strip()[:12]]
    assert list(json.loads(user.ok("inspect", "-f", "{{json .NetworkSettings.Networks}}",
                                   "idle").out)) == ["v4"]  # the refused connect left none
    # an IPv6 subnet without --ipv6, as dockerd 28: kept in IPAM, a static --ip6 in it is
    # recorded, no address given (and a warning saying so)
    out = user.ok("network", "create", "--subnet", "fd00:db8:5::/64", "nov6")
    assert "IPv6 is not enabled: the IPv6 subnet fd00:db8:5::/64 gives" in out.err, out.err
    net = json.loads(user.ok("network", "inspect", "nov6").out)[0]
    assert net["EnableIPv6"] is False
    assert net["IPAM"]["Config"][1] == {"Subnet": "fd00:db8:5::/64", "Gateway": "fd00:db8:5::1"}
    user.ok("run", "-d", "--name", "half", "--network", "nov6", "--ip6", "fd00:db8:5::9",
            "base", "sleep", "600")
    entry = json.loads(user.ok("inspect", "half").out)[0]["NetworkSettings"]["Networks"]["nov6"]
    assert entry["IPAMConfig"] == {"IPv6Address": "fd00:db8:5::9"}
    assert (entry["GlobalIPv6Address"], entry["IPv6Gateway"]) == ("", "")
    assert "fd00" not in user.ok("exec", "half", "ip", "-6", "addr").out
    user.ok("network", "create", "--ipv6", "ula")
    conf = json.loads(user.ok("network", "inspect", "ula").out)[0]["IPAM"]["Config"]
    subnet = conf[1]["Subnet"]
    assert subnet.startswith("fd") and subnet.endswith("::/64"), conf
    out = user.ok("run", "--rm", "--network", "ula", "base", "ip", "-6", "addr").out
    assert subnet[:-len("/64")] + "2/64" in out, out
