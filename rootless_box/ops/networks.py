"""User-defined networks: the model, its JSON, IPAM, and what a container's start on one needs.

Owns: a network's definition (`networks/<name>.json` under the store: Docker's network object
without Containers, which is computed), Docker's rules and messages for create (names,
subnets that may not overlap, gateway and ip-range inside the subnet, default subnets
172.18.0.0/16 upwards as Docker's; with --ipv6 an IPv6 subnet beside it, a ULA /64 by
default), rm (refused while a running container is attached), prune, connect and disconnect
(the record's NetworkSettings.Networks is the truth), address allocation at each start, per
family (a static `--ip`/`--ip6`, else the lowest free address of the ip-range not held by a
running container), the network holder's life (pid + start time in
`$XDG_RUNTIME_DIR/rootless-box/net-<mapping>/holder.json`; started again when gone), and the
DNS table the holder answers from (`dns.json` beside it, rewritten by rename).
Must not: print, or make syscalls (userns/netholder.py plumbs the namespaces).
"""

import os
import socket
import struct
import time

from .. import config, errors, fastjson
from ..store import atomic_write

DRIVER = "bridge"
SEARCH_DOMAIN = "dns.rootless-box"
PREDEFINED = ("bridge", "host", "none")
NETWORK_FILTERS = ("driver", "id", "label", "name", "scope", "type", "dangling")


# -- addresses ------------------------------------------------------------------------------

def _ip(text):
    try:
        return struct.unpack(">I", socket.inet_aton(text))[0] if text.count(".") == 3 \
            else None
    except OSError:
        return None


def _text(value):
    return socket.inet_ntoa(struct.pack(">I", value))


def _ip6(text):
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big") \
            if isinstance(text, str) and ":" in text else None
    except (OSError, ValueError):
        return None


def _text6(value):
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def is_v6(text):
    """The subnet or address is an IPv6 one (Docker tells the family by the text)."""
    return isinstance(text, str) and ":" in text


# per family: its address width, its parser and printer
_FAMILIES = {4: (32, _ip, _text), 6: (128, _ip6, _text6)}


def parse_cidr(text, what="subnet"):
    """'10.1.0.0/16' -> (network int, prefix); Docker's error for anything else."""
    if is_v6(text):
        return parse_cidr6(text, what)
    addr, slash, prefix = text.partition("/")
    value = _ip(addr)
    if not slash or value is None or not prefix.isdigit() or not 0 < int(prefix) <= 30:
        raise errors.UsageError("invalid %s %s: it must be an IPv4 CIDR such as 10.1.0.0/24"
                                % (what, text))
    prefix = int(prefix)
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return value & mask, prefix


def parse_cidr6(text, what="subnet"):
    """'2001:db8::/64' -> (network int, prefix): room for a gateway and containers."""
    addr, slash, prefix = text.partition("/")
    value = _ip6(addr)
    if not slash or value is None or not prefix.isdigit() or not 0 < int(prefix) <= 126:
        raise errors.UsageError("invalid %s %s: it must be an IPv6 CIDR such as "
                                "2001:db8::/64" % (what, text))
    prefix = int(prefix)
    return value & ~((1 << (128 - prefix)) - 1), prefix


def _inside(value, net, prefix, bits=32):
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix)) - 1)
    return value is not None and value & mask == net


def _overlaps(a, b, bits=32):
    (na, pa), (nb, pb) = a, b
    return _inside(na, nb, pb, bits) or _inside(nb, na, pa, bits)


def ipam_conf(net, family=4):
    """The network's IPAM config of that family (IPv4 first, then IPv6), or None."""
    for conf in (net.get("IPAM") or {}).get("Config") or ():
        if is_v6(conf.get("Subnet")) == (family == 6):
            return conf
    return None


# -- the model ------------------------------------------------------------------------------

def _dir(store):
    return os.path.join(store.root, "networks")


def _path(store, name):
    return os.path.join(_dir(store), name + ".json")


def list_networks(store):
    out = []
    try:
        names = sorted(os.listdir(_dir(store)))
    except FileNotFoundError:
        return out
    for entry in names:
        if entry.endswith(".json"):
            try:
                with open(os.path.join(_dir(store), entry), "rb") as f:
                    out.append(fastjson.loads(f.read()))
            except (OSError, ValueError):
                continue
    return out


def predefined(name):
    """Docker's three predefined networks, as this tool has them (bridge: each container's
    private namespace)."""
    import hashlib
    return {"Name": name, "Id": hashlib.sha256(b"rootless-box-" + name.encode()).hexdigest(),
            "Created": "0001-01-01T00:00:00Z", "Scope": "local",
            "Driver": {"bridge": "bridge", "host": "host", "none": "null"}[name],
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None, "Config": []},
            "Internal": False, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Options": {}, "Labels": {},
            "Predefined": True}


def find(store, name_or_id):
    """A network by name, full ID or unique ID prefix (Docker's lookup order)."""
    nets = list_networks(store)
    if name_or_id in PREDEFINED:
        return predefined(name_or_id)
    for net in nets:
        if net["Name"] == name_or_id or net["Id"] == name_or_id:
            return net
    matches = [n for n in nets if name_or_id and n["Id"].startswith(name_or_id)]
    if len(matches) == 1:
        return matches[0]
    raise errors.NotFound("network %s not found" % name_or_id,
                          "list networks with 'rootless-box network ls'")


def validate_name(name):
    """Docker takes any non-empty name ("test 01" too); the name is also a file name under
    networks/, so a slash or a NUL cannot be in it, nor a leading dot (hidden, `..`), nor
    more bytes than a file name takes with the suffixes of its record and its temporary."""
    if not name or "/" in name or "\0" in name or name[0] == ".":
        raise errors.UsageError('invalid network name "%s": it may not be empty, contain "/" '
                                'or begin with "."' % name)
    if len(name.encode("utf-8", "surrogateescape")) > _NAME_BYTES:
        raise errors.UsageError("invalid network name %s...: longer than %d bytes"
                                % (name[:40], _NAME_BYTES))
    return name


# NAME.json.tmp-PID-HEX (store.atomic_write's temporary) within a file name's 255 bytes
_NAME_BYTES = 200


def _default_subnet(taken):
    """Docker's default address pools for new bridges: 172.17-31.0.0/16 (172.17 is its
    docker0), then 192.168.0.0/20 blocks."""
    candidates = ["172.%d.0.0/16" % n for n in range(18, 32)] + \
        ["192.168.%d.0/20" % n for n in range(0, 256, 16)]
    for text in candidates:
        cidr = parse_cidr(text)
        if not any(_overlaps(cidr, t) for t in taken):
            return text
    raise errors.Conflict("could not find an available, non-overlapping IPv4 address pool "
                          "among the defaults to assign to the network",
                          "give one with --subnet")


def _default_subnet6(taken):
    """A /64 of this machine's own ULA /48 (RFC 4193: fd + a 40-bit global ID, here from
    /etc/machine-id), as Docker 27+ takes its default IPv6 pool from a ULA prefix derived
    from its host ID: stable across runs, unlikely to clash with another machine's."""
    import hashlib
    try:
        with open("/etc/machine-id", "rb") as f:
            seed = f.read().strip()
    except OSError:
        seed = b""
    gid = int.from_bytes(hashlib.sha256(b"rootless-box-ula" + seed).digest()[:5], "big")
    base = ((0xFD << 40) | gid) << 80
    for n in range(1 << 16):
        cidr = (base | (n << 64), 64)
        if not any(_overlaps(cidr, t, 128) for t in taken):
            return "%s/64" % _text6(cidr[0])
    raise errors.Conflict("could not find an available, non-overlapping IPv6 address pool "
                          "among the defaults to assign to the network",
                          "give one with --subnet")


def _ipam_config(family, subnet, gateway, ip_range, aux, taken):
    """One IPAM config of `family`: the subnet (given, else a default one not in `taken`),
    the gateway (its first address unless given), the ip-range and auxiliary addresses
    checked to lie inside it."""
    bits, parse, text = _FAMILIES[family]
    cidr_of = parse_cidr if family == 4 else parse_cidr6
    if subnet:
        cidr = cidr_of(subnet)
        if any(_overlaps(cidr, t, bits) for t in taken):
            raise errors.Conflict("invalid pool request: Pool overlaps with other one on "
                                  "this address space")
    else:
        cidr = cidr_of((_default_subnet if family == 4 else _default_subnet6)(taken))
    net, prefix = cidr
    subnet = "%s/%d" % (text(net), prefix)
    conf = {"Subnet": subnet}
    if ip_range:
        rnet, rprefix = cidr_of(ip_range, "ip-range")
        if rprefix < prefix or not _inside(rnet, net, prefix, bits):
            raise errors.UsageError("invalid ip-range %s: it is not inside the subnet %s"
                                    % (ip_range, subnet))
        conf["IPRange"] = "%s/%d" % (text(rnet), rprefix)
    if gateway:
        if not _inside(parse(gateway), net, prefix, bits):
            raise errors.UsageError("no matching subnet for gateway %s" % gateway)
        conf["Gateway"] = text(parse(gateway))
    else:
        conf["Gateway"] = text(net + 1)
    if aux:
        for key, value in aux.items():
            if not _inside(parse(value), net, prefix, bits):
                raise errors.UsageError("invalid auxiliary address %s=%s: it is not an "
                                        "IPv%d address in the subnet %s"
                                        % (key, value, family, subnet))
        conf["AuxiliaryAddresses"] = dict(aux)
    return conf


def create(store, name, driver="bridge", internal=False, subnet=None, gateway=None,
           ip_range=None, labels=None, options=None, aux=None, ipam_options=(),
           ipv6=False, subnet6=None, gateway6=None, ip_range6=None, aux6=None):
    """aux: IPAM's auxiliary addresses ({name: ip} in the subnet of the address's family,
    never given to a container); aux6: more of them (the Engine API's IPv6 config has a map
    of its own, whose names may repeat the IPv4 one's); ipam_options: IPAM.Options as given
    (the Engine API keeps null as null; the CLI's --ipam-opt map is {} when empty, as
    Docker's CLI sends it).
    ipv6: EnableIPv6, with a second IPAM config (subnet6, else a ULA /64). An IPv6 subnet
    without ipv6 is kept in IPAM but gives no addresses, as dockerd 28 does (a static
    --ip6 in it is recorded; the caller warns)."""
    validate_name(name)
    if driver not in ("bridge", None, ""):
        raise errors.UsageError('plugin "%s" not found' % driver,
                                "rootless-box has the bridge driver only")
    if name in PREDEFINED:
        raise errors.Conflict("operation is not permitted on predefined %s network " % name)
    if (gateway or ip_range) and not subnet or (gateway6 or ip_range6) and not subnet6:
        raise errors.UsageError("gateway and ip-range need a subnet: give --subnet")
    pairs = list((aux or {}).items()) + list((aux6 or {}).items())
    aux4 = {k: v for k, v in pairs if not is_v6(v)}
    aux6 = {k: v for k, v in pairs if is_v6(v)}
    if aux6 and not subnet6:
        raise errors.UsageError("no matching subnet for aux-address %s"
                                % next(iter(aux6.values())))
    os.makedirs(_dir(store), 0o700, exist_ok=True)
    with store.lock():
        nets = list_networks(store)
        if any(n["Name"] == name for n in nets):
            raise errors.Conflict("network with name %s already exists" % name)
        configs = [c for n in nets for c in (n.get("IPAM") or {}).get("Config") or ()]
        conf = _ipam_config(4, subnet, gateway, ip_range, aux4,
                            [parse_cidr(c["Subnet"]) for c in configs
                             if not is_v6(c["Subnet"])])
        confs = [conf]
        if ipv6 or subnet6:
            # a disabled network's IPv6 subnet allocates nothing: it takes no pool (dockerd)
            confs.append(_ipam_config(6, subnet6, gateway6, ip_range6, aux6, [
                parse_cidr6(c["Subnet"]) for n in nets if n.get("EnableIPv6")
                for c in n["IPAM"]["Config"] if is_v6(c["Subnet"])]))
        meta = {"Name": name, "Id": os.urandom(32).hex(),
                "Created": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
                "Scope": "local", "Driver": "bridge", "EnableIPv6": bool(ipv6),
                "IPAM": {"Driver": "default", "Options": {} if ipam_options == () else
                         ipam_options, "Config": confs},
                "Internal": bool(internal), "Attachable": False, "Ingress": False,
                "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
                "Options": dict(options or {}), "Labels": dict(labels or {})}
        atomic_write(_path(store, name), fastjson.dumps(meta))
    _event(store, meta, "create")
    return meta


def ipv6_ignored(subnet6, ipv6):
    """The warning for an IPv6 subnet given without IPv6 enabled: dockerd 28 keeps it in
    IPAM but gives containers no IPv6 address, silently; saying it spares a user the
    search."""
    if subnet6 and not ipv6:
        return ("IPv6 is not enabled: the IPv6 subnet %s gives containers no address "
                "(give --ipv6)" % subnet6)
    return None


def split_ipam(subnets, gateways=(), ip_ranges=()):
    """Docker's repeated --subnet/--gateway/--ip-range -> {"subnet", "gateway", "ip_range",
    "subnet6", "gateway6", "ip_range6"}: each gateway and range goes with the subnet of its
    family; one subnet per family here."""
    out = {}
    for key, values in (("subnet", subnets), ("gateway", gateways), ("ip_range", ip_ranges)):
        for value in values:
            slot = key + ("6" if is_v6(value) else "")
            if slot in out:
                raise errors.UsageError(
                    "rootless-box networks have one IPv4 and one IPv6 subnet: give --%s "
                    "once per family" % key.replace("_", "-"))
            out[slot] = value
    for key in ("gateway", "ip_range"):
        for family in ("", "6"):
            if out.get(key + family) and not out.get("subnet" + family) and subnets:
                raise errors.UsageError("no matching subnet for %s %s" % (
                    key.replace("_", "-"), out[key + family]))
    return out


def _event(store, net, action, **extra):
    from . import events
    events.network(store, net["Id"], action, name=net["Name"], type=net["Driver"], **extra)


def _attached(store, net, running_only=True):
    """Records of the containers on `net` (running ones only by default)."""
    from . import containers
    out = []
    for record in containers.all_records(store):
        nets = (record.get("NetworkSettings") or {}).get("Networks") or {}
        if net["Name"] in nets and (not running_only or record["State"].get("Running")):
            out.append(record)
    return out


def inspect_json(store, net):
    """Docker's network object, with Containers: the running containers on it."""
    out = {k: v for k, v in net.items() if k != "Predefined"}
    members = {}
    if not net.get("Predefined"):
        for record in _attached(store, net):
            entry = record["NetworkSettings"]["Networks"][net["Name"]]
            members[record["Id"]] = {
                "Name": record["Name"], "EndpointID": entry.get("EndpointID", ""),
                "MacAddress": entry.get("MacAddress", ""),
                "IPv4Address": "%s/%d" % (entry["IPAddress"], entry["IPPrefixLen"])
                if entry.get("IPAddress") else "",
                "IPv6Address": "%s/%d" % (entry["GlobalIPv6Address"],
                                          entry["GlobalIPv6PrefixLen"])
                if entry.get("GlobalIPv6Address") else ""}
    out["Containers"] = members
    return out


def remove(store, name):
    net = find(store, name)
    if net.get("Predefined"):
        raise errors.Conflict("%s is a pre-defined network and cannot be removed" % name)
    with store.lock():
        users = _attached(store, net)
        if users:
            raise errors.Conflict(
                "error while removing network: network %s has active endpoints (%s)" % (
                    net["Name"], ", ".join('name:"%s" id:"%s"' % (r["Name"], r["Id"][:12])
                                           for r in users)))
        os.unlink(_path(store, net["Name"]))
        _drop_bridge(store, net)
    _event(store, net, "destroy")
    return net


def _drop_bridge(store, net):
    """A removed network's bridge leaves the live holder: the next network may be given the
    same subnet, and two bridges with one gateway address would take each other's traffic
    (the holder's DNS answers then went to the old bridge)."""
    from ..userns import idmap as idmaps
    from ..userns import netholder
    state = read_holder(store, idmaps.plan())
    if not _holder_alive(state):
        return
    try:
        netholder.enter_and(state["pid"], netholder.unplumb, [bridge_name(net)])
    except errors.BoxError:
        pass  # no container ever started on it: there is no bridge


def prune(store, filters=None):
    removed = []
    for net in list_networks(store):
        if filters and not matcher(store, filters)(net):
            continue
        try:
            remove(store, net["Name"])
            removed.append(net["Name"])
        except errors.Conflict:
            pass
    from . import events
    events.emit(store, "network", "prune", "", {"reclaimed": "0"})  # dockerd's: always 0
    return removed


def matcher(store, filters):
    """`network ls --filter`: driver, id (prefix), label (key or key=value), name (substring),
    scope, type (custom|builtin), dangling (no container attached)."""
    def accepts(net):
        for key, values in filters.items():
            if key == "driver" and net["Driver"] not in values:
                return False
            if key == "id" and not any(net["Id"].startswith(v) for v in values):
                return False
            if key == "name" and not any(v in net["Name"] for v in values):
                return False
            if key == "scope" and "local" not in values:
                return False
            if key == "type" and ("builtin" if net.get("Predefined") else "custom") \
                    not in values:
                return False
            if key == "label":
                labels = net.get("Labels") or {}
                for want in values:
                    k, eq, v = want.partition("=")
                    if k not in labels or (eq and labels[k] != v):
                        return False
            if key == "dangling":
                dangling = not net.get("Predefined") and not _attached(store, net, False)
                if (values[0].lower() in ("true", "1")) != dangling:
                    return False
        return True
    return accepts


# -- a container's attachments -------------------------------------------------------------

def parse_mac(text):
    """A MAC address as Docker takes it (six hex pairs; a unicast one, or the kernel refuses
    it on the veth) -> its lower-case text."""
    words = text.split(":") if isinstance(text, str) else ()
    if len(words) != 6 or not all(len(w) == 2 and set(w.lower()) <= set("0123456789abcdef")
                                  for w in words):
        raise errors.UsageError("invalid MAC address: %s" % text)
    if int(words[0], 16) & 1:
        raise errors.UsageError("invalid MAC address %s: it is a multicast address" % text,
                                "give a unicast one (an even first byte), e.g. 02:42:ac:11:00:02")
    return text.lower()


def parse_link(text):
    """`--link NAME[:ALIAS]` -> 'NAME:ALIAS' (the alias defaults to the name, as Docker's)."""
    name, _, alias = text.partition(":")
    name, alias = name.strip("/"), alias.rpartition("/")[2]
    if not name:
        raise errors.UsageError("invalid link %s: the container name is empty" % text)
    return "%s:%s" % (name, alias or name)


def host_links(store, links, linker):
    """Legacy links of a container on the host's network (the default here) to others on it:
    they share its loopback, so ALIAS is 127.0.0.1 in /etc/hosts; the environment is
    Docker's (moby daemon/links: ALIAS_NAME, ALIAS_PORT*, ALIAS_ENV_* of NAME's environment
    but HOME and PATH). -> (HostConfig.Links as Docker records them, env, hosts lines)."""
    from . import containers
    recorded, env, hosts = [], [], ""
    for link in links:
        name, _, alias = parse_link(link).partition(":")
        try:
            target = containers.find(store, name)
        except errors.NotFound:
            raise errors.NotFound("could not get container for %s" % name,
                                  "list containers with 'rootless-box ps -a'") from None
        mode = (target.get("HostConfig") or {}).get("NetworkMode") or "host"
        if mode != "host":
            raise errors.UsageError(
                "cannot link to %s: it is not on the host's network (network mode %s), and "
                "a link is made on the host's network or a user-defined one" % (name, mode),
                "put both on a user-defined network: rootless-box network create NET")
        recorded.append("/%s:/%s/%s" % (target["Name"], linker, alias))
        prefix = alias.upper().replace("-", "_")
        env.append("%s_NAME=/%s/%s" % (prefix, linker, alias))
        ports = sorted((int(p.partition("/")[0]), p.partition("/")[2] or "tcp")
                       for p in (target.get("Config") or {}).get("ExposedPorts") or {})
        for index, (number, proto) in enumerate(ports):
            url = "%s://127.0.0.1:%d" % (proto, number)
            if index == 0:
                env.append("%s_PORT=%s" % (prefix, url))
            key = "%s_PORT_%d_%s" % (prefix, number, proto.upper())
            env += ["%s=%s" % (key, url), "%s_ADDR=127.0.0.1" % key,
                    "%s_PORT=%d" % (key, number), "%s_PROTO=%s" % (key, proto)]
        for item in (target.get("Config") or {}).get("Env") or ():
            key, eq, value = item.partition("=")
            if eq and key not in ("HOME", "PATH"):
                env.append("%s_ENV_%s=%s" % (prefix, key, value))
        hosts += "127.0.0.1\t%s %s\n" % (alias, target["Name"])
    return recorded, env, hosts


def remove_link(store, ctr, alias):
    """`rm --link CTR/ALIAS`: the link leaves the container's record (what it gave a running
    process, its environment and hosts line, stays, as Docker's)."""
    from . import containers
    with store.lock():
        record = store.read_container(containers.find(store, ctr)["Id"])
        host = record.get("HostConfig") or {}
        kept = [link for link in host.get("Links") or ()
                if link.rpartition("/")[2] != alias]
        if len(kept) == len(host.get("Links") or ()):
            raise errors.NotFound("Could not find the link %s/%s" % (ctr, alias))
        host["Links"] = kept or None
        store.write_container(record)
    return record


def endpoint(net, aliases=(), ip=None, mac=None, links=(), driver_opts=None, ip6=None):
    """A container's entry in NetworkSettings.Networks before it has an address. mac: the
    veth's address instead of one made from the IP; links: `NAME:ALIAS` names that only this
    container resolves on the network (Docker's links on user networks); driver_opts:
    recorded as given (the bridge driver takes none); ip6: a static IPv6 address (`--ip6`),
    in the network's IPv6 subnet."""
    conf = ipam_conf(net)
    if ip6:
        value, conf6 = _ip6(ip6), ipam_conf(net, 6)
        if value is None:
            raise errors.UsageError("invalid IPv6 address: %s" % ip6)
        # checked against the configured subnet, as dockerd 28 does: on a network with an
        # IPv6 subnet but IPv6 off it is recorded and no address given (docker-py 7.1's
        # suite relies on it)
        if conf6 is None or not _inside(value, *parse_cidr6(conf6["Subnet"]), 128):
            raise errors.UsageError(
                "no configured subnet contains IP address %s" % ip6,
                "choose an address in %s" % conf6["Subnet"] if conf6
                else "network %s has no IPv6 subnet: create it with --ipv6" % net["Name"])
        if value == _ip6(conf6["Gateway"]):
            raise errors.Conflict("Address already in use: %s is the network's gateway" % ip6)
        ip6 = _text6(value)
    if ip is not None:
        value = _ip(ip)
        if value is None:
            raise errors.UsageError("invalid IPv4 address: %s" % ip)
        if not _inside(value, *parse_cidr(conf["Subnet"])):
            raise errors.UsageError("no configured subnet contains IP address %s" % ip,
                                    "choose an address in %s" % conf["Subnet"])
        if ip == conf["Gateway"]:
            raise errors.Conflict("Address already in use: %s is the network's gateway" % ip)
    given = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
    return {"IPAMConfig": given or None,
            "Links": [parse_link(link) for link in links] or None,
            "Aliases": list(aliases) or None, "MacAddress": parse_mac(mac) if mac else "",
            "DriverOpts": dict(driver_opts) if driver_opts else None, "NetworkID": net["Id"],
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": None}


def parse_flags(values, aliases=(), ip=None, mac=None, ip6=None):
    """`--network` given once or more, in Docker's CLI 25+ grammar: NAME, or the long form
    `name=NAME,alias=A,ip=I,ip6=I6,mac-address=M,driver-opt=K=V` (alias and driver-opt
    repeat; keys case-insensitive). --network-alias, --ip, --ip6 and --mac-address apply to
    the first network, as Docker's, and may not be given for it twice.
    -> (the first network or None, its aliases, its ip, [{"name", "aliases", "ip", "ip6",
    "mac", "driver_opts"} for each further one], {"mac", "ip6", "driver_opts"} of the
    first)."""
    from .ports import network_mode
    attachments = []
    for value in values:
        att = {"name": value, "aliases": [], "ip": None, "ip6": None, "mac": None,
               "driver_opts": {}}
        if "=" in value:
            att["name"] = ""
            for field in value.split(","):
                key, eq, val = field.partition("=")
                key, val = key.strip().lower(), val.strip()
                if not eq or not key:
                    raise errors.UsageError('invalid argument "%s" for "--network" flag: '
                                            "invalid field %s" % (value, field))
                if key == "name":
                    att["name"] = val
                elif key == "alias":
                    att["aliases"].append(val)
                elif key == "ip":
                    att["ip"] = val
                elif key == "mac-address":
                    att["mac"] = val
                elif key == "driver-opt":
                    opt_key, opt_eq, opt_val = val.partition("=")
                    if not opt_eq:
                        raise errors.UsageError('invalid argument "%s" for "--network" flag: '
                                                "invalid driver-opt %s" % (value, val))
                    att["driver_opts"][opt_key] = opt_val
                elif key == "ip6":
                    att["ip6"] = val
                elif key in ("link-local-ip", "gw-priority"):
                    raise errors.UsageError(
                        "--network %s=...: not supported" % key,
                        "give name=, alias=, ip=, ip6=, mac-address= and driver-opt=")
                else:
                    raise errors.UsageError('invalid argument "%s" for "--network" flag: '
                                            "invalid field key %s" % (value, key))
            if not att["name"]:
                raise errors.UsageError('invalid argument "%s" for "--network" flag: '
                                        "network name/id is not specified" % value)
        attachments.append(att)
    names = [att["name"] for att in attachments]
    for name in names:
        if names.count(name) > 1:
            raise errors.UsageError('network "%s" is specified multiple times' % name)
    modes = {network_mode(name) == "user" for name in names}
    if len(modes) > 1:
        raise errors.UsageError("conflicting options: cannot attach both user-defined and "
                                "non-user-defined network-modes")
    if len(names) > 1 and modes == {False}:
        raise errors.UsageError("container cannot be connected to network endpoints: %s"
                                % ", ".join(names))
    if not attachments:
        return None, list(aliases), ip, [], {"mac": mac, "driver_opts": None, "ip6": ip6}
    first = attachments[0]
    if first["aliases"] and aliases:
        raise errors.UsageError("conflicting options: cannot specify both --network-alias "
                                "and per-network alias")
    if first["ip"] and ip:
        raise errors.UsageError("conflicting options: cannot specify both --ip and "
                                "per-network IPv4 address")
    if first["ip6"] and ip6:
        raise errors.UsageError("conflicting options: cannot specify both --ip6 and "
                                "per-network IPv6 address")
    if first["mac"] and mac:
        raise errors.UsageError("conflicting options: cannot specify both --mac-address and "
                                "per-network MAC address")
    return (first["name"], first["aliases"] or list(aliases), first["ip"] or ip,
            attachments[1:], {"mac": first["mac"] or mac, "ip6": first["ip6"] or ip6,
                              "driver_opts": first["driver_opts"] or None})


def check_ip_given(ip, network_mode):
    """--ip needs a user-defined network (Docker: 'user specified IP address is supported on
    user defined networks only')."""
    if ip and network_mode != "user":
        raise errors.UsageError("user specified IP address is supported on user defined "
                                "networks only")


def _allocate(store, net, record, family=4):
    """The container's address of `family` on `net`: its static one, else the lowest free
    one. -> (address, prefix, gateway)."""
    from . import containers
    bits, parse, text = _FAMILIES[family]
    static_key, key = ("IPv4Address", "IPAddress") if family == 4 else \
        ("IPv6Address", "GlobalIPv6Address")
    entry = record["NetworkSettings"]["Networks"][net["Name"]]
    conf = ipam_conf(net, family)
    subnet, prefix = parse_cidr(conf["Subnet"])
    taken = {parse(conf["Gateway"])} | \
        {parse(a) for a in (conf.get("AuxiliaryAddresses") or {}).values()}
    for other in _attached(store, net, running_only=False):
        if other["Id"] == record["Id"]:
            continue
        theirs = other["NetworkSettings"]["Networks"][net["Name"]]
        static = (theirs.get("IPAMConfig") or {}).get(static_key)
        if static:
            taken.add(parse(static))
        # one being started holds the address it was given (under this lock) before it
        # is marked running: two starts at once must not get the same one
        if theirs.get(key) and (other["State"].get("Running") or
                                containers.being_started(other["State"])):
            taken.add(parse(theirs[key]))
    static = (entry.get("IPAMConfig") or {}).get(static_key)
    if static:
        if parse(static) in taken:
            raise errors.Conflict("Address already in use: %s on network %s" % (
                static, net["Name"]))
        return static, prefix, conf["Gateway"]
    # IPv4's last address is the broadcast one; IPv6 has none
    first, last = subnet + 1, subnet + (1 << (bits - prefix)) - (2 if family == 4 else 1)
    if conf.get("IPRange"):
        rnet, rprefix = parse_cidr(conf["IPRange"])
        first, last = max(first, rnet), min(last, rnet + (1 << (bits - rprefix)) - 1)
    value = first
    while value <= last:
        if value not in taken:
            return text(value), prefix, conf["Gateway"]
        value += 1
    raise errors.Conflict("no available IPv%d addresses on network %s" % (family,
                                                                           net["Name"]))


def link_names(cid, net):
    """The host-side veth of container `cid` on `net` (15 characters at most, unique)."""
    return "v" + cid[:9] + net["Id"][:4]


def bridge_name(net):
    """rb-<id12>, or ri- for an --internal network: N0's forwarding rules take rb-* alone
    out through the uplink (userns/netholder.NFT_RULES)."""
    return ("ri-" if net.get("Internal") else "rb-") + net["Id"][:12]


def _mac(ip):
    return "02:42:" + ":".join("%02x" % b for b in socket.inet_aton(ip))


def assign(store, record, only=None):
    """Under the store lock: give each of the record's user networks an address (written in
    the record) and return the links to plumb, in order (eth0 first). only: that network
    alone (a connect: the others keep their addresses; its interface takes the first free
    ethN name, chosen where the names are seen, and no default route)."""
    links = []
    nets = record["NetworkSettings"]["Networks"]
    route_given = False
    for index, name in enumerate(list(nets)):
        net = find(store, name)
        route = not net.get("Internal") and not route_given
        route_given = route_given or route
        if only is not None and name != only:
            continue
        ip, prefix, gateway = _allocate(store, net, record)
        ip6, prefix6, gateway6 = _allocate(store, net, record, 6) \
            if net.get("EnableIPv6") and ipam_conf(net, 6) else ("", 0, "")
        entry = nets[name]
        mac = given_mac(entry) or _mac(ip)
        entry.update({"IPAddress": ip, "IPPrefixLen": prefix, "Gateway": gateway,
                      "GlobalIPv6Address": ip6, "GlobalIPv6PrefixLen": prefix6,
                      "IPv6Gateway": gateway6,
                      "NetworkID": net["Id"], "MacAddress": mac,
                      "EndpointID": (record["Id"] + net["Id"])[::2],
                      "DNSNames": [record["Name"], record["Id"][:12]] +
                      list(entry.get("Aliases") or ())})
        links.append({"bridge": bridge_name(net), "gateway": gateway, "prefix": prefix,
                      "veth": link_names(record["Id"], net),
                      "ifname": None if only else "eth%d" % index,
                      "ip": ip, "route": route and (not only or len(nets) == 1),
                      "ip6": ip6, "prefix6": prefix6, "gateway6": gateway6,
                      "net": name, "mac": mac,
                      # the gateway's MAC, fixed (userns/netholder.plumb says why) and the
                      # same in a new holder, so ARP caches survive a holder's restart too
                      "bridge_mac": _mac(gateway)})
    return links


def given_mac(entry):
    """The MAC the user gave for this endpoint, or None: one made here is always _mac() of
    the address it went with, so a MacAddress that is not is the user's (kept at restarts;
    Docker keeps it apart as DesiredMacAddress, which inspect does not show)."""
    mac = entry.get("MacAddress")
    if not mac:
        return None
    return None if entry.get("IPAddress") and mac == _mac(entry["IPAddress"]) else mac


# -- the holder and its DNS table ------------------------------------------------------------

def state_dir(store, idmap, create=True):
    """The holder's files on the runtime dir's tmpfs, one holder per store and mapping (the
    holder removes them when it leaves; a start of any holder sweeps those of dead ones)."""
    st = os.stat(store.root)
    path = os.path.join(config.runtime_root(), "net-%x-%x-%s" % (st.st_dev, st.st_ino,
                                                                  idmap.key))
    if create:
        os.makedirs(path, 0o700, exist_ok=True)
    return path


def holder(store, idmap):
    """The pid of the live holder for idmap, started when there is none (under a lock on the
    runtime dir, so two commands never start two)."""
    from ..userns import netholder
    fd = None
    while fd is None:  # the directory removed meanwhile (a holder left): made again
        base = state_dir(store, idmap)
        fd = netholder.lock_state(base)
    try:
        state = read_holder(store, idmap)
        # a live holder of a store deleted since, whose inode this store's root got
        # (it leaves within seconds; this store gets its own holder meanwhile)
        if _holder_alive(state) and state.get("watch", _dir(store)) == _dir(store):
            return state["pid"]
        from . import containers
        table = os.path.join(base, "dns.json")
        os.makedirs(_dir(store), 0o700, exist_ok=True)
        _sweep(base)
        # looked for even with no holder.json (swept, or a reboot: then none runs)
        orphans = _orphans(store, idmap)
        userns_fd = None
        for record in orphans:
            userns_fd = netholder.parent_userns(record["State"]["Pid"])
            if userns_fd is not None:
                break
        from .ports import outbound_helper
        uplink = outbound_helper()
        try:
            pid, uplink_state = netholder.spawn(idmap, table, _dir(store), userns_fd, uplink)
        finally:
            if userns_fd is not None:
                os.close(userns_fd)
        # uplink: the helper giving N0 a way out, or null; uplink_error: why it gave none
        atomic_write(os.path.join(base, "holder.json"), fastjson.dumps(
            {"pid": pid, "start": containers.proc_start_time(pid), "watch": _dir(store),
             "uplink": uplink if uplink and not uplink_state else None,
             "uplink_error": uplink_state}))
        if userns_fd is not None:
            _rewire(store, pid, orphans)
        return pid
    finally:
        os.close(fd)


def _sweep(keep):
    """Remove the runtime dirs of holders that are gone without leaving (killed, or their
    store deleted under them), each under its lock (a command using one holds it)."""
    from ..userns import netholder
    root = config.runtime_root()
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if not name.startswith("net-") or path == keep:
            continue
        fd = netholder.lock_state(path, wait=False)
        if fd is None:
            continue
        try:
            try:
                with open(os.path.join(path, "holder.json"), "rb") as f:
                    state = fastjson.loads(f.read())
            except (OSError, ValueError):
                state = None
            if not _holder_alive(state):
                netholder.remove_state(path)
        finally:
            os.close(fd)


def _orphans(store, idmap):
    """Running containers on user networks under `idmap`: after a holder died (kill -9),
    their veths went with its network namespace, while their user namespaces keep its U0."""
    from . import containers
    out = []
    for record in containers.all_records(store):
        nets = (record.get("NetworkSettings") or {}).get("Networks") or {}
        if record["State"].get("Running") and any(e.get("IPAddress") for e in nets.values()):
            try:
                if _mapping_of(store, record).mode == idmap.mode:
                    out.append(record)
            except (OSError, ValueError, errors.BoxError):
                continue
    return out


def _rewire(store, pid, records):
    """Wire the containers a dead holder left to the new one's bridges, with the addresses
    they had: one child in U0 per container. A container that cannot be (it left
    meanwhile, or lives in another U0) is left as it is."""
    from ..userns import netholder
    for record in records:
        links = []
        route_given = False
        for index, (name, entry) in enumerate(record["NetworkSettings"]["Networks"].items()):
            try:
                net = find(store, name)
            except errors.NotFound:
                continue
            route = not net.get("Internal") and not route_given
            route_given = route_given or route
            links.append({"bridge": bridge_name(net), "gateway": entry["Gateway"],
                          "prefix": entry["IPPrefixLen"], "veth": link_names(record["Id"], net),
                          "ifname": "eth%d" % index, "ip": entry["IPAddress"], "route": route,
                          "net": name, "mac": entry.get("MacAddress"),
                          "bridge_mac": _mac(entry["Gateway"]),
                          "ip6": entry.get("GlobalIPv6Address"),
                          "prefix6": entry.get("GlobalIPv6PrefixLen"),
                          "gateway6": entry.get("IPv6Gateway")})
        try:
            target = os.open("/proc/%d/ns/net" % record["State"]["Pid"],
                             os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            netholder.enter_and(pid, netholder.plumb, target, links, True)
        except errors.BoxError:
            pass
        finally:
            os.close(target)


def _holder_alive(state):
    """The recorded holder runs: same pid and start time, and no zombie (a killed holder
    may wait for a reaper a while, with its namespaces already gone)."""
    if not state:
        return False
    try:
        with open("/proc/%d/stat" % state["pid"], "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2:].split()
        return fields[0] not in (b"Z", b"X") and int(fields[19]) == state["start"]
    except (OSError, ValueError, IndexError):
        return False


def read_holder(store, idmap):
    try:
        with open(os.path.join(state_dir(store, idmap, False), "holder.json"), "rb") as f:
            return fastjson.loads(f.read())
    except (OSError, ValueError):
        return None


def _upstreams():
    from .run import host_resolv_conf
    out = []
    for line in host_resolv_conf().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and _ip(words[1]) is not None:
            out.append(words[1])
    return out


def _search():
    from .run import host_resolv_conf
    out = [SEARCH_DOMAIN]
    for line in host_resolv_conf().splitlines():
        words = line.split()
        if words and words[0] in ("search", "domain"):
            out += words[1:]
    return out


def write_table(store, idmap, extra=None):
    """The holder's DNS table from every record with an address on a user network (the
    holder answers only for those whose veth still exists); extra: a record being started,
    newer than its file."""
    from . import containers
    records = {r["Id"]: r for r in containers.all_records(store)}
    if extra is not None:
        records[extra["Id"]] = extra
    internal = {n["Name"] for n in list_networks(store) if n.get("Internal")}
    by_name = {r["Name"]: r for r in records.values()}
    entries = []
    for record in records.values():
        for name, entry in ((record.get("NetworkSettings") or {}).get("Networks")
                            or {}).items():
            if not entry.get("IPAddress") or name in PREDEFINED:
                continue
            names = [record["Name"], record["Id"][:12]] + list(entry.get("Aliases") or ())
            entries.append({"cid": record["Id"], "net": name, "ip": entry["IPAddress"],
                            "ip6": entry.get("GlobalIPv6Address") or None,
                            "names": [n.lower() for n in names],
                            "link": "v" + record["Id"][:9] + entry["NetworkID"][:4]})
            if record is extra or record["State"].get("Running"):
                # a stopped linker's address may be another's soon: its links leave
                entries += _link_entries(by_name, record, name, entry)
    table = {"entries": entries, "internal": sorted(internal), "search": _search(),
             "upstreams": _upstreams()}
    atomic_write(os.path.join(state_dir(store, idmap), "dns.json"), fastjson.dumps(table))


def _link_entries(by_name, record, net, entry):
    """Docker's links on a user network: ALIAS of `NAME:ALIAS` resolves to NAME's address
    there, for the linking container alone ("for": its address; dnsd answers no one else)."""
    out = []
    for link in entry.get("Links") or ():
        target_name, _, alias = link.partition(":")
        target = by_name.get(target_name)
        theirs = ((target or {}).get("NetworkSettings") or {}).get("Networks", {}).get(net)
        if theirs and theirs.get("IPAddress"):
            out.append({"cid": target["Id"], "net": net, "ip": theirs["IPAddress"],
                        "ip6": theirs.get("GlobalIPv6Address") or None,
                        "names": [alias.lower()], "for": entry["IPAddress"],
                        "link": "v" + target["Id"][:9] + theirs["NetworkID"][:4]})
    return out


def start_spec(store, spec):
    """spec with what the launcher needs to put a container on its user networks at this
    start: the holder's pid and the links (addresses assigned now, the record updated, the
    DNS table rewritten)."""
    from ..userns import idmap as idmaps
    idmap = idmaps.plan(spec.get("idmap_mode"))
    pid = holder(store, idmap)
    with store.lock():
        record = store.read_container(spec["id"])
        links = assign(store, record)
        store.write_container(record)
        write_table(store, idmap, record)
    return dict(spec, holder_pid=pid, links=links)


def resolv_conf(store, name, host_text):
    """A container's resolv.conf on network `name`: the holder's DNS at the gateway, the
    tool's search domain before the host's, the host's options."""
    net = find(store, name)
    lines = ["nameserver " + ipam_conf(net)["Gateway"],
             "search " + " ".join(_search())]
    for line in host_text.splitlines():
        if line.startswith("options"):
            lines.append(line)
    return "\n".join(lines) + "\n"


# -- connect and disconnect ------------------------------------------------------------------

def _mapping_of(store, record):
    """The id mapping a running container was started under (its kept run spec says; a
    foreground run keeps none: the one its --userns chose, else the store's own)."""
    from . import containers
    from ..userns import idmap as idmaps
    try:
        return idmaps.plan(containers.load_spec(store, record).get("idmap_mode"))
    except errors.BoxError:
        return idmaps.plan((record.get("HostConfig") or {}).get("UsernsMode") or None)


def connect(store, net_name, ctr, aliases=(), ip=None, mac=None, links=(), driver_opts=None,
            ip6=None):
    """Attach a container to a user network: a stopped or created one is only recorded (its
    next start wires it); a running one gets a veth now. A created container of another
    network mode (bridge, or the host default) becomes one on the user network. A running
    one that is not on a user network cannot be wired (its user namespace is not nested in
    the holder's, and no process has CAP_NET_ADMIN over both): refused, nothing changed.
    One that was started on user networks and left them all is wired again (its namespaces
    are the holder's children still)."""
    from . import containers
    net = find(store, net_name)
    record = containers.find(store, ctr)
    if net.get("Predefined"):
        raise errors.Conflict("connecting to the predefined network %s is not supported: "
                              "rootless-box connects containers to user-defined networks"
                              % net["Name"], "create one: rootless-box network create NAME")
    with store.lock():
        record = containers.refresh_state(store, store.read_container(record["Id"]))
        nets = (record.get("NetworkSettings") or {}).get("Networks") or {}
        running = record["State"].get("Running")
        if net["Name"] in nets:
            raise errors.Conflict("endpoint with name %s already exists in network %s" % (
                record["Name"], net["Name"]))
        new_entry = endpoint(net, aliases, ip, mac, links, driver_opts, ip6)
        if not nets and not _started_on_user_network(store, record):
            _convert_created(store, record, running, net)
        record["NetworkSettings"].setdefault("Networks", {})
        record["NetworkSettings"]["Networks"][net["Name"]] = new_entry
        if running:
            _wire_running(store, record, net)
        else:
            store.write_container(record)
            return record
    _event(store, net, "connect", container=record["Id"])  # running only, as dockerd
    return record


def _started_on_user_network(store, record):
    """The container was made for user networks (its run spec says so), though it may have
    left them all: it needs no conversion to join one."""
    from . import containers
    from .ports import network_mode
    try:
        return containers.load_spec(store, record).get("network") == "user"
    except errors.BoxError:  # a foreground run keeps no spec: its record's mode tells
        return network_mode((record.get("HostConfig") or {}).get("NetworkMode")) == "user"


def _convert_created(store, record, running, net):
    """A container with no user network joins its first one: only before it ever ran, by
    rewriting its run spec and resolver files as `create --network NET` would have made
    them (the record is the caller's to write)."""
    from . import containers
    from . import ports
    from .ports import parse_add_hosts
    from .run import host_resolv_conf, hosts_file
    host = record.get("HostConfig") or {}
    mode = host.get("NetworkMode") or "host"
    if mode == "none":
        raise errors.Conflict("container cannot be connected to multiple networks with one "
                              "of the networks in private (none) mode",
                              "create it with --network %s instead" % net["Name"])
    if mode.startswith("container:"):
        raise errors.Conflict("container sharing network namespace with another container "
                              "or host cannot be connected to any other network")
    if running or record["State"].get("Status") != "created":
        raise errors.Conflict(
            "container %s is not on a user-defined network (network mode %s): only a "
            "container that never started can join one" % (record["Name"], mode),
            "recreate it on the network: rootless-box run --network %s ..." % net["Name"])
    spec = containers.load_spec(store, record)
    files = spec.get("etc_files") or {}
    if "/etc/hosts" in files and mode == "host":
        with open(files["/etc/hosts"], "w") as f:
            f.write(hosts_file("user", spec["hostname"],
                               parse_add_hosts(host.get("ExtraHosts") or ())))
    if "/etc/resolv.conf" in files and not host.get("Dns"):
        with open(files["/etc/resolv.conf"], "w") as f:
            f.write(ports.resolv_conf(resolv_conf(store, net["Name"], host_resolv_conf()),
                                      (), host.get("DnsSearch") or (),
                                      host.get("DnsOptions") or ()))
    spec.update(network="user", outbound=None)
    containers.save_spec(store, record["Id"], spec)
    record["HostConfig"]["NetworkMode"] = net["Name"]
    record["NetworkSettings"]["Networks"] = {}


def _wire_running(store, record, net):
    """Under the store lock: plumb the record's new network into the running container and
    write the record and the DNS table. A container that dies meanwhile is connected as a
    stopped one is (recorded, wired at its next start) with no veth left behind; an error
    leaves the record as it was and no veth."""
    from . import containers
    from ..userns import netholder
    state = record["State"]
    target = _open_netns(record, net)  # first: a refusal leaves the holder untouched
    try:
        idmap = _mapping_of(store, record)
        links = assign(store, record, only=net["Name"])
        entry = record["NetworkSettings"]["Networks"][net["Name"]]
        pid = holder(store, idmap)
        try:
            if target is not None and containers.proc_start_time(state["Pid"]) == \
                    state.get("PidStartTime"):
                netholder.enter_and(pid, netholder.plumb, target, links)
        except errors.BoxError:
            _unplumb_quietly(pid, links[0]["veth"])
            raise
    finally:
        if target is not None:
            os.close(target)
    if containers.proc_start_time(state["Pid"]) != state.get("PidStartTime"):
        # it died while being connected: its namespace (held by our fd until now) goes,
        # and its veth with it; removed here so no stale entry outlives this command
        _unplumb_quietly(pid, links[0]["veth"])
        record["NetworkSettings"]["Networks"][net["Name"]] = endpoint(
            net, entry.get("Aliases") or (),
            (entry.get("IPAMConfig") or {}).get("IPv4Address"), given_mac(entry),
            entry.get("Links") or (), entry.get("DriverOpts"),
            (entry.get("IPAMConfig") or {}).get("IPv6Address"))
    store.write_container(record)
    write_table(store, idmap)


def _open_netns(record, net):
    """An fd on the running container's network namespace; None when its process is gone
    (ENOENT, ESRCH, or its pid is another process's now: connected as a stopped one is).
    A live container whose namespace cannot be opened is refused: connecting it would
    record an endpoint with no interface behind it."""
    import errno
    from . import containers
    state = record["State"]
    path = "/proc/%d/ns/net" % state["Pid"]
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ESRCH) or \
                containers.proc_start_time(state["Pid"]) != state.get("PidStartTime"):
            return None
        raise errors.SetupError(
            "cannot connect container %s to network %s: its network namespace %s cannot "
            "be opened: %s" % (record["Name"], net["Name"], path,
                               exc.strerror or exc),
            "connect it while it is stopped (rootless-box stop %s; rootless-box network "
            "connect %s %s; rootless-box start %s)" % (
                record["Name"], net["Name"], record["Name"], record["Name"])) from None


def _unplumb_quietly(pid, veth):
    from ..userns import netholder
    try:
        netholder.enter_and(pid, netholder.unplumb, [veth])
    except errors.BoxError:
        pass  # the holder is gone too: its namespace took the veth with it


def disconnect(store, net_name, ctr, force=False):
    from . import containers
    from ..userns import netholder
    record = containers.find(store, ctr)
    try:
        net = find(store, net_name)
    except errors.NotFound:
        if not force:
            raise
        net = {"Name": net_name, "Id": ""}
    with store.lock():
        record = store.read_container(record["Id"])
        nets = record["NetworkSettings"].get("Networks") or {}
        if net["Name"] not in nets:
            raise errors.Conflict("container %s is not connected to network %s" % (
                record["Id"], net["Name"]))
        entry = nets.pop(net["Name"])
        running = containers.refresh_state(store, record)["State"].get("Running")
        if running and net["Id"]:
            idmap = _mapping_of(store, record)
            state = read_holder(store, idmap)
            if _holder_alive(state):
                netholder.enter_and(state["pid"], netholder.unplumb,
                                    ["v" + record["Id"][:9] + entry["NetworkID"][:4]])
            store.write_container(record)
            write_table(store, idmap)
            _event(store, net, "disconnect", container=record["Id"])
        else:
            store.write_container(record)
    return record
