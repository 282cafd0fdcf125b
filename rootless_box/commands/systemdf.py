"""`system df [OPTIONS]`: disk usage of images, containers, volumes and build cache, as Docker
shows it (TYPE TOTAL ACTIVE SIZE RECLAIMABLE; `-v` for one table per kind).

Owns: Docker's rows, column titles and `(NN%)` reclaimable text, and the verbose layout.
Must not: measure anything itself (ops/prune.disk_usage does) or change the store.
"""

import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import UsageError
from ..oci import reference
from ..oci.digest import short_id
from ..ops import images as image_ops
from ..ops import prune as prune_ops
from ..ops.containerjson import status_text
from ..ops.storage import open_store
from ._common import human_ago, human_size
from .images import compile_format, write_formatted
from .ps import _command_text

HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
           "Reclaimable": "RECLAIMABLE"}
DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
# docker/cli formatter/disk_usage.go: the verbose tables
IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "Size": "SIZE", "SharedSize": "SHARED SIZE",
                 "UniqueSize": "UNIQUE SIZE", "Containers": "CONTAINERS"}
IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t" \
              "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}"
CONTAINER_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                     "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "RunningFor": "CREATED",
                     "Status": "STATUS", "Names": "NAMES"}
CONTAINER_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t" \
                  "{{.RunningFor}}\t{{.Status}}\t{{.Names}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}
VOLUME_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
CACHE_HEADERS = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                 "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                 "UsageCount": "USAGE", "Shared": "SHARED"}
CACHE_TABLE = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t" \
              "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}"


def command(verb, summary):
    return Command(verb, "system df [OPTIONS]", summary, (
        Opt("--format", VALUE, "Format output using a custom template: 'table', "
                               "'table TEMPLATE', 'json', or a Go template"),
        Opt("-v,--verbose", FLAG, "Show detailed information on space usage"),
    ), max_args=0)


def reclaimable_text(reclaimable, total):
    """Docker's RECLAIMABLE cell: `1.2MB (70%)`, the percentage (rounded down) only when
    there is something at all."""
    if total > 0:
        return "%s (%d%%)" % (human_size(reclaimable), reclaimable * 100 // total)
    return human_size(reclaimable)


def summary_rows(usage):
    """The four TYPE rows, from ops/prune.disk_usage's answer."""
    images, containers, volumes = usage["images"], usage["containers"], usage["volumes"]
    cache = usage["build_cache"]
    containers_size = sum(c["size"] for c in containers)
    volumes_size = sum(v["size"] for v in volumes)
    counts = [("Images", len(images), sum(1 for i in images if i["containers"]),
               usage["images_total"], usage["images_reclaimable"]),
              ("Containers", len(containers), sum(1 for c in containers if c["running"]),
               containers_size, sum(c["size"] for c in containers if not c["running"])),
              ("Local Volumes", len(volumes), sum(1 for v in volumes if v["links"]),
               volumes_size, sum(v["size"] for v in volumes if not v["links"])),
              ("Build Cache", len(cache), sum(1 for c in cache if c["in_use"]),
               sum(c["size"] for c in cache),
               sum(c["size"] for c in cache if not c["in_use"]))]
    # Docker's Build Cache row shows its reclaimable bytes with no percentage
    return [{"Type": kind, "TotalCount": str(total), "Active": str(active),
             "Size": human_size(size),
             "Reclaimable": human_size(reclaimable) if kind == "Build Cache"
             else reclaimable_text(reclaimable, size)}
            for kind, total, active, size, reclaimable in counts]


def verbose_rows(usage):
    """{Images, Containers, Volumes, BuildCache}: Docker's verbose rows (and -v JSON)."""
    images = []
    for entry in usage["images"]:
        image = entry["image"]
        repo = tag = "<none>"
        if image.tags:  # Docker shows the first tag only
            ref = reference.parse(image.tags[0])
            repo, tag = ref.familiar_repository(), ref.tag or "<none>"
        created = image_ops.created_epoch(
            image_ops.readable_config(image).get("created") or "")
        images.append({"Repository": repo, "Tag": tag, "ID": short_id(image.id),
                       "CreatedSince": human_ago(created), "Size": human_size(entry["size"]),
                       "SharedSize": human_size(entry["shared"]),
                       "UniqueSize": human_size(entry["unique"]),
                       "Containers": str(entry["containers"])})
    containers = []
    for entry in usage["containers"]:
        record = entry["record"]
        containers.append({
            "ID": record["Id"][:12], "Image": record.get("ImageName", ""),
            "Command": _command_text(record, False),
            "LocalVolumes": str(sum(1 for m in record.get("Mounts") or []
                                    if m.get("Type") == "volume")),
            "Size": human_size(entry["size"]),
            "RunningFor": human_ago(image_ops.created_epoch(record.get("Created", ""))),
            "Status": status_text(record.get("State", {})), "Names": record["Name"]})
    volumes = [{"Name": v["name"], "Links": str(v["links"]), "Size": human_size(v["size"])}
               for v in usage["volumes"]]
    # docker/cli's buildCacheContext: a truncated ID with `*` when in use; uses are not
    # counted here (0)
    cache = [{"ID": c["id"][:12] + ("*" if c["in_use"] else ""), "CacheType": c["type"],
              "Description": c["description"], "Size": human_size(c["size"]),
              "CreatedSince": human_ago(c["created"]),
              "LastUsedSince": human_ago(c["last_used"]), "UsageCount": "0",
              "InUse": str(c["in_use"]).lower(), "Shared": "false"}
             for c in usage["build_cache"]]
    return {"Images": images, "Containers": containers, "Volumes": volumes,
            "BuildCache": cache}


def _write_verbose(rows, cache_size):
    # Docker's verboseWriteTable: one titled table per kind
    sys.stdout.write("Images space usage:\n\n")
    write_formatted(compile_format(None, IMAGE_TABLE), rows["Images"], IMAGE_HEADERS)
    sys.stdout.write("\nContainers space usage:\n\n")
    write_formatted(compile_format(None, CONTAINER_TABLE), rows["Containers"],
                    CONTAINER_HEADERS)
    sys.stdout.write("\nLocal Volumes space usage:\n\n")
    write_formatted(compile_format(None, VOLUME_TABLE), rows["Volumes"], VOLUME_HEADERS)
    sys.stdout.write("\nBuild cache usage: %s\n\n" % human_size(cache_size))
    write_formatted(compile_format(None, CACHE_TABLE), rows["BuildCache"], CACHE_HEADERS)


def main(parsed):
    fmt = parsed.format
    if parsed.verbose and fmt and fmt.startswith("table") and fmt.strip() != "table":
        raise UsageError("--format 'table TEMPLATE' cannot be combined with --verbose",
                         "use --format json, or a Go template over .Images, .Containers, "
                         ".Volumes and .BuildCache")
    compiled = compile_format(fmt, DEFAULT)
    usage = prune_ops.disk_usage(open_store())
    if not parsed.verbose:
        write_formatted(compiled, summary_rows(usage), HEADERS)
        return 0
    rows = verbose_rows(usage)
    if compiled[0] is True:
        _write_verbose(rows, sum(c["size"] for c in usage["build_cache"]))
    else:
        # json and templates see the whole verbose object once, as Docker's do
        write_formatted(compiled, [rows], {})
    return 0
