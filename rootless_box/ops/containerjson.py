"""Docker's JSON for a container, made once for both front ends (the CLI's inspect and ps,
the Engine API's /containers/{id}/json and /containers/json).

Owns: container_json (inspect), list_item (an item of GET /containers/json), status_text
(Docker's STATUS text, moby container.State.String). Must not: change the store, or import
anything heavy at the top (commands/_common.py reaches human_duration on every command).
"""

import time

def human_duration(seconds):
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return "%d seconds" % seconds
    minutes = seconds / 60
    if minutes < 2:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    hours = minutes / 60
    if hours < 2:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    days = hours / 24
    if days < 14:
        return "%d days" % days
    if days < 60:
        return "%d weeks" % (days / 7)
    if days < 730:
        return "%d months" % (days / 30)
    return "%d years" % (days / 365)


# Docker's State keys, in Docker's order; a missing time is Go's zero time, as Docker shows it
_STATE = (("Status", "created"), ("Running", False), ("Paused", False), ("Restarting", False),
          ("OOMKilled", False), ("Dead", False), ("Pid", 0), ("ExitCode", 0), ("Error", ""),
          ("StartedAt", ""), ("FinishedAt", ""))
_ZERO_TIME = "0001-01-01T00:00:00Z"
_HOST_DEFAULTS = (("Binds", None), ("NetworkMode", "host"), ("RestartPolicy",
                  {"Name": "no", "MaximumRetryCount": 0}), ("AutoRemove", False),
                  ("LogConfig", {"Type": "json-file", "Config": {}}), ("ReadonlyRootfs", False),
                  ("Init", False), ("Runtime", "runc"), ("Tmpfs", None), ("Privileged", False))


def container_json(record):
    """A record as Docker's container inspect shows it. State holds Docker's keys, plus
    MonitorPid (the detached container's keeper, as Podman's State.ConmonPid); the rest of
    this tool's bookkeeping (start times that tell a recycled pid, the cgroup, whether a user
    stopped it) is under "RootlessBox", so Docker's view stays Docker's."""
    raw = dict(record.get("State") or {})
    state = {key: raw.get(key, default) for key, default in _STATE}
    for key in ("StartedAt", "FinishedAt"):
        state[key] = state[key] or _ZERO_TIME
    if raw.get("Health"):
        state["Health"] = raw["Health"]  # a container with a health check (ops/health.py)
    elif raw.get("StartedAt") and ((record.get("Config") or {}).get("Healthcheck") or {}).get(
            "Test", ["NONE"])[:1] not in ([], ["NONE"]):
        # started, its checker not yet writing: dockerd says "starting" from the start on
        state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": []}
    state["MonitorPid"] = raw.get("MonitorPid") or 0
    internal = {k: v for k, v in raw.items() if k not in state}
    host = dict(record.get("HostConfig") or {})
    for key, default in _HOST_DEFAULTS:
        host.setdefault(key, default)
    image = record.get("Image", "")
    config = dict(record.get("Config") or {})
    config.setdefault("Labels", {})
    # --tmpfs mounts are HostConfig.Tmpfs only, as Docker's (no mount point of its own;
    # --mount type=tmpfs ones are listed); the record keeps them for kube generate
    tmpfs_flags = (record.get("HostConfig") or {}).get("Tmpfs") or {}
    mounts = [{"Type": m.get("Type", ""), "Name": m.get("Name", ""),
               "Source": m.get("Source", ""), "Destination": m.get("Destination", ""),
               "Driver": "local" if m.get("Type") == "volume" else "",
               "Mode": m.get("Mode", "" if m.get("RW", True) else "ro"),
               "RW": m.get("RW", True),
               "Propagation": m.get("Propagation",
                                    "rprivate" if m.get("Type") == "bind" else "")}
              for m in record.get("Mounts") or []
              if not (m.get("Type") == "tmpfs" and m.get("Destination") in tmpfs_flags)]
    for m in mounts:
        if not m["Name"]:
            del m["Name"], m["Driver"]
    return {"Id": record["Id"], "Created": record.get("Created", ""),
            "Path": record.get("Path", ""), "Args": record.get("Args", []), "State": state,
            "Image": image if image.startswith("sha256:") or not image else "sha256:" + image,
            "LogPath": record.get("LogPath", ""), "Name": "/" + record["Name"],
            "RestartCount": record.get("RestartCount", 0),
            "Driver": record.get("Driver", ""), "Platform": "linux",
            "HostConfig": host, "Mounts": mounts, "Config": config,
            "NetworkSettings": {"Networks": _networks(record, host["NetworkMode"]),
                                "Ports": ((record.get("NetworkSettings") or {}).get("Ports")
                                          or {}) if state["Running"] else {}},
            "RootlessBox": internal}


def _networks(record, mode):
    """NetworkSettings.Networks: the record's user networks, else the one of its mode (none
    for container:NAME) by Docker's name: the private namespace is the "bridge" Docker users
    ask for, with the endpoint's driver options as given (NetworkSettings.DriverOpts)."""
    settings = record.get("NetworkSettings") or {}
    if settings.get("Networks"):
        return settings["Networks"]
    if mode.startswith("container:"):
        return {}
    return {"bridge" if mode == "private" else mode: {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
        "DriverOpts": settings.get("DriverOpts"), "NetworkID": "", "EndpointID": "",
        "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}}


def status_text(state, now=None):
    """Docker's STATUS column (moby container.State.String)."""
    now = time.time() if now is None else now
    status = state.get("Status")

    def since(field):
        return human_duration(max(0, now - _created_epoch(state.get(field) or "")))
    if status == "running":
        from .health import status_suffix
        return "Up " + since("StartedAt") + status_suffix(state)
    if status == "paused":
        return "Up %s (Paused)" % since("StartedAt")
    if status == "restarting":
        return "Restarting (%d) %s ago" % (state.get("ExitCode") or 0, since("FinishedAt"))
    if status == "exited" and state.get("StartedAt"):
        if not state.get("FinishedAt"):
            return ""
        return "Exited (%d) %s ago" % (state.get("ExitCode") or 0, since("FinishedAt"))
    return "Created"


def _created_epoch(text):
    from .images import created_epoch
    return created_epoch(text)


def list_item(record, labels):
    """A record as an item of Docker's GET /containers/json (moby's types.Container);
    labels: the container's (ops/psfilter.labels)."""
    full = container_json(record)
    state = full["State"]
    ports = []
    for port, bindings in (full["NetworkSettings"]["Ports"] or {}).items():
        number, _, proto = port.partition("/")
        for binding in bindings or [None]:
            item = {"PrivatePort": int(number), "Type": proto or "tcp"}
            if binding:
                item["IP"] = binding.get("HostIp") or "0.0.0.0"
                item["PublicPort"] = int(binding.get("HostPort") or 0)
            ports.append(item)
    network = full["HostConfig"]["NetworkMode"]
    return {"Id": record["Id"], "Names": [full["Name"]],
            "Image": record.get("ImageName") or full["Image"], "ImageID": full["Image"],
            "Command": " ".join([full["Path"]] + list(full["Args"])),
            "Created": int(_created_epoch(full["Created"])), "Ports": ports,
            "Labels": labels or {}, "State": state["Status"], "Status": status_text(state),
            "HostConfig": {"NetworkMode": network},
            "NetworkSettings": {"Networks": full["NetworkSettings"]["Networks"]},
            "Mounts": full["Mounts"]}
