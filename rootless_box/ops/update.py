"""`update`: a container's restart policy and resource limits changed after it was made.

Owns: Docker's rules for update (a restart policy cannot be set on an --rm container; limits
checked as at create, and applied at once to a running container's cgroup), and keeping the
change where every later start reads it: the record's HostConfig (the watcher reads the
restart policy from it at each exit) and the kept run spec's cgroup files.
Must not: print; apply a limit anywhere but the container's own cgroup (ops/cgroups.py).
"""

import os

from .. import errors
from . import cgroups, containers


class UpdateOptions:
    """What `update` was asked for: restart (a policy or None) and cgroups.FIELDS."""

    def __init__(self, restart=None, **kw):
        self.restart = restart or None
        for name, default in cgroups.FIELDS.items():
            setattr(self, name, kw.get(name, default))


def update(store, name, opts):
    """Apply opts to the container name; -> the warnings of settings discarded."""
    from .run import parse_restart
    record = containers.find(store, name)
    policy = parse_restart(opts.restart) if opts.restart else None
    host = record.get("HostConfig") or {}
    if policy and policy["Name"] != "no" and host.get("AutoRemove"):
        raise errors.Conflict("Restart policy cannot be updated because AutoRemove is enabled "
                              "for the container", "recreate it without --rm", exit_code=1)
    asked, warnings = cgroups.limits(opts)
    wanted = None
    if asked:
        why = cgroups.unavailable(asked)
        if why is not None:
            raise errors.SetupError(
                "cannot update container %s: resource limits need a delegated cgroup v2 "
                "subtree: %s" % (name, why),
                "boot with systemd.unified_cgroup_hierarchy=1 and log in through systemd",
                exit_code=1)
        merged = {k: host[k] for k in cgroups.HOST_FIELDS if host.get(k)}
        merged.update(asked)
        wanted = cgroups.files(merged)
        state = containers.refresh_state(store, record)["State"]
        if state.get("Status") in containers.LIVE_STATES:
            path = state.get("CgroupPath")
            if not path or not os.path.isdir(path):
                raise errors.SetupError(
                    "cannot update container %s: it runs without a cgroup of its own" % name,
                    "restart it (rootless-box restart %s): it then starts in one" % name,
                    exit_code=1)
            cgroups.write(path, cgroups.files(asked))
    with store.lock():
        current = store.read_container(record["Id"])
        if current is None:
            raise errors.NotFound("no such container: %s" % name)
        hc = current.setdefault("HostConfig", {})
        if policy:
            hc["RestartPolicy"] = policy
        if asked:
            hc.update(asked)
            try:
                spec = containers.load_spec(store, current)
            except errors.Conflict:
                spec = None
            if spec is not None:
                spec["cgroup_files"] = wanted
                containers.save_spec(store, current["Id"], spec)
        store.write_container(current)
    return warnings
