"""`inspect [OPTIONS] NAME|ID [NAME|ID...]`: Docker's JSON for containers and images.

Owns: the verb (Docker's lookup order, --format). The container JSON is
ops/containerjson.container_json's, the image JSON ops/images.inspect's (the Engine API
serves the same). Must not: change the store.
"""

import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import NotFound, UsageError
from ..ops import containers as container_ops
from ..ops import images as image_ops
from ..ops.containerjson import container_json
from ..ops.storage import open_store
from ._common import for_each, print_json


def command(verb, summary):
    return Command(verb, "inspect [OPTIONS] NAME|ID [NAME|ID...]", summary, (
        Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a Go "
                                  "template such as '{{.Id}}'"),
        Opt("--type", VALUE, "Only inspect objects of the given type (container, image, "
                             "volume)"),
    ), min_args=1)


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
