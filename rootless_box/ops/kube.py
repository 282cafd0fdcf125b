"""Kubernetes YAML from containers: `generate kube` (and, through the same two functions,
compose's `convert --format kube`).

Owns: the neutral "container spec" (a plain dict: name, image, image_local, entrypoint,
command, env, workdir, user, labels, healthcheck, ports, mounts, memory, memory_reservation,
nano_cpus, restart) made from a container record (spec_from_record) or from RunOptions
(spec_from_options: what compose makes for each service, before anything is created); the mapping of a list of such specs to Kubernetes documents (documents: one Pod or
Deployment holding them all, PersistentVolumeClaims for named volumes, an optional NodePort
Service); --push (local-only images pushed to a registry, the YAML naming them there); the
YAML text (PyYAML, imported here only: never on `run`'s path).
Must not: print; read the store except in generate(); emit a field Kubernetes' OpenAPI schema
does not know (the tests validate every document with kubernetes-validate --strict).

Mapping, as Podman's `generate kube` where it has one: ENTRYPOINT -> command, CMD -> args
(each only when it differs from the image's); env minus the image's; published ports ->
containerPort + hostPort (the Service's port instead with -s); named volume -> a
persistentVolumeClaim volume and a PVC document; anonymous volume -> emptyDir; tmpfs ->
emptyDir with medium Memory; bind mounts are left out with a warning naming them (a cluster
node has no such path); health check -> livenessProbe (exec); memory/cpus -> limits,
memory reservation (and compose's cpu reservation, spec key cpu_reservation) -> requests;
restart policy -> the Pod's restartPolicy (a Deployment's
must be Always).
"""

import re

from .. import errors

LABEL_POD = "app"
# compose's depends_on, written by `compose convert --format kube` and honoured by kube play
DEPENDS_ANNOTATION = "io.rootless-box.compose/depends-on"
_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RESTART = {"always": "Always", "unless-stopped": "Always", "on-failure": "OnFailure",
            "no": "Never", "": "Never"}
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def dns_name(text, limit=63):
    """A DNS-1123 label from a container or volume name (Kubernetes names: lowercase
    alphanumerics and '-')."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return name or "x"


# -- container records -> specs ------------------------------------------------------------------

def _minus(items, image_items):
    image_items = set(image_items or ())
    return [item for item in items or () if item not in image_items]


def spec_from_record(record, image_config=None, image_local=False):
    """A container record (its inspect JSON's Config, HostConfig, Mounts) -> a spec.
    image_config: the image's config (its Env, Entrypoint, Cmd: what the container did not
    change is left to the image, as Podman does)."""
    cfg = record.get("Config") or {}
    host = record.get("HostConfig") or {}
    image_config = image_config or {}
    env = {}
    own_hostname = "HOSTNAME=" + (cfg.get("Hostname") or "")
    for item in _minus(cfg.get("Env"), image_config.get("Env")):
        if item in (own_hostname, _DEFAULT_PATH):
            continue  # set by run, not by the user
        key, _, value = item.partition("=")
        env[key] = value
    entrypoint = cfg.get("Entrypoint")
    command = cfg.get("Cmd")
    if entrypoint == image_config.get("Entrypoint"):
        entrypoint = None
    if command == image_config.get("Cmd") and entrypoint is None:
        command = None
    ports = []
    for key, bindings in sorted((host.get("PortBindings") or {}).items()):
        port, _, proto = key.partition("/")
        for binding in bindings or [{}]:
            ports.append({"container": int(port), "protocol": proto or "tcp",
                          "host": int(binding["HostPort"]) if binding.get("HostPort") else None,
                          "host_ip": binding.get("HostIp") or None})
    mounts = []
    for m in record.get("Mounts") or ():
        kind = m.get("Type")
        if kind == "volume":
            anonymous = bool(re.match(r"^[0-9a-f]{64}$", m.get("Name") or ""))
            mounts.append({"type": "anonymous" if anonymous else "volume",
                           "name": m.get("Name"), "destination": m["Destination"],
                           "readonly": not m.get("RW", True)})
        elif kind in ("bind", "tmpfs"):
            mounts.append({"type": kind, "source": m.get("Source"),
                           "destination": m["Destination"], "readonly": not m.get("RW", True)})
    check = cfg.get("Healthcheck")
    if check and check.get("Test") == (image_config.get("Healthcheck") or {}).get("Test") \
            and check == image_config.get("Healthcheck"):
        check = None  # the image's own: it travels with the image
    return {"name": record["Name"].lstrip("/"), "image": _registry_name(cfg.get("Image") or
                                                                        record["Image"]),
            "image_local": image_local, "entrypoint": entrypoint, "command": command,
            "env": env, "workdir": cfg.get("WorkingDir") or None,
            "user": cfg.get("User") or None, "labels": dict(cfg.get("Labels") or {}),
            "healthcheck": check, "ports": ports, "mounts": mounts,
            "memory": host.get("Memory") or None,
            "memory_reservation": host.get("MemoryReservation") or None,
            "nano_cpus": host.get("NanoCpus") or None,
            "restart": (host.get("RestartPolicy") or {}).get("Name") or "no"}


def spec_from_options(opts, image_config=None, image_local=False):
    """What `run`/`create` (or compose, service by service) was asked for, as RunOptions
    -> a spec, without making anything: -e, -p, -v (named, anonymous and bind), --tmpfs,
    --entrypoint and the command, -w, -u, -l, --health-*, --memory/--cpus/
    --memory-reservation, --restart."""
    from . import cgroups, health, ports
    from .run import entrypoint_words
    env = {}
    for item in opts.env:
        key, eq, value = item.partition("=")
        if eq:
            env[key] = value
    published = []
    for text in opts.publish:
        for key, ip, host in ports.parse_publish(text):
            port, _, proto = key.partition("/")
            published.append({"container": int(port), "protocol": proto,
                              "host": int(host) if host.isdigit() else None,
                              "host_ip": ip or None})
    mounts = []
    for text in opts.volumes:
        parts = text.split(":")
        readonly = len(parts) > 2 and "ro" in parts[2].split(",")
        if len(parts) == 1:
            mounts.append({"type": "anonymous", "destination": parts[0], "readonly": False})
        elif parts[0].startswith(("/", ".", "~")):
            mounts.append({"type": "bind", "source": parts[0], "destination": parts[1],
                           "readonly": readonly})
        else:
            mounts.append({"type": "volume", "name": parts[0], "destination": parts[1],
                           "readonly": readonly})
    for text in opts.tmpfs:
        mounts.append({"type": "tmpfs", "destination": text.partition(":")[0],
                       "readonly": False})
    limits, _warnings = cgroups.limits(opts)
    labels = dict(item.partition("=")[::2] for item in opts.labels)
    check = health.config(opts, (image_config or {}).get("Healthcheck"))
    if check == (image_config or {}).get("Healthcheck"):
        check = None
    return {"name": opts.name, "image": _registry_name(opts.image),
            "image_local": image_local,
            "entrypoint": None if opts.entrypoint is None else entrypoint_words(
                opts.entrypoint),
            "command": list(opts.command) or None, "env": env, "workdir": opts.workdir,
            "user": opts.user, "labels": labels, "healthcheck": check, "ports": published,
            "mounts": mounts, "memory": limits.get("Memory"),
            "memory_reservation": limits.get("MemoryReservation"),
            "nano_cpus": limits.get("NanoCpus"),
            "restart": (opts.restart or "no").partition(":")[0]}


def _registry_name(name):
    """base:latest -> docker.io/library/base:latest: a cluster has no short names."""
    from ..oci import reference
    try:
        return str(reference.parse(name))
    except errors.UsageError:
        return name


# -- specs -> documents --------------------------------------------------------------------------

def _seconds(nanos, default):
    return max(1, -(-int(nanos or default) // 10 ** 9))


def probe(check):
    """A Docker Healthcheck -> a Kubernetes exec probe (None for none or NONE)."""
    test = list((check or {}).get("Test") or ())
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(test[1:])]
    elif test[0] == "CMD":
        command = test[1:]
    else:
        command = ["/bin/sh", "-c", " ".join(test)]
    result = {"exec": {"command": command},
              "periodSeconds": _seconds(check.get("Interval"), 30 * 10 ** 9),
              "timeoutSeconds": _seconds(check.get("Timeout"), 30 * 10 ** 9),
              "failureThreshold": int(check.get("Retries") or 3)}
    if check.get("StartPeriod"):
        result["initialDelaySeconds"] = _seconds(check["StartPeriod"], 0)
    return result


def _quantity_cpu(nanos):
    return "%dm" % max(1, nanos // 10 ** 6)


def _security(user, name, warnings):
    uid, _, gid = (user or "").partition(":")
    context = {}
    if uid.isdigit():
        context["runAsUser"] = int(uid)
    elif uid:
        warnings.append("container %s: user %r is a name; Kubernetes takes numeric IDs "
                        "(runAsUser): left out" % (name, user))
    if gid.isdigit():
        context["runAsGroup"] = int(gid)
    return context


def _container(spec, volumes, claims, warnings, service):
    name = dns_name(spec["name"])
    out = {"name": name, "image": spec["image"]}
    if spec.get("entrypoint") is not None:
        out["command"] = list(spec["entrypoint"])
    if spec.get("command") is not None:
        out["args"] = list(spec["command"])
    if spec.get("workdir"):
        out["workingDir"] = spec["workdir"]
    if spec.get("env"):
        out["env"] = [{"name": key, "value": value} for key, value in spec["env"].items()]
    ports = []
    for port in spec.get("ports") or ():
        item = {"containerPort": port["container"], "protocol": port["protocol"].upper()}
        if port.get("host") and not service:
            item["hostPort"] = port["host"]
            if port.get("host_ip") and port["host_ip"] not in ("0.0.0.0", "::"):
                item["hostIP"] = port["host_ip"]
        if item not in ports:
            ports.append(item)
    if ports:
        out["ports"] = ports
    mounts = []
    for m in spec.get("mounts") or ():
        if m["type"] == "bind":
            warnings.append("container %s: bind mount %s:%s left out: a cluster node has no "
                            "such path (use a named volume)" % (spec["name"], m.get("source"),
                                                                m["destination"]))
            continue
        if m["type"] == "volume":
            vol = dns_name(m["name"])
            claims.setdefault(vol, m["name"])
            source = {"name": vol, "persistentVolumeClaim": {"claimName": vol}}
        else:
            vol = dns_name("%s-%s" % (name, m["destination"].strip("/") or "root"))
            source = {"name": vol, "emptyDir": {"medium": "Memory"} if m["type"] == "tmpfs"
                      else {}}
        if source not in volumes:
            volumes.append(source)
        mount = {"name": vol, "mountPath": m["destination"]}
        if m.get("readonly"):
            mount["readOnly"] = True
        mounts.append(mount)
    if mounts:
        out["volumeMounts"] = mounts
    limits, requests = {}, {}
    if spec.get("memory"):
        limits["memory"] = str(spec["memory"])
    if spec.get("nano_cpus"):
        limits["cpu"] = _quantity_cpu(spec["nano_cpus"])
    if spec.get("memory_reservation"):
        requests["memory"] = str(spec["memory_reservation"])
    if spec.get("cpu_reservation"):
        requests["cpu"] = _quantity_cpu(spec["cpu_reservation"])
    if limits or requests:
        out["resources"] = dict(({"limits": limits} if limits else {}),
                                **({"requests": requests} if requests else {}))
    live = probe(spec.get("healthcheck"))
    if live:
        out["livenessProbe"] = live
    context = _security(spec.get("user"), spec["name"], warnings)
    if context:
        out["securityContext"] = context
    if spec.get("image_local"):
        warnings.append("image %s of container %s is only in the local store: push it to a "
                        "registry the cluster can pull from" % (spec["image"], spec["name"]))
    return out


def _metadata_labels(specs, name):
    labels, annotations = {LABEL_POD: name}, {}
    for spec in specs:
        for key, value in (spec.get("labels") or {}).items():
            if key.startswith("io.rootless-box.kube."):
                continue  # kube play's bookkeeping, not the app's
            value = str(value)
            if _LABEL_KEY.match(key) and _LABEL_VALUE.match(value) and key != LABEL_POD:
                labels.setdefault(key, value)
            else:
                annotations.setdefault(key, value)
    return labels, annotations


def documents(specs, name=None, kind="pod", replicas=1, service=False):
    """specs (spec_from_record's, or compose's from its services) -> (documents, warnings):
    one Pod or Deployment holding every spec's container, a PVC per named volume, a NodePort
    Service with -s."""
    if not specs:
        raise errors.UsageError("no containers to generate from")
    warnings = []
    name = dns_name(name or (specs[0]["name"] if len(specs) == 1
                             else specs[0]["name"] + "-pod"))
    volumes, claims = [], {}
    containers = [_container(spec, volumes, claims, warnings, service) for spec in specs]
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        raise errors.UsageError("two containers would have the same Kubernetes name: %s"
                                % ", ".join(sorted({n for n in names if names.count(n) > 1})))
    labels, annotations = _metadata_labels(specs, name)
    pod_spec = {"containers": containers}
    if volumes:
        pod_spec["volumes"] = volumes
    meta = {"name": name, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    docs = []
    if kind == "deployment":
        if any(_RESTART.get(s.get("restart") or "no") != "Always" for s in specs):
            warnings.append("a Deployment's pods always restart (restartPolicy: Always); "
                            "the containers' restart policies are left out")
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(meta),
                     "spec": {"replicas": int(replicas),
                              "selector": {"matchLabels": {LABEL_POD: name}},
                              "template": {"metadata": {"labels": labels,
                                                        **({"annotations": annotations}
                                                           if annotations else {})},
                                           "spec": pod_spec}}})
    elif kind == "pod":
        pod_spec["restartPolicy"] = _RESTART.get(specs[0].get("restart") or "no", "Never")
        docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec})
    else:
        raise errors.UsageError("invalid --type %r" % kind, "use pod or deployment")
    for claim in claims:
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": claim},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}})
    if service:
        ports = []
        for spec in specs:
            for port in spec.get("ports") or ():
                if not port.get("host"):
                    continue
                item = {"name": "%d-%s" % (port["host"], port["protocol"]),
                        "port": port["host"], "targetPort": port["container"],
                        "protocol": port["protocol"].upper()}
                if item not in ports:
                    ports.append(item)
        if ports:
            docs.append({"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": name, "labels": {LABEL_POD: name}},
                         "spec": {"type": "NodePort", "selector": {LABEL_POD: name},
                                  "ports": ports}})
        else:
            warnings.append("no published ports: no Service written")
    return docs, warnings


def cluster_service(name, ports, selector=None):
    """The Service that lets other pods reach `name`'s pods by that name (compose's service
    names): ClusterIP over ports [(port, protocol)], each targeting the same container port;
    with no ports a headless one (clusterIP: None), whose name resolves to the pods
    themselves, every port reachable, as on a compose network."""
    name = dns_name(name)
    spec = {"selector": dict(selector or {LABEL_POD: name})}
    items = []
    for port, proto in ports:
        item = {"name": "%d-%s" % (port, proto), "port": port, "targetPort": port,
                "protocol": proto.upper()}
        if item not in items:
            items.append(item)
    if items:
        spec.update(type="ClusterIP", ports=items)
    else:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {LABEL_POD: name}}, "spec": spec}


def dump(docs):
    """The documents as one YAML stream, as Podman writes it (a comment, then `---` between
    documents)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True  # a label map used twice is written twice: no &id001 for kubectl

    body = yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, default_flow_style=False)
    return "# Generated by rootless-box: `kubectl apply -f` it, or " \
           "`rootless-box kube play` it.\n" + body


def push_local(store, specs, registry, tls_verify=None):
    """--push REGISTRY: each local-only image of specs pushed as REGISTRY/PATH:TAG (PATH as
    in its name: base:latest -> REGISTRY/library/base:latest), and the spec names that.
    -> notes, one per image pushed."""
    from ..oci import reference
    from . import push
    notes, done = [], {}
    for spec in specs:
        if not spec.get("image_local"):
            continue
        ref = reference.parse(spec["image"])
        target = "%s/%s:%s" % (registry.rstrip("/"), ref.path, ref.tag or "latest")
        if target not in done:
            done[target] = push.push(store, spec["image"], target, tls_verify)["digest"]
            notes.append("pushed %s as %s" % (spec["image"], target))
        spec["image"], spec["image_local"] = target, False
    return notes


def generate(store, names, kind="pod", replicas=1, service=False, push_to=None,
             tls_verify=None):
    """`generate kube`: the containers named -> (YAML text, warnings); with push_to, the
    local-only images pushed there first (push_local)."""
    from . import containers, images
    specs = []
    for name in names:
        record = containers.find(store, name)
        image_config, local = {}, False
        try:
            image = images.resolve(store, record.get("Image") or "")
            image_config = (image.config or {}).get("config") or {}
            local = not image.record.get("digests")
        except errors.BoxError:
            pass
        specs.append(spec_from_record(record, image_config, local))
    notes = push_local(store, specs, push_to, tls_verify) if push_to else []
    docs, warnings = documents(specs, kind=kind, replicas=replicas, service=service)
    return dump(docs), notes + warnings
