"""`inspect [OPTIONS] NAME|ID [NAME|ID...]`: Docker's JSON for containers and images.

Owns: the Docker-shaped container JSON (container_json) and the verb. Image JSON is
ops/images.inspect's. Must not: change the store.
"""

import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import NotFound, UsageError
from ..ops import containers as container_ops
from ..ops import images as image_ops
from ..ops.storage import open_store
from ._common import for_each, print_json


def command(verb, summary):
    return Command(verb, "inspect [OPTIONS] NAME|ID [NAME|ID...]", summary, (
        Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a Go "
                                  "template such as '{{.Id}}'"),
        Opt("--type", VALUE, "Only inspect objects of the given type (container, image, "
                             "volume)"),
    ), min_args=1)


# Docker's State keys, in Docker's order; a missing time is Go's zero time, as Docker shows it
_STATE = (("Status", "created"), ("Running", False), ("Paused", False), ("Restarting", False),
          ("OOMKilled", False), ("Dead", False), ("Pid", 0), ("ExitCode", 0), ("Error", ""),
          ("StartedAt", ""), ("FinishedAt", ""))
_ZERO_TIME = "0001-01-01T00:00:00Z"
_HOST_DEFAULTS = (("Binds", None), ("NetworkMode", "host"), ("RestartPolicy",
                  {"Name": "no", "MaximumRetryCount": 0}), ("AutoRemove", False),
                  ("LogConfig", {"Type": "json-file", "Config": {}}), ("ReadonlyRootfs", False),
                  ("Init", False), ("Tmpfs", None), ("Privileged", False))


def container_json(record):
    """A record as Docker's container inspect shows it. State holds Docker's keys, plus
    MonitorPid (the detached container's keeper, as Podman's State.ConmonPid); the rest of
    this tool's bookkeeping (start times that tell a recycled pid, the cgroup, whether a user
    stopped it) is under "RootlessBox", so Docker's view stays Docker's."""
    raw = dict(record.get("State") or {})
    state = {key: raw.get(key, default) for key, default in _STATE}
    for key in ("StartedAt", "FinishedAt"):
        state[key] = state[key] or _ZERO_TIME
    state["MonitorPid"] = raw.get("MonitorPid") or 0
    internal = {k: v for k, v in raw.items() if k not in state}
    host = dict(record.get("HostConfig") or {})
    for key, default in _HOST_DEFAULTS:
        host.setdefault(key, default)
    image = record.get("Image", "")
    config = dict(record.get("Config") or {})
    config.setdefault("Labels", {})
    mounts = [{"Type": m.get("Type", ""), "Name": m.get("Name", ""),
               "Source": m.get("Source", ""), "Destination": m.get("Destination", ""),
               "Driver": "local" if m.get("Type") == "volume" else "",
               "Mode": m.get("Mode", "" if m.get("RW", True) else "ro"),
               "RW": m.get("RW", True),
               "Propagation": m.get("Propagation",
                                    "rprivate" if m.get("Type") == "bind" else "")}
              for m in record.get("Mounts") or []]
    for m in mounts:
        if not m["Name"]:
            del m["Name"], m["Driver"]
    return {"Id": record["Id"], "Created": record.get("Created", ""),
            "Path": record.get("Path", ""), "Args": record.get("Args", []), "State": state,
            "Image": image if image.startswith("sha256:") or not image else "sha256:" + image,
            "LogPath": record.get("LogPath", ""), "Name": "/" + record["Name"],
            "RestartCount": record.get("RestartCount", 0),
            "Driver": record.get("Driver", ""), "Platform": "linux",
            "HostConfig": host, "Mounts": mounts, "Config": config,
            "NetworkSettings": {"Networks": (record.get("NetworkSettings") or {}).get(
                                    "Networks") or
                                ({} if host["NetworkMode"].startswith("container:")
                                 else {host["NetworkMode"]: {}}),
                                "Ports": ((record.get("NetworkSettings") or {}).get("Ports")
                                          or {}) if state["Running"] else {}},
            "RootlessBox": internal}


def _lookup(store, name, kind):
    if kind == "volume":
        return _volume(store, name)
    if kind in (None, "container"):
        try:
            return container_json(container_ops.find(store, name))
        except NotFound:
            if kind == "container":
                raise
    try:
        image = image_ops.resolve(store, name)
    except (UsageError, NotFound) as exc:
        # not an image (or no valid reference): an untyped inspect goes on, in Docker's order
        # (container, image, volume), and a name that is nothing is just no such object
        if kind is None:
            try:
                return _volume(store, name)
            except NotFound:
                raise NotFound("no such object: %s" % name, exc.hint) from None
        raise
    return image_ops.inspect(image)


def _volume(store, name):
    from ..ops import volumes
    return volumes.inspect_json(store, volumes.get(store, name))


def main(parsed):
    if parsed.type not in (None, "container", "image", "volume"):
        raise UsageError("unknown --type %r" % parsed.type, "use container, image or volume")
    template = None
    if parsed.format and parsed.format != "json":
        from ._template import compile_template
        template = compile_template(parsed.format)
    store = open_store()
    results = []

    def lookup(name):
        try:
            results.append(_lookup(store, name, parsed.type))
        except NotFound as exc:
            raise NotFound("no such object: %s" % name, exc.hint) from None

    status = for_each(parsed.args, lookup)
    if template is None:
        print_json(results)
    else:
        from ._template import render
        sys.stdout.write("".join(render(template, obj) + "\n" for obj in results))
    return status
