"""`inspect [OPTIONS] NAME|ID [NAME|ID...]`: Docker's JSON for containers and images."""

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
        Opt("--type", VALUE, "Only inspect objects of the given type (container, image)"),
    ), min_args=1)


def container_json(record):
    state = dict(record.get("State", {}))
    state.pop("PidStartTime", None)
    state.setdefault("OOMKilled", False)
    return {"Id": record["Id"], "Created": record.get("Created", ""),
            "Path": record.get("Path", ""), "Args": record.get("Args", []), "State": state,
            "Image": record.get("Image", ""), "Name": "/" + record["Name"],
            "Driver": record.get("Driver", ""), "Mounts": record.get("Mounts", []),
            "Config": record.get("Config", {}), "HostConfig": record.get("HostConfig", {})}


def _lookup(store, name, kind):
    if kind in (None, "container"):
        try:
            return container_json(container_ops.find(store, name))
        except NotFound:
            if kind == "container":
                raise
    try:
        image = image_ops.resolve(store, name)
    except UsageError:
        # not a valid image reference: for an untyped inspect it is just no such object
        if kind is None:
            raise NotFound("no such object: %s" % name) from None
        raise
    return image_ops.inspect(image)


def main(parsed):
    if parsed.type not in (None, "container", "image"):
        raise UsageError("unknown --type %r" % parsed.type, "use container or image")
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
