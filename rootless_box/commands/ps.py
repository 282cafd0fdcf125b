"""`ps [OPTIONS]`: containers as Docker lists them (running ones, or all with -a).

Owns: the listing's rows with Docker's field names (.ID .Image .Command .CreatedAt .RunningFor
.Ports .State .Status .Size .Names .Labels .Label "k" .Mounts .Networks .LocalVolumes),
Docker's STATUS texts, and ps's options (-a -q -n -l -s --no-trunc --filter --format).
Filters live in ops/psfilter.py; `--filter`/`--format` grammar is images.py's, reused.
Must not: change the store (beyond the exited-state refresh every listing does).
"""

import sys

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import UsageError
from ..ops import containers as container_ops
from ..ops import images as image_ops
from ..ops import psfilter
from ..ops.containerjson import status_text
from ..ops.storage import open_store
from ._common import human_ago, human_size
from .images import compile_format, go_time_string, parse_filters, write_formatted

DEFAULT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}" \
          "\t{{.Names}}"
HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
           "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
           "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
           "Labels": "LABELS", "Label": lambda _key: "LABEL", "Mounts": "MOUNTS",
           "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}


def command(verb, summary):
    return Command(verb, "ps [OPTIONS]", summary, (
        Opt("-a,--all", FLAG, "Show all containers (default shows just running)"),
        Opt("-f,--filter", LIST, "Filter output based on conditions provided: status=, name=, "
                                 "id=, ancestor=, label=, exited=, before=, since=, volume="),
        Opt("--format", VALUE, "Format output using a custom template: 'table', "
                               "'table TEMPLATE', 'json', or a Go template"),
        Opt("-n,--last", VALUE, "Show n last created containers (includes all states)",
            metavar="int"),
        Opt("-l,--latest", FLAG, "Show the latest created container (includes all states)"),
        Opt("--no-trunc", FLAG, "Don't truncate output"),
        Opt("-q,--quiet", FLAG, "Only display container IDs"),
        Opt("-s,--size", FLAG, "Display total file sizes"),
    ), max_args=0)


def ellipsis(text, width):
    """Docker's formatter.Ellipsis: at most width characters, the last one `…`."""
    return text if len(text) <= width else text[:width - 1] + "…"


def _command_text(record, no_trunc):
    """The COMMAND cell: Path and Args, cut to 20 characters unless no_trunc, quoted (Docker
    quotes it with strconv.Quote). system df shares it."""
    text = " ".join([record.get("Path", "")] + list(record.get("Args") or []))
    return '"%s"' % (text if no_trunc else ellipsis(text, 20))


def _parse_last(parsed):
    if parsed.last is None:
        return 1 if parsed.latest else -1
    try:
        return int(parsed.last)
    except ValueError:
        raise UsageError('invalid argument "%s" for "-n, --last" flag: not an integer'
                         % parsed.last, "see 'rootless-box ps --help'") from None


def row(store, record, trunc, with_size, cache):
    """One container as Docker's ContainerContext shows it (strings, plus `Label`)."""
    state = record.get("State") or {}
    image = record.get("ImageName") or record.get("Image") or ""
    if trunc and image.startswith("sha256:"):
        image = image[7:19]
    labels = psfilter.labels(store, record, cache.setdefault("labels", {}))
    created = image_ops.created_epoch(record.get("Created") or "")
    mounts = []
    for m in record.get("Mounts") or []:
        name = m.get("Name") or m.get("Source") or ""
        mounts.append(ellipsis(name, 15) if trunc else name)
    size = "0B"
    if with_size:
        rw = psfilter.rw_size(store, record)
        virtual = rw + psfilter.image_size(store, record, cache.setdefault("sizes", {}))
        size = "%s (virtual %s)" % (human_size(rw), human_size(virtual))
    network = (record.get("HostConfig") or {}).get("NetworkMode") or "host"
    if network.startswith("container:"):
        network = ""  # Docker: a joined namespace is no network of this container's
    elif network == "private":
        network = "bridge"  # Docker's name for it, as inspect's NetworkSettings.Networks
    network = ",".join((record.get("NetworkSettings") or {}).get("Networks") or ()) or network
    return {"ID": record["Id"][:12] if trunc else record["Id"], "Image": image,
            "Command": _command_text(record, not trunc),
            "CreatedAt": go_time_string(created) if created else "",
            "RunningFor": human_ago(created), "Ports": _ports(record), "State": state.get("Status", ""),
            "Status": status_text(state), "Size": size, "Names": record["Name"],
            "Labels": ",".join("%s=%s" % (k, labels[k]) for k in sorted(labels)),
            "Label": lambda key, _l=labels: _l.get(key, ""),
            "Mounts": ",".join(mounts), "Networks": network,
            "LocalVolumes": str(sum(1 for m in record.get("Mounts") or []
                                    if m.get("Type") == "volume"))}


def _ports(record):
    ports = (record.get("NetworkSettings") or {}).get("Ports")
    if not ports or not (record.get("State") or {}).get("Running"):
        return ""  # without importing ops/ports (socket, selectors): most containers have none
    from ..ops.ports import ps_text
    return ps_text(ports)


def main(parsed):
    filters = parse_filters(parsed.filter, psfilter.PS_FILTERS)
    psfilter.check_values(filters)
    last = _parse_last(parsed)
    fmt = parsed.format
    if parsed.size and not fmt:
        fmt = DEFAULT + "\t{{.Size}}"
    compiled = None if parsed.quiet else compile_format(fmt, DEFAULT)
    # as Docker: computing sizes costs a walk, done when asked or when the template shows them
    with_size = parsed.size or bool(fmt and ".Size" in fmt)
    store = open_store()
    records = container_ops.all_records(store)
    records.sort(key=lambda r: image_ops.created_seconds(r.get("Created") or ""),
                 reverse=True)
    keep = psfilter.build(store, filters, records)
    # -n/-l include every state; so does a status filter (moby's foldFilter sets All)
    show_all = parsed.all or last > 0 or "status" in filters
    chosen = [r for r in records
              if (show_all or (r.get("State") or {}).get("Status") in psfilter.LIVE_STATES)
              and keep(r)]
    if last > 0:
        chosen = chosen[:last]
    if parsed.quiet:
        ids = [r["Id"] if parsed.no_trunc else r["Id"][:12] for r in chosen]
        sys.stdout.write("".join(i + "\n" for i in ids))
        return 0
    cache = {}
    rows = [row(store, r, not parsed.no_trunc, with_size, cache) for r in chosen]
    write_formatted(compiled, rows, HEADERS)
    return 0
