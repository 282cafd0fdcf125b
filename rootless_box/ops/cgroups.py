"""Resource limits (-m, --memory-swap, --memory-reservation, --cpus, --cpu-shares,
--cpu-period, --cpu-quota, --cpuset-cpus, --cpuset-mems, --pids-limit, --blkio-weight) through
a delegated cgroup v2 subtree, the only place a user may set them.

Owns: Docker's checks of each value (its CLI's parsing and the daemon's verifyPlatform rules),
what they are under HostConfig's names, their cgroup v2 files (runc's conversions: cpu.weight
from shares, io.weight from blkio weight, cpu.max from --cpus), whether this machine lets the
user apply them (cgroup v2, the user's cgroup delegated, the controllers enabled for its
children) and the one error naming what is missing and its fix when not: never a silent
no-op. Applying: the container's init moved into a cgroup of its own beside the keeper's
(ops/pause.place's), the files written, before its command runs (a launcher prestart).
Settings dockerd itself discards on cgroup v2 (--kernel-memory, --memory-swappiness,
--oom-kill-disable) are accepted with its warning.
Must not: print, or touch any cgroup but the container's own.
"""

import os

from .. import errors

FIELDS = {"memory": None, "memory_swap": None, "memory_reservation": None, "cpus": None,
          "cpu_shares": None, "cpu_period": None, "cpu_quota": None, "cpuset_cpus": None,
          "cpuset_mems": None, "pids_limit": None, "blkio_weight": None, "kernel_memory": None,
          "memory_swappiness": None, "oom_kill_disable": False}

# HostConfig name -> (flag, controller)
_LIMITS = {"Memory": ("--memory", "memory"), "MemorySwap": ("--memory-swap", "memory"),
           "MemoryReservation": ("--memory-reservation", "memory"),
           "NanoCpus": ("--cpus", "cpu"), "CpuShares": ("--cpu-shares", "cpu"),
           "CpuPeriod": ("--cpu-period", "cpu"), "CpuQuota": ("--cpu-quota", "cpu"),
           "CpusetCpus": ("--cpuset-cpus", "cpuset"), "CpusetMems": ("--cpuset-mems", "cpuset"),
           "PidsLimit": ("--pids-limit", "pids"), "BlkioWeight": ("--blkio-weight", "io")}

HOST_FIELDS = tuple(_LIMITS)
_ROOT = "/sys/fs/cgroup"


def _bad(flag, text, why=""):
    return errors.UsageError('invalid argument "%s" for "%s" flag%s' % (text, flag,
                                                                       ": " + why if why else ""))


def _bytes(flag, text):
    from .containers import parse_size
    try:
        return parse_size(text)
    except ValueError:
        raise _bad(flag, text, "give a size like 512m or 2g") from None


def _int(flag, text, low=None, high=None):
    try:
        value = int(text)
    except ValueError:
        raise _bad(flag, text, "not a number") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise _bad(flag, text)
    return value


def _cpu_list(flag, text, count):
    """cpuset syntax (0-2,4): every CPU named must exist."""
    for part in text.split(","):
        first, _dash, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()) or \
                int(last or first) < int(first):
            raise _bad(flag, text, "use a list like 0-2,4")
        if count is not None and int(last or first) >= count:
            raise errors.UsageError("requested CPUs are not available - requested %s, "
                                    "available: 0-%d" % (text, count - 1))
    return text


def limits(opts):
    """The limits asked for, as HostConfig fields (only those given), and the warnings of
    the settings dockerd discards on cgroup v2. Bad values: one UsageError."""
    out, warnings = {}, []
    ncpu = os.cpu_count() or 1
    if opts.memory:
        out["Memory"] = _bytes("--memory", opts.memory)
        if out["Memory"] < 6 << 20:
            raise errors.UsageError("Minimum memory limit allowed is 6MB")
    if opts.memory_swap:
        out["MemorySwap"] = -1 if opts.memory_swap == "-1" else \
            _bytes("--memory-swap", opts.memory_swap)
        if "Memory" not in out:
            raise errors.UsageError("You should always set the Memory limit when using "
                                    "Memoryswap limit, see usage")
        if out["MemorySwap"] != -1 and out["MemorySwap"] < out["Memory"]:
            raise errors.UsageError("Minimum memoryswap limit should be larger than memory "
                                    "limit, see usage")
    if opts.memory_reservation:
        out["MemoryReservation"] = _bytes("--memory-reservation", opts.memory_reservation)
    if opts.cpus:
        try:
            cpus = float(opts.cpus)
        except ValueError:
            raise _bad("--cpus", opts.cpus, "not a number") from None
        if cpus < 0 or cpus != cpus:
            raise _bad("--cpus", opts.cpus, "range of CPUs is from 0.01 to %d.00, as there "
                       "are only %d CPUs available" % (ncpu, ncpu))
        if cpus > ncpu:
            raise errors.UsageError("range of CPUs is from 0.01 to %d.00, as there are only "
                                    "%d CPUs available" % (ncpu, ncpu))
        if cpus:
            out["NanoCpus"] = int(round(cpus * 1e9))
    if opts.cpu_shares:
        out["CpuShares"] = _int("--cpu-shares", opts.cpu_shares, 0)
    if opts.cpu_period:
        out["CpuPeriod"] = _int("--cpu-period", opts.cpu_period, 1000, 1000000)
    if opts.cpu_quota:
        out["CpuQuota"] = _int("--cpu-quota", opts.cpu_quota, -1)
        if 0 <= out["CpuQuota"] < 1000:
            raise errors.UsageError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if "NanoCpus" in out and ("CpuPeriod" in out or "CpuQuota" in out):
        raise errors.UsageError("Conflicting options: Nano CPUs and CPU Period/Quota cannot "
                                "both be set")
    if opts.cpuset_cpus:
        out["CpusetCpus"] = _cpu_list("--cpuset-cpus", opts.cpuset_cpus, ncpu)
    if opts.cpuset_mems:
        out["CpusetMems"] = _cpu_list("--cpuset-mems", opts.cpuset_mems, None)
    if opts.pids_limit:
        out["PidsLimit"] = _int("--pids-limit", opts.pids_limit)
        if out["PidsLimit"] <= 0:
            out["PidsLimit"] = -1  # Docker: 0 and -1 are unlimited
    if opts.blkio_weight:
        out["BlkioWeight"] = _int("--blkio-weight", opts.blkio_weight, 0, 1000)
        if 0 < out["BlkioWeight"] < 10:
            raise errors.UsageError("Range of blkio weight is from 10 to 1000")
    for given, flag in ((opts.kernel_memory, "--kernel-memory"),
                        (opts.memory_swappiness, "--memory-swappiness"),
                        (opts.oom_kill_disable, "--oom-kill-disable")):
        if given:
            warnings.append("%s is discarded: cgroup v2 has no such setting (dockerd "
                            "discards it too)" % flag)
    return out, warnings


def delegated():
    """(cgroup path the containers' cgroups go beside, the controllers enabled for it), or
    (None, why not)."""
    from .pause import _own_cgroup
    if not os.path.exists(os.path.join(_ROOT, "cgroup.controllers")):
        return None, ("this machine binds the controllers to cgroup v1 (or a hybrid "
                      "hierarchy), which only root may use")
    own = _own_cgroup()
    parent = os.path.dirname(own) if own else None
    if own is None or not os.access(os.path.join(own, "cgroup.procs"), os.W_OK) or \
            not os.access(parent, os.W_OK):
        return None, ("this user's cgroup is not delegated to it (a systemd login "
                      "delegates user@UID.service's)")
    try:
        with open(os.path.join(parent, "cgroup.subtree_control")) as f:
            return parent, f.read().split()
    except OSError as exc:
        return None, "cannot read %s/cgroup.subtree_control: %s" % (parent, exc.strerror)


def unavailable(asked):
    """Why the limits asked for cannot be applied here (one sentence), or None."""
    where, controllers = delegated()
    if where is None:
        return controllers
    missing = sorted({_LIMITS[k][1] for k in asked} - set(controllers))
    if missing:
        return "the %s controller%s not delegated to this user's cgroup (%s has %s)" % (
            ", ".join(missing), " is" if len(missing) == 1 else "s are", where,
            " ".join(controllers) or "none")
    return None


def check(opts):
    """-> (HostConfig fields, warnings); a limit this machine cannot apply is refused here,
    before anything is made, with the missing piece named."""
    asked, warnings = limits(opts)
    if asked:
        why = unavailable(asked)
        if why is not None:
            flags = ", ".join(_LIMITS[k][0] for k in asked)
            # the machine's, not the input's fault (the Engine API answers 500, as dockerd
            # does when its runtime cannot set a limit); the CLI's exit code is 125 either way
            raise errors.SetupError(
                "%s needs a delegated cgroup v2 subtree: %s" % (flags, why),
                "boot with systemd.unified_cgroup_hierarchy=1 and log in through systemd "
                "(user@UID.service delegates cpu, memory, pids and io; cpuset needs "
                "Delegate= in a drop-in), or leave the limit out")
    return asked, warnings


def files(asked):
    """HostConfig limits -> {cgroup v2 file: value}, as runc writes them."""
    out = {}
    if "Memory" in asked:
        out["memory.max"] = str(asked["Memory"])
    if "MemorySwap" in asked:
        swap = asked["MemorySwap"]
        out["memory.swap.max"] = "max" if swap == -1 else str(swap - asked["Memory"])
    if "MemoryReservation" in asked:
        out["memory.low"] = str(asked["MemoryReservation"])
    period = asked.get("CpuPeriod") or 100000
    if "NanoCpus" in asked:
        out["cpu.max"] = "%d %d" % (asked["NanoCpus"] * period // 1000000000, period)
    elif "CpuQuota" in asked or "CpuPeriod" in asked:
        quota = asked.get("CpuQuota", -1)
        out["cpu.max"] = "%s %d" % ("max" if quota < 0 else quota, period)
    if asked.get("CpuShares"):
        shares = min(max(asked["CpuShares"], 2), 262144)
        out["cpu.weight"] = str(1 + ((shares - 2) * 9999) // 262142)
    if "CpusetCpus" in asked:
        out["cpuset.cpus"] = asked["CpusetCpus"]
    if "CpusetMems" in asked:
        out["cpuset.mems"] = asked["CpusetMems"]
    if "PidsLimit" in asked:
        out["pids.max"] = "max" if asked["PidsLimit"] < 0 else str(asked["PidsLimit"])
    if asked.get("BlkioWeight"):
        out["io.weight"] = str(1 + (asked["BlkioWeight"] - 10) * 9999 // 990)
    return out


def prestart(spec, inner):
    """The launcher's prestart for a container with limits (spec["cgroup_files"]): its init
    moved into a cgroup of its own and the files written before the command runs, then
    inner (the published ports' prestart), if any. Without limits: inner itself."""
    wanted = spec.get("cgroup_files")
    if not wanted:
        return inner

    def start(pid, bind_listener=None):
        apply(spec["id"], pid, wanted)
        if inner is not None:
            inner(pid, bind_listener)
    return start


def apply(cid, pid, wanted):
    """Put pid into the container's cgroup and write its limits; SetupError if this cannot
    be done (the launcher then kills the container: no container runs without the limits it
    was given)."""
    from .pause import place
    path = place(cid, pid)
    if path is None:
        _where, why = delegated()
        raise errors.SetupError("cannot apply the container's resource limits: %s"
                                % (why if _where is None else "cannot make its cgroup"))
    write(path, wanted)
    return path


def write(path, wanted):
    """Write cgroup files (files()'s) into the container's cgroup path."""
    for name, value in sorted(wanted.items()):
        try:
            with open(os.path.join(path, name), "w") as f:
                f.write(value)
        except OSError as exc:
            raise errors.SetupError("cannot apply the container's resource limits: %s: %s"
                                    % (name, exc.strerror))


def remove(cid):
    """The cgroup of a foreground container with limits, once it has exited."""
    from .pause import _own_cgroup
    own = _own_cgroup()
    if own:
        try:
            os.rmdir(os.path.join(os.path.dirname(own), "rootless-box-%s" % cid[:12]))
        except OSError:
            pass


def info_line():
    """`info`'s fact: whether -m, --cpus and the like can be applied here, and why not."""
    where, controllers = delegated()
    if where is None:
        return False, controllers
    return True, "delegated cgroup v2 at %s (controllers: %s)" % (
        where, " ".join(controllers) or "none")
