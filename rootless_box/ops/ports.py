"""Published ports and the container's network files: Docker's rules, the record's fields.

Owns: `-p`/`-P` as Docker parses them (nat.ParsePortSpec: `[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`,
ranges, its error texts), the network mode names (`private`, `bridge`, `host`, `none`), the
record's HostConfig.PortBindings / Config.ExposedPorts / NetworkSettings.Ports, the text of
`port` and of `ps`'s PORTS column, `--add-host`/`--dns`/`--dns-search` as /etc/hosts and
resolv.conf lines, whether outbound networking helpers (pasta, slirp4netns) are usable, and
binding the host ports and handing them to the forwarder (userns/portfwd.py) once the
container runs.
Must not: import json, re or anything heavy (it is on the `run` path), print, or move bytes
(the forwarder does).
"""

import _socket
import os

from .. import errors

PROTOCOLS = ("tcp", "udp")
# Docker's names for the private namespace: bridge is what its users type
NETWORKS = {"host": "host", "bridge": "private", "private": "private", "none": "none"}
HOST_NET_WARNING = "Published ports are discarded when using host network mode"


def network_mode(name, publishing=False):
    """--network NAME -> host | private | none | container (`container:NAME`, another
    container's namespace: joined_container gives the NAME). Without --network, host, unless
    ports are published (-p implies the private namespace, as Docker's default bridge)."""
    if name is None or name in ("", "default"):
        return "private" if publishing else "host"
    mode = NETWORKS.get(name)
    if mode is None:
        if name.startswith("container:"):
            if not name[len("container:"):]:
                raise errors.UsageError("invalid container format container:<name|id>")
            return "container"
        return "user"  # a user-defined network's name (ops/networks.py finds it)
    return mode


def joined_container(name):
    """The NAME of `--network container:NAME` (None for any other mode)."""
    if name and name.startswith("container:"):
        return name[len("container:"):]
    return None


def check_joined(opts):
    """What `--network container:NAME` cannot go with, in Docker's words (runconfig's
    ErrConflict* errors): the joined namespace's owner decides ports, names and resolvers."""
    for given, what in ((opts.publish or opts.publish_all,
                         "port publishing and the container type network mode"),
                        (opts.hostname, "hostname and the network mode"),
                        (opts.add_hosts, "custom host-to-IP mapping and the network mode"),
                        (opts.dns or opts.dns_search or opts.dns_options,
                         "dns and the network mode")):
        if given:
            raise errors.UsageError("conflicting options: " + what)


def joined_spec(store, spec):
    """spec with the host pid of the running container whose network it joins (join_pid,
    for the launcher), looked up at each start: the other container may have restarted;
    or, on user-defined networks, with its holder and links (ops/networks.start_spec)."""
    target = spec.get("network_of")
    if spec.get("network") == "user":
        from . import networks
        return networks.start_spec(store, spec)  # addresses, the holder, the links
    if not target:
        return spec
    from . import containers
    record = store.read_container(target)
    if record is not None:
        record = containers.refresh_state(store, record)
    state = (record or {}).get("State") or {}
    if not state.get("Running") or not state.get("Pid"):
        raise errors.Conflict("cannot join network of a non running container: %s" % target,
                              "start it first: rootless-box start %s" % (
                                  record["Name"] if record else target[:12]))
    return dict(spec, join_pid=state["Pid"])


def _port_range(text, what, spec):
    start, dash, end = text.partition("-")
    try:
        lo = int(start)
        hi = int(end) if dash else lo
    except ValueError:
        raise errors.UsageError("invalid %s: %s" % (what, text or spec)) from None
    if not (0 < lo <= 65535 and 0 < hi <= 65535) or hi < lo:
        raise errors.UsageError("invalid %s: %s" % (what, text))
    return lo, hi


def _split_ip(spec):
    """-> (ip, rest): an IPv6 address is bracketed, as in Docker."""
    if spec.startswith("["):
        close = spec.find("]")
        if close < 0 or spec[close + 1:close + 2] != ":":
            raise errors.UsageError("invalid IP address: %s" % spec)
        return spec[1:close], spec[close + 2:]
    parts = spec.split(":")
    if len(parts) == 3:
        return parts[0], parts[1] + ":" + parts[2]
    if len(parts) > 3:
        raise errors.UsageError("invalid port format: %s" % spec,
                                "use [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]")
    return "", spec


def parse_publish(spec):
    """One -p value -> [(container port "80/tcp", host ip, host port or "" for any)]."""
    body, slash, proto = spec.rpartition("/") if "/" in spec else (spec, "", "tcp")
    proto = (proto or "tcp").lower() if slash else "tcp"
    if proto == "sctp":
        raise errors.UsageError("unsupported protocol sctp in -p %s" % spec,
                                "rootless-box publishes tcp and udp ports")
    if proto not in PROTOCOLS:
        raise errors.UsageError("invalid proto: %s" % proto)
    ip, rest = _split_ip(body)
    if ip:
        try:
            _socket.inet_pton(_socket.AF_INET6 if ":" in ip else _socket.AF_INET, ip)
        except OSError:
            raise errors.UsageError("invalid IP address: %s" % ip) from None
    host, colon, container = rest.rpartition(":")
    if not colon:
        host, container = "", rest
    if not container:
        raise errors.UsageError("no port specified: %s<empty>" % spec)
    c_lo, c_hi = _port_range(container, "containerPort", spec)
    if host:
        h_lo, h_hi = _port_range(host, "hostPort", spec)
        if h_hi - h_lo != c_hi - c_lo and not (c_lo == c_hi):
            raise errors.UsageError("invalid ranges specified for container and host Ports: "
                                    "%s and %s" % (container, host))
    result = []
    for i, port in enumerate(range(c_lo, c_hi + 1)):
        if not host:
            host_port = ""
        elif c_lo == c_hi and h_lo != h_hi:
            # a host range for one container port: Docker picks one free port from it
            host_port = "%d-%d" % (h_lo, h_hi)
        else:
            host_port = str(h_lo + i)
        result.append(("%d/%s" % (port, proto), ip, host_port))
    return result


def port_bindings(publish, publish_all, exposed):
    """-p values, -P and the image's ExposedPorts -> (PortBindings, ExposedPorts) as Docker
    records them: every published port is exposed too; -P gives each exposed port that no
    -p names a random host port."""
    bindings = {}
    for spec in publish:
        for key, ip, host_port in parse_publish(spec):
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_port})
    exposed_all = {}
    for key in exposed or {}:
        exposed_all[key if "/" in key else key + "/tcp"] = {}
    for key in bindings:
        exposed_all[key] = {}
    if publish_all:
        for key in exposed_all:
            bindings.setdefault(key, [{"HostIp": "", "HostPort": ""}])
    return bindings, exposed_all


def sort_key(key):
    number, _, proto = key.partition("/")
    return (int(number) if number.isdigit() else 0, proto)


def port_lines(ports, private=None):
    """NetworkSettings.Ports -> `port`'s lines ("80/tcp -> 0.0.0.0:49153"); with private
    ("80" or "80/udp"), only its host addresses ("0.0.0.0:49153")."""
    if private is not None and "/" not in private:
        private += "/tcp"
    lines = []
    for key in sorted(ports or {}, key=sort_key):
        for binding in ports[key] or []:
            address = _address(binding)
            if private is None:
                lines.append("%s -> %s" % (key, address))
            elif key == private:
                lines.append(address)
    return lines


def _address(binding):
    ip = binding.get("HostIp") or "0.0.0.0"
    return "%s:%s" % ("[%s]" % ip if ":" in ip else ip, binding.get("HostPort"))


def ps_text(ports):
    """The PORTS column: "0.0.0.0:8080->80/tcp, 53/udp"."""
    items = []
    for key in sorted(ports or {}, key=sort_key):
        if not ports[key]:
            items.append(key)
            continue
        for binding in ports[key]:
            items.append("%s->%s" % (_address(binding), key))
    return ", ".join(items)


# -- /etc/hosts and resolv.conf ----------------------------------------------------------------

def parse_add_hosts(items):
    """--add-host NAME:IP (NAME=IP too, as newer Docker) -> hosts lines. host-gateway has no
    meaning without a bridge: refused."""
    lines = []
    for item in items:
        sep = "=" if "=" in item else ":"
        name, found, ip = item.partition(sep)
        if ip.startswith("[") and ip.endswith("]"):
            ip = ip[1:-1]
        if not found or not name or not ip:
            raise errors.UsageError("bad format for add-host: %r" % item,
                                    "use --add-host NAME:IP")
        if ip == "host-gateway":
            raise errors.UsageError("--add-host %s: host-gateway is not supported" % item,
                                    "give the address itself")
        try:
            _socket.inet_pton(_socket.AF_INET6 if ":" in ip else _socket.AF_INET, ip)
        except OSError:
            raise errors.UsageError("invalid IP address in add-host: %r" % ip) from None
        lines.append("%s\t%s\n" % (ip, name))
    return "".join(lines)


def resolv_conf(base, dns=(), search=(), options=()):
    """The host's resolver file with --dns / --dns-search / --dns-option put in its place."""
    for ip in dns:
        try:
            _socket.inet_pton(_socket.AF_INET6 if ":" in ip else _socket.AF_INET, ip)
        except OSError:
            raise errors.UsageError("%s is not an ip address" % ip) from None
    if not (dns or search or options):
        return base
    kept = []
    for line in base.splitlines():
        word = line.split()[0] if line.split() else ""
        if (dns and word == "nameserver") or (search and word in ("search", "domain")) or \
                (options and word == "options"):
            continue
        kept.append(line)
    if search:
        # Docker: --dns-search . leaves no search line
        names = [s for s in search if s != "."]
        if names:
            kept.append("search " + " ".join(names))
    kept += ["nameserver " + ip for ip in dns]
    if options:
        kept.append("options " + " ".join(options))
    return "\n".join(kept) + "\n"


# -- outbound networking helpers ---------------------------------------------------------------

def _which(name):
    for directory in os.environ.get("PATH", "/usr/bin:/bin").split(":"):
        path = os.path.join(directory or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


HELPERS = ("pasta", "slirp4netns")  # pasta first: Podman's default since 5.0
SLIRP_DNS = "10.0.2.3"  # slirp4netns's resolver forwarder (its default 10.0.2.0/24)


_PROBED = {}  # RBX_OUTBOUND -> the probe's answer: the helper choice and a warning share it


def _outbound_probe():
    """-> (helpers installed, in order of preference; why /dev/net/tun cannot be used, or
    ""). RBX_OUTBOUND=pasta|slirp4netns|none narrows the choice. Probed once a process."""
    wanted = os.environ.get("RBX_OUTBOUND", "")
    if wanted not in _PROBED:
        _PROBED[wanted] = _probe(wanted)
    return _PROBED[wanted]


def _probe(wanted):
    names = (wanted,) if wanted in HELPERS else () if wanted == "none" else HELPERS
    helpers = [name for name in names if _which(name)]
    try:
        os.close(os.open("/dev/net/tun", os.O_RDWR))
        tun = ""
    except OSError as exc:
        tun = "/dev/net/tun cannot be opened (%s)" % (exc.strerror or exc)
    return helpers, tun


def outbound():
    """-> (usable, detail): pasta or slirp4netns installed and /dev/net/tun openable, for
    `info` and for the warning a private-network container gets without them."""
    helpers, tun = _outbound_probe()
    if not helpers:
        return False, "neither pasta nor slirp4netns is installed" + (
            "; " + tun if tun else "")
    if tun:
        return False, "%s installed, but %s" % (" and ".join(helpers), tun)
    return True, "%s installed, /dev/net/tun usable: %s is used" % (
        " and ".join(helpers), helpers[0])


def outbound_helper():
    """The helper a private network namespace gets for outbound traffic, or None."""
    helpers, tun = _outbound_probe()
    return helpers[0] if helpers and not tun else None


def outbound_warning():
    usable, detail = outbound()
    if usable:
        return None
    return ("this container has its own network namespace without outbound network (%s); "
            "published ports (-p) reach it, nothing inside reaches out. For outbound traffic "
            "install passt (pasta) or slirp4netns and make /dev/net/tun usable, or use "
            "--network host" % detail)


# -- binding and the forwarder -----------------------------------------------------------------

_BYPASS_KERNEL = (5, 14)  # SECCOMP_IOCTL_NOTIF_ADDFD (5.9), SO_NETNS_COOKIE (5.14)


def port_bypass(bindings, chown_notify):
    """Whether a container's servers get the host's sockets of its published TCP ports
    (userns/portbypass.py) instead of a relay through the forwarder: a TCP port published
    and nothing in bypass_blocker's way."""
    if not any(key.endswith("/tcp") and value for key, value in (bindings or {}).items()):
        return False
    return bypass_blocker(chown_notify) is None


def bypass_blocker(chown_notify):
    """Why published ports would be relayed instead, or None: RBX_PORT_BYPASS=0, a kernel
    without SECCOMP_IOCTL_NOTIF_ADDFD or SO_NETNS_COOKIE (what tells the host's sockets from
    the container's), or the single-id fake root's chown supervisor (a process has one
    seccomp listener at most)."""
    if os.environ.get("RBX_PORT_BYPASS", "1") == "0":
        return "RBX_PORT_BYPASS=0"
    release = os.uname().release
    try:
        major, minor = release.split(".")[:2]
        old = (int(major), int(minor.split("-")[0])) < _BYPASS_KERNEL
    except ValueError:
        old = True
    if old:
        return "kernel %s (the bind bypass needs 5.14)" % release
    if chown_notify:
        return ("the single-id mapping's fake root serves chowns through seccomp; "
                "--security-opt seccomp=unconfined lifts it")
    return None


class Published:
    """Host ports bound for a container before it starts, and the outbound helper it gets:
    start(pid), the launcher's prestart, hands them to a forwarder process (which also starts
    the helper) and records the ports actually bound (a random one included)."""

    def __init__(self, store, cid, listeners, ports, outbound=None):
        self.store = store
        self.cid = cid
        self.listeners = listeners  # [(socket, proto, container port)]
        self.ports = ports  # NetworkSettings.Ports
        self.outbound = outbound  # "pasta", "slirp4netns" or None

    def fds(self):
        return [sock.fileno() for sock, _proto, _port in self.listeners]

    def prestart(self):
        """What the launcher calls before the command runs: None when there is nothing to
        set up (a host network, no helper), so that start costs nothing more."""
        return self.start if self.listeners or self.outbound else None

    def close(self):
        for sock, _proto, _port in self.listeners:
            sock.close()
        self.listeners = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self, pid, bind_listener=None):
        """The container's init is pid (its command not yet run): start the forwarder (which
        serves the container's bind() calls on bind_listener, when given), write the
        record's ports."""
        from ..userns import portfwd
        try:
            portfwd.spawn(pid, [(s.fileno(), proto, port) for s, proto, port
                                in self.listeners], self.outbound, bind_listener)
        finally:
            self.close()
        if self.ports:
            set_ports(self.store, self.cid, self.ports)


def _bind_one(proto, ip, host_port):
    # here, not at the top: socket's Python half (enums, selectors) costs `run` ~3 ms, and
    # the run path needs only _socket's address checks unless ports are published
    import socket
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    if "-" in host_port:
        lo, hi = (int(p) for p in host_port.split("-"))
        candidates = list(range(lo, hi + 1))
    else:
        candidates = [int(host_port or 0)]
    last = None
    address = ip or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    for port in candidates:
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if port == 0 and kind == socket.SOCK_STREAM:
                probe = _free_port(family, address)
                try:
                    sock.bind((address, probe.getsockname()[1]))
                finally:
                    probe.close()
            else:
                sock.bind((address, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def _free_port(family, address):
    """A probe socket bound to a random free TCP port, for the caller to bind that port by
    number while the probe holds it: a socket bound to port 0 does not keep its port through
    a disconnect (connect(AF_UNSPEC)), and one a container's server is handed
    (userns/portbypass.py) must not be rebound by it to a host port of its choosing. Both
    have SO_REUSEADDR and the probe never listens, so the caller's bind succeeds; the caller
    closes the probe."""
    import socket
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((address, 0))
    except BaseException:
        probe.close()
        raise
    return probe


def bind(store, record, outbound=None):
    """Bind every published host port of record now (before its container starts): a port
    in use is one clear error, and nothing has started. outbound: the helper the run spec
    chose (spec["outbound"]). -> Published"""
    bindings = (record.get("HostConfig") or {}).get("PortBindings") or {}
    mode = (record.get("HostConfig") or {}).get("NetworkMode")
    if mode != "private" and not (record.get("NetworkSettings") or {}).get("Networks"):
        return Published(store, record["Id"], [], {})  # host, none, container:NAME
    exposed = (record.get("Config") or {}).get("ExposedPorts") or {}
    ports = {key: None for key in exposed}
    listeners = []
    try:
        for key in sorted(bindings, key=sort_key):
            number, _, proto = key.partition("/")
            for binding in bindings[key]:
                ip, host_port = binding.get("HostIp") or "", binding.get("HostPort") or ""
                try:
                    sock = _bind_one(proto, ip, host_port)
                except OSError as exc:
                    raise errors.SetupError(
                        "cannot publish port %s: %s:%s: %s" % (
                            key, ip or "0.0.0.0", host_port or "(random)",
                            exc.strerror or exc),
                        "choose another host port, or stop what listens on it") from None
                listeners.append((sock, proto, int(number)))
                ports.setdefault(key, None)
                ports[key] = (ports[key] or []) + [
                    {"HostIp": ip or "0.0.0.0", "HostPort": str(sock.getsockname()[1])}]
    except BaseException:
        for sock, _proto, _port in listeners:
            sock.close()
        raise
    return Published(store, record["Id"], listeners, ports, outbound)


def set_ports(store, cid, ports):
    with store.lock():
        current = store.read_container(cid)
        if current is None:
            return
        current.setdefault("NetworkSettings", {})["Ports"] = ports
        store.write_container(current)
