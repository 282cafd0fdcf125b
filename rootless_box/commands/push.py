"""`push [--tls-verify=false] [-q] IMAGE [DEST]`.

Owns: the options and Docker's output (`The push refers to repository [...]`, a line or bar
per layer, `TAG: digest: sha256:... size: N`). Must not: talk to the registry itself
(ops/push.py does).
"""

import sys

from ..cliparse import FLAG, Command, Opt
from ._common import given


def command(verb, summary):
    return Command(verb, "push [OPTIONS] NAME[:TAG] [DESTINATION]", summary, (
        Opt("-q,--quiet", FLAG, "Suppress verbose output"),
        Opt("--tls-verify", FLAG, "Require HTTPS and verify certificates (default true)"),
        Opt("--disable-content-trust", FLAG, ""),
    ), min_args=1, max_args=2)


def main(parsed):
    from ..ops import push as push_ops
    from ..ops.storage import open_store
    from ..ui.pullprogress import layers_display
    name = parsed.args[0]
    dest = parsed.args[1] if len(parsed.args) > 1 else None
    ref = push_ops.destination(name, dest)
    store = open_store()
    from ..ops.images import resolve
    resolve(store, name)  # a missing image is reported before anything is printed
    display = layers_display(sys.stdout, parsed.quiet)
    if display:
        display.line("The push refers to repository [%s]" % ref.repository)
    try:
        result = push_ops.push(store, name, dest,
                               tls_verify=given(parsed, "tls_verify"), progress=display)
    finally:
        if display:
            display.close()
    if display:
        display.line("%s: digest: %s size: %d" % (result["ref"].tag or "latest",
                                                  result["digest"], result["size"]))
    return 0
