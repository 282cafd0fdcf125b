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
    return {"caps": capabilities(opts)}


def host_config(opts, resolved):
    """The HostConfig fields these flags set, under Docker's names."""
    return {"CapAdd": _cap_list(opts.cap_add), "CapDrop": _cap_list(opts.cap_drop),
            "Privileged": bool(opts.privileged)}


def spec_part(opts, resolved):
    """The run spec's keys for these flags (userns/launcher and userns/mounts apply them)."""
    part = {"caps": resolved["caps"], "privileged": bool(opts.privileged)}
    if opts.privileged:
        part["devices"] = host_devices()
    return part
