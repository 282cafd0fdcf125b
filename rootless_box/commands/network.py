"""`network create|ls|inspect|rm|prune|connect|disconnect`: Docker's network verbs over
ops/networks.py.

Owns: each verb's options and output (create prints the ID; ls's NETWORK ID / NAME / DRIVER /
SCOPE table, -q, --filter, --format; inspect's JSON list; rm's names; prune's prompt and
report). Must not: decide anything about networks (ops/networks.py does).
"""

import sys

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import UsageError
from ..ops import networks as net_ops
from ..ops.storage import open_store
from ._common import for_each, inspect_each, warn

DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
           "Label": lambda _key: "LABEL", "CreatedAt": "CREATED AT"}
PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one "
                 "container.\nAre you sure you want to continue?")
NO_WAY_OUT = ("network %s has no way out (%s): it behaves as --internal; containers on it "
              "reach each other, their names resolve (other names through the host's "
              "resolvers) and -p publishes their ports")


def command(verb, summary):
    sub = verb.split()[-1]
    if sub == "create":
        return Command(verb, "network create [OPTIONS] NETWORK", summary, (
            Opt("-d,--driver", VALUE, "Driver to manage the Network", default="bridge"),
            Opt("--internal", FLAG, "Restrict external access to the network"),
            Opt("--ipv6", FLAG, "Enable IPv6 address assignment (a ULA /64 unless an IPv6 "
                "--subnet is given)"),
            Opt("--subnet", LIST, "Subnet in CIDR format that represents a network segment "
                "(one IPv4, one IPv6)", metavar="strings"),
            Opt("--gateway", LIST, "IPv4 or IPv6 Gateway for the master subnet",
                metavar="strings"),
            Opt("--ip-range", LIST, "Allocate container ip from a sub-range",
                metavar="strings", dest="ip_range"),
            Opt("--aux-address", LIST, "Auxiliary IPv4 or IPv6 addresses used by Network "
                "driver", metavar="map", dest="aux_address"),
            Opt("--ipam-opt", LIST, "Set IPAM driver specific options", metavar="map",
                dest="ipam_opt"),
            Opt("--label", LIST, "Set metadata on a network", metavar="list"),
            Opt("-o,--opt", LIST, "Set driver specific options", metavar="map"),
        ), min_args=1, max_args=1)
    if sub == "ls":
        return Command(verb, "network ls [OPTIONS]", summary, (
            Opt("-f,--filter", LIST, "Provide filter values (e.g. \"driver=bridge\")"),
            Opt("--format", VALUE, "Format output using a custom template: 'table', "
                                   "'table TEMPLATE', 'json', or a Go template"),
            Opt("-q,--quiet", FLAG, "Only display network IDs"),
            Opt("--no-trunc", FLAG, "Do not truncate the output", dest="no_trunc"),
        ), max_args=0)
    if sub == "inspect":
        return Command(verb, "network inspect [OPTIONS] NETWORK [NETWORK...]", summary, (
            Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a "
                                      "Go template"),
        ), min_args=1)
    if sub == "rm":
        return Command(verb, "network rm NETWORK [NETWORK...]", summary, (
            Opt("-f,--force", FLAG, "Do not error if the network does not exist"),
        ), min_args=1)
    if sub == "prune":
        return Command(verb, "network prune [OPTIONS]", summary, (
            Opt("--filter", LIST, "Provide filter values (e.g. \"label=<label>\")"),
            Opt("-f,--force", FLAG, "Do not prompt for confirmation"),
        ), max_args=0)
    if sub == "connect":
        return Command(verb, "network connect [OPTIONS] NETWORK CONTAINER", summary, (
            Opt("--alias", LIST, "Add network-scoped alias for the container",
                metavar="strings"),
            Opt("--ip", VALUE, "IPv4 address (e.g., \"172.30.100.104\")"),
            Opt("--ip6", VALUE, "IPv6 address (e.g., \"2001:db8::33\")"),
            Opt("--link", LIST, "Add link to another container (NAME[:ALIAS]: ALIAS resolves "
                                "to NAME for this container on the network)", metavar="list"),
            Opt("--driver-opt", LIST, "driver options for the network", metavar="strings",
                dest="driver_opt"),
        ), min_args=2, max_args=2)
    return Command(verb, "network disconnect [OPTIONS] NETWORK CONTAINER", summary, (
        Opt("-f,--force", FLAG, "Force the container to disconnect from a network"),
    ), min_args=2, max_args=2)


def main(parsed):
    sub = parsed.command.name.split()[-1]
    return {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm, "prune": _prune,
            "connect": _connect, "disconnect": _disconnect}[sub](parsed)


def _pairs(items, flag, what):
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError('invalid argument "%s" for "%s" flag: invalid key value pair '
                             'format in %s' % (item, flag, what))
        out[key] = value
    return out


def _create(parsed):
    from ..ops.labels import to_map
    options = _pairs(parsed.opt, "-o, --opt", "driver options")
    ipam = net_ops.split_ipam(parsed.subnet, parsed.gateway, parsed.ip_range)
    meta = net_ops.create(open_store(), parsed.args[0], parsed.driver, parsed.internal,
                          ipam.get("subnet"), ipam.get("gateway"), ipam.get("ip_range"),
                          to_map(parsed.label), options,
                          _pairs(parsed.aux_address, "--aux-address", "auxiliary addresses"),
                          _pairs(parsed.ipam_opt, "--ipam-opt", "IPAM driver options"),
                          parsed.ipv6, ipam.get("subnet6"), ipam.get("gateway6"),
                          ipam.get("ip_range6"))
    ignored = net_ops.ipv6_ignored(ipam.get("subnet6"), parsed.ipv6)
    if ignored:
        warn(ignored)
    if not meta["Internal"]:
        from ..ops import ports
        usable, detail = ports.outbound()
        if not usable:  # else the holder's namespace goes out through the helper
            warn(NO_WAY_OUT % (meta["Name"], detail))
    sys.stdout.write(meta["Id"] + "\n")
    return 0


def _row(net, no_trunc):
    labels = net.get("Labels") or {}
    return {"ID": net["Id"] if no_trunc else net["Id"][:12], "Name": net["Name"],
            "Driver": net["Driver"], "Scope": "local",
            "IPv6": str(bool(net.get("EnableIPv6"))).lower(),
            "Internal": str(bool(net.get("Internal"))).lower(),
            "Labels": ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels)),
            "Label": lambda key, _l=labels: _l.get(key, ""),
            "CreatedAt": net.get("Created", "")}


def _ls(parsed):
    from .images import compile_format, parse_filters, write_formatted
    filters = parse_filters(parsed.filter, net_ops.NETWORK_FILTERS)
    compiled = None if parsed.quiet else compile_format(parsed.format, DEFAULT)
    store = open_store()
    accepts = net_ops.matcher(store, filters)
    nets = [net_ops.predefined(n) for n in net_ops.PREDEFINED] + net_ops.list_networks(store)
    chosen = sorted((n for n in nets if accepts(n)), key=lambda n: n["Name"])
    if parsed.quiet:
        sys.stdout.write("".join((n["Id"] if parsed.no_trunc else n["Id"][:12]) + "\n"
                                 for n in chosen))
        return 0
    write_formatted(compiled, [_row(n, parsed.no_trunc) for n in chosen], HEADERS)
    return 0


def _inspect(parsed):
    store = open_store()
    return inspect_each(parsed.args, lambda name: net_ops.inspect_json(
        store, net_ops.find(store, name)), parsed.format)


def _rm(parsed):
    from ..errors import NotFound
    store = open_store()

    def one(name):
        try:
            net_ops.remove(store, name)
        except NotFound:
            if not parsed.force:
                raise
            return
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, one)


def _prune(parsed):
    from .images import parse_filters
    from .imageprune import confirm
    filters = parse_filters(parsed.filter, ("label", "label!", "until"))
    store = open_store()
    if not parsed.force and not confirm(PRUNE_WARNING):
        return 0
    removed = net_ops.prune(store, filters)
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(n + "\n" for n in removed))
    return 0


def _connect(parsed):
    net_ops.connect(open_store(), parsed.args[0], parsed.args[1], parsed.alias, parsed.ip,
                    None, parsed.link,
                    _pairs(parsed.driver_opt, "--driver-opt", "driver options") or None,
                    parsed.ip6)
    return 0


def _disconnect(parsed):
    net_ops.disconnect(open_store(), parsed.args[0], parsed.args[1], parsed.force)
    return 0
