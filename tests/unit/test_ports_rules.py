"""Docker's -p grammar, the record's port fields and their texts, --add-host and --dns (pure)."""

import os

import pytest

from rootless_box.errors import UsageError
from rootless_box.ops import ports
from rootless_box.userns import portfwd


def test_publish_forms():
    assert ports.parse_publish("8080:80") == [("80/tcp", "", "8080")]
    assert ports.parse_publish("80") == [("80/tcp", "", "")]
    assert ports.parse_publish("127.0.0.1:8080:80/udp") == [("80/udp", "127.0.0.1", "8080")]
    assert ports.parse_publish("127.0.0.1::80") == [("80/tcp", "127.0.0.1", "")]
    assert ports.parse_publish("[::1]:8080:80") == [("80/tcp", "::1", "8080")]
    assert ports.parse_publish("8000-8001:80-81") == [("80/tcp", "", "8000"),
                                                      ("81/tcp", "", "8001")]
    assert ports.parse_publish("8000-8009:80") == [("80/tcp", "", "8000-8009")]


@pytest.mark.parametrize("spec,text", [
    ("80/foo", "invalid proto: foo"), ("x:80", "invalid hostPort: x"),
    ("80:y", "invalid containerPort: y"), ("80:0", "invalid containerPort: 0"),
    ("1.2.3.999:80:80", "invalid IP address: 1.2.3.999"), ("8080:", "no port specified"),
    ("8000-8002:80-81", "invalid ranges"), ("80/sctp", "sctp")])
def test_publish_errors(spec, text):
    with pytest.raises(UsageError, match=text):
        ports.parse_publish(spec)


def test_bindings_and_publish_all():
    bindings, exposed = ports.port_bindings(["8080:80"], False, {"443/tcp": {}})
    assert bindings == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert exposed == {"80/tcp": {}, "443/tcp": {}}
    bindings, _ = ports.port_bindings([], True, {"443/tcp": {}, "53/udp": {}})
    assert bindings == {"443/tcp": [{"HostIp": "", "HostPort": ""}],
                        "53/udp": [{"HostIp": "", "HostPort": ""}]}


def test_network_modes():
    assert ports.network_mode(None) == "host"
    assert ports.network_mode(None, publishing=True) == "private"
    assert ports.network_mode("bridge") == "private"
    assert ports.network_mode("none") == "none"
    assert ports.network_mode("container:web") == "container"
    assert ports.joined_container("container:web") == "web"
    assert ports.joined_container("bridge") is None
    assert ports.network_mode("mynet") == "user"  # ops/networks.py looks it up


def test_port_and_ps_texts():
    published = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "49153"}],
                 "9/udp": [{"HostIp": "::1", "HostPort": "5000"}], "443/tcp": None}
    assert ports.port_lines(published) == ["9/udp -> [::1]:5000",
                                           "80/tcp -> 0.0.0.0:49153"]
    assert ports.port_lines(published, "80") == ["0.0.0.0:49153"]
    assert ports.port_lines(published, "80/udp") == []
    assert ports.ps_text(published) == \
        "[::1]:5000->9/udp, 0.0.0.0:49153->80/tcp, 443/tcp"


def test_hosts_and_resolv():
    assert ports.parse_add_hosts(["db:10.0.0.2", "v6=[::1]"]) == "10.0.0.2\tdb\n::1\tv6\n"
    with pytest.raises(UsageError, match="bad format"):
        ports.parse_add_hosts(["db"])
    with pytest.raises(UsageError, match="invalid IP"):
        ports.parse_add_hosts(["db:10.0.0.300"])
    base = "# x\nnameserver 1.1.1.1\nsearch a.b\noptions ndots:1\n"
    assert ports.resolv_conf(base) == base
    out = ports.resolv_conf(base, ["9.9.9.9"], ["c.d"], ["ndots:2"])
    assert out == "# x\nsearch c.d\nnameserver 9.9.9.9\noptions ndots:2\n"
    with pytest.raises(UsageError, match="not an ip address"):
        ports.resolv_conf(base, ["nope"])


def test_outbound_helpers_command_lines(monkeypatch):
    # they enter the container's own user namespace (the owner of its network namespace),
    # never reach the host's loopback, and forward no port of their own
    slirp = portfwd.outbound_argv("slirp4netns", 4242, 5, 6)
    assert slirp[0] == "slirp4netns" and slirp[-2:] == ["4242", "tap0"]
    assert {"--configure", "--disable-host-loopback", "--ready-fd=5", "--exit-fd=6",
            "--userns-path=/proc/4242/ns/user"} <= set(slirp)
    pasta = portfwd.outbound_argv("pasta", 4242)
    assert pasta[0] == "pasta" and "--no-map-gw" in pasta and "--foreground" in pasta
    assert pasta[pasta.index("--userns") + 1] == "/proc/4242/ns/user"
    assert pasta[pasta.index("--netns") + 1] == "/proc/4242/ns/net"
    for flag in ("-t", "-u", "-T", "-U"):
        assert pasta[pasta.index(flag) + 1] == "none"
    # RBX_OUTBOUND=none: no helper, whatever is installed
    monkeypatch.setenv("RBX_OUTBOUND", "none")
    assert ports.outbound_helper() is None
    usable, detail = ports.outbound()
    assert not usable and detail.startswith("neither pasta nor slirp4netns is installed")


def _uname(release):
    real = os.uname()
    return lambda: os.uname_result((real.sysname, real.nodename, release, real.version,
                                    real.machine))


@pytest.mark.parametrize("release,usable", [
    ("6.1.0-13-amd64", True), ("5.14.0", True), ("5.15.0-rc1", True),
    ("5.13.19-100.fc33.x86_64", False), ("5.9.0", False), ("4.19.0", False),
    ("garbage", False)])
def test_the_bind_bypass_needs_notif_addfd_and_netns_cookies(monkeypatch, release, usable):
    monkeypatch.delenv("RBX_PORT_BYPASS", raising=False)
    monkeypatch.setattr(ports.os, "uname", _uname(release))
    tcp = {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert ports.port_bypass(tcp, chown_notify=False) is usable
    assert (ports.bypass_blocker(False) is None) is usable


def test_what_keeps_published_ports_relayed(monkeypatch):
    monkeypatch.setattr(ports.os, "uname", _uname("6.1.0"))
    monkeypatch.delenv("RBX_PORT_BYPASS", raising=False)
    tcp = {"80/tcp": [{"HostIp": "", "HostPort": ""}], "53/udp": [{"HostPort": "53"}]}
    assert ports.port_bypass(tcp, chown_notify=False)
    # nothing for it to take: UDP alone, an exposed port not published, no ports
    assert not ports.port_bypass({"53/udp": [{"HostPort": "53"}]}, chown_notify=False)
    assert not ports.port_bypass({"80/tcp": None}, chown_notify=False)
    assert not ports.port_bypass({}, chown_notify=False)
    # a chown supervisor holds the one seccomp listener a process may have
    assert not ports.port_bypass(tcp, chown_notify=True)
    assert "fake root" in ports.bypass_blocker(True)
    monkeypatch.setenv("RBX_PORT_BYPASS", "0")
    assert not ports.port_bypass(tcp, chown_notify=False)
    assert ports.bypass_blocker(False) == "RBX_PORT_BYPASS=0"
