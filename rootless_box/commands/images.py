"""`images [OPTIONS] [REPOSITORY[:TAG]]`: the local images as Docker lists them.

Owns: the listing's rows (the filters are ops/imagefilter.py's, shared with the Engine API),
and two pieces of Docker's CLI grammar the other image commands (history, image
prune, system df, system prune) share from here: `--filter KEY=VALUE` parsing and `--format`
output (`table`, `table TEMPLATE`, `json`, a Go template).
Must not: change the store.
"""

import sys
import time

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import UsageError
from ..oci import reference
from ..oci.digest import short_id
from ..ops import images as image_ops
from ..ops.imagefilter import IMAGE_FILTERS, image_filter, reference_matches
from ..ops.storage import open_store
from ._common import human_ago, human_size, table

HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
           "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
           "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
           "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
DEFAULT = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
DEFAULT_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}" \
                  "\t{{.Size}}"


def command(verb, summary):
    return Command(verb, "images [OPTIONS] [REPOSITORY[:TAG]]", summary, (
        Opt("-a,--all", FLAG, "Show all images (there are no intermediate images to hide: "
                              "the same list)"),
        Opt("--digests", FLAG, "Show digests"),
        Opt("-f,--filter", LIST, "Filter output based on conditions provided: dangling=, "
                                 "reference=, before=, since=, label="),
        Opt("--format", VALUE, "Format output using a custom template: 'table', "
                               "'table TEMPLATE', 'json', or a Go template"),
        Opt("--no-trunc", FLAG, "Don't truncate output"),
        Opt("-q,--quiet", FLAG, "Only show image IDs"),
    ), max_args=1)


# -- shared CLI grammar: --filter and --format --------------------------------------------------

def parse_filters(values, allowed):
    """Docker's repeated `--filter KEY=VALUE` -> {key: [values]}; the key is case-insensitive,
    `label!=x` is the key `label!` (moby's filters.ParseFlag)."""
    filters = {}
    for text in values:
        key, eq, value = text.partition("=")
        key = key.strip().lower()
        if not eq or not key:
            raise UsageError("bad format of filter (expected name=value): %r" % text,
                             "write --filter KEY=VALUE, KEY one of: %s" % ", ".join(allowed))
        if key not in allowed:
            raise UsageError("invalid filter '%s'" % key,
                             "valid filters here: %s" % ", ".join(allowed))
        filters.setdefault(key, []).append(value.strip())
    return filters


def _unescape(text):
    # Docker's formatter turns a typed `\t` / `\n` into a tab / newline (formatter.preFormat)
    return text.replace("\\t", "\t").replace("\\n", "\n")


def compile_format(fmt, default):
    """-> ('json', None) or (is_table, compiled template). Compiled before any work, so a bad
    template fails before the store is touched."""
    from ._template import compile_template
    fmt = fmt or "table"
    if fmt == "json":
        return "json", None
    if fmt.startswith("table"):
        body = _unescape(fmt[len("table"):].strip()) or _unescape(default[len("table"):]
                                                                   .strip())
        return True, compile_template(body)
    return False, compile_template(_unescape(fmt))


def write_formatted(compiled, rows, headers):
    """Print rows (dicts of Docker's field names -> text) as compiled by compile_format:
    `json` one JSON object per line (Docker's `{{json .}}`); a table with a header made by
    rendering the template over the column titles, cells (split at tabs) aligned as Docker's
    tabwriter does; else the template once per row."""
    kind, nodes = compiled
    if kind == "json":
        import json
        # callables are template methods (ps's `.Label "key"`), not fields: Docker's JSON
        # leaves them out
        rows = [{k: v for k, v in row.items() if not callable(v)} for row in rows]
        sys.stdout.write("".join(json.dumps(row, sort_keys=True, separators=(",", ":"),
                                            ensure_ascii=False) + "\n" for row in rows))
        return
    from ._template import render
    if not kind:
        sys.stdout.write("".join(render(nodes, row) + "\n" for row in rows))
        return
    lines = [line.split("\t") for line in render(nodes, headers).split("\n")]
    head = lines[0]
    body = lines[1:]
    for row in rows:
        body += [line.split("\t") for line in render(nodes, row).split("\n")]
    width = max(len(cells) for cells in [head] + body)
    pad = [""] * width
    table((head + pad)[:width], [(cells + pad)[:width] for cells in body])


def go_time_string(epoch):
    """Go's time.Time.String() of a Unix time in local time: `2024-01-31 12:00:00 +0000 UTC`
    (Docker's `.CreatedAt` of an image)."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(epoch))


# -- rows ---------------------------------------------------------------------------------------

def _matches(tag, wanted):
    if wanted is None:
        return True
    ref = reference.parse(tag)
    if wanted.tag and ":" in wanted.familiar().rpartition("/")[2]:
        return str(ref) == str(wanted)
    return ref.repository == wanted.repository


def digest_for(record, repository):
    """The DIGEST of a row: the image's manifest digest for that repository when the index
    recorded one (`digests`: `repo@sha256:...` or a bare `sha256:...`), else `<none>` (an
    import or a commit has no registry digest)."""
    bare = None
    for entry in record.get("digests") or []:
        name, at, digest = str(entry).rpartition("@")
        if not at:
            bare = bare or digest
            continue
        try:
            if reference.parse(name, default_tag=False).familiar_repository() == repository:
                return digest
        except UsageError:
            continue
    return bare or "<none>"


def image_rows(image, config, tags, no_trunc):
    """One row per tag (one `<none>` row for a dangling image), with Docker's field names."""
    created = image_ops.created_epoch(config.get("created") or "")
    size = human_size(image.record.get("size", 0))
    base = {"ID": image.id if no_trunc else short_id(image.id),
            "CreatedSince": human_ago(created),
            "CreatedAt": go_time_string(created) if created else "N/A",
            "Size": size, "VirtualSize": size, "Containers": "N/A", "SharedSize": "N/A",
            "UniqueSize": "N/A"}
    rows = []
    if not tags:
        # untagged but pulled by digest: Docker shows the repository with a <none> tag
        repos = []
        for entry in image.record.get("digests") or ():
            try:
                repo = reference.parse(entry.rpartition("@")[0],
                                       default_tag=False).familiar_repository()
            except UsageError:
                continue
            if repo not in repos:
                repos.append(repo)
        for repo in repos:
            rows.append(dict(base, Repository=repo, Tag="<none>",
                             Digest=digest_for(image.record, repo)))
        if rows:
            return rows
    for tag in tags or [None]:
        if tag is None:
            repo, tagname = "<none>", "<none>"
        else:
            ref = reference.parse(tag)
            repo, tagname = ref.familiar_repository(), ref.tag or "<none>"
        rows.append(dict(base, Repository=repo, Tag=tagname,
                         Digest=digest_for(image.record, repo)))
    return rows


def main(parsed):
    filters = parse_filters(parsed.filter, IMAGE_FILTERS)
    compiled = None if parsed.quiet else compile_format(
        parsed.format, DEFAULT_DIGESTS if parsed.digests else DEFAULT)
    store = open_store()
    wanted = reference.parse(parsed.args[0], default_tag=False) if parsed.args else None
    keep, regexes = image_filter(store, filters)
    rows, ids = [], []
    for image in image_ops.list_images(store):
        config = image_ops.readable_config(image)
        if not keep(image, config):
            continue
        tags = [t for t in image.tags if _matches(t, wanted) and
                (not regexes or reference_matches(regexes, t))]
        if (wanted is not None or regexes) and not tags:
            continue
        rows += image_rows(image, config, tags, parsed.no_trunc)
        image_id = image.id if parsed.no_trunc else short_id(image.id)
        if image_id not in ids:
            ids.append(image_id)
    if parsed.quiet:
        if ids:
            sys.stdout.write("\n".join(ids) + "\n")
        return 0
    write_formatted(compiled, rows, HEADERS)
    return 0
