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

from .. import errors
from ..userns import caps as capsmod

# the RunOptions attributes this module owns, with their defaults (commands/runflags.py fills
# them from the command line)
FIELDS = {"cap_add": (), "cap_drop": (), "privileged": False}


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
    return security(opts.security_opts)["notes"]


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


# -- what the flags give the record and the spec ----------------------------------------------

def check(opts):
    """Every value checked before anything is made; -> the resolved flags (a dict)."""
    return {"caps": capabilities(opts), "security": security(opts.security_opts)}


def host_config(opts, resolved):
    """The HostConfig fields these flags set, under Docker's names."""
    return {"CapAdd": _cap_list(opts.cap_add), "CapDrop": _cap_list(opts.cap_drop),
            "Privileged": bool(opts.privileged)}


def spec_part(opts, resolved):
    """The run spec's keys for these flags (userns/launcher and userns/mounts apply them)."""
    sec = resolved["security"]
    part = {"caps": resolved["caps"], "privileged": bool(opts.privileged),
            "unmask": bool(opts.privileged or sec["unmask"])}
    if opts.privileged:
        part["devices"] = host_devices()
    if opts.privileged or sec["unconfined"]:
        part["seccomp_bpf"] = None  # Docker: --privileged has no seccomp profile either
    elif sec["profile"] or part["caps"] != list(capsmod.DOCKER_DEFAULT):
        # the default profile with the default capabilities came with confinement()
        from . import seccomp
        text = sec["profile"][1] if sec["profile"] else seccomp.default_text()
        part["seccomp_bpf"] = seccomp.compiled(text, part["caps"])
    return part
