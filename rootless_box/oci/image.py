"""OCI image configs and manifests as data.

Owns: building the config and manifest of a new image (import), the media types, and applying
Dockerfile-style `--change` lines (CMD, ENTRYPOINT, ENV, ...) to a config. Follows the OCI
image-spec (config.md, manifest.md) and Docker's import semantics. Must not: do I/O.
"""

import os

import time

from .. import fastjson
from ..errors import UsageError

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_arch():
    machine = os.uname().machine
    return _ARCH.get(machine, machine)


def now_rfc3339():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%09dZ" % int((t % 1) * 1e9)


def parse_duration(text):
    """Go's time.ParseDuration as Docker's flags and HEALTHCHECK take it ("1m30s", "500ms",
    a bare "0") -> nanoseconds; ValueError for anything else."""
    units = {"ns": 1, "us": 1000, "ms": 10 ** 6, "s": 10 ** 9, "m": 60 * 10 ** 9,
             "h": 3600 * 10 ** 9}
    total, number = 0, ""
    i = 0
    while i < len(text):
        if text[i].isdigit() or text[i] == ".":
            number += text[i]
            i += 1
            continue
        unit = text[i:i + 2] if text[i:i + 2] in units else text[i]
        if unit not in units or not number:
            raise ValueError("invalid duration %r" % text)
        total += int(float(number) * units[unit])
        number = ""
        i += len(unit)
    if number and number != "0":  # Go's ParseDuration takes a bare "0"
        raise ValueError("invalid duration %r: missing unit" % text)
    if not text:
        raise ValueError("invalid duration ''")
    return total


def dumps(obj):
    """The bytes we store for a config or manifest (compact, as Docker writes them)."""
    return fastjson.dumps(obj, compact=True)


def new_config(diff_ids, container_config=None, comment="", created=None, created_by=""):
    created = created or now_rfc3339()
    config = {
        "architecture": host_arch(),
        "os": "linux",
        "created": created,
        "config": container_config or {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created, "created_by": created_by,
                     **({"comment": comment} if comment else {})}],
    }
    return config


def new_manifest(config_digest, config_size, layers):
    """layers: list of (media_type, digest, size)."""
    return {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": mt, "digest": d, "size": s} for mt, d, s in layers],
    }


def _json_or_shell(value):
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = fastjson.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            return parsed
    return ["/bin/sh", "-c", value]


def _key_values(value, instruction):
    """ENV/LABEL arguments: `K=V K2="v 2"` or the legacy `K V` form."""
    import shlex
    value = value.strip()
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise UsageError("invalid %s %r: %s" % (instruction, value, exc),
                         "quote as in a Dockerfile: %s KEY=\"a value\"" % instruction)
    if not words:
        raise UsageError("%s needs an argument" % instruction)
    if words and "=" not in words[0]:
        key, _, rest = value.partition(" ")
        if not rest.strip():
            raise UsageError("%s needs a value: %r" % (instruction, value))
        return [(key, rest.strip())]
    pairs = []
    for word in words:
        key, eq, val = word.partition("=")
        if not eq or not key:
            raise UsageError("invalid %s argument: %r" % (instruction, word),
                             "write %s KEY=VALUE" % instruction)
        pairs.append((key, val))
    return pairs


def apply_change(config, line):
    """Apply one `--change` line (Dockerfile syntax) to a container config dict in place."""
    instruction, _, value = line.strip().partition(" ")
    instruction = instruction.upper()
    if not instruction:
        raise UsageError("empty --change", "give a Dockerfile instruction, e.g. CMD [\"sh\"]")
    if not value.strip():
        raise UsageError("%s needs an argument" % instruction)
    if instruction == "CMD":
        config["Cmd"] = _json_or_shell(value)
    elif instruction == "ENTRYPOINT":
        config["Entrypoint"] = _json_or_shell(value)
    elif instruction == "ENV":
        env = [e for e in config.get("Env") or []]
        for key, val in _key_values(value, "ENV"):
            env = [e for e in env if e.partition("=")[0] != key] + ["%s=%s" % (key, val)]
        config["Env"] = env
    elif instruction == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(_key_values(value, "LABEL"))
        config["Labels"] = labels
    elif instruction == "WORKDIR":
        config["WorkingDir"] = value.strip()
    elif instruction == "USER":
        config["User"] = value.strip()
    elif instruction == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for port in value.split():
            ports[port if "/" in port else port + "/tcp"] = {}
        config["ExposedPorts"] = ports
    elif instruction == "VOLUME":
        vols = dict(config.get("Volumes") or {})
        for vol in _json_or_shell(value) if value.strip().startswith("[") else value.split():
            vols[vol] = {}
        config["Volumes"] = vols
    elif instruction == "STOPSIGNAL":
        config["StopSignal"] = value.strip()
    else:
        raise UsageError("unsupported --change instruction: %s" % (instruction or line),
                         "use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME "
                         "or WORKDIR")
    return config
