"""The option table of `run`/`create` for the flags ops/runflags.py owns (capabilities,
--privileged, devices, limits, shared namespaces), and their values as RunOptions keywords.
Owns nothing but that wiring: the rules live in ops/runflags.py."""

from ..cliparse import FLAG, LIST, VALUE, Opt

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
    Opt("--pid", VALUE, "PID namespace to use (host)"),
    Opt("--ipc", VALUE, "IPC mode to use (host, private, shareable, none)"),
    Opt("--uts", VALUE, "UTS namespace to use (host)"),
    Opt("-q,--quiet", FLAG, "Suppress the pull output"),
)


def kwargs(parsed):
    """RunOptions keywords from the parsed command line."""
    return {"cap_add": parsed.cap_add, "cap_drop": parsed.cap_drop,
            "privileged": parsed.privileged, "ulimits": parsed.ulimit,
            "shm_size": parsed.shm_size, "devices": parsed.device,
            "device_cgroup_rules": parsed.device_cgroup_rule, "group_add": parsed.group_add,
            "cidfile": parsed.cidfile, "sysctls": parsed.sysctl, "expose": parsed.expose,
            "oom_score_adj": parsed.oom_score_adj, "pid": parsed.pid, "ipc": parsed.ipc,
            "uts": parsed.uts}
