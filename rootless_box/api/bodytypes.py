"""The Engine API's JSON bodies checked against the types dockerd decodes them into.

Owns: the shapes of the bodies clients send (container create, exec create/start, update,
network create/connect/disconnect, volume create) as Docker's Go structs declare them, and the
check that turns a field of the wrong type into the 400 dockerd answers, in Go's wording
(`json: cannot unmarshal string into Go struct field HostConfig.RestartPolicy of type
object`). As encoding/json: null is every field's zero value, unknown fields are ignored
(clients send many), a number is not a string nor the reverse, a bool is not a number.
Must not: interpret a value (the handlers and api/jobs.py do), or know HTTP.
"""

# Shapes: "str", "int", "bool", "any"; "strs" (Docker's StrSlice: a string or a list of
# strings); ["SHAPE"] a list of SHAPE; {"*": SHAPE} a map of SHAPE; {"Field": SHAPE, ...}
# a struct (its other fields ignored).
_STR_MAP = {"*": "str"}
_THROTTLE = [{"Path": "str", "Rate": "int"}]
_ENDPOINT = {"IPAMConfig": {"IPv4Address": "str", "IPv6Address": "str",
                            "LinkLocalIPs": ["str"]},
             "Links": ["str"], "Aliases": ["str"], "DriverOpts": _STR_MAP, "NetworkID": "str",
             "EndpointID": "str", "Gateway": "str", "IPAddress": "str", "MacAddress": "str"}
_RESOURCES = {
    "CpuShares": "int", "Memory": "int", "NanoCpus": "int", "CgroupParent": "str",
    "BlkioWeight": "int", "BlkioWeightDevice": [{"Path": "str", "Weight": "int"}],
    "BlkioDeviceReadBps": _THROTTLE, "BlkioDeviceWriteBps": _THROTTLE,
    "BlkioDeviceReadIOps": _THROTTLE, "BlkioDeviceWriteIOps": _THROTTLE,
    "CpuPeriod": "int", "CpuQuota": "int", "CpuRealtimePeriod": "int",
    "CpuRealtimeRuntime": "int", "CpusetCpus": "str", "CpusetMems": "str",
    "Devices": [{"PathOnHost": "str", "PathInContainer": "str", "CgroupPermissions": "str"}],
    "DeviceCgroupRules": ["str"], "KernelMemory": "int", "KernelMemoryTCP": "int",
    "MemoryReservation": "int", "MemorySwap": "int", "MemorySwappiness": "int",
    "OomKillDisable": "bool", "PidsLimit": "int",
    "Ulimits": [{"Name": "str", "Soft": "int", "Hard": "int"}],
    "CpuCount": "int", "CpuPercent": "int", "IOMaximumIOps": "int", "IOMaximumBandwidth": "int",
}
_RESTART = {"Name": "str", "MaximumRetryCount": "int"}
HOST_CONFIG = dict(_RESOURCES, **{
    "Binds": ["str"], "ContainerIDFile": "str",
    "LogConfig": {"Type": "str", "Config": _STR_MAP}, "NetworkMode": "str",
    "PortBindings": {"*": [{"HostIp": "str", "HostPort": "str"}]},
    "RestartPolicy": _RESTART, "AutoRemove": "bool", "VolumeDriver": "str",
    "VolumesFrom": ["str"], "ConsoleSize": ["int"], "Annotations": _STR_MAP,
    "CapAdd": "strs", "CapDrop": "strs", "CgroupnsMode": "str", "Dns": ["str"],
    "DnsOptions": ["str"], "DnsSearch": ["str"], "ExtraHosts": ["str"], "GroupAdd": ["str"],
    "IpcMode": "str", "Cgroup": "str", "Links": ["str"], "OomScoreAdj": "int",
    "PidMode": "str", "Privileged": "bool", "PublishAllPorts": "bool",
    "ReadonlyRootfs": "bool", "SecurityOpt": ["str"], "StorageOpt": _STR_MAP,
    "Tmpfs": _STR_MAP, "UTSMode": "str", "UsernsMode": "str", "ShmSize": "int",
    "Sysctls": _STR_MAP, "Runtime": "str", "Isolation": "str",
    "Mounts": [{"Type": "str", "Source": "str", "Target": "str", "ReadOnly": "bool",
                "Consistency": "str",
                "BindOptions": {"Propagation": "str", "NonRecursive": "bool",
                                "CreateMountpoint": "bool"},
                "VolumeOptions": {"NoCopy": "bool", "Labels": _STR_MAP, "Subpath": "str",
                                  "DriverConfig": {"Name": "str", "Options": _STR_MAP}},
                "TmpfsOptions": {"SizeBytes": "int", "Mode": "int"}}],
    "MaskedPaths": ["str"], "ReadonlyPaths": ["str"], "Init": "bool",
})
CREATE = {
    "Hostname": "str", "Domainname": "str", "User": "str", "AttachStdin": "bool",
    "AttachStdout": "bool", "AttachStderr": "bool", "ExposedPorts": {"*": "any"},
    "Tty": "bool", "OpenStdin": "bool", "StdinOnce": "bool", "Env": ["str"], "Cmd": "strs",
    "Healthcheck": {"Test": "strs", "Interval": "int", "Timeout": "int", "Retries": "int",
                    "StartPeriod": "int", "StartInterval": "int"},
    "ArgsEscaped": "bool", "Image": "str", "Volumes": {"*": "any"}, "WorkingDir": "str",
    "Entrypoint": "strs", "NetworkDisabled": "bool", "MacAddress": "str", "OnBuild": ["str"],
    "Labels": _STR_MAP, "StopSignal": "str", "StopTimeout": "int", "Shell": ["str"],
    "HostConfig": HOST_CONFIG,
    "NetworkingConfig": {"EndpointsConfig": {"*": _ENDPOINT}},
}
UPDATE = dict(_RESOURCES, RestartPolicy=_RESTART)
EXEC_CREATE = {"AttachStdin": "bool", "AttachStdout": "bool", "AttachStderr": "bool",
               "DetachKeys": "str", "Tty": "bool", "Env": ["str"], "Cmd": "strs",
               "Privileged": "bool", "User": "str", "WorkingDir": "str",
               "ConsoleSize": ["int"]}
EXEC_START = {"Detach": "bool", "Tty": "bool", "ConsoleSize": ["int"]}
NETWORK_CREATE = {
    "Name": "str", "CheckDuplicate": "bool", "Driver": "str", "Scope": "str",
    "Internal": "bool", "Attachable": "bool", "Ingress": "bool", "EnableIPv6": "bool",
    "IPAM": {"Driver": "str", "Options": _STR_MAP,
             "Config": [{"Subnet": "str", "IPRange": "str", "Gateway": "str",
                         "AuxiliaryAddresses": _STR_MAP}]},
    "Options": _STR_MAP, "Labels": _STR_MAP, "ConfigOnly": "bool",
    "ConfigFrom": {"Network": "str"},
}
NETWORK_CONNECT = {"Container": "str", "EndpointConfig": _ENDPOINT, "Force": "bool"}
VOLUME_CREATE = {"Name": "str", "Driver": "str", "DriverOpts": _STR_MAP, "Labels": _STR_MAP}

_GO_TYPES = {"str": "string", "int": "int64", "bool": "bool", "strs": "strslice.StrSlice"}


class WrongType(ValueError):
    """A field whose JSON type its Go struct cannot take: str(exc) is dockerd's message."""


def _kind(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_type(shape):
    if isinstance(shape, str):
        return _GO_TYPES.get(shape, shape)
    if isinstance(shape, list):
        return "[]" + _go_type(shape[0])
    if "*" in shape:
        return "map[string]" + _go_type(shape["*"])
    return "struct"


def _fits(value, shape):
    if shape == "any":
        return True
    if shape == "str":
        return isinstance(value, str)
    if shape == "bool":
        return isinstance(value, bool)
    if shape == "int":
        # a whole number: Go's int64 refuses 1.5 and strings, takes 1e3
        return not isinstance(value, bool) and (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer()))
    if shape == "strs":
        return isinstance(value, str) or isinstance(value, list)
    if isinstance(shape, list):
        return isinstance(value, list)
    return isinstance(value, dict)


def check(value, shape, where):
    """Raise WrongType at the first field of value (a decoded body) its shape refuses."""
    if value is None:
        return
    if not _fits(value, shape):
        raise WrongType("json: cannot unmarshal %s into Go %s of type %s"
                        % (_kind(value), ("struct field " + where) if "." in where else
                           "value", _go_type(shape)))
    if shape == "strs" and isinstance(value, list):
        for item in value:
            check(item, "str", where)
    elif isinstance(shape, list):
        for item in value:
            check(item, shape[0], where)
    elif isinstance(shape, dict):
        for key, item in value.items():
            sub = shape.get("*") or shape.get(key)
            if sub is not None:
                check(item, sub, "%s.%s" % (where, key) if "*" not in shape else where)
