"""pause and unpause through the cgroup v2 freezer, where this user may use one.

Owns: giving a detached container a cgroup of its own when the user's cgroup is a delegated,
writable cgroup v2 directory (a systemd user session has one), freezing and thawing it, and the
clear error where that is impossible (cgroup v1 or hybrid hierarchies, or no delegation: the
freezer then belongs to root, as Podman finds too).
Must not: freeze anything but a cgroup holding only the container (freezing the user's own
cgroup would stop the user's session), or print.
"""

import os

from .. import errors
from . import containers

_ROOT = "/sys/fs/cgroup"


def _own_cgroup(pid="self"):
    """The cgroup v2 path of pid, or None on a v1/hybrid hierarchy."""
    try:
        with open("/proc/%s/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    if len(lines) != 1 or not lines[0].startswith("0::"):
        return None
    return _ROOT + lines[0][3:].rstrip("/")


def unavailable_reason():
    """Why this user cannot freeze a container here, or None."""
    if not os.path.exists(os.path.join(_ROOT, "cgroup.controllers")):
        return "this machine uses cgroup v1 (or hybrid): its freezer belongs to root"
    own = _own_cgroup()
    if own is None or not os.access(os.path.join(own, "cgroup.procs"), os.W_OK) or \
            not os.access(os.path.dirname(own), os.W_OK):
        return "this user's cgroup is not delegated to it (log in through systemd, which " \
               "delegates user@UID.service)"
    return None


def place(cid, pid):
    """In the monitor, right after the start: move the container's init into a cgroup of
    its own beside the monitor's, if the user may. -> the cgroup path or None."""
    if unavailable_reason() is not None:
        return None
    parent = os.path.dirname(_own_cgroup())
    path = os.path.join(parent, "rootless-box-%s" % cid[:12])
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write("%d\n" % pid)
    except OSError:
        try:
            os.rmdir(path)
        except OSError:
            pass
        return None
    return path


def _freeze(path, value):
    with open(os.path.join(path, "cgroup.freeze"), "w") as f:
        f.write(value)


def pause(store, name):
    record = containers.find(store, name)
    state = containers.refresh_state(store, record)["State"]
    if state.get("Status") != "running":
        raise errors.Conflict("container %s is not running" % name, None, exit_code=1)
    path = state.get("CgroupPath")
    if not path:
        reason = unavailable_reason() or "it was started without a cgroup of its own"
        raise errors.SetupError("cannot pause container %s: %s" % (name, reason),
                                "rootless pause needs cgroup v2 with a delegated cgroup "
                                "(systemd.unified_cgroup_hierarchy=1 and a systemd login)")
    _freeze(path, "1")
    containers.update_state(store, record, Status="paused", Paused=True)
    from .events import container as event
    event(store, record, "pause")
    return record


def thaw(store, record):
    path = record["State"].get("CgroupPath")
    if path:
        _freeze(path, "0")
    containers.update_state(store, record, Status="running", Paused=False)
    from .events import container as event
    event(store, record, "unpause")


def unpause(store, name):
    record = containers.find(store, name)
    state = containers.refresh_state(store, record)["State"]
    if state.get("Status") != "paused":
        raise errors.Conflict("container %s is not paused" % name, None, exit_code=1)
    thaw(store, record)
    return record
