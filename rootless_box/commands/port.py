"""`port CONTAINER [PRIVATE_PORT[/PROTO]]`: the container's published ports, as Docker lists them.

Owns: the verb's grammar, its lines ("80/tcp -> 0.0.0.0:49153", or only the host addresses
for one private port) and Docker's error for a port not published. Must not: read the ports
anywhere but the record (ops/ports.py wrote them when the forwarder started).
"""

import sys

from ..cliparse import Command
from ..errors import NotFound
from ..ops import containers as container_ops
from ..ops import ports
from ..ops.storage import open_store


def command(verb, summary):
    return Command(verb, "port CONTAINER [PRIVATE_PORT[/PROTO]]", summary, (), min_args=1,
                   max_args=2)


def main(parsed):
    store = open_store()
    name = parsed.args[0]
    record = container_ops.refresh_state(store, container_ops.find(store, name))
    state = record.get("State") or {}
    published = (record.get("NetworkSettings") or {}).get("Ports") or {} \
        if state.get("Running") else {}
    private = parsed.args[1] if len(parsed.args) > 1 else None
    lines = ports.port_lines(published, private)
    if private is not None and not lines:
        key = private if "/" in private else private + "/tcp"
        raise NotFound("No public port '%s' published for %s" % (key, name))
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
