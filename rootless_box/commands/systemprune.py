"""`system prune [OPTIONS]`: remove stopped containers, networks no running container is on,
dangling images (every unused image with -a), with --volumes volumes no container mounts, and
the build cache no build uses (all of it with -a), as `builder prune [-a]` does.

Owns: the list of what will go in Docker's `WARNING! This will remove:` prompt, and the
`Deleted Containers:` / `Deleted Networks:` / `Deleted Volumes:` / `Deleted Images:` /
`Deleted build cache objects:` report.
Must not: choose or remove anything itself (ops/prune.py does, under the store lock).
"""

from ..cliparse import FLAG, Command, Opt
from ..ops import prune as prune_ops
from ..ops.storage import open_store
from .imageprune import confirm, deleted_images_text, write_report


def command(verb, summary):
    return Command(verb, "system prune [OPTIONS]", summary, (
        Opt("-a,--all", FLAG, "Remove all unused images not just dangling ones"),
        Opt("-f,--force", FLAG, "Do not prompt for confirmation"),
        Opt("--volumes", FLAG, "Prune anonymous volumes"),
    ), max_args=0)


def warning(all_images, volumes):
    """Docker's confirmation text (cli/command/system/prune.go)."""
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them" if all_images
                 else "all dangling images")
    items.append("all build cache" if all_images else "unused build cache")
    return ("WARNING! This will remove:\n" + "".join("  - %s\n" % item for item in items) +
            "\nAre you sure you want to continue?")


def _section(title, names):
    return "%s:\n%s" % (title, "".join(name + "\n" for name in names)) if names else ""


def main(parsed):
    store = open_store()
    if not parsed.force and not confirm(warning(parsed.all, parsed.volumes)):
        return 0  # cancelled: nothing removed, nothing more said (Docker's cancelledErr)
    result = prune_ops.prune_system(store, all_images=parsed.all, volumes=parsed.volumes)
    from ..ops import networks
    gone_networks = networks.prune(store)  # after the containers: Docker's order
    parts = [result["containers"], result["volumes"] or {"deleted": [], "reclaimed": 0},
             result["images"], result["build_cache"]]
    write_report([_section("Deleted Containers", parts[0]["deleted"]),
                  _section("Deleted Networks", gone_networks),
                  _section("Deleted Volumes", parts[1]["deleted"]),
                  deleted_images_text(parts[2]["items"]),
                  _section("Deleted build cache objects", parts[3]["deleted"])],
                 sum(part["reclaimed"] for part in parts))
    return 0
