"""`history [OPTIONS] IMAGE`: the steps an image was made of, newest first, as Docker shows them.

Owns: turning an image config's `history` into Docker's rows: the top row carries the image's
ID and older rows `<missing>` (Docker's display for images not built on this machine); a row
that made a layer shows that layer's size, an `empty_layer` step 0B; CREATED BY cut to 45
characters with `…` unless --no-trunc; `-H=false` shows RFC 3339 times and sizes in bytes.
Must not: change the store, or compute sizes itself (ops/prune.layer_sizes measures layers).
"""

import time

from ..cliparse import FLAG, VALUE, Command, Opt
from ..oci.digest import short_id
from ..ops import images as image_ops
from ..ops.prune import layer_sizes
from ..ops.storage import open_store
from ._common import human_ago, human_size
from .images import compile_format, write_formatted

HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
           "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
_CREATED_BY_WIDTH = 45


def command(verb, summary):
    return Command(verb, "history [OPTIONS] IMAGE", summary, (
        Opt("--format", VALUE, "Format output using a custom template: 'table', "
                               "'table TEMPLATE', 'json', or a Go template"),
        Opt("-H,--human", FLAG, "Print sizes and dates in human readable format "
                                "(default true)", default=True),
        Opt("--no-trunc", FLAG, "Don't truncate output"),
        Opt("-q,--quiet", FLAG, "Only show image IDs"),
    ), min_args=1, max_args=1)


def rfc3339_local(epoch):
    """Go's time.RFC3339 of a Unix time in local time: `2024-01-31T12:00:00Z` in UTC,
    `2024-01-31T13:00:00+01:00` elsewhere."""
    local = time.localtime(epoch)
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else "%s%02d:%02d" % ("-" if offset < 0 else "+",
                                                    abs(offset) // 3600,
                                                    abs(offset) % 3600 // 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def ellipsis(text, width):
    """Docker's formatter.Ellipsis: at most width characters, the last one `…` when cut."""
    return text if len(text) <= width else text[:width - 1] + "…"


def history_rows(image_id, config, sizes, human=True, trunc=True, now=None):
    """Rows newest first, with Docker's field names. sizes: each layer's size, bottom first;
    a config without history gets one row per layer (all Docker can say about it either)."""
    rows = []
    for entry, size in image_ops.history_entries(config, sizes):
        created = image_ops.created_epoch(str(entry.get("created") or ""))
        created_at = rfc3339_local(created) if created else "N/A"
        created_by = str(entry.get("created_by") or "").replace("\t", " ")
        rows.append({
            "CreatedAt": created_at,
            "CreatedSince": (human_ago(created) if human else created_at),
            "CreatedBy": ellipsis(created_by, _CREATED_BY_WIDTH) if trunc else created_by,
            "Size": human_size(size) if human else str(size),
            "Comment": str(entry.get("comment") or ""),
        })
    rows.reverse()
    for i, row in enumerate(rows):
        row["ID"] = "<missing>" if i else (short_id(image_id) if trunc else image_id)
    return rows


def main(parsed):
    compiled = compile_format("{{.ID}}" if parsed.quiet else parsed.format, DEFAULT)
    store = open_store()
    image = image_ops.resolve(store, parsed.args[0])
    rows = history_rows(image.id, image.config, layer_sizes(store, image),
                        human=parsed.human, trunc=not parsed.no_trunc)
    write_formatted(compiled, rows, HEADERS)
    return 0
