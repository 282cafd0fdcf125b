"""The option table of `run`/`create` for the flags ops/runflags.py owns (capabilities,
--privileged, devices, limits, shared namespaces), and their values as RunOptions keywords.
Owns nothing but that wiring: the rules live in ops/runflags.py."""

from ..cliparse import FLAG, LIST, VALUE, Opt
from ..errors import UsageError
from ..ops import runflags as runflags_ops

OPTS = (
    Opt("--cap-add", LIST, "Add Linux capabilities", metavar="list", dest="cap_add"),
    Opt("--cap-drop", LIST, "Drop Linux capabilities", metavar="list", dest="cap_drop"),
    Opt("--privileged", FLAG, "Give extended privileges to this container (every capability "
                              "in its user namespace, no seccomp filter, no masked paths, "
                              "the host devices the user may open)"),
    Opt("--ulimit", LIST, "Ulimit options (NAME=SOFT[:HARD])", metavar="ulimit"),
    Opt("--shm-size", VALUE, "Size of /dev/shm", metavar="bytes"),
    Opt("--device", LIST, "Add a host device to the container (one this user can open)",
        metavar="list"),
    Opt("--device-cgroup-rule", LIST, "Add a rule to the cgroup allowed devices list "
                                      "(refused: needs a device cgroup)", metavar="list"),
    Opt("--group-add", LIST, "Add additional groups to join", metavar="list"),
    Opt("--cidfile", VALUE, "Write the container ID to the file"),
    Opt("--sysctl", LIST, "Sysctl options (net.*, kernel.msg*, kernel.shm*, kernel.sem, "
                          "fs.mqueue.*)", metavar="map"),
    Opt("--expose", LIST, "Expose a port or a range of ports", metavar="list"),
    Opt("--oom-score-adj", VALUE, "Tune host's OOM preferences (-1000 to 1000; raising "
                                  "only)", metavar="int"),
    Opt("--pid", VALUE, "PID namespace to use (host, container:NAME)"),
    Opt("--ipc", VALUE, "IPC mode to use (host, private, shareable, none, container:NAME)"),
    Opt("--uts", VALUE, "UTS namespace to use (host, container:NAME)"),
    Opt("-q,--quiet", FLAG, "Suppress the pull output"),
    Opt("--domainname", VALUE, "Container NIS domain name"),
    Opt("-a,--attach", LIST, "Attach to STDIN, STDOUT or STDERR", metavar="list"),
    Opt("--health-cmd", VALUE, "Command to run to check health"),
    Opt("--health-interval", VALUE, "Time between running the check (ms|s|m|h) (default 0s)",
        metavar="duration"),
    Opt("--health-timeout", VALUE, "Maximum time to allow one check to run (ms|s|m|h) "
                                   "(default 0s)", metavar="duration"),
    Opt("--health-retries", VALUE, "Consecutive failures needed to report unhealthy",
        metavar="int"),
    Opt("--health-start-period", VALUE, "Start period for the container to initialize "
                                        "before starting health-retries countdown (ms|s|m|h) "
                                        "(default 0s)", metavar="duration"),
    Opt("--health-start-interval", VALUE, "Time between running the check during the start "
                                          "period (ms|s|m|h) (default 0s)",
        metavar="duration"),
    Opt("--no-healthcheck", FLAG, "Disable any container-specified HEALTHCHECK"),
    Opt("--sig-proxy", FLAG, "Proxy received signals to the process (false: the container "
                             "is kept apart, and outlives this process)", default=True),
    Opt("--detach-keys", VALUE, "Override the key sequence for detaching a container "
                                "(-it: the container is kept apart, and outlives this "
                                "process)"),
    Opt("--disable-content-trust", FLAG, "Skip image verification (default true; =false "
                                         "refused: Docker Content Trust is not offered)",
        default=True),
    Opt("--volume-driver", VALUE, "Optional volume driver for the container (local only)"),
)

# Docker's run flags that cannot work here, each refused with its reason (--help says it too;
# the reasons are ops/runflags.REFUSED's, which the Engine API gives too)
REFUSED = tuple((name, kind, runflags_ops.REFUSED[name]) for name, kind in (
    ("--gpus", VALUE), ("--runtime", VALUE), ("--isolation", VALUE), ("--cgroupns", VALUE),
    ("--cgroup-parent", VALUE),
    ("--link-local-ip", LIST), ("--storage-opt", LIST),
    ("--cpu-rt-period", VALUE), ("--cpu-rt-runtime", VALUE),
    ("--blkio-weight-device", LIST), ("--device-read-bps", LIST),
    ("--device-write-bps", LIST), ("--device-read-iops", LIST),
    ("--device-write-iops", LIST), ("--annotation", LIST), ("--cpu-count", VALUE),
    ("--cpu-percent", VALUE), ("--io-maxbandwidth", VALUE), ("--io-maxiops", VALUE),
    ("--use-api-socket", FLAG)))
OPTS += tuple(Opt(name, kind, "Refused: " + why) for name, kind, why in REFUSED)

# resource limits: applied through a delegated cgroup v2 subtree, refused without one (`update`
# takes them too)
LIMIT_OPTS = (
    Opt("-m,--memory", VALUE, "Memory limit", metavar="bytes"),
    Opt("--memory-swap", VALUE, "Swap limit equal to memory plus swap: '-1' to enable "
                                "unlimited swap", metavar="bytes"),
    Opt("--memory-reservation", VALUE, "Memory soft limit", metavar="bytes"),
    Opt("--cpus", VALUE, "Number of CPUs", metavar="decimal"),
    Opt("-c,--cpu-shares", VALUE, "CPU shares (relative weight)", metavar="int"),
    Opt("--cpu-period", VALUE, "Limit CPU CFS (Completely Fair Scheduler) period",
        metavar="int"),
    Opt("--cpu-quota", VALUE, "Limit CPU CFS (Completely Fair Scheduler) quota",
        metavar="int"),
    Opt("--cpuset-cpus", VALUE, "CPUs in which to allow execution (0-3, 0,1)"),
    Opt("--cpuset-mems", VALUE, "MEMs in which to allow execution (0-3, 0,1)"),
    Opt("--pids-limit", VALUE, "Tune container pids limit (set -1 for unlimited)",
        metavar="int"),
    Opt("--blkio-weight", VALUE, "Block IO (relative weight), between 10 and 1000, or 0 to "
                                 "disable", metavar="uint16"),
    Opt("--kernel-memory", VALUE, "Kernel memory limit (discarded: cgroup v2 has none)",
        metavar="bytes"),
    Opt("--memory-swappiness", VALUE, "Tune container memory swappiness (discarded: "
                                      "cgroup v2 has none)", metavar="int"),
    Opt("--oom-kill-disable", FLAG, "Disable OOM Killer (discarded: cgroup v2 has none)"),
)
OPTS += LIMIT_OPTS

LIMIT_DESTS = ("memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares",
                "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit",
                "blkio_weight", "kernel_memory", "memory_swappiness", "oom_kill_disable")


def kwargs(parsed):
    """RunOptions keywords from the parsed command line; a flag that cannot work here is
    refused with its reason."""
    for name, _kind, why in REFUSED:
        if name[2:].replace("-", "_") in parsed.given:
            raise UsageError("%s is not supported: %s" % (name, why))
    if not parsed.disable_content_trust:
        raise UsageError("--disable-content-trust=false is not supported: Docker Content "
                         "Trust (Notary v1) is not offered", "verify images by digest "
                         "(NAME@sha256:...)")
    if parsed.volume_driver not in (None, "", "local"):
        raise UsageError('--volume-driver %s is not supported: volume plugins are not; '
                         'the driver is "local"' % parsed.volume_driver)
    return {"health_cmd": parsed.health_cmd, "health_interval": parsed.health_interval,
            "health_timeout": parsed.health_timeout, "health_retries": parsed.health_retries,
            "health_start_period": parsed.health_start_period,
            "health_start_interval": parsed.health_start_interval,
            "no_healthcheck": parsed.no_healthcheck,
            "domainname": parsed.domainname, "attach": parsed.attach,
            "sig_proxy": parsed.sig_proxy,"cap_add": parsed.cap_add, "cap_drop": parsed.cap_drop,
            "privileged": parsed.privileged, "ulimits": parsed.ulimit,
            "shm_size": parsed.shm_size, "devices": parsed.device,
            "device_cgroup_rules": parsed.device_cgroup_rule, "group_add": parsed.group_add,
            "cidfile": parsed.cidfile, "sysctls": parsed.sysctl, "expose": parsed.expose,
            "oom_score_adj": parsed.oom_score_adj, "pid": parsed.pid, "ipc": parsed.ipc,
            "uts": parsed.uts, **limits(parsed)}


def limits(parsed):
    """The resource limit flags' values, by ops/cgroups.FIELDS' names."""
    return {name: getattr(parsed, name) for name in LIMIT_DESTS}
