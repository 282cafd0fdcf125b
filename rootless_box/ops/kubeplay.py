"""`kube play FILE.yaml` and `kube play --down`: Kubernetes Pods and Deployments run locally,
as `podman kube play` runs them.

Owns: reading the YAML stream (a bad document named by its index, a bad field by its path),
the plan (Pods; Deployments with one replica; ConfigMaps and Secrets; PersistentVolumeClaims;
Services), and carrying it out through ops/run.py: per pod an infra container `POD-infra`
(a pause image made once from the host's `sleep`, no download, as Podman builds its
podman-pause image locally) that owns the pod's network namespace and publishes its ports;
init containers run to completion in that namespace, one after another; then the pod's
containers, named `POD-CONTAINER`, joined to it (`--network container:POD-infra`), so they
reach each other on localhost. When Services select pods, the file's pods share the user
network `rootless-box-kube`, each Service's name an alias of the pods it selects (cluster DNS
names); only NodePort/LoadBalancer Services are published on the host. Everything made
carries the label io.rootless-box.kube.pod (volumes made for claims
io.rootless-box.kube.claim), which is what --down removes.
Must not: print (notes and warnings go to the caller's warn), pull unless the pull policy
says so (unset means "if missing", also for :latest: no surprise pulls).
"""

import base64
import os
import shlex
import time

from .. import errors

POD_LABEL = "io.rootless-box.kube.pod"
CLAIM_LABEL = "io.rootless-box.kube.claim"
PAUSE_IMAGE = "localhost/rootless-box-pause:latest"
# the pods of a file with Services share this user network, each Service's name an alias of
# the pods it selects (cluster DNS's names); made on demand, removed by the down that empties it
NETWORK = "rootless-box-kube"
NETWORK_LABEL = "io.rootless-box.kube.network"
_PUBLISHED_TYPES = ("NodePort", "LoadBalancer")
KINDS = ("Pod", "Deployment", "ConfigMap", "Secret", "PersistentVolumeClaim", "Service")
_RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}


class Bad(errors.UsageError):
    """A manifest that cannot be played: the document's index and the field's path."""


def _bad(index, path, what, hint=None):
    return Bad("document %d: %s: %s" % (index, path, what) if path else
               "document %d: %s" % (index, what), hint)


# -- reading -------------------------------------------------------------------------------------

def load(text):
    """A YAML stream -> [(index, document)] (empty documents dropped; index from 0, as
    kubectl counts)."""
    import yaml
    docs = []
    loader = yaml.SafeLoader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            if doc is not None:
                docs.append((index, doc))
            index += 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " line %d column %d:" % (mark.line + 1, mark.column + 1) if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise Bad("invalid YAML: document %d:%s %s" % (index, where, problem),
                  "fix the YAML (kubectl apply --dry-run=client -f FILE says the same)") \
            from None
    finally:
        loader.dispose()
    return docs


class _Doc:
    """Typed access to one document's fields, every failure naming the field's path."""

    def __init__(self, index, doc):
        self.index = index
        self.doc = doc

    def get(self, obj, path, key, kind, required=False, default=None):
        full = "%s.%s" % (path, key) if path else key
        if not isinstance(obj, dict):
            raise _bad(self.index, path, "must be a mapping")
        value = obj.get(key)
        if value is None:
            if required:
                raise _bad(self.index, full, "required")
            return default
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer",
                     bool: "true or false", (int, str): "a number or a name"}
            raise _bad(self.index, full, "must be %s" % names.get(kind, kind))
        return value

    def items(self, obj, path, key, required=False):
        """A list of mappings -> [(path of the item, item)]."""
        full = "%s.%s" % (path, key) if path else key
        values = self.get(obj, path, key, list, required, [])
        out = []
        for i, item in enumerate(values):
            if not isinstance(item, dict):
                raise _bad(self.index, "%s[%d]" % (full, i), "must be a mapping")
            out.append(("%s[%d]" % (full, i), item))
        return out

    def name(self, obj, path):
        return self.get(obj, path, "name", str, required=True)


class Plan:
    """What a file asks for: pods (pod name, its _Doc, the pod spec's path, the pod spec,
    the pod's labels, its metadata, the kind), config maps' and secrets' data by name, claim
    names, services (name, selector, [(port, targetPort, protocol)], type), the kinds left
    out, and notes for the user."""

    def __init__(self):
        self.pods, self.services, self.claims = [], [], []
        self.configmaps, self.secrets = {}, {}
        self.unsupported, self.notes = [], []


def plan(docs):
    """[(index, doc)] -> Plan; the first bad field raises Bad."""
    result = Plan()
    for index, doc in docs:
        d = _Doc(index, doc)
        if not isinstance(doc, dict):
            raise _bad(index, "", "not a Kubernetes object (a mapping with kind)")
        kind = d.get(doc, "", "kind", str, required=True)
        meta = d.get(doc, "", "metadata", dict, required=True)
        name = d.name(meta, "metadata")
        if kind not in KINDS:
            result.unsupported.append("%s/%s" % (kind, name))
        elif kind == "Pod":
            spec = d.get(doc, "", "spec", dict, required=True)
            labels = d.get(meta, "metadata", "labels", dict, default={})
            result.pods.append((name, d, "spec", spec, labels, meta, kind))
        elif kind == "Deployment":
            spec = d.get(doc, "", "spec", dict, required=True)
            replicas = d.get(spec, "spec", "replicas", int, default=1)
            if replicas != 1:
                result.notes.append("deployment %s: %d replicas asked, 1 run here (one "
                                    "machine: scale in a cluster)" % (name, replicas))
            template = d.get(spec, "spec", "template", dict, required=True)
            tmeta = d.get(template, "spec.template", "metadata", dict, default={})
            labels = d.get(tmeta, "spec.template.metadata", "labels", dict, default={})
            pod_spec = d.get(template, "spec.template", "spec", dict, required=True)
            result.pods.append((name + "-pod", d, "spec.template.spec", pod_spec, labels,
                                tmeta, kind))
        elif kind in ("ConfigMap", "Secret"):
            data = {}
            for key, value in (d.get(doc, "", "data", dict, default={})).items():
                if kind == "Secret":
                    try:
                        value = base64.b64decode(str(value), validate=True)
                    except ValueError:
                        raise _bad(index, "data.%s" % key, "not base64") from None
                data[str(key)] = value if isinstance(value, bytes) else str(value).encode()
            for key, value in (d.get(doc, "", "binaryData" if kind == "ConfigMap"
                                     else "stringData", dict, default={})).items():
                data[str(key)] = base64.b64decode(str(value)) if kind == "ConfigMap" \
                    else str(value).encode()
            (result.configmaps if kind == "ConfigMap" else result.secrets)[name] = data
        elif kind == "PersistentVolumeClaim":
            result.claims.append(name)
        else:
            spec = d.get(doc, "", "spec", dict, default={})
            selector = d.get(spec, "spec", "selector", dict, default={})
            kind = d.get(spec, "spec", "type", str, default="ClusterIP")
            ports = []
            for path, port in d.items(spec, "spec", "ports"):
                number = d.get(port, path, "port", int, required=True)
                target = d.get(port, path, "targetPort", (int, str), default=number)
                proto = d.get(port, path, "protocol", str, default="TCP").lower()
                ports.append((number, target, proto))
            result.services.append((name, selector, ports, kind))
    names = [p[0] for p in result.pods]
    if len(set(names)) != len(names):
        raise Bad("two pods named %s" % sorted({n for n in names if names.count(n) > 1})[0])
    return result


# -- one pod -> RunOptions -----------------------------------------------------------------------

def _env(d, path, c, pod, result):
    """env and envFrom -> ["KEY=value"], config maps and secrets looked up in the file."""
    out = []
    for epath, src in d.items(c, path, "envFrom"):
        prefix = d.get(src, epath, "prefix", str, default="")
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            ref = d.get(src, epath, key, dict)
            if ref is None:
                continue
            data = _lookup(d, "%s.%s" % (epath, key), ref, kind, result)
            for name, value in sorted((data or {}).items()):
                out.append("%s%s=%s" % (prefix, name, value.decode(errors="replace")))
    for epath, var in d.items(c, path, "env"):
        name = d.name(var, epath)
        if "value" in var:
            out.append("%s=%s" % (name, d.get(var, epath, "value", str, default="")))
            continue
        source = d.get(var, epath, "valueFrom", dict)
        if source is None:
            out.append(name + "=")
            continue
        value = None
        for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            ref = d.get(source, epath + ".valueFrom", key, dict)
            if ref is None:
                continue
            rpath = "%s.valueFrom.%s" % (epath, key)
            data = _lookup(d, rpath, ref, kind, result)
            wanted = d.get(ref, rpath, "key", str, required=True)
            if data is not None and wanted not in data and not ref.get("optional"):
                raise _bad(d.index, rpath + ".key", "%s %s has no key %s" % (
                    kind, ref.get("name"), wanted))
            value = None if data is None else data.get(wanted)
            value = None if value is None else value.decode(errors="replace")
            break
        else:
            field = d.get(d.get(source, epath + ".valueFrom", "fieldRef", dict, required=True),
                          epath + ".valueFrom.fieldRef", "fieldPath", str, required=True)
            values = {"metadata.name": pod, "metadata.namespace": "default",
                      "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1"}
            if field not in values:
                raise _bad(d.index, epath + ".valueFrom.fieldRef.fieldPath",
                           "%s is not supported here" % field,
                           "use one of: %s" % ", ".join(sorted(values)))
            value = values[field]
        if value is not None:
            out.append("%s=%s" % (name, value))
    return out


def _lookup(d, path, ref, kind, result):
    """The data of a ConfigMap or Secret named by ref (None when it is optional and
    missing); a missing one is a clear error."""
    name = d.get(ref, path, "name", str, required=True)
    found = (result.configmaps if kind == "ConfigMap" else result.secrets).get(name)
    if found is None and not ref.get("optional"):
        raise errors.NotFound("document %d: %s: %s %s not found" % (d.index, path, kind, name),
                              "define the %s in the same file (kind: %s)" % (kind, kind))
    return found


def _probe(d, path, probe):
    """A probe -> (health_cmd, --health-* values); exec, httpGet and tcpSocket."""
    if "exec" in probe:
        command = d.get(d.get(probe, path, "exec", dict), path + ".exec", "command", list,
                        required=True)
        words = [str(w) for w in command]
        text = words[2] if len(words) == 3 and words[1] == "-c" and \
            words[0] in ("sh", "/bin/sh") else shlex.join(words)
    elif "httpGet" in probe:
        get = d.get(probe, path, "httpGet", dict)
        port = d.get(get, path + ".httpGet", "port", (int, str), required=True)
        text = "wget -q -O /dev/null http://localhost:%s%s" % (
            port, d.get(get, path + ".httpGet", "path", str, default="/"))
    elif "tcpSocket" in probe:
        port = d.get(d.get(probe, path, "tcpSocket", dict), path + ".tcpSocket", "port",
                     (int, str), required=True)
        text = "nc -z localhost %s" % port
    else:
        raise _bad(d.index, path, "needs exec, httpGet or tcpSocket")
    flags = {"health_cmd": text}
    for key, flag in (("periodSeconds", "health_interval"),
                      ("timeoutSeconds", "health_timeout"),
                      ("initialDelaySeconds", "health_start_period")):
        value = d.get(probe, path, key, int)
        if value:
            flags[flag] = "%ds" % value
    threshold = d.get(probe, path, "failureThreshold", int)
    if threshold:
        flags["health_retries"] = str(threshold)
    return flags


class _Volumes(dict):
    """A pod's volumes by name, and which of them hold configMap/secret files."""

    def __init__(self):
        super().__init__()
        self.files = set()


def _volumes(d, path, spec, pod, store, result, made):
    """The pod's volumes -> {name: (kind, source)}: ("volume", NAME) for claims and
    emptyDir (one volume the pod's containers share), ("tmpfs", None) for emptyDir in
    memory, ("bind", PATH) for configMap/secret files and hostPath."""
    out = _Volumes()
    for vpath, vol in d.items(spec, path, "volumes"):
        name = d.name(vol, vpath)
        if "persistentVolumeClaim" in vol:
            claim = d.get(d.get(vol, vpath, "persistentVolumeClaim", dict),
                          vpath + ".persistentVolumeClaim", "claimName", str, required=True)
            out[name] = ("volume", claim)
        elif "emptyDir" in vol:
            empty = d.get(vol, vpath, "emptyDir", dict, default={})
            if empty.get("medium") == "Memory":
                out[name] = ("tmpfs", None)
            else:
                out[name] = ("volume", "%s-%s" % (pod, name))
                made["volumes"].append("%s-%s" % (pod, name))
        elif "configMap" in vol or "secret" in vol:
            kind, key = ("ConfigMap", "configMap") if "configMap" in vol else ("Secret", "secret")
            ref = dict(d.get(vol, vpath, key, dict))
            if kind == "Secret":
                ref["name"] = ref.get("secretName")
            data = _lookup(d, "%s.%s" % (vpath, key), ref, kind, result) or {}
            items = {str(i["key"]): str(i["path"])
                     for _p, i in d.items(ref, "%s.%s" % (vpath, key), "items")}
            mode = d.get(ref, "%s.%s" % (vpath, key), "defaultMode", int, default=0o644)
            target = os.path.join(store.root, "kube", pod, name)
            os.makedirs(target, mode=0o755, exist_ok=True)
            os.chmod(target, 0o755)
            for k, value in data.items():
                if items and k not in items:
                    continue
                rel = items.get(k, k)
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise _bad(d.index, vpath, "item path %r leaves the volume" % rel)
                dest = os.path.join(target, rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, "wb") as f:
                    f.write(value)
                os.chmod(dest, mode & 0o777)
            out[name] = ("bind", target)
            out.files.add(name)
        elif "hostPath" in vol:
            host = d.get(d.get(vol, vpath, "hostPath", dict), vpath + ".hostPath", "path", str,
                         required=True)
            if (vol["hostPath"].get("type") or "") in ("DirectoryOrCreate",):
                os.makedirs(host, exist_ok=True)
            out[name] = ("bind", host)
        else:
            raise _bad(d.index, vpath, "volume type not supported here",
                       "use persistentVolumeClaim, emptyDir, configMap, secret or hostPath")
    return out


def _options(d, path, c, pod, volumes, result, restart, init=False):
    """One container of the pod -> RunOptions keywords."""
    name = d.name(c, path)
    image = d.get(c, path, "image", str, required=True)
    infra = "container:%s-infra" % pod
    # a pod's containers share its network, IPC and UTS (hostname) namespaces
    kw = {"name": "%s-%s" % (pod, name), "detach": True, "network": infra, "ipc": infra,
          "uts": infra,
          "labels": ["%s=%s" % (POD_LABEL, pod)], "restart": "no" if init else restart}
    command = d.get(c, path, "command", list)
    args = d.get(c, path, "args", list)
    if command is not None:
        kw["entrypoint"] = [str(w) for w in command] or [""]
    kw["command"] = [str(w) for w in args] if args is not None else ()
    kw["workdir"] = d.get(c, path, "workingDir", str)
    kw["env"] = _env(d, path, c, pod, result)
    context = d.get(c, path, "securityContext", dict, default={})
    uid = d.get(context, path + ".securityContext", "runAsUser", int)
    gid = d.get(context, path + ".securityContext", "runAsGroup", int)
    if uid is not None:
        kw["user"] = "%d%s" % (uid, "" if gid is None else ":%d" % gid)
    mounts, tmpfs = [], []
    for mpath, m in d.items(c, path, "volumeMounts"):
        vol = d.name(m, mpath)
        dest = d.get(m, mpath, "mountPath", str, required=True)
        if vol not in volumes:
            raise _bad(d.index, mpath + ".name", "no volume %s in the pod's volumes" % vol)
        if m.get("subPath"):
            raise _bad(d.index, mpath + ".subPath", "not supported here",
                       "mount the whole volume")
        kind, source = volumes[vol]
        if kind == "tmpfs":
            tmpfs.append(dest)
        else:
            # configMap and secret files are read-only, as a kubelet mounts them
            ro = m.get("readOnly") or (kind == "bind" and vol in volumes.files)
            mounts.append("%s:%s%s" % (source, dest, ":ro" if ro else ""))
    kw["volumes"], kw["tmpfs"] = mounts, tmpfs
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = d.get(c, path, key, dict)
        if probe is not None and not init:
            kw.update(_probe(d, "%s.%s" % (path, key), probe))
            break
    kw.update(_resources(d, path, c))
    policy = d.get(c, path, "imagePullPolicy", str, default="IfNotPresent")
    if policy not in ("Always", "IfNotPresent", "Never"):
        raise _bad(d.index, path + ".imagePullPolicy", "must be Always, IfNotPresent or "
                   "Never")
    ports = []
    for ppath, port in d.items(c, path, "ports"):
        number = d.get(port, ppath, "containerPort", int, required=True)
        host = d.get(port, ppath, "hostPort", int)
        proto = d.get(port, ppath, "protocol", str, default="TCP").lower()
        ports.append((number, host, proto, port.get("name"), port.get("hostIP")))
    return image, kw, policy, ports


_UNITS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "k": 10 ** 3,
          "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "m": 10 ** -3, "": 1}


def quantity(text):
    """A Kubernetes quantity (64Mi, 1G, 500m, 1.5) -> a number; ValueError when it is not
    one."""
    text = str(text).strip()
    number = text.rstrip("KkMGTi")
    if text.endswith("m"):
        number = text[:-1]
    unit = text[len(number):]
    if unit not in _UNITS or not number:
        raise ValueError(text)
    return float(number) * _UNITS[unit]


def _resources(d, path, c):
    """resources -> the run flags (memory, cpus, memory_reservation) they stand for."""
    res = d.get(c, path, "resources", dict, default={})
    flags = {}
    for part, key, flag in (("limits", "memory", "memory"), ("limits", "cpu", "cpus"),
                            ("requests", "memory", "memory_reservation")):
        value = d.get(res, path + ".resources", part, dict, default={}).get(key)
        if value is None:
            continue
        try:
            number = quantity(value)
        except ValueError:
            raise _bad(d.index, "%s.resources.%s.%s" % (path, part, key),
                       "not a quantity: %r" % value, "e.g. 64Mi, 1Gi, 500m, 2") from None
        flags[flag] = ("%g" % number) if flag == "cpus" else str(int(number))
    return flags


def _labels(d, meta):
    labels = dict(d.get(meta, "metadata", "labels", dict, default={}))
    labels.update(d.get(meta, "metadata", "annotations", dict, default={}))
    return ["%s=%s" % (k, v) for k, v in labels.items()]


# -- carrying it out -----------------------------------------------------------------------------

def pause_image(store, idmap):
    """The infra containers' image: the host's sleep (busybox's when there is one), made
    once into the local store."""
    from . import images
    try:
        return images.resolve(store, PAUSE_IMAGE)
    except errors.NotFound:
        pass
    from .fromhost import write_rootfs_tar
    found = [p for p in ("/bin/busybox", "/usr/bin/busybox", "/bin/sleep", "/usr/bin/sleep")
             if os.path.exists(p)]
    if not found:
        raise errors.NotFound("no sleep binary on this machine for the pods' infra "
                              "containers", "install busybox or coreutils")
    tar_path = store.mktemp_path("pause")
    try:
        with open(tar_path, "wb") as out:
            write_rootfs_tar(found[:1], out)
        images.import_rootfs(store, idmap, tar_path, PAUSE_IMAGE,
                             ['CMD ["sleep", "2147483647"]'], "rootless-box kube pause image")
    finally:
        try:
            os.unlink(tar_path)
        except OSError:
            pass
    return images.resolve(store, PAUSE_IMAGE)


def _existing(store, pods):
    from . import containers
    return [r for r in containers.all_records(store)
            if ((r.get("Config") or {}).get("Labels") or {}).get(POD_LABEL) in pods]


def down(store, docs, claims=True):
    """Remove what play made for the file's pods and (with claims) the volumes it made for
    its claims -> the pod names removed. --replace keeps the claims: a replay replaces the
    pods, not their data."""
    from . import containers, volumes
    result = plan(docs)
    pods = [p[0] for p in result.pods]
    records = _existing(store, pods)
    # the infra last: the others' namespaces hang on it
    records.sort(key=lambda r: r["Name"].endswith("-infra"))
    for record in records:
        try:
            containers.remove(store, record, force=True, volumes=True)
        except errors.NotFound:
            pass
    for meta in volumes.list_volumes(store):
        labels = meta.get("Labels") or {}
        if labels.get(POD_LABEL) in pods or (claims and labels.get(CLAIM_LABEL) in
                                             result.claims):
            try:
                volumes.remove(store, meta["Name"], force=True)
            except errors.NotFound:
                pass
    _drop_network(store)
    for pod in pods:
        path = os.path.join(store.root, "kube", pod)
        if os.path.isdir(path):
            store.remove(path)
    removed = sorted({(r.get("Config") or {}).get("Labels", {}).get(POD_LABEL)
                      for r in records})
    return removed


def play(docs, pull_for, warn, publish=(), replace=False):
    """Play a file's documents. pull_for(policy) -> the run pull step for an
    imagePullPolicy (commands/kube.py gives run's). publish: --publish HOST:CTR, applied to
    the pod with that containerPort (else the first). -> [(pod, [container names])]"""
    from ..userns import idmap as idmaps
    from . import volumes
    from .storage import open_store
    result = plan(docs)
    if result.unsupported:
        warn("kinds not played here, left out: %s" % ", ".join(result.unsupported))
    for note in result.notes:
        warn(note)
    idmap = idmaps.plan()
    store = open_store(idmap)
    pods = [p[0] for p in result.pods]
    if replace:
        down(store, docs, claims=False)
    else:
        found = _existing(store, pods)
        if found:
            raise errors.Conflict("pod %s exists: made by an earlier kube play" %
                                  found[0]["Config"]["Labels"][POD_LABEL],
                                  "add --replace, or remove it first with kube play --down "
                                  "FILE")
    publish = [_publish(p) for p in publish]
    made_claims = []
    try:
        return _play(store, idmap, result, publish, pull_for, warn, made_claims)
    except BaseException:
        down(store, docs, claims=False)  # nothing half made
        for claim in made_claims:
            try:
                volumes.remove(store, claim, force=True)
            except errors.BoxError:
                pass
        raise


def _play(store, idmap, result, publish, pull_for, warn, made_claims):
    from . import run as run_ops, volumes
    # pod spec checks (every field, every reference) before anything is made
    prepared = []
    for pod, d, path, spec, labels, meta, _kind in result.pods:
        restart = _RESTART.get(d.get(spec, path, "restartPolicy", str, default="Always"))
        if restart is None:
            raise _bad(d.index, path + ".restartPolicy", "must be Always, OnFailure or Never")
        made = {"volumes": []}
        vols = _volumes(d, path, spec, pod, store, result, made)
        inits = [_options(d, p, c, pod, vols, result, restart, init=True)
                 for p, c in d.items(spec, path, "initContainers")]
        apps = [_options(d, p, c, pod, vols, result, restart)
                for p, c in d.items(spec, path, "containers", required=True)]
        grace = d.get(spec, path, "terminationGracePeriodSeconds", int)
        if grace is not None:  # stop's SIGTERM-to-SIGKILL wait, as a kubelet's
            for _image, kw, _policy, _ports in apps:
                kw["stop_timeout"] = grace
        extra = _labels(d, meta)
        prepared.append((pod, labels, inits, apps, vols, made, extra))
    for claim in result.claims:
        try:
            volumes.get(store, claim)
        except errors.NotFound:
            volumes.create(store, claim, labels={CLAIM_LABEL: claim})
            made_claims.append(claim)
    selecting = {pod: [svc for svc in result.services if _selects(svc[1], labels)]
                 for pod, labels, *_rest in prepared}
    network = None
    if any(selecting.values()):
        network = _network(store)
    out = []
    sources = {p[0][:-4] if p[6] == "Deployment" else p[0]: p[0] for p in result.pods}
    for number, (pod, labels, inits, apps, vols, made, extra) in enumerate(prepared):
        _await_dependencies(store, pod, result.pods[number][5], sources, out, warn)
        ports = []
        for _image, _kw, _policy, cports in apps:
            for cport, host, proto, _name, host_ip in cports:
                if host:
                    ports.append("%s%d:%d/%s" % (host_ip + ":" if host_ip else "", host,
                                                 cport, proto))
        for name, _selector, sports, kind in selecting[pod]:
            for sport, target, proto in sports:
                if kind not in _PUBLISHED_TYPES:
                    if sport != target:
                        warn("service %s: port %d is reached here on the pod's port %s "
                             "(no cluster IP to translate it)" % (name, sport, target))
                    continue
                if isinstance(target, str):
                    named = [c[0] for a in apps for c in a[3] if c[3] == target]
                    if not named:
                        raise errors.UsageError("service %s: no container port named %s"
                                                % (name, target))
                    target = named[0]
                ports.append("%d:%d/%s" % (sport, target, proto))
        for host, cport, proto in publish:
            owns = any(c[0] == cport for a in apps for c in a[3])
            if owns or (number == 0 and not any(
                    c[0] == cport for p in prepared for a in p[3] for c in a[3])):
                ports = [p for p in ports if not p.split(":")[-1].startswith("%d/" % cport)]
                ports.append("%s:%d/%s" % (host, cport, proto))
        aliases = [svc[0] for svc in selecting[pod]]
        names = _start_pod(store, idmap, pod, ports, inits, apps, vols, made, extra,
                           pull_for, warn, run_ops, volumes, network, aliases)
        out.append((pod, names))
    return out


def _await_dependencies(store, pod, meta, sources, started, warn):
    """The depends-on annotation `compose convert` writes: before the pod starts, the pods
    it names that this play started are healthy (running, for those without a check), as
    `compose up` waited. Kubernetes itself has no order; an unhealthy or stopped dependency
    is a warning and the pod starts anyway, as it would in a cluster."""
    from . import containers, health
    from .kube import DEPENDS_ANNOTATION
    text = ((meta or {}).get("annotations") or {}).get(DEPENDS_ANNOTATION) or ""
    done = dict(started)
    for dep in filter(None, text.split(",")):
        for name in done.get(sources.get(dep.strip()), ()):
            while True:
                try:
                    record = containers.refresh_state(store, containers.find(store, name))
                except errors.NotFound:
                    break
                state = record["State"]
                checked = health.active((record.get("Config") or {}).get("Healthcheck"))
                status = (state.get("Health") or {}).get("Status")
                if status == "healthy" or (not checked and state.get("Running")):
                    break
                stopped = state.get("Status") == "exited" and (
                    (record.get("HostConfig") or {}).get("RestartPolicy") or {}).get(
                        "Name") in (None, "", "no")
                if status == "unhealthy" or stopped:
                    warn("pod %s: its dependency %s is %s; started anyway" % (
                        pod, name, "unhealthy" if status == "unhealthy" else "stopped"))
                    break
                time.sleep(0.05)


def _selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _network(store):
    """The shared pods' network, made when missing."""
    from . import networks
    try:
        networks.find(store, NETWORK)
    except errors.NotFound:
        try:
            networks.create(store, NETWORK, labels={NETWORK_LABEL: "true"})
        except errors.Conflict:
            pass  # another play made it meanwhile
    return NETWORK


def _drop_network(store):
    """down: the shared network once no container is on it (and only the one play made)."""
    from . import containers, networks
    try:
        net = networks.find(store, NETWORK)
    except errors.NotFound:
        return
    if not (net.get("Labels") or {}).get(NETWORK_LABEL):
        return
    for record in containers.all_records(store):
        if NETWORK in ((record.get("NetworkSettings") or {}).get("Networks") or {}):
            return
    try:
        networks.remove(store, NETWORK)
    except errors.BoxError:
        pass  # in use again by a play that started meanwhile


def _publish(text):
    host, _, ctr = text.rpartition(":")
    ctr, _, proto = ctr.partition("/")
    if not host or not ctr.isdigit():
        raise errors.UsageError("invalid --publish %r" % text, "use HOST:CONTAINER, e.g. "
                                "8080:80")
    return host, int(ctr), proto or "tcp"


def _last_line(path):
    """The last line an init container wrote (for the error that removes it)."""
    import json
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()[-20:]
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            text = json.loads(line).get("log", "").strip()
        except ValueError:
            continue
        if text:
            return ": %s" % text[:200]
    return ""


def _limits(pod, containers, warn):
    """Resources a machine without a delegated cgroup cannot apply are left out with one
    warning (a manifest written for a cluster still plays), not refused as -m is."""
    from . import cgroups
    flags = {"memory": "Memory", "cpus": "NanoCpus", "memory_reservation": "MemoryReservation"}
    asked = sorted({flags[k] for _i, kw, _p, _ports in containers for k in flags if k in kw})
    why = cgroups.unavailable(asked) if asked else None
    if not why:
        return containers
    warn("pod %s: resources left out: %s" % (pod, why))
    return [(image, {k: v for k, v in kw.items() if k not in flags}, policy, ports)
            for image, kw, policy, ports in containers]


def _start_pod(store, idmap, pod, ports, inits, apps, vols, made, extra, pull_for, warn,
               run_ops, volumes, network=None, aliases=()):
    from . import lifecycle
    inits, apps = _limits(pod, inits, warn), _limits(pod, apps, warn)
    pause_image(store, idmap)
    for name in made["volumes"]:
        volumes.create(store, name, labels={POD_LABEL: pod})
    infra = run_ops.RunOptions(PAUSE_IMAGE, name="%s-infra" % pod, detach=True,
                               network=network or "private", network_aliases=aliases,
                               publish=ports, hostname=pod,
                               labels=["%s=%s" % (POD_LABEL, pod)])
    run_ops.run_detached(infra, warn=warn)
    names = []
    for image, kw, policy, _ports in inits:
        kw = dict(kw, labels=kw["labels"] + extra)
        record = run_ops.run_detached(run_ops.RunOptions(image, **kw), warn=None,
                                      pull=pull_for(policy))
        done = lifecycle.wait_exit(store, record) or record
        code = done["State"].get("ExitCode", 0)
        from . import containers
        if code:
            raise errors.BoxError("pod %s: init container %s exited with code %d%s" % (
                pod, kw["name"], code, _last_line(containers.log_path(store, record["Id"]))),
                "fix the init container; nothing of the pod was left running")
        containers.remove(store, done, force=True, volumes=True)
    for image, kw, policy, _ports in apps:
        kw = dict(kw, labels=kw["labels"] + extra)
        run_ops.run_detached(run_ops.RunOptions(image, **kw), warn=None,
                             pull=pull_for(policy))
        names.append(kw["name"])
    return names
