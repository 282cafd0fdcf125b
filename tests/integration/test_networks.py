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
import time
import urllib.request

import pytest

from conftest import Cli, assert_one_error, has_subuid, needs_userns

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
    assert "no way out" in out.err  # no tun here: one warning, saying why
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
    # -p publishes the port of a container on a user network
    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as resp:
        assert resp.read() == b"hello-from-db\n"
    user.ok("run", "-d", "--name", "app", "--network", "front", "base", "sleep", "300")

    def reach(target):
        return user("exec", "app", "sh", "-c", FETCH % target)
    assert reach("db").returncode != 0
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
    assert reach("db").returncode != 0
    # a restarted server is found by its name again
    user.ok("network", "connect", "back", "app")
    user.ok("restart", "-t", "1", "db")
    assert "hello-from-db" in reach("db").out


def test_holder_killed_is_started_again_and_rewires_running_containers(user):
    user.ok("network", "create", "n")
    serve(user, "n", "w")
    ip = json.loads(user.ok("inspect", "w").out)[0]["NetworkSettings"]["Networks"]["n"][
        "IPAddress"]
    first = holder_pid(user)
    assert first
    os.kill(first, signal.SIGKILL)
    # the next command starts a new holder, wires `w` (still running) to it with its
    # address, and the name answers again
    proc = user.ok("run", "--rm", "--network", "n", "base", "sh", "-c", FETCH % "w")
    assert "hello-from-w" in proc.out
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
