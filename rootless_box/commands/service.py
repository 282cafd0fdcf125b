"""`system service [--time SECONDS] [URI]`: Docker's Engine API for Docker's own clients.

Owns: the options, the refusal of addresses others could reach, the warning for a loopback
TCP port, and the line saying where it listens (stderr: stdout stays empty, as Podman's).
Must not: serve anything itself (rootless_box/api/ does; imported only here, so no other
command pays for the HTTP layer).
"""

import sys

from ..cliparse import VALUE, Command, Opt
from ..errors import UsageError
from ._common import warn


def command(verb, summary):
    return Command(verb, "system service [OPTIONS] [URI]", summary, (
        Opt("-t,--time", VALUE, "Time until the service session expires in seconds. Use 0 "
                                "to disable the timeout", default="5"),
    ), max_args=1)


def main(parsed):
    try:
        idle = float(parsed.time)
        if idle < 0:
            raise ValueError
    except ValueError:
        raise UsageError("invalid --time %r" % parsed.time,
                         "give seconds of idleness before the service ends, 0 for never") \
            from None
    from ..api import httpserver, service
    uri = parsed.args[0] if parsed.args else None
    if uri:
        kind, _where = httpserver.parse_uri(uri)  # a refused address fails here, before all
        if kind == "tcp":
            warn("serving the API on %s without TLS: every local user can run containers "
                 "as you through it" % uri)

    def listening(where):
        sys.stderr.write("rootless-box: API listening on %s\n" % where)
        sys.stderr.flush()
    service.run(uri, idle, listening)
    return 0
