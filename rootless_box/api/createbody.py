"""A /containers/create body's fields beyond the first slice's, as the `run` flags they are.

Owns: turning Docker's typed HostConfig and Config fields (capabilities, devices, sysctls,
ulimits, shm size, groups, shared namespaces, resources, Config.Healthcheck, ExposedPorts,
Mounts objects, NetworkingConfig's endpoint) into the RunOptions keywords `run`'s own flags
become, as the texts those flags take, so every rule and message stays in ops/ (runflags,
cgroups, health, mountopts, networks): the API refuses what the CLI refuses, with its words.
What the CLI refuses as a flag (--runtime, --link, --gpus, ...) is refused here too, never
dropped. Must not: check a value itself beyond its JSON type (ops/ does), or know HTTP.
"""

from .. import errors
from ..ops import runflags

# HostConfig fields the CLI has a refused flag for: (field, flag), refused when set
_REFUSED = (("Runtime", "--runtime"), ("CgroupParent", "--cgroup-parent"),
            ("DeviceRequests", "--gpus"), ("StorageOpt", "--storage-opt"),
            ("CpuRealtimePeriod", "--cpu-rt-period"), ("CpuRealtimeRuntime", "--cpu-rt-runtime"),
            ("BlkioWeightDevice", "--blkio-weight-device"),
            ("BlkioDeviceReadBps", "--device-read-bps"),
            ("BlkioDeviceWriteBps", "--device-write-bps"),
            ("BlkioDeviceReadIOps", "--device-read-iops"),
            ("BlkioDeviceWriteIOps", "--device-write-iops"), ("Annotations", "--annotation"))

# HostConfig resource field -> (RunOptions keyword, how its number becomes the flag's text)
_LIMITS = (("Memory", "memory", str), ("MemorySwap", "memory_swap", str),
           ("MemoryReservation", "memory_reservation", str),
           ("NanoCpus", "cpus", lambda n: "%.9g" % (n / 1e9)),
           ("CpuShares", "cpu_shares", str), ("CpuPeriod", "cpu_period", str),
           ("CpuQuota", "cpu_quota", str), ("CpusetCpus", "cpuset_cpus", str),
           ("CpusetMems", "cpuset_mems", str), ("PidsLimit", "pids_limit", str),
           ("BlkioWeight", "blkio_weight", str), ("KernelMemory", "kernel_memory", str))


def _type_error(field, want):
    return errors.UsageError("json: cannot unmarshal into field %s of type %s" % (field, want))


def _list(host, field, kind=str):
    value = host.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise _type_error(field, "[]" + ("string" if kind is str else "object"))
    return value


def _map(host, field):
    value = host.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _type_error(field, "map[string]string")
    return value


def _int(host, field):
    value = host.get(field)
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        if value is not None:
            raise _type_error(field, "int64")
        return 0
    return value


def _duration_text(field, value):
    if value in (None, 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error("Healthcheck." + field, "time.Duration")
    return "%dns" % value


def healthcheck(check):
    """Config.Healthcheck -> the --health-* keywords (Test taken whole: the CMD form has no
    flag; an empty Test inherits the image's, as Docker merges)."""
    if check is None:
        return {}
    if not isinstance(check, dict):
        raise _type_error("Healthcheck", "object")
    test = check.get("Test") or []
    if not isinstance(test, list) or not all(isinstance(t, str) for t in test):
        raise _type_error("Healthcheck.Test", "[]string")
    out = {"health_test": test or None}
    for field, name in (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                        ("StartPeriod", "health_start_period"),
                        ("StartInterval", "health_start_interval")):
        out[name] = _duration_text(field, check.get(field))
    retries = check.get("Retries")
    if retries:
        if isinstance(retries, bool) or not isinstance(retries, int):
            raise _type_error("Healthcheck.Retries", "int")
        out["health_retries"] = str(retries)
    return out


def _csv(words):
    """--mount's CSV line (a field with a comma or a quote quoted, as encoding/csv reads)."""
    return ",".join('"%s"' % w.replace('"', '""') if ("," in w or '"' in w) else w
                    for w in words)


def mount_text(m):
    """A HostConfig.Mounts object -> the --mount value that makes it."""
    if not isinstance(m, dict):
        raise _type_error("Mounts", "[]mount.Mount")
    words = ["type=%s" % (m.get("Type") or "volume")]
    if m.get("Source"):
        words.append("source=%s" % m["Source"])
    words.append("target=%s" % (m.get("Target") or ""))
    if m.get("ReadOnly"):
        words.append("readonly")
    if m.get("Consistency"):
        words.append("consistency=%s" % m["Consistency"])
    bind = m.get("BindOptions") or {}
    if bind.get("Propagation"):
        words.append("bind-propagation=%s" % bind["Propagation"])
    if bind.get("NonRecursive"):
        words.append("bind-nonrecursive")
    volume = m.get("VolumeOptions") or {}
    if volume.get("NoCopy"):
        words.append("volume-nocopy")
    for key, value in (volume.get("Labels") or {}).items():
        words.append("volume-label=%s=%s" % (key, value))
    driver = volume.get("DriverConfig") or {}
    if driver.get("Name"):
        words.append("volume-driver=%s" % driver["Name"])
    for key, value in (driver.get("Options") or {}).items():
        words.append("volume-opt=%s=%s" % (key, value))
    if volume.get("Subpath"):
        words.append("volume-subpath=%s" % volume["Subpath"])
    tmpfs = m.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        words.append("tmpfs-size=%d" % tmpfs["SizeBytes"])
    if tmpfs.get("Mode"):
        words.append("tmpfs-mode=%o" % tmpfs["Mode"])
    return _csv(words)


def endpoint_settings(entry):
    """One EndpointSettings -> {"aliases", "ip", "ip6", "mac", "links", "driver_opts"} (the
    keywords of ops/networks.endpoint)."""
    if not isinstance(entry, dict):
        raise _type_error("EndpointSettings", "object")
    aliases = entry.get("Aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _type_error("Aliases", "[]string")
    ipam = entry.get("IPAMConfig") or {}
    if ipam.get("LinkLocalIPs"):  # the CLI's refusal, never dropped
        raise errors.UsageError("--link-local-ip is not supported: %s"
                                % runflags.REFUSED["--link-local-ip"])
    return {"aliases": aliases, "ip": ipam.get("IPv4Address") or None,
            "ip6": ipam.get("IPv6Address") or None,
            "mac": entry.get("MacAddress") or None, "links": entry.get("Links") or [],
            "driver_opts": entry.get("DriverOpts") or None}


def endpoint(host, body):
    """NetworkMode and NetworkingConfig -> (network, its endpoint settings, more): the
    network the container is created on, and the endpoints of further user networks (API
    1.44 creates a container on several, as `run --network` given more than once does).
    The legacy Config.MacAddress and HostConfig.Links apply to the first network, as
    --mac-address and --link do."""
    network = host.get("NetworkMode") or None
    config = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not isinstance(config, dict):
        raise _type_error("NetworkingConfig.EndpointsConfig", "map[string]EndpointSettings")
    if network in (None, "default") and config:
        network = next(iter(config))  # docker-py names the network only here
    first = endpoint_settings(config.get(network) or {})
    first["mac"] = first["mac"] or body.get("MacAddress") or None
    first["links"] = first["links"] + _list(host, "Links")
    more = []
    for name, entry in config.items():
        if name != network:
            more.append(dict(endpoint_settings(entry or {}), name=name))
    if network == "default":
        network = None
    return network, first, more


def run_keywords(body, host):
    """The RunOptions keywords of the fields above (a body already known to be a dict)."""
    given = [flag for field, flag in _REFUSED if host.get(field)]
    if (host.get("CgroupnsMode") or "private") != "private":
        given.append("--cgroupns")
    if (host.get("Isolation") or "default") != "default":
        given.append("--isolation")
    if given:  # the CLI's refusal, in its words
        raise errors.UsageError("%s is not supported: %s" % (given[0],
                                                              runflags.REFUSED[given[0]]))
    devices = []
    for d in _list(host, "Devices", dict):
        devices.append("%s:%s:%s" % (d.get("PathOnHost") or "",
                                     d.get("PathInContainer") or d.get("PathOnHost") or "",
                                     d.get("CgroupPermissions") or "rwm"))
    ulimits = ["%s=%d:%d" % (u.get("Name"), u.get("Soft", 0), u.get("Hard", 0))
               for u in _list(host, "Ulimits", dict)]
    network, first, more = endpoint(host, body)
    exposed = body.get("ExposedPorts") or {}
    if not isinstance(exposed, dict):
        raise _type_error("ExposedPorts", "map[string]struct{}")
    kw = {"privileged": bool(host.get("Privileged")), "cap_add": _list(host, "CapAdd"),
          "cap_drop": _list(host, "CapDrop"), "devices": devices,
          "device_cgroup_rules": _list(host, "DeviceCgroupRules"),
          "sysctls": ["%s=%s" % kv for kv in _map(host, "Sysctls").items()],
          "ulimits": ulimits, "shm_size": str(_int(host, "ShmSize")) if _int(
              host, "ShmSize") else None,
          "group_add": _list(host, "GroupAdd"),
          "oom_score_adj": str(_int(host, "OomScoreAdj")) if _int(host, "OomScoreAdj")
          else None,
          "pid": host.get("PidMode") or None, "ipc": host.get("IpcMode") or None,
          "uts": host.get("UTSMode") or None, "domainname": body.get("Domainname") or None,
          "expose": list(exposed), "mounts": [mount_text(m) for m in
                                              _list(host, "Mounts", dict)],
          "network": network, "network_aliases": first["aliases"], "ip": first["ip"],
          "networks": more,
          "endpoint": {k: first[k] for k in ("mac", "links", "driver_opts", "ip6")},
          "memory_swappiness": None if host.get("MemorySwappiness") in (None, -1)
          else str(host["MemorySwappiness"]),
          "oom_kill_disable": bool(host.get("OomKillDisable"))}
    kw.update(limit_keywords(host))
    kw.update(healthcheck(body.get("Healthcheck")))
    return kw


def limit_keywords(host):
    """HostConfig's (or an update body's) resource fields -> the limit flags' keywords
    (ops/cgroups.FIELDS), only those set."""
    kw = {}
    for field, name, text in _LIMITS:
        value = host.get(field)
        if value not in (None, 0, ""):
            if field.startswith("Cpuset"):
                if not isinstance(value, str):
                    raise _type_error(field, "string")
            elif isinstance(value, bool) or not isinstance(value, int):
                raise _type_error(field, "int64")
            kw[name] = text(value)
    return kw
