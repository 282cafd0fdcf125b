"""Compose's merge rules (compose-spec 13-merge.md, compose-go override/merge.go, uncity.go).

Owns: merging one file's data over the model so far (mappings merged key by key, sequences
appended, `command`/`entrypoint`/`healthcheck.test` replaced, environment/labels and friends
merged as KEY=VALUE sequences, depends_on and networks merged as mappings, build's short form
widened, logging merged only for the same driver), `!reset` (the key dropped) and `!override`
(the value taken whole), then the uniqueness pass that keeps the last of each ports/volumes/
secrets/... entry by its key. Must not: validate or normalize (that comes after).
"""

from ..errors import BoxError
from .canonical import parse_volume, scalar_text
from .yamlread import Override, Reset


def _match(path, pattern):
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p == "*" or p == k for p, k in zip(parts, path))


def _to_sequence(value):
    if isinstance(value, dict):
        seq = []
        for k, v in value.items():
            if v is None:
                seq.append(k)
            elif isinstance(v, list):
                seq.extend("%s=%s" % (k, scalar_text(x)) for x in v)
            else:
                seq.append("%s=%s" % (k, scalar_text(v)))
        return sorted(seq)
    if isinstance(value, list):
        return list(value)
    if isinstance(value, str):
        return [value]
    return []


def _to_mapping(value, default=None):
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return {s: (dict(default) if default is not None else None) for s in value}
    return {}


def _override(_base, other, _path):
    return other


def _sequence(base, other, _path):
    return _to_sequence(base) + _to_sequence(other)


def _extra_hosts(base, other, _path):
    right = _to_sequence(base)
    return right + [v for v in _to_sequence(other) if v not in right]


def _depends_on(base, other, path):
    default = {"condition": "service_started", "required": True}
    return _mappings(_to_mapping(base, default), _to_mapping(other, default), path)


def _networks(base, other, path):
    return _mappings(_to_mapping(base), _to_mapping(other), path)


def _build(base, other, path):
    def widen(v):
        return {"context": v} if isinstance(v, str) else dict(v or {})
    return _mappings(widen(base), widen(other), path)


def _logging(base, other, path):
    if not isinstance(base, dict) or not isinstance(other, dict):
        return other
    if "driver" not in other or "driver" not in base or other["driver"] == base["driver"]:
        return _mappings(base, other, path)
    return other


def _ulimit(_base, other, _path):
    return other


_SPECIAL = [
    ("networks.*.labels", _sequence), ("volumes.*.labels", _sequence),
    ("services.*.annotations", _sequence), ("services.*.build", _build),
    ("services.*.build.args", _sequence), ("services.*.build.additional_contexts", _sequence),
    ("services.*.build.extra_hosts", _extra_hosts), ("services.*.build.labels", _sequence),
    ("services.*.command", _override), ("services.*.depends_on", _depends_on),
    ("services.*.deploy.labels", _sequence), ("services.*.dns", _sequence),
    ("services.*.dns_opt", _sequence), ("services.*.dns_search", _sequence),
    ("services.*.entrypoint", _override), ("services.*.env_file", _sequence),
    ("services.*.label_file", _sequence), ("services.*.environment", _sequence),
    ("services.*.extra_hosts", _extra_hosts), ("services.*.healthcheck.test", _override),
    ("services.*.labels", _sequence), ("services.*.volumes.*.volume.labels", _sequence),
    ("services.*.logging", _logging), ("services.*.networks", _networks),
    ("services.*.sysctls", _sequence), ("services.*.tmpfs", _sequence),
    ("services.*.ulimits.*", _ulimit),
]


def strip_tags(value):
    """A first file's data: `!reset` keys dropped, `!override` values unwrapped."""
    if isinstance(value, Override):
        return strip_tags(value.value)
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip_tags(v) for v in value if not isinstance(v, Reset)]
    return value


def merge(base, other, path=()):
    """-> other merged over base (neither is changed)."""
    if isinstance(other, Override):
        return strip_tags(other.value)
    for pattern, rule in _SPECIAL:
        if _match(path, pattern):
            if other is None:
                return base
            return rule(base, strip_tags(other), path)
    if other is None:
        return base
    if isinstance(base, dict):
        if not isinstance(other, dict):
            raise BoxError("cannot override %s" % ".".join(map(str, path)), exit_code=1)
        return _mappings(base, other, path)
    if isinstance(base, list):
        if not isinstance(other, list):
            raise BoxError("cannot override %s" % ".".join(map(str, path)), exit_code=1)
        return base + strip_tags(other)
    return strip_tags(other)


def _mappings(base, other, path):
    out = dict(base)
    for k, v in other.items():
        if isinstance(v, Reset):
            out.pop(k, None)
        elif k not in out:
            out[k] = strip_tags(v)
        else:
            out[k] = merge(out[k], v, path + (k,))
    return out


# -- uniqueness (compose-go override/uncity.go): the last entry of each key wins, in place --

def _kv_key(v):
    if isinstance(v, str):
        return v.split("=", 1)[0]
    return repr(v)


def _volume_key(v):
    if isinstance(v, dict):
        return str(v.get("target"))
    if isinstance(v, str):
        return parse_volume(v).get("target")
    return repr(v)


def _device_key(v):
    if isinstance(v, dict):
        return str(v.get("target"))
    parts = str(v).split(":")
    return parts[0] if len(parts) == 1 else parts[1]


def _mount_key(default):
    def key(v):
        if isinstance(v, dict):
            return v.get("target") or "%s/%s" % (default, v.get("source"))
        return "%s/%s" % (default, v)
    return key


def _port_key(v):
    if isinstance(v, dict):
        return "%s:%s:%s/%s" % (v.get("host_ip", "0.0.0.0"), v.get("published"),
                                v.get("target"), v.get("protocol", "tcp"))
    return str(v)


def _env_file_key(v):
    return v.get("path") if isinstance(v, dict) else v


_UNIQUE = [
    ("networks.*.labels", _kv_key), ("networks.*.ipam.options", _kv_key),
    ("services.*.annotations", _kv_key), ("services.*.build.args", _kv_key),
    ("services.*.build.additional_contexts", _kv_key), ("services.*.build.platform", _kv_key),
    ("services.*.build.tags", _kv_key), ("services.*.build.labels", _kv_key),
    ("services.*.cap_add", _kv_key), ("services.*.cap_drop", _kv_key),
    ("services.*.devices", _device_key), ("services.*.configs", _mount_key("")),
    ("services.*.deploy.labels", _kv_key), ("services.*.dns", _kv_key),
    ("services.*.dns_opt", _kv_key), ("services.*.dns_search", _kv_key),
    ("services.*.environment", _kv_key), ("services.*.env_file", _env_file_key),
    ("services.*.expose", str), ("services.*.labels", _kv_key), ("services.*.links", _kv_key),
    ("services.*.networks.*.aliases", _kv_key),
    ("services.*.networks.*.link_local_ips", _kv_key), ("services.*.ports", _port_key),
    ("services.*.profiles", _kv_key), ("services.*.secrets", _mount_key("/run/secrets")),
    ("services.*.sysctls", _kv_key), ("services.*.tmpfs", _kv_key),
    ("services.*.volumes", _volume_key),
]


def unique(value, path=()):
    if isinstance(value, dict):
        return {k: unique(v, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        for pattern, key in _UNIQUE:
            if _match(path, pattern):
                seq, seen = [], {}
                for entry in value:
                    k = key(entry)
                    if k in seen:
                        seq[seen[k]] = entry
                    else:
                        seen[k] = len(seq)
                        seq.append(entry)
                return seq
    return value
