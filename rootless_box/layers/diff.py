"""Layer tars from directories: an overlay upper dir (its changes), a copy-driver rootfs against
the layers it was copied from (changes found by comparing), or a whole tree (export).

Owns: turning a tree into a PAX tar with the owners, modes, times, links, file capabilities
and user xattrs it holds, and overlay whiteouts (0/0 character devices, the opaque xattr) back
into OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`: image-spec layer.md). Runs inside the user
namespace, where stat shows the container's ids and every file is readable. Under a single-id
mapping the owners come from the `user.rootlesscontainers` record (owners.py), which itself
stays out of the tar: it is how this host stores an owner, not image content.
Must not: decide where tars go or unpack them (layers/unpack.py does).
"""

import os
import stat
import tarfile

from . import owners
from .unpack import OPAQUE_XATTR

COPY_BUFFER = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"
_KEEP_XATTRS = ("user.", "security.capability")
_SKIP_XATTRS = ("user.overlay.", owners.XATTR)


def is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path):
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class _Position:
    """tarfile's mode "w" asks its file where it is; a pipe cannot say, so count."""

    def __init__(self, fileobj):
        self._fileobj = fileobj
        self._pos = 0

    def write(self, data):
        self._pos += len(data)
        return self._fileobj.write(data)

    def tell(self):
        return self._pos

    def flush(self):
        self._fileobj.flush()


class TreeWriter:
    """Adds filesystem entries to a tar, keeping hard links as links."""

    def __init__(self, fileobj):
        fileobj = _Position(fileobj)
        # mode "w" on a buffered file, not "w|": the stream mode grows one bytes buffer by
        # concatenation, quadratic in small entries (1.5 s for 10,000 files)
        self.tar = tarfile.open(fileobj=fileobj, mode="w", format=tarfile.PAX_FORMAT,
                                copybufsize=COPY_BUFFER)
        self._links = {}

    def close(self):
        self.tar.close()

    def add(self, path, name, st=None):
        st = st or os.lstat(path)
        info = tarfile.TarInfo(name)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = owners.read(path, st)
        info.uname = info.gname = ""
        # whole seconds: a fractional mtime costs a PAX header per entry, to write and to read
        info.mtime = int(st.st_mtime)
        xattrs = _xattrs(path)
        if xattrs:
            info.pax_headers = {"SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                                for k, v in xattrs.items()}
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                info.type = tarfile.LNKTYPE
                info.linkname = self._links[key]
                self.tar.addfile(info)
                return
            if st.st_nlink > 1:
                self._links[key] = name
            info.size = st.st_size
            with open(path, "rb") as f:
                self.tar.addfile(info, f)
            return
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return  # sockets do not go into layers
        self.tar.addfile(info)

    def add_marker(self, name):
        """An empty regular file: how OCI writes whiteouts."""
        info = tarfile.TarInfo(name)
        info.mode = 0o600
        self.tar.addfile(info)


def _xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    result = {}
    for name in names:
        if name.startswith(_KEEP_XATTRS) and not name.startswith(_SKIP_XATTRS):
            try:
                result[name] = os.getxattr(path, name, follow_symlinks=False)
            except OSError:
                continue
    return result


def walk(top):
    """(relative name, path, lstat) for everything below top, parents first, sorted (so the
    same tree gives the same tar); symlinks are entries, never followed."""
    stack = [("", top)]
    while stack:
        rel, path = stack.pop()
        with os.scandir(path) as entries:
            children = sorted(entries, key=lambda e: e.name, reverse=True)
        for entry in children:
            child_rel = entry.name if not rel else rel + "/" + entry.name
            st = entry.stat(follow_symlinks=False)
            yield child_rel, entry.path, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((child_rel, entry.path))


def _whiteout_name(rel):
    parent, _, base = rel.rpartition("/")
    return (parent + "/" if parent else "") + WHITEOUT_PREFIX + base


def _placeholder(st, path):
    """An empty file or directory: what is created in a container only to mount onto."""
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    return stat.S_ISDIR(st.st_mode) and not os.listdir(path)


def mount_leftovers(top, mountpoints, view=None, upper=True):
    """The entries below top that exist only because something was mounted onto them: each
    mountpoint (relative path) that is an empty placeholder, and each directory on the way to
    one that holds nothing else and is new (not in view, the layers below) or, in an overlay
    upper dir, copied up unchanged (same mode and owner, not opaque). In a copy-driver rootfs
    (upper=False) only a placeholder that is new counts: what the layers had is no change."""
    points = {m.strip("/") for m in mountpoints if m.strip("/")}
    candidates = set(points)
    for point in points:
        parts = point.split("/")
        candidates.update("/".join(parts[:i]) for i in range(1, len(parts)))
    leftovers = set()
    # deepest first: a directory is judged once everything below it was
    for rel in sorted(candidates, key=lambda r: r.count("/"), reverse=True):
        path = os.path.join(top, rel)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        old = view.lstat(rel) if view is not None else None
        if rel in points and (upper or old is None) and _placeholder(st, path):
            leftovers.add(rel)
            continue
        if not stat.S_ISDIR(st.st_mode) or is_opaque(path) or any(
                rel + "/" + name not in leftovers for name in os.listdir(path)):
            continue
        if old is None or (stat.S_ISDIR(old.st_mode) and (old.st_mode, old.st_uid, old.st_gid)
                           == (st.st_mode, st.st_uid, st.st_gid)):
            leftovers.add(rel)
    return leftovers


def write_upper(upper, fileobj, mountpoints=(), lowers=None):
    """The changes an overlay upper dir holds, as an OCI layer; what exists only to mount onto
    (mount_leftovers: mountpoints, the directories made or copied up for them; lowers are the
    layers below, topmost first) is left out, as Docker leaves out its init layer. Returns the
    entry count."""
    writer = TreeWriter(fileobj)
    skip = mount_leftovers(upper, mountpoints, LowerView(lowers) if lowers else None)
    count = 0
    for rel, path, st in walk(upper):
        if rel in skip:
            continue
        if is_whiteout(st):
            writer.add_marker(_whiteout_name(rel))
        else:
            writer.add(path, rel, st)
            if stat.S_ISDIR(st.st_mode) and is_opaque(path):
                writer.add_marker(rel + "/" + OPAQUE_NAME)
        count += 1
    writer.close()
    return count


def write_tree(top, fileobj):
    """A whole tree (export, a flattened rootfs) as a tar; whiteouts are left out."""
    writer = TreeWriter(fileobj)
    count = 0
    for rel, path, st in walk(top):
        if is_whiteout(st):
            continue
        writer.add(path, rel, st)
        count += 1
    writer.close()
    return count


# -- the copy driver: changes found by comparison ---------------------------------------------

class LowerView:
    """The merged view of read-only layer directories (topmost first), with whiteouts and
    opaque directories applied, answering lstat by relative path."""

    def __init__(self, layers):
        self.layers = layers

    def lstat(self, rel):
        found = self.locate(rel)
        return found and found[1]

    def locate(self, rel):
        """(path in the layer that shows it, its stat), or None."""
        parts = rel.split("/")
        for layer in self.layers:
            found = self.lookup(layer, parts)
            if found is _HIDDEN:
                return None
            if found is not None:
                return os.path.join(layer, rel), found
        return None

    def lookup(self, layer, parts):
        """A stat, None (not in this layer: look below) or _HIDDEN (deleted by this layer)."""
        path = layer
        for i, part in enumerate(parts):
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return None
            if is_whiteout(st):
                return _HIDDEN
            if i < len(parts) - 1:
                if not stat.S_ISDIR(st.st_mode):
                    return _HIDDEN
                if is_opaque(path):
                    # below an opaque dir, only this layer counts
                    rest = os.path.join(path, *parts[i + 1:])
                    try:
                        inner = os.lstat(rest)
                    except (FileNotFoundError, NotADirectoryError):
                        return _HIDDEN
                    return _HIDDEN if is_whiteout(inner) else inner
            else:
                return st
        return None

    def names(self, rel):
        """The children visible in the merged view of directory rel. Each layer's rel is
        looked up one component at a time without following symlinks: a layer's symlink must
        never make the host's own directories show up here."""
        seen, hidden = set(), set()
        for layer in self.layers:
            if rel:
                found = self.lookup(layer, rel.split("/"))
                if found is None:
                    continue
                if found is _HIDDEN or not stat.S_ISDIR(found.st_mode):
                    break  # deleted or replaced by a non-directory here: nothing below shows
                path = os.path.join(layer, rel)
            else:
                path = layer
            with os.scandir(path) as entries:
                for entry in entries:
                    if entry.name in seen or entry.name in hidden:
                        continue
                    if is_whiteout(entry.stat(follow_symlinks=False)):
                        hidden.add(entry.name)
                    else:
                        seen.add(entry.name)
            if is_opaque(path):
                break
        return seen


_HIDDEN = object()


def _same(a, b, a_path, b_path):
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
        return False
    if a.st_mode != b.st_mode or owners.read(a_path, a) != owners.read(b_path, b):
        return False
    if stat.S_ISDIR(a.st_mode):
        return True
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def write_changes(rootfs, lower_layers, fileobj, mountpoints=()):
    """The changes a copy-driver rootfs holds against the layers it was copied from: changed
    or new entries, and whiteouts for what disappeared. Metadata comparison (type, mode,
    owner, size, mtime), as Podman's naive diff does; `cp -a` kept the times."""
    view = LowerView(lower_layers)
    writer = TreeWriter(fileobj)
    skip = mount_leftovers(rootfs, mountpoints, view, upper=False)
    count = 0
    present = set()
    for rel, path, st in walk(rootfs):
        present.add(rel)
        found = view.locate(rel)
        if rel in skip:
            continue
        if found is None or not _same(st, found[1], path, found[0]) or (stat.S_ISLNK(st.st_mode) and
                                                  os.readlink(path) != _readlink_view(view,
                                                                                      rel)):
            writer.add(path, rel, st)
            count += 1
    for rel in _removed(view, rootfs, present):
        writer.add_marker(_whiteout_name(rel))
        count += 1
    writer.close()
    return count


def list_changes(top, lower_layers, mountpoints=(), copy=False):
    """`diff`'s view of a container: [(kind, "/path")] sorted by path, kind A (added), C
    (changed) or D (deleted), as Docker's overlay changes read an upper dir: a whiteout is a
    deletion, an entry the layers below lack an addition, anything else (the directories
    holding a change among them) a change. copy: top is a copy-driver rootfs, compared with
    the layers by metadata as commit does. What exists only to be mounted onto is left out
    (mount_leftovers), as Docker leaves out its init layer."""
    view = LowerView(lower_layers)
    skip = mount_leftovers(top, mountpoints, view, upper=not copy)
    found, touched = [], []
    present = set()
    for rel, path, st in walk(top):
        present.add(rel)
        if rel in skip or any(rel.startswith(s + "/") for s in skip):
            continue
        below = view.locate(rel)
        if not copy:
            found.append(("D" if is_whiteout(st) else "A" if below is None else "C", rel))
        elif below is None:
            found.append(("A", rel))
        elif not _same(st, below[1], path, below[0]) or (
                stat.S_ISLNK(st.st_mode) and os.readlink(path) != _readlink_view(view, rel)):
            found.append(("C", rel))
        elif stat.S_ISDIR(st.st_mode) and st.st_mtime_ns != below[1].st_mtime_ns:
            touched.append(rel)
    if copy:
        found += [("D", rel) for rel in _removed(view, top, present)]
        # a directory whose entries changed, as the overlay's copy-up shows it; not one
        # whose only new entries are mount placeholders
        found += [("C", rel) for rel in touched
                  if any(c[1].startswith(rel + "/") for c in found)]
    return [(kind, "/" + rel) for kind, rel in sorted(found, key=lambda c: c[1])]


def _readlink_view(view, rel):
    for layer in view.layers:
        try:
            return os.readlink(os.path.join(layer, rel))
        except OSError:
            continue
    return None


def _removed(view, rootfs, present):
    """Paths the lower view has and the rootfs lost; below a removed directory only the
    directory itself is reported."""
    stack = [""]
    while stack:
        rel = stack.pop()
        for name in sorted(view.names(rel)):
            child = rel + "/" + name if rel else name
            if child not in present:
                yield child
            elif os.path.isdir(os.path.join(rootfs, child)) and \
                    not os.path.islink(os.path.join(rootfs, child)):
                stack.append(child)
