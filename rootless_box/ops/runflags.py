"""Docker's `run` flags beyond the command, environment, volumes and network: capabilities,
--privileged, --security-opt, devices, limits and the namespaces a container may share.

Owns: Docker's rules for each of these flags (moby daemon/pkg/oci/caps: names with or without
CAP_, any case, ALL; what --privileged means), checking their values before anything is made
(bad input: one UsageError, exit 125 in run and create), what they add to the record's
HostConfig (inspect shows them as Docker does) and to the run spec (what init applies), and the
refusals, each with its reason, of what a user namespace cannot do.
Must not: make syscalls (userns/ applies the spec), print, or import json, re or hashlib (the
`run` path: see tests/unit/test_layering.py).
"""

import os

from .. import config, errors
from ..userns import caps as capsmod, launcher
from . import cgroups, health

# the RunOptions attributes this module owns, with their defaults (commands/runflags.py fills
# them from the command line)
FIELDS = {"cap_add": (), "cap_drop": (), "privileged": False, "ulimits": (), "shm_size": None,
          "devices": (), "device_cgroup_rules": (), "group_add": (), "cidfile": None,
          "sysctls": (), "expose": (), "oom_score_adj": None, "pid": None, "ipc": None,
          "uts": None, "domainname": None, "attach": (), "sig_proxy": True,
          **cgroups.FIELDS, **health.FIELDS}


# run flags that cannot work here -> the reason each is refused (the CLI's option table and
# the Engine API's create give the same words)
REFUSED = {
    "--gpus": "GPU devices need the NVIDIA container toolkit's hooks; bind the device "
              "nodes you may open with --device",
    "--runtime": "rootless-box is its own runtime",
    "--isolation": "isolation technologies are Windows'",
    "--cgroupns": "containers share the user's cgroup namespace",
    "--cgroup-parent": "the container's cgroup goes beside its keeper's, in the user's "
                       "delegated subtree",
    "--link-local-ip": "user-defined networks have their IPv4 (and IPv6) subnets only",
    "--storage-opt": "storage drivers take no per-container options here",
    "--cpu-rt-period": "real-time scheduling needs the cgroup v1 cpu controller",
    "--cpu-rt-runtime": "real-time scheduling needs the cgroup v1 cpu controller",
    "--blkio-weight-device": "per-device weights are not implemented yet",
    "--device-read-bps": "per-device I/O limits are not implemented yet",
    "--device-write-bps": "per-device I/O limits are not implemented yet",
    "--device-read-iops": "per-device I/O limits are not implemented yet",
    "--device-write-iops": "per-device I/O limits are not implemented yet",
    "--annotation": "there is no OCI runtime to hand annotations to",
    "--cpu-count": "an option of Docker on Windows",
    "--cpu-percent": "an option of Docker on Windows",
    "--io-maxbandwidth": "an option of Docker on Windows",
    "--io-maxiops": "an option of Docker on Windows",
    "--use-api-socket": "there is no daemon socket; start `rootless-box system service` and "
                        "bind its socket with -v",
}


def defaults(kw):
    """The attributes of RunOptions this module owns, from RunOptions' keywords."""
    return {name: kw.get(name, default) for name, default in FIELDS.items()}


# -- capabilities -----------------------------------------------------------------------------

def all_caps():
    """Every capability this kernel knows (Docker's GetAllCapabilities)."""
    last = capsmod.last_cap()
    return [name for name in capsmod.NAMES if capsmod.NUMBER[name] <= last]


def _normalize(names, flag):
    out = []
    for name in names:
        for part in (name.split(",") if "," in name else [name]):
            word = part.strip().upper()
            if word == "ALL":
                out.append(word)
                continue
            if word.startswith("CAP_"):
                word = word[4:]
            if word not in capsmod.NUMBER:
                raise errors.UsageError('invalid argument "%s" for "%s" flag: unknown '
                                        'capability: "CAP_%s"' % (part, flag, word),
                                        "see capabilities(7) for the names")
            if capsmod.NUMBER[word] > capsmod.last_cap():
                raise errors.UsageError(
                    'capability not supported by your kernel or not available in the current '
                    'environment: "CAP_%s"' % word)
            out.append(word)
    return out


def capabilities(opts):
    """The container's capability names, as Docker's TweakCapabilities computes them."""
    drops = _normalize(opts.cap_drop, "--cap-drop")
    adds = _normalize(opts.cap_add, "--cap-add")
    if opts.privileged:
        return all_caps()
    if "ALL" in adds:
        return [c for c in all_caps() if c not in drops]
    if "ALL" in drops:
        base = []
    else:
        base = [c for c in capsmod.DOCKER_DEFAULT if c not in drops]
    return base + [c for c in adds if c not in base]


def _cap_list(names):
    """HostConfig.CapAdd/CapDrop as Docker's CLI records them: CAP_ names, ALL kept."""
    if not names:
        return None
    return [n if n == "ALL" else "CAP_" + n for n in _normalize(names, "")]


# -- --security-opt ----------------------------------------------------------------------------

def security(items):
    """--security-opt values (Docker takes key=value and the older key:value) -> {unconfined:
    no seccomp filter at all, profile: (path, text) of a user's profile or None, unmask: no
    masked or read-only /proc and /sys paths, notes: what is accepted without effect}."""
    out = {"unconfined": False, "profile": None, "unmask": False, "notes": []}
    for item in items:
        key, _sep, value = item.partition("=" if "=" in item else ":")
        if key == "seccomp":
            if value == "unconfined":
                out["unconfined"], out["profile"] = True, None
            elif value in ("builtin", "default"):
                out["unconfined"], out["profile"] = False, None
            elif value:
                from . import seccomp
                text = seccomp.read_profile(value)
                seccomp.check_profile(text, value)
                out["unconfined"], out["profile"] = False, (value, text)
            else:
                raise errors.UsageError("invalid --security-opt %r: seccomp needs a value"
                                        % item, "use seccomp=unconfined or seccomp=FILE.json")
        elif key == "no-new-privileges" and value in ("", "true"):
            pass  # every container here has no_new_privs already
        elif key == "label":
            # dockerd on a host without SELinux discards labels too
            out["notes"].append("--security-opt %s has no effect: rootless-box applies no "
                                "SELinux labels" % item)
        elif key == "apparmor" and value == "unconfined":
            out["notes"].append("--security-opt %s has no effect: rootless-box loads no "
                                "AppArmor profile, so containers are unconfined already"
                                % item)
        elif key == "systempaths" and value == "unconfined":
            out["unmask"] = True
        elif key == "apparmor":
            raise errors.UsageError("unsupported --security-opt %r: loading an AppArmor "
                                    "profile needs root" % item,
                                    "leave it out, or use apparmor=unconfined")
        elif key == "no-new-privileges":
            raise errors.UsageError("unsupported --security-opt %r: every container runs "
                                    "with no_new_privs (its seccomp filters need it)" % item,
                                    "leave it out")
        else:
            raise errors.UsageError("unsupported --security-opt %r" % item,
                                    "rootless-box accepts seccomp=unconfined|FILE.json, "
                                    "no-new-privileges, systempaths=unconfined, "
                                    "label=..., apparmor=unconfined")
    return out


def notes(opts):
    """What the user asked for that is accepted without effect, one line each."""
    return security(opts.security_opts)["notes"] + cgroups.limits(opts)[1]


# -- devices ----------------------------------------------------------------------------------

# /dev entries a container gets otherwise (its own devpts, shm, mqueue, the default nodes)
_OWN_DEV = {"pts", "shm", "mqueue", "ptmx", "console", "null", "zero", "full", "random",
            "urandom", "tty", "fd", "stdin", "stdout", "stderr", "core"}


def host_devices(top="/dev"):
    """The host's device nodes this user may open (read or write), for --privileged, as
    rootless Podman binds them: a device the user cannot open would only be a dead node."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        rel = os.path.relpath(dirpath, top)
        if rel == ".":
            dirnames[:] = [d for d in dirnames if d not in _OWN_DEV]
        for name in sorted(filenames):
            if rel == "." and name in _OWN_DEV:
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_mode & 0o170000) not in (0o020000, 0o060000):
                continue
            if os.access(path, os.R_OK) or os.access(path, os.W_OK):
                found.append({"source": path, "destination": path})
    return sorted(found, key=lambda d: d["destination"])


def devices(items):
    """--device HOST[:CONTAINER][:PERMISSIONS] -> [{source, destination, permissions}]. Only a
    device node this user can open is any use in a user namespace (its owner and mode stay
    the host's); a directory gives every node under it. The cgroup permissions (rwm) cannot
    be enforced without a device cgroup: recorded as given, as rootless Podman does."""
    out = []
    for item in items:
        parts = item.split(":")
        source = parts[0]
        dest, perms = source, "rwm"
        if len(parts) == 2:
            if parts[1] and set(parts[1]) <= set("rwm") and not parts[1].startswith("/"):
                perms = parts[1]
            else:
                dest = parts[1]
        elif len(parts) == 3:
            dest, perms = parts[1] or source, parts[2]
        elif len(parts) > 3:
            raise errors.UsageError("invalid device specification: %s" % item,
                                    "use --device HOST[:CONTAINER][:rwm]")
        if not perms or not set(perms) <= set("rwm") or not dest.startswith("/"):
            raise errors.UsageError("invalid device specification: %s" % item,
                                    "use --device HOST[:CONTAINER][:rwm]")
        if os.path.isdir(source):
            found = host_devices(source)
            if not found:
                raise errors.UsageError("no device this user can open under %s" % source)
            for dev in found:
                rel = os.path.relpath(dev["source"], source)
                out.append({"source": dev["source"], "destination": os.path.join(dest, rel),
                            "permissions": perms})
            continue
        try:
            st = os.stat(source)
        except OSError as exc:
            raise errors.UsageError("error gathering device information while adding custom "
                                    "device %r: %s" % (source, exc.strerror)) from None
        if (st.st_mode & 0o170000) not in (0o020000, 0o060000):
            raise errors.UsageError("%s is not a device node" % source)
        if not (os.access(source, os.R_OK) or os.access(source, os.W_OK)):
            raise errors.UsageError(
                "cannot use device %s: this user cannot open it" % source,
                "a rootless container can use only the devices its user may open (ask an "
                "administrator for a group or an ACL on it)")
        out.append({"source": source, "destination": dest, "permissions": perms})
    return out


# -- limits and kernel settings -------------------------------------------------------------

# setrlimit(2)'s names as Docker takes them (go-units ulimit.go)
RLIMITS = launcher.RLIMITS


def ulimits(items):
    """--ulimit NAME=SOFT[:HARD] -> Docker's HostConfig.Ulimits entries ({Name, Soft, Hard};
    -1 is unlimited)."""
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or name not in RLIMITS:
            raise errors.UsageError('invalid argument "%s" for "--ulimit" flag: invalid '
                                    'ulimit type: %s' % (item, name),
                                    "use NAME=SOFT[:HARD], NAME one of %s"
                                    % ", ".join(sorted(RLIMITS)))
        soft_text, _colon, hard_text = value.partition(":")
        try:
            soft = int(soft_text)
            hard = int(hard_text) if hard_text else soft
        except ValueError:
            raise errors.UsageError('invalid argument "%s" for "--ulimit" flag: invalid '
                                    'ulimit value: %s' % (item, value),
                                    "give numbers: NAME=SOFT[:HARD], -1 for unlimited") \
                from None
        if soft < -1 or hard < -1 or (hard != -1 and (soft == -1 or soft > hard)):
            raise errors.UsageError('invalid argument "%s" for "--ulimit" flag: ulimit soft '
                                    'limit must be less than or equal to hard limit: %d > %d'
                                    % (item, soft, hard))
        out[name] = {"Name": name, "Hard": hard, "Soft": soft}
    return list(out.values())


def shm_size(text):
    """--shm-size: Docker's RAMInBytes (a number with b, k, m or g) -> bytes, or None."""
    if text is None or text == "":
        return None
    from .containers import parse_size
    try:
        return parse_size(text)
    except ValueError:
        raise errors.UsageError('invalid argument "%s" for "--shm-size" flag: invalid size'
                                % text, "give a size like 64m or 2g") from None


# kernel settings a container's own namespaces hold (Docker's daemon/oci/namespaces rules)
_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def sysctls(items, network, ipc):
    """--sysctl KEY=VALUE for the namespaced ones: net.* in a network namespace of the
    container's own, IPC ones (kernel.msg*, kernel.shm*, kernel.sem, fs.mqueue.*) in its own
    IPC namespace. Anything else would change the host's kernel: refused, as Docker does."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise errors.UsageError("invalid sysctl %r" % item, "use --sysctl KEY=VALUE")
        if key.startswith("net."):
            if network in ("host", "container"):
                raise errors.UsageError("sysctl %r is not allowed: the container shares a "
                                        "network namespace it does not own" % key,
                                        "give the container a network of its own: "
                                        "--network private or none")
        elif key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if ipc == "host":
                raise errors.UsageError("sysctl %r is not allowed in the host's IPC "
                                        "namespace" % key)
            if ipc.startswith("container:"):
                raise errors.UsageError("sysctl %r is not allowed: the container shares "
                                        "another container's IPC namespace" % key)
        else:
            raise errors.UsageError("sysctl %r is not allowed: it is not namespaced, so it "
                                    "would change the host's kernel" % key,
                                    "only net.*, kernel.msg*, kernel.shm*, kernel.sem and "
                                    "fs.mqueue.* can be set for a container")
        if ".." in key or "/" in key:
            raise errors.UsageError("invalid sysctl %r" % item)
        out[key] = value
    return out


def oom_score_adj(text):
    """--oom-score-adj: [-1000, 1000], and not below this user's own value: lowering needs
    CAP_SYS_RESOURCE in the initial user namespace, which no user namespace grants."""
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise errors.UsageError('invalid argument "%s" for "--oom-score-adj" flag' % text,
                                "give a number from -1000 to 1000") from None
    if not -1000 <= value <= 1000:
        raise errors.UsageError("invalid value %d, range for oom score adj is [-1000, 1000]"
                                % value)
    try:
        with open("/proc/self/oom_score_adj") as f:
            current = int(f.read())
    except (OSError, ValueError):
        current = 0
    if value < current:
        raise errors.UsageError(
            "--oom-score-adj %d is below this user's %d: lowering it needs CAP_SYS_RESOURCE "
            "in the initial user namespace, which a rootless container does not have"
            % (value, current), "give %d or more" % current)
    return value


# -- shared namespaces ------------------------------------------------------------------------

def ns_mode(flag, text, allowed):
    """--pid/--ipc/--uts: "" (the container's own), host, container:NAME (another
    container's, joined in its user namespace: see shared), and the other values Docker
    accepts."""
    if text is None or text == "" or text in allowed:
        return text or ""
    if text.startswith("container:") and text[len("container:"):]:
        return text
    raise errors.UsageError("invalid %s mode %r" % (flag, text),
                            "use one of: %s, container:NAME" % ", ".join(allowed))


# the namespaces --pid/--ipc/--uts container:NAME join, with Docker's word for each
JOINABLE = (("pid", "PID"), ("ipc", "IPC"), ("uts", "UTS"))


def joins_any(opts):
    return any((getattr(opts, ns) or "").startswith("container:") for ns, _w in JOINABLE)


def shared(store, opts):
    """{"pid"|"ipc"|"uts": (record, run spec)} of the containers whose namespaces these flags
    join. A donor without a /dev/shm (--ipc none) has no IPC to share: Docker's error."""
    from . import containers
    out = {}
    for ns, _word in JOINABLE:
        text = getattr(opts, ns) or ""
        if text.startswith("container:"):
            name = text[len("container:"):]
            record = containers.find(store, name)
            spec = containers.load_spec(store, record)
            if ns == "ipc" and spec.get("ipc_mode") == "none":
                raise errors.UsageError("container %s: non-shareable IPC (hint: use "
                                        "IpcMode:shareable for the donor container)" % name)
            out[ns] = (record, spec)
    return out


def real_joins(shared_ns):
    """[(flag text, record, spec)] of the namespaces that are really entered: joining one the
    donor shares with the host is having the host's (no user namespace of the donor's owns
    it), as `--network container:` of a host-network container is the host's network."""
    return [("--%s container:%s" % (ns, record["Name"]), record, spec)
            for ns, (record, spec) in sorted(shared_ns.items())
            if spec.get(ns + "_mode") != "host"]


def userns_owner(store, record, spec):
    """The ID of the container that made the user namespace this one runs in (a joiner
    records it as userns_of; one made before that joined only a network: network_of)."""
    from . import containers
    cid = record["Id"]
    for _hop in range(32):
        nxt = spec.get("userns_of") or spec.get("network_of")
        if not nxt or nxt == cid:
            return cid
        other = store.read_container(nxt)
        if other is None:
            return nxt
        cid, spec = nxt, containers.load_spec(store, other)
    return cid


def joined_part(shared_ns):
    """The run spec's keys for the namespaces joined: "host" where the donor has the host's,
    else "container" and the donor's ID, whose running init each start enters
    (joined_spec)."""
    part = {}
    for ns, (record, spec) in shared_ns.items():
        if spec.get(ns + "_mode") == "host":
            part[ns + "_mode"] = "host"
        else:
            part[ns + "_mode"], part[ns + "_of"] = "container", record["Id"]
    return part


def joined_hostname(shared_ns):
    """`--uts container:NAME`: NAME's hostname (the host's when NAME has the host's UTS
    namespace), or None."""
    if "uts" not in shared_ns:
        return None
    record, spec = shared_ns["uts"]
    if spec.get("uts_mode") == "host":
        return os.uname().nodename
    return (record.get("Config") or {}).get("Hostname") or record["Id"][:12]


def joined_spec(store, spec):
    """spec with the host pids of the running containers whose namespaces it joins (the
    network's join_pid, and join_pids for pid/ipc/uts), looked up at each start: a donor may
    have restarted. A stopped donor: Docker's error (exit 125 in run and start). With --init,
    the init program too (init_path), found at each start as Docker's and Podman's are."""
    from . import containers, ports
    spec = ports.joined_spec(store, spec)
    if spec.get("init"):
        spec = dict(spec, init_path=init_binary())
    pids = {}
    for ns, word in JOINABLE:
        target = spec.get(ns + "_of")
        if not target:
            continue
        record = store.read_container(target)
        if record is not None:
            record = containers.refresh_state(store, record)
        state = (record or {}).get("State") or {}
        if not state.get("Running") or not state.get("Pid"):
            name = record["Name"] if record else target[:12]
            raise errors.Conflict("failed to join %s namespace: container %s is not running"
                                  % (word, name), "start it first: rootless-box start %s"
                                  % name)
        pids[ns] = state["Pid"]
    return dict(spec, join_pids=pids) if pids else spec


# --init's program: Podman's (catatonit) and Docker's (docker-init, a static tini) names, looked
# for on the PATH and where their packages install them
INIT_NAMES = ("catatonit", "tini-static", "docker-init", "tini")
INIT_DIRS = ("/usr/libexec/podman", "/usr/local/libexec/podman", "/usr/lib/podman",
             "/usr/libexec/docker", "/usr/local/libexec/docker", "/usr/lib/docker")
INIT_HINT = ("install catatonit (or tini-static), or set RBX_INIT_PATH to a statically linked "
             "init program")


def init_binary():
    """The host program `--init` runs as the container's pid 1: $RBX_INIT_PATH, else the first
    statically linked catatonit, tini-static, docker-init or tini on the PATH or in Podman's
    and Docker's libexec directories. Static: it is exec'd inside the container, whose root
    has none of its libraries nor its loader. None: an error, as Docker's and Podman's --init
    without their init binary; a stand-in in Python would be a fork of this process, whose
    memory holds the host's environment (ARCHITECTURE, "--init")."""
    chosen = config.init_path()
    if chosen:
        reason = _not_an_init(chosen)
        if reason:
            raise errors.SetupError("RBX_INIT_PATH=%s: %s" % (chosen, reason), INIT_HINT)
        return chosen
    dirs = [d for d in os.environ.get("PATH", "").split(":") if d.startswith("/")]
    for name in INIT_NAMES:
        for directory in dirs + [d for d in INIT_DIRS if d not in dirs]:
            path = os.path.join(directory, name)
            if _not_an_init(path) is None:
                return path
    raise errors.SetupError("--init needs an init program (catatonit or tini) and none was "
                            "found on this machine", INIT_HINT)


def _not_an_init(path):
    """Why path cannot be --init's program, or None."""
    from ..userns.elf import inspect
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        return "not an executable file"
    machine, interp = inspect(path)
    if machine is None:
        return "not an ELF program"
    if interp:
        return ("dynamically linked (its loader %s would be looked for in the container)"
                % interp)
    return None


def exposed(opts, image_exposed):
    """The image's ExposedPorts plus --expose PORT[/PROTO] and ranges (PORT-PORT)."""
    out = dict(image_exposed or {})
    for item in opts.expose:
        port, _slash, proto = item.partition("/")
        proto = proto or "tcp"
        first, _dash, last = port.partition("-")
        if proto not in ("tcp", "udp", "sctp") or not first.isdigit() or \
                (last and not last.isdigit()):
            raise errors.UsageError("invalid --expose %r" % item,
                                    "use PORT[/tcp|udp|sctp] or FIRST-LAST[/PROTO]")
        lo, hi = int(first), int(last or first)
        if not 0 < lo <= hi <= 65535:
            raise errors.UsageError("invalid --expose %r: port out of range" % item)
        for port_nr in range(lo, hi + 1):
            out["%d/%s" % (port_nr, proto)] = {}
    return out


def check_cidfile(path):
    if path and os.path.lexists(path):
        raise errors.UsageError("container ID file found, make sure the other container "
                                "isn't running or delete %s" % path)


def write_cidfile(path, cid):
    """--cidfile: the new container's ID, in a file that must not exist (Docker's CLI)."""
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        check_cidfile(path)
        raise
    except OSError as exc:
        raise errors.UsageError("failed to create the container ID file %s: %s"
                                % (path, exc.strerror)) from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)


# -- what the flags give the record and the spec ----------------------------------------------

def attach_streams(opts):
    """-a/--attach STDIN|STDOUT|STDERR (any case) -> the fds left unattached, or ()."""
    names = []
    for item in opts.attach:
        name = item.strip().lower()
        if name not in ("stdin", "stdout", "stderr"):
            raise errors.UsageError('invalid argument "%s" for "-a, --attach" flag: valid '
                                    'streams are STDIN, STDOUT and STDERR' % item)
        names.append(name)
    if names and opts.detach:
        raise errors.UsageError("conflicting options: cannot specify both --attach and "
                                "--detach")
    if not names:
        return ()
    return tuple(fd for fd, name in ((1, "stdout"), (2, "stderr")) if name not in names)


def check(opts):
    """Every value checked before anything is made; -> the resolved flags (a dict)."""
    from .ports import network_mode
    if opts.domainname and opts.uts:
        raise errors.UsageError("conflicting options: domainname and the UTS mode")
    attach_streams(opts)
    health.flags(opts)
    if opts.device_cgroup_rules:
        raise errors.UsageError(
            "--device-cgroup-rule is not supported: it needs a device cgroup, which only "
            "root controls", "a rootless container reaches the devices its user can open: "
            "give them with --device")
    pid = ns_mode("--pid", opts.pid, ("host",))
    ipc = ns_mode("--ipc", opts.ipc, ("host", "private", "shareable", "none"))
    uts = ns_mode("--uts", opts.uts, ("host",))
    if uts and opts.hostname:
        raise errors.UsageError("conflicting options: hostname and the UTS mode")
    network = network_mode(opts.network, bool(opts.publish or opts.publish_all))
    check_cidfile(opts.cidfile)
    return {"limits": cgroups.check(opts)[0], "caps": capabilities(opts),
            "security": security(opts.security_opts),
            "ulimits": ulimits(opts.ulimits), "shm_size": shm_size(opts.shm_size),
            "devices": devices(opts.devices), "sysctls": sysctls(opts.sysctls, network, ipc),
            "oom_score_adj": oom_score_adj(opts.oom_score_adj),
            "pid": pid, "ipc": ipc, "uts": uts}


def config_part(opts, image_config):
    """The record's Config fields these flags set (Docker's names), Healthcheck with the
    image's merged in."""
    attached = {s.strip().lower() for s in opts.attach} or \
        ({"stdout", "stderr"} if not opts.detach else set())
    return {"Domainname": opts.domainname or "",
            "AttachStdin": "stdin" in attached or bool(opts.interactive and not opts.detach),
            "AttachStdout": "stdout" in attached, "AttachStderr": "stderr" in attached,
            "Healthcheck": health.config(opts, image_config.get("Healthcheck"))}


def host_config(opts, resolved):
    """The HostConfig fields these flags set, under Docker's names."""
    return {"CapAdd": _cap_list(opts.cap_add), "CapDrop": _cap_list(opts.cap_drop),
            "Privileged": bool(opts.privileged), "Ulimits": resolved["ulimits"] or None,
            "ShmSize": resolved["shm_size"] or 64 << 20,
            "Devices": [{"PathOnHost": d["source"], "PathInContainer": d["destination"],
                         "CgroupPermissions": d["permissions"]}
                        for d in resolved["devices"]],
            "GroupAdd": list(opts.group_add) or None, "Sysctls": resolved["sysctls"] or None,
            "OomScoreAdj": resolved["oom_score_adj"] or 0, "PidMode": resolved["pid"],
            "IpcMode": resolved["ipc"] or "private", "UTSMode": resolved["uts"],
            **_limit_fields(resolved["limits"])}


def _limit_fields(asked):
    """HostConfig's resource fields as Docker shows them: 0, "" or null when not set."""
    fields = {"Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "NanoCpus": 0,
              "CpuShares": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "",
              "CpusetMems": "", "PidsLimit": None, "BlkioWeight": 0}
    fields.update(asked)
    return fields


def spec_part(opts, resolved, idmap):
    """The run spec's keys for these flags (userns/launcher and userns/mounts apply them)."""
    if opts.group_add and idmap.mode == "single" and \
            any(g not in ("0", "root") for g in opts.group_add):
        raise errors.UsageError("--group-add needs a subordinate id range: under the "
                                "single-id mapping only gid 0 exists in the container",
                                "run 'rootless-box info' for how to get a range")
    sec = resolved["security"]
    part = {"caps": resolved["caps"], "privileged": bool(opts.privileged),
            "unmask": bool(opts.privileged or sec["unmask"])}
    part["devices"] = [{"source": d["source"], "destination": d["destination"]}
                       for d in resolved["devices"]]
    if opts.privileged:
        known = {d["destination"] for d in part["devices"]}
        part["devices"] += [d for d in host_devices() if d["destination"] not in known]
    part.update(ulimits=resolved["ulimits"], shm_size=resolved["shm_size"],
                group_add=list(opts.group_add), sysctls=resolved["sysctls"],
                oom_score_adj=resolved["oom_score_adj"], pid_mode=resolved["pid"],
                ipc_mode=resolved["ipc"], uts_mode=resolved["uts"],
                cgroup_files=cgroups.files(resolved["limits"]) or None,
                domainname=opts.domainname or None, unattached=attach_streams(opts))
    if opts.privileged or sec["unconfined"]:
        part["seccomp_bpf"] = None  # Docker: --privileged has no seccomp profile either
    elif sec["profile"] or part["caps"] != list(capsmod.DOCKER_DEFAULT):
        # the default profile with the default capabilities came with confinement()
        from . import seccomp
        text = sec["profile"][1] if sec["profile"] else seccomp.default_text()
        part["seccomp_bpf"] = seccomp.compiled(text, part["caps"])
    return part


def started(store, record, monitor=False):
    """Once the container runs (its keeper, foreground or monitor, calls this): its health
    checker, when it has a check."""
    if health.active((record.get("Config") or {}).get("Healthcheck")):
        health.spawn(store, record["Id"], subreaper=monitor)
