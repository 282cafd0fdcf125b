"""`compose convert --format kube`: a Compose project as Kubernetes YAML.

Owns: which compose keys reach the Kubernetes documents and the warnings for those that do
not; per service one Deployment (its replicas, one container named after the service) made
by ops/kube.py from the service's RunOptions (project.run_options: the same translation `up`
uses, so a key means the same thing in both) and one Service named after the compose
service, so pods reach each other by the names the services used on their compose network
(ClusterIP over its published and exposed ports; headless when it has none, its name then
resolving to the pods on every port, as compose's network alias does); named volumes as
PersistentVolumeClaims (one per volume however many services mount it); depends_on as an
annotation plus one warning (Kubernetes starts pods in no order).
Must not: create, pull or build anything (the store is only read, for images' digests);
print (warnings go back to the caller).
"""

from .. import errors
from ..ops import kube
from . import project as project_mod

# keys that reach the documents (through RunOptions, or read here)
CONVERTED = {
    "image", "command", "entrypoint", "environment", "ports", "expose", "volumes", "tmpfs",
    "healthcheck", "restart", "user", "working_dir", "labels", "deploy", "scale", "mem_limit",
    "cpus", "depends_on", "stop_grace_period",
}
# keys that have no meaning to carry over, left out silently: the cluster names and builds
# (build's image is warned about as a local image), one flat network
SILENT = {"build", "container_name", "profiles", "pull_policy", "extends", "networks",
          "logging"}
DEPENDS_ANNOTATION = kube.DEPENDS_ANNOTATION


def _image_local(store, image, svc):
    """True when the cluster cannot pull it: built here, or never pulled from/pushed to a
    registry."""
    from ..ops import images
    try:
        found = images.resolve(store, image)
    except errors.BoxError:
        return bool(svc.get("build"))
    return not found.record.get("digests")


def _reservations(kept, name, warnings):
    """deploy.resources.reservations (requests in Kubernetes; `up` ignores them) taken out
    of the service run_options sees -> {cpus, memory}."""
    deploy = kept.get("deploy") or {}
    resources = deploy.get("resources") or {}
    reserve = resources.get("reservations")
    if not reserve:
        return {}
    kept["deploy"] = dict(deploy, resources={k: v for k, v in resources.items()
                                             if k != "reservations"})
    left = sorted(k for k in reserve if k not in ("cpus", "memory"))
    if left:
        warnings.append('service "%s": deploy.resources.reservations.%s: no Kubernetes '
                        'mapping here, left out' % (name, ", ".join(left)))
    return reserve


def _nanos(cpus, name, key):
    if cpus in (None, ""):
        return None
    try:
        value = float(cpus)
    except ValueError:
        raise errors.UsageError('service "%s": %s: not a number: %r' % (name, key, cpus),
                                exit_code=1) from None
    return int(round(value * 1e9)) or None


def _exposed(name, items):
    """expose: PORT[-LAST][/PROTO] -> spec ports without a host port."""
    out = []
    for text in items:
        port, _, proto = str(text).partition("/")
        first, _, last = port.partition("-")
        if not first.isdigit() or not (last or first).isdigit():
            raise errors.UsageError('service "%s": expose: not a port: %r' % (name, text),
                                    "give PORT, PORT/PROTOCOL or FIRST-LAST", exit_code=1)
        for number in range(int(first), int(last or first) + 1):
            out.append({"container": number, "protocol": proto or "tcp", "host": None,
                        "host_ip": None})
    return out


def documents(p, names=None):
    """The project's services (names, or all) -> (documents, warnings)."""
    warnings = []
    p._warn = warnings.append  # run_options's own warnings (deploy.placement, ...) too
    p.converting = True
    docs, claims, depends = [], set(), []
    services = p.services
    for name in project_mod.order({n: services[n] for n in (names or services)}):
        svc = services[name]
        left = sorted(k for k in svc if k not in CONVERTED and k not in SILENT
                      and not k.startswith("x-"))
        if left:
            warnings.append('service "%s": %s: no Kubernetes mapping here, left out'
                            % (name, ", ".join(left)))
        kept = {k: v for k, v in svc.items() if k in CONVERTED}
        reserve = _reservations(kept, name, warnings)
        opts, _extra = project_mod.run_options(p, name, kept, 1)
        opts.labels = [item for item in opts.labels
                       if not item.startswith(project_mod.PREFIX)]
        opts.name = name
        # a cluster's CPUs are not this machine's: cpus is not checked against them here
        cpus, opts.cpus = opts.cpus, None
        if reserve.get("memory") is not None:
            opts.memory_reservation = str(reserve["memory"])
        spec = kube.spec_from_options(opts, image_local=_image_local(
            p.store, opts.image, svc))
        spec["nano_cpus"] = _nanos(cpus, name, "cpus")
        spec["cpu_reservation"] = _nanos(reserve.get("cpus"), name,
                                         "deploy.resources.reservations.cpus")
        exposed = _exposed(name, svc.get("expose") or ())
        known = {(x["container"], x["protocol"]) for x in spec["ports"]}
        spec["ports"] += [x for x in exposed if (x["container"], x["protocol"]) not in known]
        made, notes = kube.documents([spec], name=name, kind="deployment",
                                     replicas=project_mod.replicas(svc))
        warnings += [n for n in notes if n not in warnings]
        deployment = made[0]
        if svc.get("stop_grace_period") is not None:
            deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = \
                project_mod._duration_seconds(svc["stop_grace_period"])
        if svc.get("depends_on"):
            text = ",".join(sorted(svc["depends_on"]))
            # on the Deployment for kubectl's readers, on its pods for kube play
            for meta in (deployment["metadata"], deployment["spec"]["template"]["metadata"]):
                meta["annotations"] = dict(meta.get("annotations") or {},
                                           **{DEPENDS_ANNOTATION: text})
            depends.append("%s -> %s" % (name, text))
        docs.append(deployment)
        for doc in made[1:]:
            if doc["metadata"]["name"] not in claims:
                claims.add(doc["metadata"]["name"])
                docs.append(doc)
        ports = [(x["container"], x["protocol"]) for x in spec["ports"]]
        docs.append(kube.cluster_service(name, ports, deployment["spec"]["selector"][
            "matchLabels"]))
    if depends:
        warnings.append("depends_on has no Kubernetes equivalent: pods start in any order "
                        "(kept as %s annotations): %s" % (DEPENDS_ANNOTATION,
                                                          ", ".join(depends)))
    names = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
    if len(set(names)) != len(names):
        raise errors.UsageError("two services would have the same Kubernetes name: %s" % (
            ", ".join(sorted({n for n in names if names.count(n) > 1}))),
            "Kubernetes names are lowercase letters, digits and '-'", exit_code=1)
    return docs, warnings


def to_yaml(p, names=None):
    """-> (YAML text, warnings)"""
    docs, warnings = documents(p, names)
    return kube.dump(docs), warnings
