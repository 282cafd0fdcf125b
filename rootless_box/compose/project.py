"""A loaded Compose project made real: its networks, volumes and containers, through the ops
the CLI uses (ops/run RunOptions, ops/networks, ops/volumes, ops/lifecycle), so a service's
container is exactly what `run -d` with the same flags makes.

Owns: Compose v2's conventions on top of those ops: the names (`project-service-N`,
`project_key` networks and volumes, `project-service-run-<hex>` one-offs), the
`com.docker.compose.*` labels and the config hash that decides recreation, the translation of a
canonical service into RunOptions (each supported key; one warning per key not supported),
dependency order and depends_on's conditions (read from the state the containers' monitors
keep: compose itself runs no checks), and convergence (create, recreate, start, scale, orphans)
and tear-down.
Must not: print or exit (it reports through callbacks: report(kind, name, status) and
warn(text)), or parse the command line (commands/compose.py does).
"""

import hashlib
import json
import os
import time

from .. import errors
from ..ops import containers as container_ops
from ..ops import lifecycle, networks as network_ops, volumes as volume_ops
from ..ops import run as run_ops
from ..ops.storage import open_store

PREFIX = "com.docker.compose."
VERSION = "2.29.7"  # the Compose v2 whose behaviour and labels this follows
_POLL = 0.05

# service keys turned into run flags; any other key is named in a warning
SUPPORTED = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "ports", "expose",
    "volumes", "tmpfs", "networks", "network_mode", "depends_on", "healthcheck", "restart",
    "user", "working_dir", "hostname", "domainname", "labels", "container_name", "init",
    "read_only", "stop_signal", "stop_grace_period", "extra_hosts", "dns", "dns_search",
    "dns_opt", "ulimits", "shm_size", "cap_add", "cap_drop", "security_opt", "secrets",
    "configs", "deploy", "scale", "profiles", "pull_policy", "logging",
    "privileged", "sysctls", "stdin_open", "tty", "mem_limit", "cpus", "pids_limit",
    "group_add", "devices", "volumes_from", "ipc", "pid", "oom_score_adj", "extends",
}


class Project:
    """One project as the verbs see it: the loaded model and the store."""

    def __init__(self, loaded, services, report=None, warn=None, pull=None, build=None,
                 pull_for=None):
        self.loaded = loaded
        self.name = loaded.name
        self.model = loaded.model
        self.services = services  # {name: canonical service, environment resolved}
        self.report = report or (lambda kind, name, status: None)
        self._warned = set()
        self._warn = warn or (lambda text: None)
        self.pull = pull
        # pull_for(policy) -> the pull step for a service's pull_policy (commands/ make it)
        self.pull_for = pull_for
        self.build = build  # build(project, service name, svc) -> image id (commands/)
        self.store = open_store()
        self.made = []  # (kind, name) of what this command created: what a failed up undoes
        self.recreated = set()  # services whose containers this command recreated
        self.converting = False  # `convert --format kube`: run_options makes nothing on disk

    def warn(self, text):
        if text not in self._warned:
            self._warned.add(text)
            self._warn(text)

    # -- names and labels -------------------------------------------------------------------

    def container_name(self, service, number):
        svc = self.services.get(service) or {}
        if svc.get("container_name"):
            return svc["container_name"]
        return "%s-%s-%d" % (self.name, service, number)

    def image_of(self, service):
        svc = self.services[service]
        return svc.get("image") or "%s-%s" % (self.name, service)

    def network_name(self, key):
        spec = (self.model.get("networks") or {}).get(key) or {}
        return spec.get("name") or "%s_%s" % (self.name, key)

    def volume_name(self, key):
        spec = (self.model.get("volumes") or {}).get(key) or {}
        return spec.get("name") or "%s_%s" % (self.name, key)

    def containers(self, services=None, oneoff=False):
        return containers_of(self.store, self.name, services, oneoff)


def label(record, key):
    return ((record.get("Config") or {}).get("Labels") or {}).get(PREFIX + key)


def containers_of(store, project, services=None, oneoff=False):
    """The project's containers (by label), by service and number. oneoff: False (services'),
    True (run's), None (both)."""
    out = []
    for record in container_ops.all_records(store):
        if label(record, "project") != project:
            continue
        if services is not None and label(record, "service") not in services:
            continue
        if oneoff is not None and (label(record, "oneoff") == "True") != oneoff:
            continue
        out.append(record)
    out.sort(key=lambda r: (label(r, "service") or "", int(label(r, "container-number") or 0),
                            r["Name"]))
    return out


def projects(store):
    """`ls`: {project: (records, config files)}."""
    found = {}
    for record in container_ops.all_records(store):
        name = label(record, "project")
        if name:
            found.setdefault(name, ([], label(record, "project.config_files") or ""))[0] \
                .append(record)
    return found


def config_hash(svc):
    """compose's ServiceHash: the service without what does not change the container
    (build, pull_policy, scale and replicas, depends_on, profiles)."""
    kept = {k: v for k, v in svc.items()
            if k not in ("build", "pull_policy", "scale", "depends_on", "profiles")}
    if isinstance(kept.get("deploy"), dict):
        kept["deploy"] = {k: v for k, v in kept["deploy"].items() if k != "replicas"}
        if not kept["deploy"]:
            del kept["deploy"]
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def order(services):
    """Service names, every one after what it depends on (dependencies within services)."""
    from .loader import dependencies
    done, out = set(), []

    def visit(name):
        if name in done:
            return
        done.add(name)
        for dep in dependencies(services[name]):
            if dep in services:
                visit(dep)
        out.append(name)
    for name in sorted(services):
        visit(name)
    return out


def replicas(svc, scale=None):
    if scale is not None:
        return scale
    if svc.get("scale") is not None:
        return int(svc["scale"])
    deploy = svc.get("deploy") or {}
    if deploy.get("replicas") is not None:
        return int(deploy["replicas"])
    return 1


# -- a service as RunOptions ----------------------------------------------------------------

def _duration_seconds(text):
    from ..oci.image import parse_duration
    return max(0, parse_duration(str(text)) // 10 ** 9)


def _port_flag(p):
    target = str(p["target"])
    proto = p.get("protocol") or "tcp"
    published = p.get("published")
    text = target if not published else "%s:%s" % (published, target)
    if published and p.get("host_ip"):
        text = "%s:%s" % (p["host_ip"], text)
    return "%s/%s" % (text, proto)


def _restart(svc):
    if svc.get("restart"):
        return str(svc["restart"])
    policy = (svc.get("deploy") or {}).get("restart_policy")
    if policy:
        cond = policy.get("condition") or "any"
        if cond == "none":
            return "no"
        if cond == "on-failure":
            n = policy.get("max_attempts")
            return "on-failure:%d" % n if n else "on-failure"
        return "always"
    return "no"


def _mounts(p, name, svc, kw):
    for v in svc.get("volumes") or ():
        if not isinstance(v, dict):
            raise errors.UsageError("service %s: volume %r is not understood" % (name, v))
        kind, target = v.get("type"), v.get("target")
        ro = ":ro" if v.get("read_only") else ""
        if kind == "bind":
            source = v["source"]
            if not getattr(p, "converting", False) and not os.path.exists(source) and (
                    v.get("bind") or {}).get("create_host_path", True):
                os.makedirs(source, exist_ok=True)
            kw["volumes"].append("%s:%s%s" % (source, target, ro))
        elif kind == "volume":
            if v.get("source"):
                kw["volumes"].append("%s:%s%s" % (p.volume_name(v["source"]), target, ro))
            else:
                kw["volumes"].append(target)
        elif kind == "tmpfs":
            size = (v.get("tmpfs") or {}).get("size")
            kw["tmpfs"].append("%s:size=%s" % (target, size) if size else target)
        else:
            p.warn('service "%s": volumes of type %s are not supported and are ignored'
                   % (name, kind))
    for key, default_dir in (("secrets", "/run/secrets/"), ("configs", "/")):
        table = p.model.get(key) or {}
        for ref in svc.get(key) or ():
            spec = table.get(ref["source"]) or {}
            source = spec.get("file") or _materialized(p, key, ref["source"], spec)
            if source is None:
                p.warn('service "%s": %s %s: only file, environment and content sources '
                       'are supported; it is not mounted' % (name, key[:-1], ref["source"]))
                continue
            target = ref.get("target") or ref["source"]
            if not target.startswith("/"):
                target = default_dir + target
            kw["volumes"].append("%s:%s:ro" % (source, target))


def materialized_dir(p):
    return os.path.join(p.store.root, "compose", p.name)


def _materialized(p, key, name, spec):
    """A secret or config given by `environment:` (or a config's `content:`) as the file
    Compose mounts: written under the store (compose/PROJECT/KIND/NAME, 0444), removed by
    `down`. -> its path, or None for a source of another kind."""
    if spec.get("environment"):
        var = spec["environment"]
        if var not in p.loaded.environment:
            raise errors.UsageError("environment variable %s not set, as %s %s needs"
                                    % (var, key[:-1], name), exit_code=1)
        text = p.loaded.environment[var]
    elif key == "configs" and spec.get("content") is not None:
        text = spec["content"]
    else:
        return None
    from ..store import atomic_write
    folder = os.path.join(materialized_dir(p), key)
    os.makedirs(folder, 0o700, exist_ok=True)
    path = os.path.join(folder, name)
    atomic_write(path, str(text).encode(), 0o444)
    return path


def _deploy(p, name, deploy, kw):
    """deploy: replicas and restart_policy are read elsewhere; resources.limits are the
    cgroup limits (cpus, memory, pids); the rest (placement, update_config...) is swarm's."""
    limits = (deploy.get("resources") or {}).get("limits") or {}
    for key, flag in (("cpus", "cpus"), ("memory", "memory"), ("pids", "pids_limit")):
        if limits.get(key) is not None:
            kw.setdefault(flag, str(limits[key]))
    ignored = ["deploy.%s" % k for k in sorted(deploy)
               if k not in ("replicas", "restart_policy", "resources")]
    ignored += ["deploy.resources.%s" % k for k in sorted(deploy.get("resources") or {})
                if k != "limits"]
    ignored += ["deploy.resources.limits.%s" % k for k in sorted(limits)
                if k not in ("cpus", "memory", "pids")]
    for key in ignored:
        p.warn('service "%s": %s is not supported by rootless-box yet and is ignored'
               % (name, key))


def run_options(p, name, svc, number=None, oneoff=None, extra_labels=None):
    """The RunOptions of service `name`'s container `number` (or a one-off's, oneoff=its
    name): compose's labels, the project network with the service name as alias."""
    for key in sorted(svc):
        if key not in SUPPORTED and not key.startswith("x-"):
            p.warn('service "%s": %s is not supported by rootless-box yet and is ignored'
                   % (name, key))
    image = p.image_of(name)
    cname = oneoff or p.container_name(name, number)
    own = {PREFIX + "project": p.name, PREFIX + "service": name,
           PREFIX + "container-number": str(number or 1),
           PREFIX + "oneoff": "True" if oneoff else "False",
           PREFIX + "config-hash": config_hash(svc),
           PREFIX + "project.working_dir": p.loaded.workdir,
           PREFIX + "project.config_files": ",".join(p.loaded.files),
           PREFIX + "depends_on": ",".join(
               "%s:%s:%s" % (d, (c or {}).get("condition", "service_started"),
                             str(bool((c or {}).get("restart"))).lower())
               for d, c in sorted((svc.get("depends_on") or {}).items())),
           PREFIX + "image": image, PREFIX + "version": VERSION}
    own.update(extra_labels or {})
    labels = dict(svc.get("labels") or {})
    labels.update(own)
    kw = {"name": cname, "labels": ["%s=%s" % kv for kv in sorted(labels.items())],
          "volumes": [], "tmpfs": list(svc.get("tmpfs") or ()) if isinstance(
              svc.get("tmpfs"), list) else ([svc["tmpfs"]] if svc.get("tmpfs") else []),
          "detach": True, "restart": _restart(svc)}
    env = svc.get("environment") or {}
    kw["env"] = ["%s=%s" % (k, v) for k, v in env.items() if v is not None]
    for key, flag in (("user", "user"), ("working_dir", "workdir"), ("hostname", "hostname"),
                      ("domainname", "domainname"), ("stop_signal", "stop_signal"),
                      ("shm_size", "shm_size"), ("ipc", "ipc"), ("pid", "pid"),
                      ("mem_limit", "memory"), ("cpus", "cpus"),
                      ("pids_limit", "pids_limit"), ("oom_score_adj", "oom_score_adj")):
        if svc.get(key) is not None:
            kw[flag] = str(svc[key])
    for key, flag in (("init", "init"), ("read_only", "read_only"),
                      ("privileged", "privileged"), ("tty", "tty"),
                      ("stdin_open", "interactive")):
        if svc.get(key):
            kw[flag] = True
    for key, flag in (("cap_add", "cap_add"), ("cap_drop", "cap_drop"),
                      ("security_opt", "security_opts"), ("dns", "dns"),
                      ("dns_search", "dns_search"), ("dns_opt", "dns_options"),
                      ("group_add", "group_add"), ("devices", "devices")):
        value = svc.get(key)
        if value:
            kw[flag] = [str(x) for x in (value if isinstance(value, list) else [value])]
    _deploy(p, name, svc.get("deploy") or {}, kw)
    if svc.get("expose"):
        kw["expose"] = [str(x) for x in svc["expose"]]
    if svc.get("stop_grace_period") is not None:
        kw["stop_timeout"] = _duration_seconds(svc["stop_grace_period"])
    hosts = svc.get("extra_hosts")
    if isinstance(hosts, dict):
        hosts = ["%s:%s" % (h, ip) for h, ip in hosts.items()]
    if hosts:
        kw["add_hosts"] = [h.replace("=", ":", 1) if "=" in h else h for h in hosts]
    ulimits = []
    for key, value in (svc.get("ulimits") or {}).items():
        if isinstance(value, dict):
            ulimits.append("%s=%s:%s" % (key, value.get("soft"), value.get("hard")))
        else:
            ulimits.append("%s=%s" % (key, value))
    if ulimits:
        kw["ulimits"] = ulimits
    if svc.get("sysctls"):
        kw["sysctls"] = ["%s=%s" % kv for kv in svc["sysctls"].items()]
    logging = svc.get("logging") or {}
    if logging.get("driver") not in (None, "json-file"):
        p.warn('service "%s": logging driver %s is not supported; json-file is used'
               % (name, logging["driver"]))
    elif logging.get("options"):
        kw["log_opts"] = ["%s=%s" % kv for kv in logging["options"].items()]
    check = svc.get("healthcheck")
    if check:
        if check.get("disable"):
            kw["no_healthcheck"] = True
        else:
            if check.get("test"):
                test = list(check["test"])
                if test[0] == "NONE":
                    kw["no_healthcheck"] = True
                else:
                    kw["health_test"] = test
            for key in ("interval", "timeout", "start_period", "start_interval"):
                if check.get(key) is not None and not kw.get("no_healthcheck"):
                    kw["health_" + key] = str(check[key])
            if check.get("retries") is not None and not kw.get("no_healthcheck"):
                kw["health_retries"] = str(check["retries"])
    _mounts(p, name, svc, kw)
    for vf in svc.get("volumes_from") or ():
        if vf.startswith("container:"):
            kw.setdefault("volumes_from", []).append(vf[10:])
        else:
            service, _, mode = vf.partition(":")
            kw.setdefault("volumes_from", []).append(
                p.container_name(service, 1) + (":" + mode if mode else ""))
    mode = svc.get("network_mode")
    extra_nets = []
    if mode:
        if mode.startswith("service:"):
            target = p.containers([mode[8:]])
            if not target:
                raise errors.NotFound("service %s has no container to join the network of"
                                      % mode[8:], exit_code=1)
            kw["network"] = "container:" + target[0]["Name"]
        else:
            kw["network"] = mode
    else:
        nets = svc.get("networks") or {"default": None}
        keys = sorted(nets, key=lambda k: (-int((nets[k] or {}).get("priority") or 0), k))
        for i, key in enumerate(keys):
            spec = nets[key] or {}
            aliases = [name] + list(spec.get("aliases") or ())
            if oneoff:
                aliases = list(spec.get("aliases") or ())
            if i == 0:
                kw["network"] = p.network_name(key)
                kw["network_aliases"] = aliases
                if spec.get("ipv4_address"):
                    kw["ip"] = spec["ipv4_address"]
                if spec.get("ipv6_address"):
                    kw["endpoint"] = {"ip6": spec["ipv6_address"]}
            else:
                extra_nets.append((p.network_name(key), aliases, spec.get("ipv4_address"),
                                   spec.get("ipv6_address")))
    if not oneoff:
        kw["publish"] = [_port_flag(x) for x in svc.get("ports") or ()]
    entry = svc.get("entrypoint")
    opts = run_ops.RunOptions(image, list(svc.get("command") or ()),
                              entrypoint=list(entry) if entry is not None else None, **kw)
    return opts, extra_nets


# -- resources --------------------------------------------------------------------------------

def used_networks(p):
    keys = set()
    for svc in p.services.values():
        if not svc.get("network_mode"):
            keys.update(svc.get("networks") or {"default": None})
    return sorted(keys)


def used_volumes(p):
    return sorted({v["source"] for svc in p.services.values() for v in svc.get("volumes") or ()
                   if isinstance(v, dict) and v.get("type") == "volume" and v.get("source")})


def ensure_networks(p):
    for key in used_networks(p):
        spec = (p.model.get("networks") or {}).get(key) or {}
        name = p.network_name(key)
        try:
            network_ops.find(p.store, name)
            continue
        except errors.NotFound:
            if spec.get("external"):
                raise errors.NotFound("network %s declared as external, but could not be "
                                      "found" % name, exit_code=1) from None
        # one ipam.config entry per family (the IPv6 one by its subnet), as the CLI's --subnet
        configs = (spec.get("ipam") or {}).get("config") or []
        ipam = next((c for c in configs if not network_ops.is_v6(c.get("subnet"))), {})
        ipam6 = next((c for c in configs if network_ops.is_v6(c.get("subnet"))), {})
        p.report("Network", name, "Creating")
        network_ops.create(p.store, name, driver=spec.get("driver") or "bridge",
                           internal=bool(spec.get("internal")), subnet=ipam.get("subnet"),
                           gateway=ipam.get("gateway"), ip_range=ipam.get("ip_range"),
                           ipv6=bool(spec.get("enable_ipv6")), subnet6=ipam6.get("subnet"),
                           gateway6=ipam6.get("gateway"), ip_range6=ipam6.get("ip_range"),
                           labels=dict(spec.get("labels") or {}, **{
                               PREFIX + "network": key, PREFIX + "project": p.name,
                               PREFIX + "version": VERSION}),
                           options=spec.get("driver_opts"))
        p.made.append(("network", name))
        p.report("Network", name, "Created")


def ensure_volumes(p):
    for key in used_volumes(p):
        spec = (p.model.get("volumes") or {}).get(key) or {}
        name = p.volume_name(key)
        try:
            volume_ops.get(p.store, name)
            continue
        except errors.NotFound:
            if spec.get("external"):
                raise errors.NotFound("external volume \"%s\" not found" % name,
                                      exit_code=1) from None
        p.report("Volume", '"%s"' % name, "Creating")
        volume_ops.create(p.store, name, driver=spec.get("driver") or "local",
                          labels=dict(spec.get("labels") or {}, **{
                              PREFIX + "volume": key, PREFIX + "project": p.name,
                              PREFIX + "version": VERSION}),
                          options=spec.get("driver_opts"))
        p.made.append(("volume", name))
        p.report("Volume", '"%s"' % name, "Created")


def _image_id(p, service):
    from ..ops import images
    try:
        return images.resolve(p.store, p.image_of(service)).id
    except errors.BoxError:
        return None


def build_images(p, names, always=False):
    """Build the services that have a build section and no image yet (or all with always)."""
    for name in names:
        svc = p.services[name]
        if not svc.get("build"):
            continue
        if always or svc.get("pull_policy") == "build" or (
                _image_id(p, name) is None and svc.get("pull_policy") != "never"):
            if p.build is None:
                raise errors.BoxError("service %s needs a build" % name)
            p.build(p, name, svc)


# -- containers -------------------------------------------------------------------------------

def create_container(p, name, svc, number):
    opts, extra_nets = run_options(p, name, svc, number)
    policy = svc.get("pull_policy")
    pull = p.pull
    if policy and p.pull_for is not None and policy not in ("build", "missing",
                                                            "if_not_present"):
        pull = p.pull_for(policy)
    record = run_ops.create(opts, warn=p.warn, pull=pull)
    p.made.append(("container", record["Id"]))
    try:
        for net, aliases, ip, ip6 in extra_nets:
            network_ops.connect(p.store, net, record["Id"], aliases, ip, ip6=ip6)
    except BaseException:
        container_ops.remove(p.store, record, force=True)
        raise
    return p.store.read_container(record["Id"]) or record


def start(p, record):
    p.report("Container", record["Name"], "Starting")
    from ..userns import idmap as idmaps
    record = run_ops.start(p.store, idmaps.plan(), record)
    p.report("Container", record["Name"], "Started")
    return record


def stop_remove(p, record, timeout=None, volumes=False, stop=True):
    name = record["Name"]
    state = container_ops.refresh_state(p.store, record)["State"]
    if stop and state.get("Status") in container_ops.LIVE_STATES:
        p.report("Container", name, "Stopping")
        lifecycle.stop(p.store, record["Id"], timeout)
        p.report("Container", name, "Stopped")
    p.report("Container", name, "Removing")
    container_ops.remove(p.store, p.store.read_container(record["Id"]) or record, force=True,
                         volumes=volumes)
    p.report("Container", name, "Removed")


def _state(p, record):
    current = p.store.read_container(record["Id"])
    if current is None:
        return None
    return container_ops.refresh_state(p.store, current)


class DependencyFailed(errors.BoxError):
    """A depends_on condition that cannot hold: what up made stays, to be looked at."""

    def __init__(self, message):
        super().__init__(message, exit_code=1)


def wait_condition(p, dep, condition, records):
    """depends_on's condition on service dep's containers (started: nothing to wait for)."""
    if condition == "service_started":
        return
    for record in records:
        name = record["Name"]
        p.report("Container", name, "Waiting")
        while True:
            current = _state(p, record)
            if current is None:
                raise DependencyFailed("dependency failed to start: container %s was removed"
                                       % name)
            state = current["State"]
            live = state.get("Status") in container_ops.LIVE_STATES
            if condition == "service_healthy":
                from ..ops import health
                if not health.active((current.get("Config") or {}).get("Healthcheck")):
                    raise DependencyFailed("dependency failed to start: container %s has no "
                                           "healthcheck configured" % name)
                status = (state.get("Health") or {}).get("Status")
                if status == "healthy":
                    p.report("Container", name, "Healthy")
                    break
                if status == "unhealthy":
                    raise DependencyFailed("dependency failed to start: container %s is "
                                           "unhealthy" % name)
                if not live:
                    raise DependencyFailed("dependency failed to start: container %s exited "
                                           "(%s)" % (name, state.get("ExitCode")))
            elif condition == "service_completed_successfully":
                if not live:
                    code = state.get("ExitCode") or 0
                    if code != 0:
                        raise DependencyFailed('service "%s" didn\'t complete successfully: '
                                               'exit %d' % (dep, code))
                    p.report("Container", name, "Exited")
                    break
            else:
                raise errors.UsageError("unknown depends_on condition %s" % condition)
            time.sleep(_POLL)


def wait_ready(p, records, timeout=None):
    """`up --wait [--wait-timeout N]`: every container running, and healthy when it has a
    check."""
    from ..ops import health
    deadline = None if not timeout else time.monotonic() + timeout
    for record in records:
        name = record["Name"]
        p.report("Container", name, "Waiting")
        while True:
            current = _state(p, record)
            state = (current or {}).get("State") or {}
            if current is None or state.get("Status") not in container_ops.LIVE_STATES:
                raise errors.BoxError("container %s exited (%s)" % (
                    name, state.get("ExitCode")), exit_code=1)
            if not health.active((current.get("Config") or {}).get("Healthcheck")):
                p.report("Container", name, "Running")  # Compose v2 --wait's word for it
                break
            status = (state.get("Health") or {}).get("Status")
            if status == "healthy":
                p.report("Container", name, "Healthy")
                break
            if status == "unhealthy":
                raise errors.BoxError("container %s is unhealthy" % name, exit_code=1)
            if deadline is not None and time.monotonic() > deadline:
                raise errors.BoxError("timeout waiting for container %s to be healthy"
                                      % name, exit_code=1)
            time.sleep(_POLL)


class UpOptions:
    """How `up`/`create` converge: the command line's recreate, orphan, scale, build and
    stop-timeout choices."""

    def __init__(self, **kw):
        self.force_recreate = kw.get("force_recreate", False)
        self.no_recreate = kw.get("no_recreate", False)
        self.remove_orphans = kw.get("remove_orphans", False)
        self.scale = dict(kw.get("scale") or {})
        self.build = kw.get("build", False)
        self.no_build = kw.get("no_build", False)
        self.timeout = kw.get("timeout")


def orphans(p):
    known = set(p.loaded.model["services"])
    return [r for r in p.containers(oneoff=False) if label(r, "service") not in known]


def create_services(p, opts, names):
    """`create` and `up`'s first half: networks, volumes, images, then each service's
    containers converged to its replicas. -> [(service, [records])] in dependency order."""
    stale = orphans(p)
    if stale:
        if opts.remove_orphans:
            for record in stale:
                stop_remove(p, record, opts.timeout)
        else:
            p.warn("Found orphan containers (%s) for this project. If you removed or renamed "
                   "this service in your compose file, you can run this command with the "
                   "--remove-orphans flag to clean it up." % ", ".join(
                       "[%s]" % r["Name"] for r in stale))
    if not opts.no_build:
        build_images(p, names, opts.build)
    ensure_networks(p)
    ensure_volumes(p)
    plan = []
    for name in order({n: p.services[n] for n in names}):
        svc = p.services[name]
        want = replicas(svc, opts.scale.get(name))
        digest = config_hash(svc)
        image_id = _image_id(p, name)
        have = {int(label(r, "container-number") or 0): r for r in p.containers([name])}
        kept = []
        for number in sorted(have):
            if number > want:
                stop_remove(p, have[number], opts.timeout)
        for number in range(1, want + 1):
            record = have.get(number)
            if record is None:
                cname = p.container_name(name, number)
                p.report("Container", cname, "Creating")
                record = create_container(p, name, svc, number)
                p.report("Container", cname, "Created")
            else:
                # a service in another's network namespace (network_mode: service:X) is
                # recreated with X: the namespace it joined went with X's old container
                joined = svc.get("network_mode") or ""
                changed = label(record, "config-hash") != digest or (
                    image_id is not None and record.get("Image") != image_id) or (
                    joined.startswith("service:") and joined[8:] in p.recreated)
                if opts.force_recreate or (changed and not opts.no_recreate):
                    cname = record["Name"]
                    p.report("Container", cname, "Recreate")
                    _replace(p, record, opts.timeout)
                    record = create_container(p, name, svc, number)
                    p.report("Container", cname, "Recreated")
                    p.recreated.add(name)
            kept.append(record)
        plan.append((name, kept))
    return plan


def _replace(p, record, timeout):
    """The old container of a recreate: stopped and removed quietly (Recreate/Recreated
    say it)."""
    lifecycle.stop(p.store, record["Id"], timeout)
    container_ops.remove(p.store, p.store.read_container(record["Id"]) or record, force=True)


def start_services(p, plan):
    """`up`'s second half: each service's containers started once the conditions of what it
    depends on hold; a running one restarted when a dependency it names with `restart:
    true` was recreated. -> the records, started."""
    started = {}
    out = []
    for name, records in plan:
        svc = p.services[name]
        restart = False
        for dep, cond in (svc.get("depends_on") or {}).items():
            restart = restart or bool(dep in p.recreated and (cond or {}).get("restart"))
            if dep in started:
                wait_condition(p, dep, (cond or {}).get("condition", "service_started"),
                               started[dep])
        done = []
        for record in records:
            current = _state(p, record) or record
            if current["State"].get("Status") in container_ops.LIVE_STATES:
                if restart:
                    p.report("Container", current["Name"], "Restarting")
                    lifecycle.stop(p.store, current["Id"])
                    done.append(start(p, p.store.read_container(current["Id"]) or current))
                    continue
                p.report("Container", current["Name"], "Running")
                done.append(current)
                continue
            done.append(start(p, current))
        started[name] = done
        out += done
    return out


def up(p, opts, names, start=True):
    """`up`: create_services then start_services. An error of the ops (a port in use, an
    image missing...) undoes what this run made (containers, then networks and volumes),
    each undoing reported, so nothing is left half-started; a depends_on condition that
    fails leaves everything as it is, for its logs. -> (plan, started records)"""
    try:
        plan = create_services(p, opts, names)
        return plan, (start_services(p, plan) if start else [])
    except DependencyFailed:
        raise
    except (errors.BoxError, KeyboardInterrupt):
        rollback(p)
        raise


def rollback(p):
    for kind, name in reversed(p.made):
        try:
            if kind == "container":
                record = p.store.read_container(name)
                if record is not None:
                    stop_remove(p, record, 0)
            elif kind == "network":
                p.report("Network", name, "Removing")
                network_ops.remove(p.store, name)
                p.report("Network", name, "Removed")
            else:
                p.report("Volume", name, "Removing")
                volume_ops.remove(p.store, name)
                p.report("Volume", name, "Removed")
        except errors.BoxError as exc:
            p.warn("could not undo %s %s: %s" % (kind, name, exc.message))
    p.made = []


def start_dependencies(p, name):
    """`run`: what service name depends on, up (not recreated), conditions held."""
    from .loader import dependencies
    deps = {}
    todo = list(dependencies(p.services[name]))
    while todo:
        d = todo.pop()
        if d in deps or d not in p.services:
            continue
        deps[d] = p.services[d]
        todo += dependencies(p.services[d])
    if not deps:
        return
    plan = create_services(p, UpOptions(no_recreate=True), list(deps))
    start_services(p, plan)
    started = {n: [r for r in p.containers([n])] for n in deps}
    for dep, cond in (p.services[name].get("depends_on") or {}).items():
        if dep in started:
            wait_condition(p, dep, (cond or {}).get("condition", "service_started"),
                           started[dep])


def stop_groups(p, records):
    """records in groups to stop one after the other: dependents before what they depend
    on, the containers of one depth together (Compose stops those in parallel)."""
    services = p.loaded.model["services"]
    depth = {}

    def level(name):
        if name not in depth:
            depth[name] = 0  # a cycle is refused by the loader; this only stops recursion
            users = [n for n, s in services.items() if name in (s.get("depends_on") or {})]
            depth[name] = 1 + max([level(u) for u in users] or [-1])
        return depth[name]
    groups = {}
    for r in records:
        service = label(r, "service")
        groups.setdefault(level(service) if service in services else -1, []).append(r)
    return [groups[k] for k in sorted(groups)]


def parallel(calls):
    """Run the calls in threads (stops wait on containers, mostly); the first error is
    raised once all have finished."""
    if len(calls) < 2:
        for call in calls:
            call()
        return
    import threading
    errors_seen = []

    def guarded(call):
        try:
            call()
        except BaseException as exc:  # raised again below, in the caller's thread
            errors_seen.append(exc)
    threads = [threading.Thread(target=guarded, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors_seen:
        raise errors_seen[0]


def down(p, remove_orphans=False, volumes=False, timeout=None, images=None):
    """`down`: containers (dependents first), then the project's networks, with volumes its
    named volumes, with images (all|local) its services' images."""
    known = set(p.loaded.model["services"])
    records = p.containers(oneoff=None)
    if not p.loaded.files:  # `-p NAME down` without a file: whatever carries the label
        known = {label(r, "service") for r in records}
    stale = [r for r in records if label(r, "service") not in known]
    if stale and not remove_orphans:
        records = [r for r in records if label(r, "service") in known]
        p.warn("Found orphan containers (%s) for this project. If you removed or renamed "
               "this service in your compose file, you can run this command with the "
               "--remove-orphans flag to clean it up." % ", ".join(
                   "[%s]" % r["Name"] for r in stale))
    for group in stop_groups(p, records):
        parallel([lambda r=r: stop_remove(p, r, timeout, volumes=volumes) for r in group])
    names = [p.network_name(k) for k, spec in sorted((p.model.get("networks") or {}).items())
             if not (spec or {}).get("external")]
    if not p.loaded.files:
        names = [n["Name"] for n in network_ops.list_networks(p.store)
                 if (n.get("Labels") or {}).get(PREFIX + "project") == p.name]
    for name in names:
        try:
            net = network_ops.find(p.store, name)
        except errors.NotFound:
            continue
        if (net.get("Labels") or {}).get(PREFIX + "project") != p.name:
            continue
        p.report("Network", name, "Removing")
        network_ops.remove(p.store, name)
        p.report("Network", name, "Removed")
    import shutil
    shutil.rmtree(materialized_dir(p), ignore_errors=True)
    if volumes:
        names = [p.volume_name(k) for k, spec in sorted((p.model.get("volumes") or {}).items())
                 if not (spec or {}).get("external")]
        if not p.loaded.files:
            names = [v["Name"] for v in volume_ops.list_volumes(p.store)
                     if (v.get("Labels") or {}).get(PREFIX + "project") == p.name]
        for name in names:
            try:
                volume_ops.get(p.store, name)
            except errors.NotFound:
                continue
            p.report("Volume", name, "Removing")
            volume_ops.remove(p.store, name)
            p.report("Volume", name, "Removed")
    if images:
        from ..ops import images as image_ops
        for name in sorted(p.loaded.model["services"]):
            svc = p.loaded.model["services"][name]
            if images == "local" and svc.get("image"):
                continue
            ref = svc.get("image") or "%s-%s" % (p.name, name)
            try:
                image_ops.resolve(p.store, ref)
            except errors.BoxError:
                continue
            p.report("Image", ref, "Removing")
            list(image_ops.remove(p.store, ref))
            p.report("Image", ref, "Removed")


def oneoff_name(p, service):
    return "%s-%s-run-%s" % (p.name, service, os.urandom(6).hex())
