"""`images [OPTIONS] [REPOSITORY[:TAG]]`: the local images as Docker lists them."""

import sys

from ..cliparse import FLAG, Command, Opt
from ..oci import reference
from ..oci.digest import short_id
from ..ops import images as image_ops
from ..ops.storage import open_store
from ._common import human_ago, human_size, table


def command(verb, summary):
    return Command(verb, "images [OPTIONS] [REPOSITORY[:TAG]]", summary, (
        Opt("-q,--quiet", FLAG, "Only show image IDs"),
        Opt("--no-trunc", FLAG, "Don't truncate output"),
    ), max_args=1)


def _matches(tag, wanted):
    if wanted is None:
        return True
    ref = reference.parse(tag)
    if wanted.tag and ":" in wanted.familiar().rpartition("/")[2]:
        return str(ref) == str(wanted)
    return ref.repository == wanted.repository


def main(parsed):
    store = open_store()
    wanted = reference.parse(parsed.args[0], default_tag=False) if parsed.args else None
    rows, seen = [], []
    for image in image_ops.list_images(store):
        image_id = image.id if parsed.no_trunc else short_id(image.id)
        tags = [t for t in image.tags if _matches(t, wanted)]
        if wanted is not None and not tags:
            continue
        created = human_ago(image_ops.created_epoch(image.config.get("created", "")))
        size = human_size(image.record.get("size", 0))
        for tag in tags or [None]:
            if tag is None:
                repo, tagname = "<none>", "<none>"
            else:
                ref = reference.parse(tag)
                repo, tagname = ref.familiar_repository(), ref.tag or "<none>"
            rows.append([repo, tagname, image_id, created, size])
        if image_id not in seen:
            seen.append(image_id)
    if parsed.quiet:
        if seen:
            sys.stdout.write("\n".join(seen) + "\n")
        return 0
    table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)
    return 0
