"""RUN --mount: BuildKit's mount flag grammar, and what each mount asks of the step.

Owns: reading a `--mount=` value (comma-separated key=value fields, quoted as CSV; the keys and
defaults of BuildKit's runmount: type bind by default, read-only binds, `id` of a cache defaulting
to its target, a secret's default target /run/secrets/<id>), checking it (one-line errors for an
unknown key or type, a missing target), and turning it into a mount description for
ops/buildsteps.run_step plus the part of the step's cache key it brings: the mount as written
(normalised), the content key of context files a bind shows, the image a `from=` names. A
secret's or a cache's content is never part of the key.
Must not: touch files (ops/buildsteps.py mounts, copies and creates them).
"""

import csv
import hashlib
import os

from .. import errors

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_KEYS = {
    "bind": {"target", "source", "from", "readonly", "readwrite"},
    "cache": {"target", "source", "from", "readonly", "readwrite", "id", "sharing", "mode",
              "uid", "gid"},
    "tmpfs": {"target", "size"},
    "secret": {"target", "id", "required", "mode", "uid", "gid", "env"},
    "ssh": {"target", "id", "required", "mode", "uid", "gid"},
}
_ALIASES = {"dst": "target", "destination": "target", "src": "source", "ro": "readonly",
            "rw": "readwrite"}
_BOOLEANS = ("readonly", "readwrite", "required")


class MountError(errors.UsageError):
    """A --mount value BuildKit would refuse."""


def parse(value):
    """A `--mount` value -> dict of its fields (aliases resolved, booleans as bool)."""
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as exc:
        raise MountError("invalid RUN --mount %r: %s" % (value, exc)) from None
    result = {}
    for field in fields:
        key, eq, val = field.partition("=")
        key = _ALIASES.get(key.strip().lower(), key.strip().lower())
        if key in _BOOLEANS:
            if eq and val.lower() not in ("true", "false", "1", "0"):
                raise MountError("invalid value for %s: %r" % (key, val))
            result[key] = not eq or val.lower() in ("true", "1")
            continue
        if not eq:
            raise MountError("invalid field %r in RUN --mount: give key=value" % field)
        result[key] = val
    kind = result.setdefault("type", "bind").lower()
    result["type"] = kind
    if kind not in TYPES:
        raise MountError("unsupported mount type %r" % kind,
                         "use bind, cache, tmpfs, secret or ssh")
    for key in result:
        if key != "type" and key not in _KEYS[kind]:
            raise MountError("unexpected key %r for RUN --mount type=%s" % (key, kind))
    if kind == "ssh":
        # the target's default (/run/buildkit/ssh_agent.N) depends on the mount's place
        # among the step's ssh mounts: describe() fills it in
        result.setdefault("id", "default")
        result.setdefault("target", "")
    if result.get("readonly") and result.get("readwrite"):
        raise MountError("RUN --mount: readonly and readwrite together")
    if kind == "secret":
        if not result.get("id") and not result.get("target"):
            raise MountError("RUN --mount=type=secret needs an id or a target")
        if "env" in result:
            raise MountError("RUN --mount=type=secret,env= is not supported yet",
                             "read the secret from its file under /run/secrets")
        result.setdefault("id", os.path.basename(result.get("target", "")))
        result.setdefault("target", "/run/secrets/" + result["id"])
    if not result.get("target") and kind != "ssh":
        raise MountError("RUN --mount=type=%s needs a target" % kind)
    for key in ("uid", "gid"):
        if key in result and not result[key].isdigit():
            raise MountError("invalid %s %r: give a number" % (key, result[key]))
    if "mode" in result:
        try:
            result["mode"] = int(result["mode"], 8)
        except ValueError:
            raise MountError("invalid mode %r: give an octal mode" % result["mode"]) \
                from None
    if "sharing" in result and result["sharing"] not in ("shared", "private", "locked"):
        raise MountError("invalid sharing %r: use shared, private or locked"
                         % result["sharing"])
    if "size" in result:
        result["size"] = _size(result["size"])
    return result


def _size(text):
    """tmpfs size= as bytes (BuildKit takes units: 64m, 1g, or bytes)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
             "g": 1 << 30, "gb": 1 << 30}
    number = text.rstrip("bBkKmMgG")
    unit = text[len(number):].lower()
    if not number.isdigit() or unit not in units:
        raise MountError("invalid tmpfs size %r" % text)
    return int(number) * units[unit]


def from_stage_names(flags):
    """The `from=` of each --mount among an instruction's raw flags (for the stages needed),
    as written: the caller expands them (`from=$STAGE`)."""
    names = []
    for flag in flags:
        if flag.startswith("--mount="):
            try:
                fields = next(csv.reader([flag[len("--mount="):]]), [])
            except csv.Error:
                continue
            names += [f.partition("=")[2] for f in fields if f.startswith("from=")]
    return names


def describe(builder, mount, workdir, ssh_index=0):
    """-> (mount description for ops/buildsteps.run_step, its cache key part). ssh_index: how
    many ssh mounts the step has before this one."""
    from ..ops import buildsteps
    from . import context as ctx
    from . import copyplan
    kind = mount["type"]
    target = mount["target"] or "/run/buildkit/ssh_agent.%d" % ssh_index
    if not target.startswith("/"):
        target = os.path.join(workdir or "/", target)
    target = os.path.normpath(target)
    if target == "/":
        raise MountError("RUN --mount: cannot mount over /")
    written = sorted((k, str(v)) for k, v in mount.items())
    desc = {"kind": kind, "target": target, "uid": int(mount.get("uid", 0)),
            "gid": int(mount.get("gid", 0)), "mode": mount.get("mode")}
    key = [target] + ["%s=%s" % kv for kv in written]
    if kind == "tmpfs":
        desc["size"] = mount.get("size")
        return desc, key
    if kind == "ssh":
        # BuildKit's: the agent named by --ssh ID, a socket owned by uid:gid with mode (0600)
        # in the step; its keys are never part of the key
        desc["socket"] = builder.opts.ssh.get(mount["id"])
        if desc["socket"] is None and mount.get("required"):
            raise MountError("ssh %s: not provided" % mount["id"],
                             "pass it with --ssh %s" % (
                                 "default" if mount["id"] == "default"
                                 else mount["id"] + "=SOCKET"))
        desc["mode"] = 0o600 if desc["mode"] is None else desc["mode"]
        return desc, key
    if kind == "secret":
        data = builder.opts.secrets.get(mount["id"])
        if data is None and mount.get("required"):
            raise MountError("secret %s: not provided" % mount["id"],
                             "pass it with --secret id=%s,src=FILE" % mount["id"])
        desc["data"] = data  # None: the mount is left out, as BuildKit does when not required
        desc["mode"] = 0o400 if desc["mode"] is None else desc["mode"]
        return desc, key
    rw = bool(mount.get("readwrite"))
    source = mount.get("source", "/")
    if kind == "cache":
        if mount.get("from"):
            lowers, image_id = copyplan.other_root(builder, mount["from"], "RUN --mount from")
            desc.update(seed_lowers=lowers, source=source)
            key.append("from:" + image_id)
        ident = mount.get("id") or target
        desc.update(rw=not mount.get("readonly"), sharing=mount.get("sharing", "shared"),
                    dir=os.path.join(builder.store.root, buildsteps.CACHE_MOUNTS, hashlib.sha256(
                        ident.encode("utf-8", "surrogateescape")).hexdigest()),
                    mode=0o755 if desc["mode"] is None else desc["mode"])
        return desc, key
    desc["rw"] = rw
    if mount.get("from"):
        lowers, image_id = copyplan.other_root(builder, mount["from"], "RUN --mount from")
        desc.update(kind="layers", lowers=lowers, source=source)
        return desc, key + ["from:" + image_id]
    matcher = builder.context_matcher()
    rel = ctx.mount_source(builder.opts.context, source, matcher)
    full = os.path.join(builder.opts.context, rel)
    key.append(ctx.content_key(builder.opts.context, [rel], matcher, builder.known_files()))
    if not rw and not matcher.patterns:
        desc.update(kind="host", source=full)
        return desc, key
    # writes must be thrown away, or the ignore file hides part of it: a private copy
    paths = None
    if os.path.isdir(full) and not os.path.islink(full):
        paths = [p for p, _st in ctx.walk(builder.opts.context, matcher, rel)]
    desc.update(kind="context", root=builder.opts.context, source=rel, paths=paths)
    return desc, key
