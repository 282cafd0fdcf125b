"""User networks' pure parts: Docker's create rules (subnets, overlap, gateway, ip-range),
address allocation, and the DNS responder's answers (scope by the asker's networks, AAAA of
a known name as an empty NOERROR, the search domain stripped) on real packets."""

import json
import os
import socket
import struct

import pytest

from rootless_box.errors import Conflict, UsageError
from rootless_box.ops import networks
from rootless_box.store import Store
from rootless_box.userns import dnsd


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path)).ensure()


def test_create_rules(store):
    a = networks.create(store, "a")
    assert a["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
    assert networks.create(store, "b")["IPAM"]["Config"][0]["Subnet"] == "172.19.0.0/16"
    with pytest.raises(Conflict, match="already exists"):
        networks.create(store, "a")
    with pytest.raises(Conflict, match="overlaps"):
        networks.create(store, "c", subnet="172.18.5.0/24")
    with pytest.raises(UsageError, match="gateway"):
        networks.create(store, "c", subnet="10.1.0.0/24", gateway="10.2.0.1")
    with pytest.raises(UsageError, match="ip-range"):
        networks.create(store, "c", subnet="10.1.0.0/24", ip_range="10.1.1.0/25")
    with pytest.raises(UsageError, match="CIDR"):
        networks.create(store, "c", subnet="10.1.0.0")
    for bad in ("a/b", ".x", "", "n" * 201):
        with pytest.raises(UsageError, match="invalid network name"):
            networks.create(store, bad)
    assert networks.create(store, "n" * 200)["Name"] == "n" * 200
    spaced = networks.create(store, "test 01", subnet="10.2.0.0/24", aux={"a": "10.2.0.5"})
    assert networks.find(store, "test 01")["Id"] == spaced["Id"]
    assert spaced["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"a": "10.2.0.5"}
    with pytest.raises(UsageError, match="auxiliary address b=10.3.0.5"):
        networks.create(store, "d", subnet="10.2.1.0/24", aux={"b": "10.3.0.5"})
    c = networks.create(store, "c", subnet="10.1.0.7/24", ip_range="10.1.0.64/26")
    assert c["IPAM"]["Config"][0] == {"Subnet": "10.1.0.0/24", "IPRange": "10.1.0.64/26",
                                      "Gateway": "10.1.0.1"}
    assert networks.find(store, c["Id"][:10])["Name"] == "c"
    assert networks.find(store, "bridge")["Driver"] == "bridge"


def _record(store, cid, name, net, ip=None, running=True, address=""):
    entry = networks.endpoint(net, (), ip)
    entry["IPAddress"] = address
    record = {"Id": cid, "Name": name, "State": {"Running": running},
              "NetworkSettings": {"Networks": {net["Name"]: entry}}}
    os.makedirs(store.container_dir(cid), exist_ok=True)
    store.write_container(record)
    return record


def test_addresses_static_then_lowest_free(store, monkeypatch):
    from rootless_box.ops import containers
    monkeypatch.setattr(containers, "refresh_state", lambda _s, r: r)
    net = networks.create(store, "n", subnet="10.5.0.0/29")
    _record(store, "a" * 64, "a", net, address="10.5.0.2")
    _record(store, "b" * 64, "b", net, ip="10.5.0.4", running=False)
    c = _record(store, "c" * 64, "c", net)
    links = networks.assign(store, c)
    assert links[0]["ip"] == "10.5.0.3" and links[0]["ifname"] == "eth0"
    assert c["NetworkSettings"]["Networks"]["n"]["DNSNames"] == ["c", "c" * 12]
    store.write_container(c)
    d = _record(store, "d" * 64, "d", net)
    assert networks.assign(store, d)[0]["ip"] == "10.5.0.5"  # .4 is b's, even stopped
    store.write_container(d)
    e = _record(store, "e" * 64, "e", net, ip="10.5.0.2")
    with pytest.raises(Conflict, match="in use"):
        networks.assign(store, e)
    with pytest.raises(UsageError, match="subnet"):
        networks.endpoint(net, (), "10.6.0.1")
    f = _record(store, "f" * 64, "f", net)
    assert networks.assign(store, f)[0]["ip"] == "10.5.0.6"  # the last of the /29
    store.write_container(f)
    g = _record(store, "0" * 64, "g", net)
    with pytest.raises(Conflict, match="no available"):
        networks.assign(store, g)


def _query(name, qtype=1, qid=7):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack(">HH", qtype, 1)


def _table(tmp_path, entries, internal=()):
    path = tmp_path / "dns.json"
    path.write_text(json.dumps({"entries": entries, "internal": list(internal),
                                "search": ["dns.rootless-box"], "upstreams": ["192.0.2.1"]}))
    table = dnsd.Table(str(path))
    table.refresh()
    return table


def test_dns_scope_search_domain_and_aaaa(tmp_path, monkeypatch):
    monkeypatch.setattr(dnsd, "_alive", lambda entry: entry["link"] != "gone")
    table = _table(tmp_path, [
        {"cid": "w", "net": "app", "ip": "10.0.0.2", "names": ["web", "www"], "link": "v1"},
        {"cid": "c", "net": "app", "ip": "10.0.0.3", "names": ["client"], "link": "v2"},
        {"cid": "c", "net": "db", "ip": "10.1.0.3", "names": ["client"], "link": "v3"},
        {"cid": "d", "net": "db", "ip": "10.1.0.2", "names": ["db"], "link": "v4"},
        {"cid": "x", "net": "other", "ip": "10.2.0.2", "names": ["db"], "link": "v5"},
        {"cid": "z", "net": "app", "ip": "10.0.0.9", "names": ["dead"], "link": "gone"}])
    nets = table.scope("10.0.0.3")
    assert nets == {"app", "db"}
    assert table.lookup("web", nets) == ["10.0.0.2"]
    assert table.lookup("www.dns.rootless-box", nets) == ["10.0.0.2"]
    assert table.lookup("db", nets) == ["10.1.0.2"]  # not other's db
    assert table.lookup("db", table.scope("10.0.0.2")) is None  # web shares no net with it
    assert table.lookup("dead", nets) is None  # its veth is gone
    packet = _query("web")
    question = dnsd.parse_question(packet)
    assert question[2] == "web" and question[3] == 1
    reply = dnsd.answer(packet, question, ["10.0.0.2"])
    qid, flags, _qd, ancount = struct.unpack(">HHHH", reply[:8])
    assert (qid, flags & 0xF, ancount) == (7, 0, 1)
    assert reply.endswith(socket.inet_aton("10.0.0.2"))
    # AAAA of a known name: NOERROR, no records (busybox's nslookup fails on NXDOMAIN)
    packet = _query("web", qtype=28)
    reply = dnsd.answer(packet, dnsd.parse_question(packet), ["10.0.0.2"])
    assert struct.unpack(">H", reply[2:4])[0] & 0xF == 0
    assert struct.unpack(">H", reply[6:8])[0] == 0
    assert dnsd.parse_question(b"\0" * 5) is None
    assert os.path.exists(table.path)


def test_dns_table_replaced_within_one_timestamp_tick_is_read_again(tmp_path):
    """Two rewrites of dns.json can share an mtime (file times move in clock ticks, and two
    commands can write in one): the responder must still see the second one, or a
    container started then stays unknown until the next rewrite."""
    from rootless_box.store import atomic_write
    table = _table(tmp_path, [{"cid": "a", "net": "n", "ip": "10.0.0.2", "names": ["a"],
                               "link": "v1"}])
    before = os.stat(table.path).st_mtime_ns
    atomic_write(table.path, json.dumps({"entries": [
        {"cid": "b", "net": "n", "ip": "10.0.0.3", "names": ["b"], "link": "v2"}]}).encode())
    os.utime(table.path, ns=(before, before))
    table.refresh()
    assert [e["cid"] for e in table.entries] == ["b"]


def test_dns_answers_a_miss_in_its_own_domain_without_forwarding(tmp_path, monkeypatch):
    """Nobody upstream knows dns.rootless-box: a name there that no container has gets
    NXDOMAIN at once (forwarded, it went unanswered with no upstream reachable, and the
    asker waited its timeout); other unknown names are still forwarded."""
    monkeypatch.setattr(dnsd, "_alive", lambda entry: True)
    table = _table(tmp_path, [{"cid": "me", "net": "app", "ip": "127.0.0.1",
                               "names": ["me"], "link": "v1"}])
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(10)
    try:
        for sock in (dns, upstream, client):
            sock.bind(("127.0.0.1", 0))
        server = dnsd._Server(dns, upstream, table.path, None)
        server.ask(_query("nosuch.dns.rootless-box"), "127.0.0.1", client.getsockname())
        reply = client.recv(512)
        assert struct.unpack(">H", reply[2:4])[0] & 0xF == 3 and not server.pending
        server.ask(_query("me.dns.rootless-box"), "127.0.0.1", client.getsockname())
        assert client.recv(512).endswith(socket.inet_aton("127.0.0.1"))
        server.ask(_query("example.org"), "127.0.0.1", client.getsockname())
        # forwarded to the host's resolvers (from a loopback socket: it goes nowhere)
        assert len(server.pending) == 1
    finally:
        for sock in (dns, upstream, client):
            sock.close()


def test_network_flags_as_docker_cli_25():
    parse = networks.parse_flags
    none = {"mac": None, "driver_opts": None, "ip6": None}
    assert parse([]) == (None, [], None, [], none)
    assert parse(["app"], ["a"], "10.0.0.2") == ("app", ["a"], "10.0.0.2", [], none)
    assert parse(["app", "Name=db,alias=x,alias=y,ip=10.1.0.9,mac-address=02:00:00:00:00:09,"
                  "ip6=fd00::9"], ["a"]) == ("app", ["a"], None, [
                     {"name": "db", "aliases": ["x", "y"], "ip": "10.1.0.9", "ip6": "fd00::9",
                      "mac": "02:00:00:00:00:09", "driver_opts": {}}], none)
    assert parse(["name=app,alias=b,driver-opt=k=v", "db"], mac="02:00:00:00:00:01") == (
        "app", ["b"], None, [{"name": "db", "aliases": [], "ip": None, "ip6": None,
                              "mac": None, "driver_opts": {}}],
        {"mac": "02:00:00:00:00:01", "driver_opts": {"k": "v"}, "ip6": None})
    # --ip6 goes with the first network, as --ip does
    assert parse(["name=app,ip6=fd00::3"])[4]["ip6"] == "fd00::3"
    assert parse(["app", "db"], ip6="fd00::4")[4]["ip6"] == "fd00::4"
    for values, kw, text in (
            (["a", "a"], {}, 'network "a" is specified multiple times'),
            (["a", "host"], {}, "cannot attach both user-defined and non-user-defined"),
            (["host", "none"], {}, "cannot be connected to network endpoints: host, none"),
            (["name=a,colour=red"], {}, "invalid field key colour"),
            (["name=a,alias"], {}, "invalid field alias"),
            (["alias=x"], {}, "network name/id is not specified"),
            (["name=a,link-local-ip=169.254.0.1"], {}, "not supported"),
            (["name=a,ip6=fd00::3"], {"ip6": "fd00::4"}, "both --ip6 and per-network"),
            (["name=a,alias=x"], {"aliases": ["y"]}, "both --network-alias and per-network"),
            (["name=a,ip=10.0.0.3"], {"ip": "10.0.0.4"}, "both --ip and per-network"),
            (["name=a,mac-address=02:00:00:00:00:01"], {"mac": "02:00:00:00:00:02"},
             "both --mac-address and per-network")):
        with pytest.raises(UsageError) as info:
            parse(values, **kw)
        assert text in str(info.value), (values, str(info.value))


def test_dns_truncates_over_udp_and_answers_over_tcp(tmp_path, monkeypatch):
    """40 containers sharing an alias: over UDP the answer does not fit 512 bytes, so it
    comes empty with TC set (a resolver then asks over TCP); an EDNS0 asker with room gets
    it all over UDP; over TCP every address comes, length-prefixed; a forwarded question
    from TCP goes upstream with EDNS0 and its answer comes back on the connection."""
    import threading
    monkeypatch.setattr(dnsd, "_alive", lambda entry: True)
    entries = [{"cid": "c%d" % i, "net": "app", "ip": "10.0.0.%d" % (i + 2),
                "names": ["c%d" % i, "many"], "link": "v%d" % i} for i in range(40)]
    entries.append({"cid": "me", "net": "app", "ip": "127.0.0.1", "names": ["me"],
                    "link": "vme"})
    table = _table(tmp_path, entries)
    upstream_server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream_server.bind(("127.0.0.2", 0))
    path = tmp_path / "dns.json"
    data = json.loads(path.read_text())
    data["upstreams"] = ["127.0.0.2"]
    path.write_text(json.dumps(data))
    watch = tmp_path / "nets"
    watch.mkdir()
    (watch / "app.json").write_text("{}")
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    tcp.setblocking(False)
    upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    upstream.bind(("127.0.0.1", 0))
    monkeypatch.setattr(socket.socket, "sendto", _redirect_53(upstream_server))
    loop = threading.Thread(target=dnsd.serve, args=(dns, upstream, table.path, str(watch),
                                                     tcp))
    loop.start()
    try:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(10)
        client.sendto(_query("many"), dns.getsockname())
        reply = client.recv(4096)
        flags, _qd, ancount = struct.unpack(">HHH", reply[2:8])
        assert flags & 0x0200 and ancount == 0 and len(reply) <= 512
        edns = _query("many")[:10] + b"\0\1" + _query("many")[12:] + \
            b"\0" + struct.pack(">HHIH", 41, 4096, 0, 0)
        client.sendto(edns, dns.getsockname())
        reply = client.recv(4096)
        assert struct.unpack(">H", reply[6:8])[0] == 40
        with socket.create_connection(tcp.getsockname(), timeout=10) as conn:
            for query in (_query("many", qid=9), _query("example.org", qid=11)):
                conn.sendall(struct.pack(">H", len(query)) + query)
            size = struct.unpack(">H", _recv(conn, 2))[0]
            reply = _recv(conn, size)
            assert struct.unpack(">HHHH", reply[:8])[0] == 9
            assert struct.unpack(">H", reply[6:8])[0] == 40 and not reply[2] & 0x02
            # the forwarded one: asked upstream with an OPT record; answered on the conn
            upstream_server.settimeout(10)
            asked, where = upstream_server.recvfrom(4096)
            assert struct.unpack(">H", asked[10:12])[0] == 1 and asked[-11:-8] == b"\0\0\x29"
            upstream_server.sendto(asked[:2] + b"\x81\x80" + asked[4:], where)
            size = struct.unpack(">H", _recv(conn, 2))[0]
            assert struct.unpack(">H", _recv(conn, size)[:2])[0] == 11
    finally:
        (watch / "app.json").unlink()
        loop.join(30)
    assert not loop.is_alive()


def _redirect_53(target):
    """socket.sendto with port 53 sent to `target` instead (the upstream of the test)."""
    real = socket.socket.sendto

    def sendto(self, data, *args):
        address = args[-1]
        if address[1] == 53:
            address = target.getsockname()
        return real(self, data, *args[:-1], address)
    return sendto


def _recv(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk
        data += chunk
    return data
