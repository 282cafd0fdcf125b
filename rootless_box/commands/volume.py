"""`volume create|ls|inspect|rm|prune`: Docker's volume verbs over ops/volumes.py.

Owns: each verb's options and output (create prints the name; ls's DRIVER / VOLUME NAME
table, -q, --filter and --format with Docker's field names .Name .Driver .Scope .Mountpoint
.Labels .Label .Links .Size; inspect's JSON list; rm's names; prune's prompt and report).
Must not: decide anything about volumes (ops/volumes.py does, under the store lock).
"""

import sys

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import UsageError
from ..ops import volumes as volume_ops
from ..ops.storage import open_store
from ._common import for_each, inspect_each

DEFAULT = "table {{.Driver}}\t{{.Name}}"
HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Label": lambda _key: "LABEL",
           "Links": "LINKS", "Size": "SIZE", "Availability": "AVAILABILITY",
           "Group": "GROUP", "Status": "STATUS"}
PRUNE_WARNING = ("WARNING! This will remove anonymous local volumes not used by at least one "
                 "container.\nAre you sure you want to continue?")
PRUNE_WARNING_ALL = ("WARNING! This will remove all local volumes not used by at least one "
                     "container.\nAre you sure you want to continue?")


def command(verb, summary):
    sub = verb.split()[-1]
    if sub == "create":
        return Command(verb, "volume create [OPTIONS] [VOLUME]", summary, (
            Opt("-d,--driver", VALUE, "Specify volume driver name", default="local"),
            Opt("--label", LIST, "Set metadata for a volume", metavar="list"),
            Opt("-o,--opt", LIST, "Set driver specific options", metavar="map"),
            Opt("--name", VALUE, "Specify volume name"),
        ), max_args=1)
    if sub == "ls":
        return Command(verb, "volume ls [OPTIONS]", summary, (
            Opt("-f,--filter", LIST, "Provide filter values (e.g. \"dangling=true\")"),
            Opt("--format", VALUE, "Format output using a custom template: 'table', "
                                   "'table TEMPLATE', 'json', or a Go template"),
            Opt("-q,--quiet", FLAG, "Only display volume names"),
        ), max_args=0)
    if sub == "inspect":
        return Command(verb, "volume inspect [OPTIONS] VOLUME [VOLUME...]", summary, (
            Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a "
                                      "Go template"),
        ), min_args=1)
    if sub == "rm":
        return Command(verb, "volume rm [OPTIONS] VOLUME [VOLUME...]", summary, (
            Opt("-f,--force", FLAG, "Force the removal of one or more volumes"),
        ), min_args=1)
    return Command(verb, "volume prune [OPTIONS]", summary, (
        Opt("-a,--all", FLAG, "Remove all unused volumes, not just anonymous ones"),
        Opt("--filter", LIST, "Provide filter values (e.g. \"label=<label>\")"),
        Opt("-f,--force", FLAG, "Do not prompt for confirmation"),
    ), max_args=0)


def main(parsed):
    sub = parsed.command.name.split()[-1]
    return {"create": _create, "ls": _ls, "inspect": _inspect, "rm": _rm,
            "prune": _prune}[sub](parsed)


def _create(parsed):
    from ..ops.labels import to_map
    name = parsed.args[0] if parsed.args else None
    if name and parsed.name and name != parsed.name:
        raise UsageError("conflicting options: either specify --name or provide positional "
                         "arg, not both")
    options = {}
    for item in parsed.opt:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError('invalid argument "%s" for "-o, --opt" flag: invalid key value '
                             'pair format in driver options' % item,
                             "see 'rootless-box volume create --help'")
        options[key] = value
    meta = volume_ops.create(open_store(), name or parsed.name, parsed.driver,
                             to_map(parsed.label), options)
    sys.stdout.write(meta["Name"] + "\n")
    return 0


def _row(store, meta):
    labels = meta.get("Labels") or {}
    return {"Name": meta["Name"], "Driver": meta.get("Driver", "local"), "Scope": "local",
            "Mountpoint": volume_ops.mountpoint(store, meta["Name"]),
            "Labels": ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels)),
            "Label": lambda key, _l=labels: _l.get(key, ""),
            "Links": "N/A", "Size": "N/A", "Availability": "N/A", "Group": "N/A",
            "Status": "N/A"}


def _ls(parsed):
    from .images import compile_format, parse_filters, write_formatted
    filters = parse_filters(parsed.filter, volume_ops.VOLUME_FILTERS)
    volume_ops.check_filters(filters)
    compiled = None if parsed.quiet else compile_format(parsed.format, DEFAULT)
    store = open_store()
    accepts = volume_ops.matcher(store, filters)
    chosen = [m for m in volume_ops.list_volumes(store) if accepts(m)]
    if parsed.quiet:
        sys.stdout.write("".join(m["Name"] + "\n" for m in chosen))
        return 0
    write_formatted(compiled, [_row(store, m) for m in chosen], HEADERS)
    return 0


def _inspect(parsed):
    store = open_store()
    return inspect_each(parsed.args, lambda name: volume_ops.inspect_json(
        store, volume_ops.get(store, name)), parsed.format)


def _rm(parsed):
    store = open_store()

    def one(name):
        # -f forgives a missing volume, whose name is printed all the same (as Docker)
        volume_ops.remove(store, name, parsed.force)
        sys.stdout.write(name + "\n")
    return for_each(parsed.args, one)


def _prune(parsed):
    from .images import parse_filters
    from .imageprune import confirm, write_report
    from .systemprune import _section
    filters = parse_filters(parsed.filter, ("label", "label!", "all"))
    volume_ops.check_filters(filters)
    all_volumes = parsed.all or any(v.lower() in ("true", "1")
                                    for v in filters.pop("all", []))
    store = open_store()
    if not parsed.force and not confirm(PRUNE_WARNING_ALL if all_volumes else PRUNE_WARNING):
        return 0  # cancelled: nothing removed (Docker's cancelledErr)
    result = volume_ops.prune(store, all_volumes, filters)
    write_report([_section("Deleted Volumes", result["deleted"])], result["reclaimed"])
    return 0
