"""`ps [OPTIONS]`: containers as Docker lists them (running ones, or all with -a)."""

import sys

from ..cliparse import FLAG, Command, Opt
from ..ops import containers as container_ops
from ..ops import images as image_ops
from ..ops.storage import open_store
from ._common import human_ago, human_duration, table


def command(verb, summary):
    return Command(verb, "ps [OPTIONS]", summary, (
        Opt("-a,--all", FLAG, "Show all containers (default shows just running)"),
        Opt("-q,--quiet", FLAG, "Only display container IDs"),
        Opt("--no-trunc", FLAG, "Don't truncate output"),
    ), max_args=0)


def status_text(state):
    import time
    status = state.get("Status")
    if status == "running":
        started = image_ops.created_epoch(state.get("StartedAt", ""))
        return "Up " + human_duration(time.time() - started)
    if status == "exited":
        finished = image_ops.created_epoch(state.get("FinishedAt", ""))
        return "Exited (%d) %s" % (state.get("ExitCode", 0), human_ago(finished))
    return "Created"


def _command_text(record, no_trunc):
    text = " ".join([record.get("Path", "")] + record.get("Args", []))
    if not no_trunc and len(text) > 20:
        text = text[:19] + "…"
    return '"%s"' % text


def main(parsed):
    store = open_store()
    records = container_ops.all_records(store)
    if not parsed.all:
        records = [r for r in records if r["State"].get("Status") == "running"]
    records.sort(key=lambda r: r.get("Created", ""), reverse=True)
    ids = [r["Id"] if parsed.no_trunc else r["Id"][:12] for r in records]
    if parsed.quiet:
        if ids:
            sys.stdout.write("\n".join(ids) + "\n")
        return 0
    rows = [[cid, r.get("ImageName", ""), _command_text(r, parsed.no_trunc),
             human_ago(image_ops.created_epoch(r.get("Created", ""))),
             status_text(r["State"]), "", r["Name"]] for cid, r in zip(ids, records)]
    table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)
    return 0
