"""`generate kube [-s] [--type pod|deployment] [--replicas N] [-f FILE] [--push REGISTRY]
CONTAINER...` (also
`kube generate`): Kubernetes YAML for containers, as `podman generate kube` writes it.

Owns: the options and where the text goes (stdout or -f FILE) and the warnings printed.
Must not: map anything itself (ops/kube.py does, for compose too).
"""

import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import UsageError
from ._common import warn


def command(verb, summary):
    return Command(verb, "%s [OPTIONS] CONTAINER [CONTAINER...]" % verb, summary, (
        Opt("-s,--service", FLAG, "Generate YAML for a Kubernetes service object"),
        Opt("-t,--type", VALUE, "Generate YAML for the given Kubernetes kind (pod or "
                                "deployment)", default="pod"),
        Opt("-r,--replicas", VALUE, "Set the replica number for Deployment kind",
            default="1"),
        Opt("-f,--filename", VALUE, "Write output to the specified path"),
        Opt("--push", VALUE, "Push images found only in the local store to this registry "
                             "(REGISTRY[/PREFIX]) first, and name them there"),
        Opt("--tls-verify", FLAG, "Require HTTPS and verify certificates when pushing "
                                  "(default true)"),
    ), min_args=1)


def main(parsed):
    from ..ops import kube
    from ..ops.storage import open_store
    if parsed.type not in ("pod", "deployment"):
        raise UsageError("invalid --type %r" % parsed.type, "use pod or deployment")
    try:
        replicas = int(parsed.replicas)
    except ValueError:
        replicas = -1
    if replicas < 0:
        raise UsageError("invalid --replicas %r" % parsed.replicas,
                         "give a number of replicas, 0 or more")
    if "replicas" in parsed.given and parsed.type != "deployment":
        raise UsageError("--replicas is only used with --type deployment")
    from ._common import given
    text, warnings = kube.generate(open_store(), parsed.args, parsed.type, replicas,
                                   parsed.service, parsed.push, given(parsed, "tls_verify"))
    for message in warnings:
        warn(message)
    if parsed.filename:
        with open(parsed.filename, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
