"""A container's mounts as Docker's CLI and daemon take them: `--mount`, `--volumes-from`,
and the shapes a mount is shown in.

Owns: `--mount`'s grammar (docker/cli opts/mount.go: a CSV line of key=value fields, its
error texts, the type-specific option families that may not mix) and the daemon's checks that
follow (moby volume/mounts/linux_parser.go: "invalid mount config for type ..."),
`--volumes-from CTR[:ro|rw]` (the volumes and bind mounts of that container), the check for
two mounts at one place, and what a mount looks like in a container record (`Mounts`, as
inspect shows it) and in `HostConfig.Mounts` (the API's mount objects). The run spec entries
made here are those `ops/run.parse_volume` makes for `-v`.
Must not: touch the store (ops/volumes.attach makes the volumes), print, or import `re`/
`csv` at module level (`run`'s import path).
"""

import os

from .. import errors

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_HINT = ("--mount takes type=bind|volume|tmpfs, source, target, readonly and the volume-*, "
         "bind-* or tmpfs-* fields of its type")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _go_bool(text):
    """strconv.ParseBool -> bool, or None for anything else."""
    return True if text in _TRUE else False if text in _FALSE else None


def ram_in_bytes(text):
    """go-units RAMInBytes: `64m`, `1.5g`, `100`, `2 GiB` (binary multiples). None if bad."""
    body = text.strip()
    lower = body.lower()
    for suffix in ("ib", "b", "i"):
        if lower.endswith(suffix) and len(lower) > len(suffix) and (
                suffix != "b" or not lower[:-1].endswith("i")):
            lower = lower[:-len(suffix)]
            break
    unit = 1
    if lower and lower[-1] in "kmgtp":
        unit = 1024 ** ("kmgtp".index(lower[-1]) + 1)
        lower = lower[:-1]
    lower = lower.rstrip()
    try:
        if not lower or lower.startswith(("-", "+")) or lower.count(".") > 1:
            return None
        return int(float(lower) * unit)
    except ValueError:
        return None


def _tmpfs_size(size):
    # moby ConvertTmpfsOptions: the largest unit that divides the size
    for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % divisor == 0:
            return "size=%d%s" % (size // divisor, suffix)
    return "size=%d" % size


def _fields(value):
    """Go's encoding/csv reading one record (quotes allowed, as `src="a,b"`)."""
    import csv
    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as exc:
        raise ValueError(str(exc)) from None
    return rows[0] if rows else []


class _Bad(Exception):
    pass


def parse_mount(value, cwd=None):
    """One `--mount` value -> (run spec entry, the API's mount object). A bad one is a
    UsageError that names the field, as Docker's CLI and daemon word it."""
    try:
        api = _parse(value, cwd)
    except _Bad as exc:
        raise errors.UsageError('invalid argument "%s" for "--mount" flag: %s' % (value, exc),
                                _HINT) from None
    return _check(api), api


def _parse(value, cwd):
    """The CLI's part (opts/mount.go) -> the API's mount object."""
    try:
        fields = _fields(value)
    except ValueError as exc:
        raise _Bad(exc) from None
    api = {"Type": "volume"}
    volume, bind, tmpfs = {}, {}, {}
    for field in fields:
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                api["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind["NonRecursive"] = True
            else:
                raise _Bad("invalid field '%s' must be a key=value pair" % field)
            continue
        if key == "type":
            api["Type"] = val.lower()
        elif key in ("source", "src"):
            api["Source"] = val
            if val == "." or val.startswith("./"):
                api["Source"] = os.path.abspath(os.path.join(cwd or os.getcwd(), val))
        elif key in ("target", "dst", "destination"):
            api["Target"] = val
        elif key in ("readonly", "ro", "bind-nonrecursive"):
            flag = _go_bool(val)
            if flag is None:
                raise _Bad("invalid value for %s: %s" % (key, val))
            if key == "bind-nonrecursive":
                bind["NonRecursive"] = flag
            else:
                api["ReadOnly"] = flag
        elif key == "volume-nocopy":
            flag = _go_bool(val)
            if flag is None:
                raise _Bad("invalid value for volume-nocopy: %s" % val)
            volume["NoCopy"] = flag
        elif key == "consistency":
            api["Consistency"] = val.lower()
        elif key == "bind-propagation":
            bind["Propagation"] = val.lower()
        elif key == "bind-recursive":
            if val == "disabled":
                bind["NonRecursive"] = True
            elif val == "writable":
                bind["ReadOnlyNonRecursive"] = True
            elif val == "readonly":
                bind["ReadOnlyForceRecursive"] = True
            elif val != "enabled":
                raise _Bad('invalid value for %s: %s (must be "enabled", "disabled", '
                           '"writable", or "readonly")' % (key, val))
        elif key in ("volume-label", "volume-opt"):
            # either makes VolumeOptions, even with no name before its `=` (as the CLI)
            name, _, item = val.partition("=")
            if key == "volume-label":
                place = volume.setdefault("Labels", {})
            else:
                place = volume.setdefault("DriverConfig", {}).setdefault("Options", {})
            if name:
                place[name] = item
        elif key == "volume-subpath":
            volume["Subpath"] = val
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = val
        elif key == "tmpfs-size":
            size = ram_in_bytes(val)
            if size is None:
                raise _Bad("invalid value for %s: %s" % (key, val))
            tmpfs["SizeBytes"] = size
        elif key == "tmpfs-mode":
            try:
                mode = int(val, 8)
            except ValueError:
                raise _Bad("invalid value for %s: %s" % (key, val)) from None
            if mode < 0 or mode >= 1 << 32:
                raise _Bad("invalid value for %s: %s" % (key, val))
            tmpfs["Mode"] = mode
        else:
            raise _Bad("unexpected key '%s' in '%s'" % (key, field))
    if not api["Type"]:
        raise _Bad("type is required")
    if not api.get("Target"):
        raise _Bad("target is required")
    for options, kind, family in ((volume, "volume", "VolumeOptions"),
                                  (bind, "bind", "BindOptions"),
                                  (tmpfs, "tmpfs", "TmpfsOptions")):
        if options:
            if api["Type"] != kind:
                raise _Bad("cannot mix '%s-*' options with mount type '%s'"
                           % (kind, api["Type"]))
            api[family] = options
    if bind.get("ReadOnlyNonRecursive") and not api.get("ReadOnly"):
        raise _Bad("option 'bind-recursive=writable' requires 'readonly' to be specified in "
                   "conjunction")
    if bind.get("ReadOnlyForceRecursive"):
        if not api.get("ReadOnly"):
            raise _Bad("option 'bind-recursive=readonly' requires 'readonly' to be specified "
                       "in conjunction")
        if bind.get("Propagation") != "rprivate":
            raise _Bad("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' "
                       "to be specified in conjunction")
    return api


def _config_error(api, text):
    return errors.UsageError('invalid mount config for type "%s": %s' % (api["Type"], text),
                             _HINT)


def _check(api):
    """The daemon's checks (linux_parser.validateMountConfigImpl) -> the run spec entry."""
    kind, target, source = api["Type"], api["Target"], api.get("Source", "")
    if os.path.normpath(target) == "/" and target.startswith("/"):
        raise _config_error(api, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _config_error(api, "invalid mount path: '%s' mount path must be absolute"
                            % target)
    readonly = bool(api.get("ReadOnly"))
    destination = os.path.normpath(target)
    if kind == "bind":
        bind = api.get("BindOptions") or {}
        if not source:
            raise _config_error(api, "field Source must not be empty")
        propagation = bind.get("Propagation") or "rprivate"
        if propagation not in PROPAGATIONS:
            raise _config_error(api, "invalid propagation mode: %s" % propagation)
        if not source.startswith("/"):
            raise _config_error(api, "invalid mount path: '%s' mount path must be absolute"
                                % source)
        source = os.path.normpath(source)
        if not os.path.exists(source):
            raise errors.NotFound(
                'invalid mount config for type "bind": bind source path does not exist: %s'
                % source, "create it first, or fix the path")
        if readonly and bind.get("ReadOnlyNonRecursive"):
            readonly = "top"  # bind-recursive=writable: the mounts below stay writable
        return {"type": "bind", "source": source, "destination": destination,
                "readonly": readonly, "propagation": propagation,
                "recursive": not bind.get("NonRecursive")}
    if kind == "volume":
        volume = api.get("VolumeOptions") or {}
        if not source and readonly:
            raise _config_error(api, "must not set ReadOnly mode when using anonymous volumes")
        subpath = volume.get("Subpath")
        if subpath and not source:
            raise _config_error(api, "must not set Subpath when using anonymous volumes")
        clean = os.path.normpath(subpath or ".")
        if subpath and (clean.startswith("/") or clean == ".." or clean.startswith("../")):
            raise _config_error(api, "subpath must be a relative path within the volume")
        driver = (volume.get("DriverConfig") or {}).get("Name") or "local"
        from .volumes import check_options, random_name, validate_name
        name = validate_name(source) if source else random_name()
        options = (volume.get("DriverConfig") or {}).get("Options")
        check_options(driver, options)
        spec = {"type": "volume", "name": name, "anonymous": not source,
                "destination": destination, "readonly": readonly,
                # a part of a volume is never filled from the image
                "copy": not volume.get("NoCopy") and not subpath,
                "labels": volume.get("Labels"), "volume_options": options, "driver": driver}
        if subpath:
            spec["subpath"] = subpath  # resolved inside the volume by init (mounts.op_bind)
        return spec
    if kind == "tmpfs":
        if source:
            raise _config_error(api, "field Source must not be specified")
        tmpfs = api.get("TmpfsOptions") or {}
        options = ["ro"] if readonly else []
        if tmpfs.get("Mode"):
            options.append("mode=%o" % tmpfs["Mode"])
        if tmpfs.get("SizeBytes"):
            options.append(_tmpfs_size(tmpfs["SizeBytes"]))
        return {"type": "tmpfs", "destination": destination, "options": options}
    raise _config_error(api, "mount type unknown")


def parse_volumes_from(text):
    """`--volumes-from CTR[:ro|rw]` -> (container, mode: None, "ro" or "rw")."""
    if not text:
        raise errors.UsageError("volumes-from specification cannot be an empty string")
    name, _, mode = text.partition(":")
    if mode and mode not in ("ro", "rw"):
        raise errors.UsageError("invalid mode: %s" % mode, "use CONTAINER, CONTAINER:ro or "
                                                           "CONTAINER:rw")
    return name, mode or None


def volumes_from(record, mode):
    """The volumes and bind mounts of another container's record, as run spec entries (their
    volumes are never filled again from this container's image: Docker copies only into a
    volume a container mounts first)."""
    mounts = []
    for m in record.get("Mounts") or []:
        readonly = (mode == "ro") if mode else not m.get("RW", True)
        if m.get("Type") == "volume" and m.get("Name"):
            mounts.append({"type": "volume", "name": m["Name"],
                           "anonymous": bool(m.get("Anonymous")),
                           "destination": m["Destination"], "readonly": readonly,
                           "copy": False})
        elif m.get("Type") == "bind":
            mounts.append({"type": "bind", "source": m["Source"],
                           "destination": m["Destination"], "readonly": readonly,
                           "propagation": m.get("Propagation") or "rprivate"})
    return mounts


def merge(explicit, inherited):
    """-v, --mount and --tmpfs mounts (two at one place: Docker's "Duplicate mount point"),
    then --volumes-from's where nothing explicit is (Docker lets -v win over those)."""
    seen = set()
    for m in explicit:
        place = os.path.normpath(m["destination"])
        if place in seen:
            raise errors.UsageError("Duplicate mount point: %s" % place)
        seen.add(place)
    out = list(explicit)
    for m in inherited:
        if os.path.normpath(m["destination"]) not in seen:
            seen.add(os.path.normpath(m["destination"]))
            out.append(m)
    return out


def image_volumes(image_config, mounts):
    """An anonymous volume for each of the image's VOLUME paths no mount covers (Docker's
    daemon does the same at create; it is filled from the image like any new volume)."""
    from .volumes import random_name
    taken = {os.path.normpath(m["destination"]) for m in mounts}
    added = []
    for path in sorted(image_config.get("Volumes") or {}):
        destination = os.path.normpath("/" + path.lstrip("/"))
        if destination not in taken and destination != "/":
            taken.add(destination)
            added.append({"type": "volume", "name": random_name(), "anonymous": True,
                          "destination": destination, "readonly": False, "copy": True})
    return added


def record_entry(m, volumes_root):
    """A run spec mount as a container record keeps it (Docker's inspect `Mounts` entry,
    plus Anonymous, which stays internal)."""
    if m.get("name"):
        # source: set by volumes.attach (a type=none volume's host directory); a tmpfs
        # volume's data has no place on disk, so it shows the volume's own directory
        return {"Type": "volume", "Name": m["name"],
                "Source": m.get("source") or os.path.join(volumes_root, m["name"], "_data"),
                "Destination": m["destination"], "Driver": m.get("driver") or "local",
                "Mode": m.get("mode", ""), "RW": not m.get("readonly"), "Propagation": "",
                "Anonymous": bool(m.get("anonymous"))}
    if m["type"] == "bind":
        return {"Type": "bind", "Source": m["source"], "Destination": m["destination"],
                "Mode": m.get("mode", ""), "RW": not m.get("readonly"),
                "Propagation": m.get("propagation") or "rprivate"}
    return {"Type": m["type"], "Source": "", "Destination": m["destination"],
            "Mode": m.get("mode", ""), "RW": "ro" not in (m.get("options") or []),
            "Propagation": ""}


def gather(store, opts):
    """Every mount `run`/`create` was given (-v, --tmpfs, --mount, --volumes-from), checked
    before anything is made. -> (run spec entries, the API's mount objects of --mount)"""
    from .containers import find
    from .run import parse_tmpfs, parse_volume
    explicit = [parse_volume(v, store.volumes) for v in opts.volumes]
    api_mounts = []
    for value in opts.mounts:
        spec, api = parse_mount(value)
        explicit.append(spec)
        api_mounts.append(api)
    explicit += [parse_tmpfs(t) for t in opts.tmpfs]
    inherited = []
    for text in opts.volumes_from:
        name, mode = parse_volumes_from(text)
        inherited += volumes_from(find(store, name), mode)
    return merge(explicit, inherited), api_mounts
