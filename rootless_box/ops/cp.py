"""The `cp` use case: files between a container (running, created or stopped) and the host,
or a tar stream on stdin/stdout.

Owns: Docker's copy rules (docker/cli container/cp.go and moby's pkg/archive copy.go): which
side is the container (`CONTAINER:PATH`, an absolute or `./` path is local), a file into an
existing directory or to a new name, a directory to a new name, `SRC/.` for a directory's
contents, a trailing `/` that asserts a directory, `-L` following a symlink source, `-a`
keeping the source's uid/gid inside the container (without it, what lands in a container
belongs to its root, and what lands on the host to the user), and Docker's error texts
("Could not find the file ... in container ...", "cannot copy directory", ...; every failure
exits 1 as Docker's CLI does). How the container's files are reached: a running container
is joined (userns/join.run_in_target), a stopped one has its overlay mounted in a user
namespace (userns/fsaccess.run_in_rootfs: writes go to its own upper dir, never to a lower
layer); in both, the work inside runs chrooted in the container's root, so a container
symlink (`/etc/x -> ../../../host`) resolves inside it. Data crosses in a pipe between that
work and a helper on the host side (or stdin/stdout directly).
Must not: print, call syscalls (userns/ does), or trust a tar read from stdin (it is
extracted by layers/cptar.py's hostile-tar unpacker).
"""

import os
import posixpath
import stat
import time

from .. import errors
from ..layers import cptar
from ..securepath import resolve_in_root
from ..userns import fsaccess, join
from . import containers, images
from .exec import open_container
from .storage import open_store


class CpOptions:
    """What `cp` was asked for; commands/cp.py fills it from the command line."""

    def __init__(self, source, destination, archive=False, follow_link=False):
        self.source = source
        self.destination = destination
        self.archive = archive
        self.follow_link = follow_link


def _fail(message, hint=None):
    # Docker's CLI exits 1 on every failure of cp, its own or the daemon's
    return errors.BoxError(message, hint, exit_code=1)


def _not_found(path, container):
    return errors.NotFound("Could not find the file %s in container %s" % (path, container),
                           "check the path with 'rootless-box exec %s ls' or export"
                           % container, exit_code=1)


def split_arg(arg):
    """(container or None, path): docker/cli's splitCpArg. An absolute path, or one whose
    part before ':' starts with '.', is local (`./file:name.txt`)."""
    if arg.startswith("/"):
        return None, arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return None, arg
    return container, path


def specifies_current_dir(path):
    return posixpath.basename(path) == "."


def asserts_directory(path):
    return path.endswith("/") or specifies_current_dir(path)


def plan_top(src_is_dir, src_top, dst):
    """The name the copy's top entry takes in the extraction directory (moby's
    PrepareArchiveCopy). dst: {"exists", "is_dir", "asserts_dir", "base"}. A destination that
    is an existing directory receives the source under its own name (or, for "." from
    `SRC/.`, its contents); anything else is renamed to the destination's base name and
    extracted into its parent."""
    if dst["exists"] and dst["is_dir"]:
        return src_top
    if dst["exists"] and src_is_dir:
        raise _fail("cannot copy directory",
                    "the destination exists and is not a directory: copy into a directory, "
                    "or to a new name")
    if not dst["exists"] and not src_is_dir and dst["asserts_dir"]:
        raise _fail("no such directory",
                    "the destination ends with '/' but does not exist: create the directory "
                    "first, or leave out the trailing '/'")
    return dst["base"]


def _container_path(path):
    """(absolute, cleaned) container path; the absolute form keeps a trailing '/' or '/.'
    (archive.PreserveTrailingDotOrSeparator), which the cleaned one drops."""
    absolute = path if path.startswith("/") else "/" + path
    return absolute, posixpath.normpath(absolute).replace("//", "/")


# -- inside the container (chrooted in its root: imports are done, "/" is its root) ------

def _source_inside(path, label, follow):
    """(path in this root, is_dir, top name) of a copy's source; the final component is
    followed only with -L or a trailing '/' or '/.' (moby's ResolvePath)."""
    absolute, clean = _container_path(path)
    trailing = asserts_directory(absolute)
    if clean == "/":
        found, top = "/", "."
    else:
        found = resolve_in_root("/", clean, follow_final=trailing)
        top = "." if specifies_current_dir(absolute) else posixpath.basename(clean)
    try:
        st = os.lstat(found)
        if follow and os.path.islink(found):
            found = resolve_in_root("/", clean, follow_final=True)
            st = os.lstat(found)
    except FileNotFoundError:
        raise _not_found(path, label) from None
    except NotADirectoryError:
        raise _fail("cannot copy %s from container %s: not a directory" % (path, label))
    is_dir = stat.S_ISDIR(st.st_mode)
    if trailing and not is_dir:
        raise _fail("cannot copy %s from container %s: not a directory" % (path, label),
                    "leave out the trailing '/' to copy a file")
    return found, is_dir, top


def _send_inside(path, label, follow, dst, out_fd):
    """Copy-out: the source as a tar on out_fd, named as dst (the host's destination, or None
    for a stream) needs."""
    found, is_dir, top = _source_inside(path, label, follow)
    if dst is not None:
        top = plan_top(is_dir, top, dst)
    return {"size": cptar.write_source(found, top, out_fd), "is_dir": is_dir}


def _receive_inside(path, label, src, owners, in_fd):
    """Copy-in: the tar on in_fd extracted at the container path. src: {"is_dir", "top"} of
    a host source, or None for a tar stream from stdin (which must go into a directory).
    owners: "keep" (-a) or "root"."""
    absolute, clean = _container_path(path)
    # the final component is followed: a symlink to a directory receives into it (moby's
    # containerExtractToDir), always inside this root
    found = resolve_in_root("/", clean)
    try:
        exists, is_dir = True, stat.S_ISDIR(os.lstat(found).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        exists, is_dir = False, False
    rename = None
    if src is None:
        if not exists:
            raise _not_found(path, label)  # dockerd's answer to a missing extraction point
        if not is_dir:
            raise _fail('destination "%s:%s" must be a directory' % (label, path),
                        "a tar stream from stdin is extracted into an existing directory")
        into, shown = found, clean
    else:
        dst = {"exists": exists, "is_dir": is_dir, "asserts_dir": asserts_directory(absolute),
               "base": posixpath.basename(found)}
        top = plan_top(src["is_dir"], src["top"], dst)
        if top != src["top"]:
            rename = (src["top"], top)
        if exists and is_dir:
            into, shown = found, clean
        else:
            into, shown = posixpath.dirname(found), posixpath.dirname(clean)
            if not os.path.isdir(into):
                raise _not_found(shown, label)
    owner = (0, 0) if owners == "root" else None
    return {"size": cptar.extract(in_fd, into, keep_owners=owners == "keep", owner=owner,
                                  rename=rename, shown_as=shown)}


# -- the host side --------------------------------------------------------------------------

def host_source(path, follow):
    """(host path to read, is_dir, top name) of a local source (moby's CopyInfoSourcePath)."""
    absolute = os.path.abspath(path)
    trailing = asserts_directory(path) or path == "."
    if follow or trailing:
        found = os.path.realpath(absolute)
    else:
        found = os.path.join(os.path.realpath(os.path.dirname(absolute)),
                             os.path.basename(absolute))
    try:
        st = os.lstat(found)
    except FileNotFoundError:
        raise _fail("lstat %s: no such file or directory" % absolute) from None
    except NotADirectoryError:
        raise _fail("lstat %s: not a directory" % absolute) from None
    is_dir = stat.S_ISDIR(st.st_mode)
    if trailing and not is_dir:
        raise _fail("lstat %s: not a directory" % absolute)
    if specifies_current_dir(path) or path == "." or absolute == "/":
        top = "."
    else:
        top = os.path.basename(absolute)
    return found, is_dir, top


def host_destination(path):
    """{"exists", "is_dir", "asserts_dir", "base", "path"} of a local destination, its final
    symlinks followed (moby's CopyInfoDestinationPath); its parent must exist."""
    absolute = os.path.abspath(path)
    parent = os.path.dirname(absolute)
    if not os.path.exists(parent):
        raise _fail('invalid output path: directory "%s" does not exist' % parent)
    found = absolute
    for _ in range(11):
        if not os.path.islink(found):
            break
        found = os.path.normpath(os.path.join(os.path.dirname(found), os.readlink(found)))
    else:
        raise _fail("too many symlinks in " + absolute)
    exists = os.path.lexists(found)
    if not exists:
        if not os.path.exists(os.path.dirname(found)):
            raise _fail("lstat %s: no such file or directory" % os.path.dirname(found))
        if not os.path.isdir(os.path.dirname(found)):
            raise _fail("not a directory", "the parent of %s is not a directory" % found)
    return {"exists": exists, "is_dir": os.path.isdir(found),
            "asserts_dir": asserts_directory(path) or path == ".",
            "base": os.path.basename(found), "path": found}


def _host_extract(into, in_fd):
    return cptar.extract(in_fd, into)


def _host_send(found, top, out_fd):
    return cptar.write_source(found, top, out_fd)


# -- reaching the container -------------------------------------------------------------------

class _Reach:
    """A container's files: joined when it runs, its rootfs mounted in a user namespace when
    it does not."""

    def __init__(self, store, idmap, name, writable):
        self.idmap = idmap
        self.target = None
        self.rootfs = None
        self.mountpoint = None
        self._store = store
        try:
            record = containers.find(store, name)
        except errors.NotFound:
            raise errors.NotFound("No such container: %s" % name, exit_code=1) from None
        record = containers.refresh_state(store, record)
        if record["State"].get("Status") in containers.LIVE_STATES:
            try:
                self.target = open_container(record)
            except errors.Conflict:
                # it ended meanwhile: its files are reached as a stopped container's
                record = containers.refresh_state(store, containers.find(store, record["Id"]))
        if self.target is None:
            self.rootfs = self._rootfs(record, writable)
        self.readonly_mounts = [m.get("Destination", "") for m in record.get("Mounts") or ()
                                if not m.get("RW", True)]

    def refuse_readonly(self, path):
        """Docker's refusal of a copy into a read-only volume or bind mount (checked on the
        path as given, before anything is written)."""
        clean = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
        for destination in self.readonly_mounts:
            top = destination.rstrip("/") or "/"
            if clean == top or clean.startswith(top.rstrip("/") + "/"):
                raise _fail("mounted volume is marked read-only",
                            "copy into another path, or recreate the container with the "
                            "volume writable")

    def _rootfs(self, record, writable):
        cdir = self._store.container_dir(record["Id"])
        try:
            spec = containers.load_spec(self._store, record)
        except errors.Conflict:
            spec = {}
        rootfs = dict(spec.get("rootfs") or {})
        # its volumes and bind mounts, where it has them (a tmpfs held nothing once stopped)
        rootfs["binds"] = [(m["source"], m["destination"], bool(m.get("readonly")))
                           for m in spec.get("mounts") or ()
                           if m.get("type") in ("volume", "bind") and m.get("source")]
        if not rootfs.get("lower"):
            # a foreground run keeps no spec: the image's layers, as export finds them
            try:
                lower = images.resolve(self._store, record["Image"]).layer_dirs()
            except errors.NotFound:
                raise _fail("the image of container %s no longer exists" % record["Name"],
                            "start the container, then copy") from None
            rootfs = {"driver": record.get("Driver", "overlay"), "lower": lower}
        rootfs.setdefault("upper", os.path.join(cdir, "upper"))
        rootfs.setdefault("work", os.path.join(cdir, "work"))
        if rootfs.get("driver") == "copy":
            rootfs["merged"] = os.path.join(cdir, "rootfs")
        else:
            self.mountpoint = self._store.mkdtemp("cp")
            rootfs["mountpoint"] = self.mountpoint
        rootfs["writable"] = writable
        return rootfs

    def call(self, func, *args):
        if self.target is not None:
            return join.run_in_target(self.target, func, *args)
        return fsaccess.run_in_rootfs(func, self.idmap, self.rootfs, *args)

    def close(self):
        if self.target is not None:
            self.target.close()
        if self.mountpoint:
            self._store.remove(self.mountpoint)
            self.mountpoint = None


def _with_peer(reach, peer_func, peer_args, inside_func, inside_args, direction):
    """inside_func in the container and peer_func on the host, joined by a pipe: direction
    "out" (the container writes), "in" (the host writes). The pipe's fd is the last argument
    of both. A failure on one side breaks the pipe of the other: the producer's failure is
    the cause unless it is that broken pipe."""
    read_fd, write_fd = os.pipe()
    if direction == "out":
        peer = fsaccess.start_peer(peer_func, *peer_args, read_fd, close=(write_fd,))
        os.close(read_fd)
        mine = write_fd
    else:
        peer = fsaccess.start_peer(peer_func, *peer_args, write_fd, close=(read_fd,))
        os.close(write_fd)
        mine = read_fd
    inside_error = peer_error = None
    result = peer_result = None
    try:
        result = reach.call(inside_func, *inside_args, mine)
    except errors.BoxError as exc:
        inside_error = exc
    finally:
        # the partner sees EOF (or a broken pipe) only once every copy of this end is shut
        os.close(mine)
    try:
        peer_result = peer.finish()
    except errors.BoxError as exc:
        peer_error = exc
    producer, consumer = ((inside_error, peer_error) if direction == "out"
                          else (peer_error, inside_error))
    cause = producer if producer is not None and not _broken_pipe(producer) else \
        consumer or producer
    if cause is not None:
        raise cause
    return result, peer_result


def _broken_pipe(exc):
    return "Broken pipe" in exc.message


def copy(opts):
    """Run the copy; returns {"size": bytes copied, "to": what received them} (for Docker's
    'Successfully copied' line)."""
    if not opts.source:
        raise _fail("source can not be empty")
    if not opts.destination:
        raise _fail("destination can not be empty")
    src_container, src_path = split_arg(opts.source)
    dst_container, dst_path = split_arg(opts.destination)
    if src_container and dst_container:
        raise _fail("copying between containers is not supported",
                    "copy to the host first, then into the other container")
    if not src_container and not dst_container:
        raise _fail("must specify at least one container source",
                    "name the container side as CONTAINER:PATH")
    from ..userns import idmap as idmaps
    idmap = idmaps.plan()
    store = open_store(idmap)
    try:
        if src_container:
            return _copy_out(store, idmap, src_container, src_path, dst_path, opts)
        return _copy_in(store, idmap, opts.source, dst_container, dst_path, opts)
    except errors.BoxError as exc:
        if exc.exit_code == 125:
            exc.exit_code = 1
        raise


def _copy_out(store, idmap, name, path, dest, opts):
    if not path:
        raise _fail("Path cannot be empty")
    dst = None if dest == "-" else host_destination(dest)
    reach = _Reach(store, idmap, name, writable=False)
    try:
        if dst is None:
            import sys
            sys.stdout.flush()
            result = reach.call(_send_inside, path, name, opts.follow_link, None, 1)
            return {"size": result["size"], "to": "-"}
        into = dst["path"] if dst["exists"] and dst["is_dir"] else os.path.dirname(dst["path"])
        result, _ = _with_peer(reach, _host_extract, (into,), _send_inside,
                               (path, name, opts.follow_link, dst), "out")
        return {"size": result["size"], "to": dest}
    finally:
        reach.close()


def _copy_in(store, idmap, source, name, path, opts):
    if not path:
        raise _fail("Path cannot be empty")
    owners = "keep" if opts.archive else "root"
    if source == "-":
        reach = _Reach(store, idmap, name, writable=True)
        try:
            reach.refuse_readonly(path)
            result = reach.call(_receive_inside, path, name, None, owners, 0)
        finally:
            reach.close()
        return {"size": result["size"], "to": "%s:%s" % (name, path)}
    found, is_dir, top = host_source(source, opts.follow_link)
    reach = _Reach(store, idmap, name, writable=True)
    try:
        reach.refuse_readonly(path)
        result, _ = _with_peer(reach, _host_send, (found, top), _receive_inside,
                               (path, name, {"is_dir": is_dir, "top": top}, owners), "in")
    finally:
        reach.close()
    return {"size": result["size"], "to": "%s:%s" % (name, path)}


# -- the Engine API's archive endpoints (GET, HEAD, PUT /containers/{id}/archive) ------------

# Go's os.FileMode type bits (moby's PathStat.Mode is one)
_GO_MODE = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
            (stat.S_ISSOCK, 1 << 24), (stat.S_ISBLK, 1 << 26),
            (stat.S_ISCHR, (1 << 26) | (1 << 21)))


def go_file_mode(mode):
    """A st_mode as Go's os.FileMode: permission bits, type bits, setuid/setgid/sticky."""
    value = mode & 0o777
    for test, bit in _GO_MODE:
        if test(mode):
            value |= bit
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22),
                      (stat.S_ISVTX, 1 << 20)):
        if mode & flag:
            value |= bit
    return value


def _stat_inside(path, label):
    """moby's statPath: the entry (a final symlink not followed), its link's target
    resolved inside this root."""
    absolute, clean = _container_path(path)
    found = "/" if clean == "/" else resolve_in_root("/", clean, follow_final=False)
    try:
        st = os.lstat(found)
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(path, label) from None
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = resolve_in_root("/", clean, follow_final=True)
    seconds, nanos = divmod(st.st_mtime_ns, 1000000000)
    mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        (".%09d" % nanos).rstrip("0").rstrip(".") + "Z"
    return {"name": posixpath.basename(clean) or "/", "size": st.st_size,
            "mode": go_file_mode(st.st_mode), "mtime": mtime, "linkTarget": target}


def _reach_for_api(name, writable):
    from ..userns import idmap as idmaps
    idmap = idmaps.plan()
    return _Reach(open_store(idmap), idmap, name, writable)


def path_stat(name, path):
    """The X-Docker-Container-Path-Stat of a container path (HEAD and GET archive)."""
    reach = _reach_for_api(name, writable=False)
    try:
        return reach.call(_stat_inside, path, name)
    finally:
        reach.close()


def archive_out(name, path, out_fd):
    """GET archive: the path as a tar on out_fd, its top entry named as the path's base (or
    "." for `DIR/.`), as `cp CONTAINER:PATH -` writes it. -> {"size", "is_dir"}"""
    reach = _reach_for_api(name, writable=False)
    try:
        return reach.call(_send_inside, path, name, False, None, out_fd)
    finally:
        reach.close()


def archive_in(name, path, in_fd, keep_owners=False):
    """PUT archive: the tar on in_fd extracted into the directory path (hostile entries
    refused, no directory and non-directory overwriting each other), as `cp - CONTAINER:DIR`
    does; keep_owners: copyUIDGID (the headers' ids), else the container's root."""
    reach = _reach_for_api(name, writable=True)
    try:
        reach.refuse_readonly(path)
        return reach.call(_receive_inside, path, name, None,
                          "keep" if keep_owners else "root", in_fd)
    finally:
        reach.close()
