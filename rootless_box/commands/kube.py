"""`kube play [--down] [--replace] [--publish HOST:CTR] FILE` and `kube down FILE`: Kubernetes
YAML run locally, as `podman kube play` (ops/kubeplay.py does the work).

Owns: the options, reading FILE (or - for stdin), the pull step for each imagePullPolicy
(run's --pull policies: IfNotPresent and unset are "missing", Always "always", Never
"never"), and the summary printed (each pod and its containers, as Podman prints them).
Must not: interpret the YAML.
"""

import sys

from ..cliparse import FLAG, LIST, Command, Opt
from ..errors import UsageError
from ._common import warn

_POLICY = {"Always": "always", "IfNotPresent": "missing", "Never": "never"}


def command(verb, summary):
    if verb == "kube down":
        return Command(verb, "kube down FILE", summary, (), min_args=1, max_args=1)
    return Command(verb, "kube play [OPTIONS] FILE", summary, (
        Opt("--down", FLAG, "Remove the pods, containers and volumes the file made"),
        Opt("--replace", FLAG, "Remove what an earlier play of the file made, then play it"),
        Opt("--publish", LIST, "Publish a container's port, or a range of ports, to the "
                               "host (HOST:CONTAINER)"),
    ), min_args=1, max_args=1)


def _read(path):
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError("cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc),
                         "give a Kubernetes YAML file") from None


def main(parsed):
    from ..ops import kubeplay
    docs = kubeplay.load(_read(parsed.args[0]))
    if parsed.command.name == "kube down" or getattr(parsed, "down", False):
        from ..ops.storage import open_store
        for pod in kubeplay.down(open_store(), docs):
            sys.stdout.write("Pod removed: %s\n" % pod)
        return 0
    from .run import puller

    def pull_for(policy):
        return puller(_POLICY[policy])
    for pod, names in kubeplay.play(docs, pull_for, warn, parsed.publish, parsed.replace):
        sys.stdout.write("Pod:\n%s\nContainers:\n%s\n" % (pod, "\n".join(names)))
    return 0
