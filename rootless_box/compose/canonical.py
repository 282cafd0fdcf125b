"""The canonical model: short forms widened as compose-go's transform/ and normalization do,
and the model written out as `docker compose config` prints it.

Owns: ports to their long form (ranges expanded, `published` a string), volumes to their long
form (bind sources absolute, `create_host_path: true`), build/extends/env_file/secrets/
configs/depends_on/networks/environment/labels widened to mappings, the default network
added, networks and volumes named `project_key`, relative paths made absolute against the
project directory, and the YAML/JSON text in go-yaml's and encoding/json's key order.
Must not: read files or the environment (the loader passes what it knows).
"""

import os
import re

from ..errors import BoxError

_PORT = re.compile(r"^(?:(?:(?P<ip>\[[^\]]+\]|[^:\[\]]*):)??(?P<pub>[0-9]*(?:-[0-9]+)?):)?"
                   r"(?P<target>[0-9]+(?:-[0-9]+)?)(?:/(?P<proto>[a-z]+))?$")


def _range(text):
    lo, _sep, hi = text.partition("-")
    return int(lo), int(hi or lo)


def parse_ports(spec, path):
    """One short-form port ("[[ip:]published:]target[/proto]", ranges) -> long forms."""
    text = str(spec)
    m = _PORT.match(text)
    if m is None:
        raise BoxError("%s: invalid port specification: %r" % (path, text), exit_code=1)
    t_lo, t_hi = _range(m.group("target"))
    proto = m.group("proto") or "tcp"
    ip = (m.group("ip") or "").strip("[]")
    pub = m.group("pub") or ""
    out = []
    for i, target in enumerate(range(t_lo, t_hi + 1)):
        entry = {"mode": "ingress"}
        if ip:
            entry["host_ip"] = ip
        entry["target"] = target
        if pub:
            p_lo, p_hi = _range(pub)
            if p_hi - p_lo == t_hi - t_lo:
                entry["published"] = str(p_lo + i)
            elif t_lo == t_hi:
                entry["published"] = pub
            else:
                raise BoxError("%s: port ranges don't match: %s" % (path, text), exit_code=1)
        entry["protocol"] = proto
        out.append(entry)
    return out


def parse_volume(spec):
    """compose-go format.ParseVolume: "[source:]target[:mode]" -> the long form (paths not
    yet resolved)."""
    parts = []
    buf = ""
    for i, ch in enumerate(spec):
        # a Windows drive letter is not split; anything else at ':' is
        if ch == ":" and not (i == 1 and spec[0].isalpha() and len(spec) > 2 and
                              spec[2] in "\\/"):
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    out = {}
    if len(parts) == 1:
        out = {"type": "volume", "target": parts[0]}
    else:
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith(("/", ".", "~")) or (
            len(source) > 1 and source[1] == ":") else "volume"
        out = {"type": kind, "source": source, "target": target}
        if len(parts) > 2:
            for opt in parts[2].split(","):
                if opt == "ro":
                    out["read_only"] = True
                elif opt == "rw":
                    out["read_only"] = False
                elif opt in ("z", "Z"):
                    out.setdefault("bind", {})["selinux"] = opt
                elif opt == "nocopy":
                    out.setdefault("volume", {})["nocopy"] = True
                elif opt in ("rprivate", "private", "rshared", "shared", "rslave", "slave"):
                    out.setdefault("bind", {})["propagation"] = opt
                elif opt in ("consistent", "cached", "delegated"):
                    out["consistency"] = opt
    if out["type"] == "bind":
        out.setdefault("bind", {})["create_host_path"] = True
    elif out.get("source"):
        out.setdefault("volume", {})
    return out


def _absolute(base, path):
    if path.startswith("~"):
        path = os.path.expanduser(path)
    return os.path.normpath(os.path.join(base, path))


def _is_remote(ctx):
    return "://" in ctx or ctx.startswith(("git@", "github.com/"))


def _mapping_of_list(items, sep="="):
    out = {}
    for item in items:
        key, eq, value = str(item).partition(sep)
        out[key] = value if eq else None
    return out


def resolve_paths(service, base):
    """Relative paths of one service made absolute against base (its file's directory)."""
    build = service.get("build")
    if isinstance(build, str):
        build = service["build"] = {"context": build}
    if isinstance(build, dict):
        ctx = build.get("context", ".")
        if not _is_remote(ctx):
            build["context"] = _absolute(base, ctx)
    env_files = service.get("env_file")
    if env_files is not None:
        widened = []
        for item in env_files if isinstance(env_files, list) else [env_files]:
            entry = {"path": item, "required": True} if isinstance(item, str) else dict(item)
            entry.setdefault("required", True)
            entry["path"] = _absolute(base, entry["path"])
            widened.append(entry)
        service["env_file"] = widened
    volumes = service.get("volumes")
    if isinstance(volumes, list):
        out = []
        for v in volumes:
            v = parse_volume(v) if isinstance(v, str) else dict(v)
            if v.get("type") == "bind" and v.get("source"):
                v["source"] = _absolute(base, v["source"])
            out.append(v)
        service["volumes"] = out
    ext = service.get("extends")
    if isinstance(ext, dict) and ext.get("file"):
        ext["file"] = _absolute(base, ext["file"])


def normalize(model, project, workdir, lenient=False):
    """The merged, validated model -> the canonical one. lenient (no interpolation): a
    short form that does not parse, `${PORT}:80` say, is kept as written, as compose-go's
    Canonical does then."""
    model = {k: v for k, v in model.items() if k not in ("version", "include")}
    model["name"] = project
    services = model.get("services") or {}
    model["services"] = services
    uses_default = False
    for name, svc in services.items():
        svc = services[name] = dict(svc or {})
        resolve_paths(svc, workdir)
        if "ports" in svc:
            long = []
            for i, p in enumerate(svc["ports"]):
                if isinstance(p, dict):
                    entry = dict(p)
                    entry.setdefault("mode", "ingress")
                    entry.setdefault("protocol", "tcp")
                    if "published" in entry:
                        entry["published"] = str(entry["published"])
                    long.append(entry)
                else:
                    try:
                        long.extend(parse_ports(p, "services.%s.ports.%d" % (name, i)))
                    except BoxError:
                        if not lenient:
                            raise
                        long.append(p)
            svc["ports"] = long
        for key in ("environment", "labels", "annotations", "sysctls"):
            if isinstance(svc.get(key), list):
                svc[key] = _mapping_of_list(svc[key])
            elif isinstance(svc.get(key), dict):
                svc[key] = {k: (None if v is None else scalar_text(v))
                            for k, v in svc[key].items()}
        build = svc.get("build")
        if isinstance(build, dict):
            build.setdefault("dockerfile", "Dockerfile") if "dockerfile_inline" not in build \
                else None
            for key in ("args", "labels"):
                if isinstance(build.get(key), list):
                    build[key] = _mapping_of_list(build[key])
        deps = svc.get("depends_on")
        if isinstance(deps, list):
            svc["depends_on"] = {d: {"condition": "service_started", "required": True}
                                 for d in deps}
        elif isinstance(deps, dict):
            for d, spec in deps.items():
                spec = deps[d] = dict(spec or {})
                spec.setdefault("condition", "service_started")
                spec.setdefault("required", True)
        if isinstance(svc.get("extends"), str):
            svc["extends"] = {"service": svc["extends"]}
        for key in ("secrets", "configs"):
            if isinstance(svc.get(key), list):
                svc[key] = [{"source": s} if isinstance(s, str) else s for s in svc[key]]
        if isinstance(svc.get("networks"), list):
            svc["networks"] = {n: None for n in svc["networks"]}
        for key in ("command", "entrypoint"):
            if isinstance(svc.get(key), str):
                svc[key] = _shell_split(svc[key], "services.%s.%s" % (name, key))
        if isinstance(svc.get("healthcheck"), dict) and isinstance(
                svc["healthcheck"].get("test"), str):
            svc["healthcheck"]["test"] = ["CMD-SHELL", svc["healthcheck"]["test"]]
        if "network_mode" not in svc and not svc.get("networks"):
            svc["networks"] = {"default": None}
        if "default" in (svc.get("networks") or {}):
            uses_default = True
    networks = model.get("networks") or {}
    if uses_default and "default" not in networks:
        networks["default"] = {}
    for kind, table in (("networks", networks), ("volumes", model.get("volumes") or {}),
                        ("secrets", model.get("secrets") or {}),
                        ("configs", model.get("configs") or {})):
        for key in list(table):
            spec = table[key] = dict(table[key] or {})
            if kind in ("networks", "volumes") and "name" not in spec:
                spec["name"] = key if spec.get("external") else "%s_%s" % (project, key)
            if kind in ("secrets", "configs"):
                if spec.get("file"):
                    spec["file"] = _absolute(workdir, spec["file"])
                spec.setdefault("name", "%s_%s" % (project, key))
        if table:
            model[kind] = table
        else:
            model.pop(kind, None)
    return model


def scalar_text(v):
    """A scalar as Go's %v prints it (true, not True)."""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _shell_split(text, path):
    import shlex
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise BoxError("%s: %s" % (path, exc), exit_code=1) from None


# -- output in compose-go's order --------------------------------------------------------

_TOP = ["name", "services", "networks", "volumes", "secrets", "configs", "models"]
_SERVICE = (
    "profiles annotations attach build develop blkio_config cap_add cap_drop cgroup_parent "
    "cgroup cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpus "
    "cpuset cpu_shares command configs container_name credential_spec depends_on deploy "
    "device_cgroup_rules devices dns dns_opt dns_search dockerfile domainname entrypoint "
    "provider environment env_file expose extends external_links extra_hosts group_add gpus "
    "hostname healthcheck image init ipc isolation labels label_file links logging "
    "log_driver log_opt mem_limit mem_reservation memswap_limit mem_swappiness mac_address "
    "models net network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform "
    "ports privileged pull_policy read_only restart runtime scale secrets security_opt "
    "shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits "
    "use_api_socket user userns_mode uts volume_driver volumes volumes_from working_dir "
    "pre_start post_start pre_stop").split()
_BUILD = ("context dockerfile dockerfile_inline entitlements args ssh labels cache_from "
          "cache_to no_cache additional_contexts network provenance sbom pull target shm_size "
          "extra_hosts isolation privileged secrets tags ulimits platforms").split()
_ORDERS = {
    ("services", "*"): _SERVICE,
    ("services", "*", "build"): _BUILD,
    ("services", "*", "ports", "[]"): "name mode host_ip target published protocol "
                                      "app_protocol".split(),
    ("services", "*", "volumes", "[]"): "type source target read_only consistency bind "
                                        "volume tmpfs image".split(),
    ("services", "*", "volumes", "[]", "bind"): "selinux propagation create_host_path "
                                                "recursive".split(),
    ("services", "*", "depends_on", "*"): ["condition", "restart", "required"],
    ("services", "*", "networks", "*"): "aliases driver_opts gw_priority interface_name "
                                        "ipv4_address ipv6_address link_local_ips mac_address "
                                        "priority".split(),
    ("services", "*", "healthcheck"): "test timeout interval retries start_period "
                                      "start_interval disable".split(),
    ("services", "*", "env_file"): ["path", "required", "format"],
    ("services", "*", "env_file", "[]"): ["path", "required", "format"],
    ("networks", "*"): "name driver driver_opts ipam external internal attachable labels "
                       "enable_ipv4 enable_ipv6".split(),
    ("volumes", "*"): "name driver driver_opts external labels".split(),
    (): _TOP,
}


def _order_for(path):
    for pattern, order in _ORDERS.items():
        if len(pattern) == len(path) and all(
                p == "*" or p == k or (p == "[]" and isinstance(k, int))
                for p, k in zip(pattern, path)):
            return order
    return None


def ordered(value, path=()):
    """-> value with every mapping's keys in compose-go's output order (struct fields in their
    declared order, extensions after; Go maps sorted)."""
    if isinstance(value, dict):
        order = _order_for(path)
        if order is None:
            keys = sorted(value)
        else:
            rank = {k: i for i, k in enumerate(order)}
            keys = sorted(value, key=lambda k: (rank.get(k, len(order)), k))
        return {k: ordered(value[k], path + (k,)) for k in keys}
    if isinstance(value, list):
        return [ordered(v, path + (i,)) for i, v in enumerate(value)]
    return value


def to_yaml(model):
    import yaml

    from .yamlread import _Resolver

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow=False, indentless=False):
            return super().increase_indent(flow, False)

    resolver = _Resolver()

    def text(dumper, data):
        # go-yaml double-quotes a string a reader would take for something else
        implicit = resolver.resolve(yaml.ScalarNode, data, (True, False))
        style = '"' if implicit != "tag:yaml.org,2002:str" or data in (
            "yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off") else None
        if "\n" in data:
            style = "|"
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(ordered(model), Dumper=Dumper, default_flow_style=False,
                     sort_keys=False, allow_unicode=True, width=1 << 30, indent=2)


def to_json(model):
    import json
    return json.dumps(ordered(model), indent=4, ensure_ascii=False) + "\n"
