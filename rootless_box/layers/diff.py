"""Layer tars from directories: an overlay upper dir (its changes), a copy-driver rootfs against
the layers it was copied from (changes found by comparing), or a whole tree (export).

Owns: turning a tree into a PAX tar (tarwrite.py writes it) with the owners, modes, times,
links, file capabilities and user xattrs it holds, and overlay whiteouts (0/0 character
devices, the opaque xattr) back into OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`: image-spec
layer.md). Runs inside the user namespace, where stat shows the container's ids and every
file is readable. Under a single-id mapping the owners come from the `user.rootlesscontainers`
record (owners.py), which itself stays out of the tar: it is how this host stores an owner,
not image content. With prune, an upper dir that is to become a layer's directory is made to
hold what its tar holds.
Must not: decide where tars go or unpack them (layers/unpack.py does).
"""

import errno
import os
import stat
import struct

from . import owners
from .tarwrite import (BLKTYPE, CHRTYPE, DIRTYPE, FIFOTYPE, LNKTYPE, REGTYPE, SYMTYPE,
                       TarWriter)

WHITEOUT_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"
_KEEP_XATTRS = ("user.", "security.capability")
# how this host keeps overlay state and owners (overlayfs with userxattr, fuse-overlayfs,
# the single-id owner record): never image content
_OVERLAY_XATTRS = ("user.overlay.", "trusted.overlay.")
_SKIP_XATTRS = ("user.overlay.", "user.fuseoverlayfs.", owners.XATTR)


def is_whiteout(st):
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path):
    try:
        return os.getxattr(path, owners.OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class Times:
    """What a layer's mtimes become: clamped to epoch (BuildKit's rewrite-timestamp, for
    SOURCE_DATE_EPOCH and the default of builds: an entry newer than epoch gets epoch), or
    all set to it (buildah's --timestamp). None instead of a Times keeps them (commit)."""

    def __init__(self, epoch, clamp=True):
        self.epoch = int(epoch)
        self.clamp = clamp

    def __call__(self, mtime):
        return mtime if self.clamp and mtime < self.epoch else self.epoch

    def __repr__(self):
        return "%s:%d" % ("clamp" if self.clamp else "set", self.epoch)


class TreeWriter:
    """Adds filesystem entries to a tar (tarwrite.py's pax writer), keeping hard links as
    links. times: a Times, or None to keep each entry's mtime (in whole seconds)."""

    def __init__(self, fileobj, times=None):
        self.tar = TarWriter(fileobj)
        self._times = times
        # (path, mtime) of each entry written: what write_upper(prune=True) sets on disk,
        # so that the layer's directory holds what its tar does
        self.mtimes = []
        self._links = {}
        self._own = (os.geteuid(), os.getegid())
        # what write_upper(prune=True) removes once the tar is written
        self.overlay_xattrs, self.sockets = [], []

    @property
    def size(self):
        """Bytes of tar written so far (all of it once closed)."""
        return self.tar.size

    def close(self):
        self.tar.close()

    def add(self, path, name, st=None):
        st = st or os.lstat(path)
        mode = st.st_mode
        names = _xattr_names(path)
        for xname in names:
            if xname.startswith(_OVERLAY_XATTRS) and xname != owners.OPAQUE_XATTR:
                self.overlay_xattrs.append((path, xname))
        if owners.XATTR in names:
            uid, gid = owners.read(path, st)
        else:  # owners.read without a record: one getxattr a file saved
            uid, gid = st.st_uid, st.st_gid
            if uid == self._own[0]:
                uid, gid = 0, (0 if gid == self._own[1] else gid)
        # whole seconds: a fractional mtime costs a PAX header per entry, to write and to read
        mtime = int(st.st_mtime)
        if self._times is not None:
            mtime = self._times(mtime)
        self.mtimes.append((path, mtime))
        common = {"mode": stat.S_IMODE(mode), "uid": uid, "gid": gid,
                  "mtime": mtime, "xattrs": _xattrs(path, names)}
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self._links:
                self.tar.entry(name, LNKTYPE, linkname=self._links[key], **common)
                return
            if st.st_nlink > 1:
                self._links[key] = name
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                self.tar.entry(name, REGTYPE, size=st.st_size, **common)
                self.tar.file(fd, st.st_size)
            finally:
                os.close(fd)
            return
        if stat.S_ISDIR(mode):
            self.tar.entry(name if name.endswith("/") else name + "/", DIRTYPE, **common)
        elif stat.S_ISLNK(mode):
            self.tar.entry(name, SYMTYPE, linkname=os.readlink(path), **common)
        elif stat.S_ISFIFO(mode):
            self.tar.entry(name, FIFOTYPE, **common)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            self.tar.entry(name, CHRTYPE if stat.S_ISCHR(mode) else BLKTYPE,
                           major=os.major(st.st_rdev), minor=os.minor(st.st_rdev), **common)
        elif stat.S_ISSOCK(mode):
            self.sockets.append(path)  # sockets do not go into layers

    def add_marker(self, name):
        """An empty regular file: how OCI writes whiteouts."""
        self.tar.entry(name, REGTYPE, mode=0o600,
                       mtime=self._times(0) if self._times is not None else 0)


def _xattr_names(path):
    try:
        return os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()


def _xattrs(path, names=None):
    if names is None:
        names = _xattr_names(path)
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


def write_upper(upper, fileobj, mountpoints=(), lowers=None, times=None, prune=False):
    """The changes an overlay upper dir holds, as an OCI layer; what exists only to mount onto
    (mount_leftovers: mountpoints, the directories made or copied up for them; lowers are the
    layers below, topmost first) is left out, as Docker leaves out its init layer. times: see
    TreeWriter; with times, .pyc headers are kept valid (fresh_pyc_header). Returns the entry
    count. prune: also make upper hold what the tar holds and
    no more, as unpacking the tar would make it (it is to become the layer's directory): the
    left-out entries and sockets removed, overlayfs' own xattrs but the opaque mark removed,
    every entry's mtime the tar's."""
    writer = TreeWriter(fileobj, times)
    skip = mount_leftovers(upper, mountpoints, LowerView(lowers) if lowers else None)
    count = 0
    for rel, path, st in walk(upper):
        if rel in skip:
            continue
        if is_whiteout(st):
            writer.add_marker(_whiteout_name(rel))
        else:
            # before the .pyc's entry is written: the tar gets the header the file has
            if times is not None and is_timed_pyc(rel, st) and fresh_pyc_header(path, times):
                st = os.lstat(path)  # the write gave it a new mtime, which the tar gets
            writer.add(path, rel, st)
            if stat.S_ISDIR(st.st_mode) and is_opaque(path):
                writer.add_marker(rel + "/" + OPAQUE_NAME)
        count += 1
    writer.close()
    if prune:
        # the tar has no entry for the top itself: an unpacked layer's top has no xattrs
        for name in _xattr_names(upper):
            if name.startswith(_OVERLAY_XATTRS):
                writer.overlay_xattrs.append((upper, name))
        for path, name in writer.overlay_xattrs:
            try:
                os.removexattr(path, name, follow_symlinks=False)
            except OSError as exc:  # a hard link's other name had it removed already
                if exc.errno != errno.ENODATA:
                    raise
        gone = [os.path.join(upper, rel) for rel in skip] + writer.sockets
        # deepest first: a left-out directory holds nothing but left-out entries
        for path in sorted(gone, key=lambda p: p.count("/"), reverse=True):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        # then every entry gets the mtime its tar entry has (whole seconds, the build's
        # clamp): removals above changed their directories', and a layer unpacked from the
        # tar elsewhere must look the same
        for path, mtime in writer.mtimes:
            os.utime(path, (mtime, mtime), follow_symlinks=False)
    return count


def is_timed_pyc(rel, st):
    """Whether entry rel of a layer is a .pyc whose header fresh_pyc_header may rewrite."""
    return rel.endswith(".pyc") and "__pycache__/" in rel and stat.S_ISREG(st.st_mode)


def fresh_pyc_header(path, times):
    """Keep a timestamp-checked .pyc file of a layer valid under its mtime clamp: a .pyc
    (path, in an overlay upper dir) records its source's mtime and size in its header (PEP
    552: flags 0), and when that source is in the upper dir too, with the mtime recorded,
    the header gets the mtime the clamp will give the source. Else every import of it would
    find it stale, and compile and write it again (in every later step and container).
    Hash-checked .pyc files (what Python writes when SOURCE_DATE_EPOCH is set) need
    nothing. Runs inside the user namespace, as the layer's tar is written (write_upper,
    before the .pyc's entry: one walk for both). Returns whether the header was changed."""
    cache_dir, _, name = path.rpartition("/")
    source = os.path.join(os.path.dirname(cache_dir), name.split(".", 1)[0] + ".py")
    try:
        src = os.lstat(source)
    except OSError:
        return False
    if not stat.S_ISREG(src.st_mode):
        return False
    mtime = int(src.st_mtime)
    clamped = times(mtime)
    if clamped == mtime:
        return False
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.pread(fd, 16, 0)
        if len(head) == 16 and struct.unpack_from("<I", head, 4)[0] == 0 and \
                struct.unpack_from("<II", head, 8) == (mtime & 0xFFFFFFFF,
                                                       src.st_size & 0xFFFFFFFF):
            os.pwrite(fd, struct.pack("<I", clamped & 0xFFFFFFFF), 8)
            return True
    finally:
        os.close(fd)
    return False


def claim_new(top, lowers, uid, gid, upper=True):
    """Give uid:gid (in the user.rootlesscontainers record) to every file and directory
    below top that a step run as a non-root user under the single-id mapping created: on
    disk it belongs to root in the container, the one id there is. New means absent from
    the layers below (lowers, topmost first), or there of another type, or a directory made
    opaque (deleted and made again); an id a chown during the step recorded is kept (one it
    left unchanged is NOOP_ID there, and filled in), and a copied-up file keeps its owner,
    as under Docker. Symlinks, FIFOs and devices cannot carry the record
    (owners.py). top: an overlay upper dir, or with upper=False a copy-driver rootfs, where
    everything the layers had is there too. Runs inside the user namespace (root there
    writes user xattrs whatever the mode). Returns the number of entries claimed."""
    view = LowerView(lowers)
    fresh = set()  # directories created by the step: what is below them is new too
    claimed = 0
    for rel, path, st in walk(top):
        if is_whiteout(st) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            continue
        parent = rel.rpartition("/")[0]
        if parent in fresh:
            new = True
        else:
            old = view.lstat(rel)
            new = old is None or stat.S_IFMT(old.st_mode) != stat.S_IFMT(st.st_mode) or (
                upper and stat.S_ISDIR(st.st_mode) and is_opaque(path))
        if not new:
            continue
        if stat.S_ISDIR(st.st_mode):
            fresh.add(rel)
        current = owners.recorded(path)
        if current is None:
            owners.record(path, uid, gid)
        elif owners.NOOP_ID in current:
            owners.record(path, uid if current[0] == owners.NOOP_ID else current[0],
                          gid if current[1] == owners.NOOP_ID else current[1])
        else:
            continue
        claimed += 1
    return claimed


def write_tree(top, fileobj, times=None):
    """A whole tree (export, a flattened rootfs) as a tar; whiteouts are left out."""
    writer = TreeWriter(fileobj, times)
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

    def read_text(self, rel, limit=1 << 20):
        """A regular file of the merged view (at most limit bytes), never through a symlink:
        a hostile image's /etc/passwd -> /host/file or -> /dev/zero reads as absent."""
        for layer in self.layers:
            found = self.lookup(layer, rel.split("/"))
            if found is None:
                continue
            if not isinstance(found, os.stat_result) or not stat.S_ISREG(found.st_mode):
                return ""
            try:
                fd = os.open(os.path.join(layer, rel),
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                return ""
            with os.fdopen(fd, "rb") as f:
                return f.read(limit).decode("utf-8", "replace")
        return ""

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


def write_changes(rootfs, lower_layers, fileobj, mountpoints=(), times=None):
    """The changes a copy-driver rootfs holds against the layers it was copied from: changed
    or new entries, and whiteouts for what disappeared. Metadata comparison (type, mode,
    owner, size, mtime), as Podman's naive diff does; `cp -a` kept the times."""
    view = LowerView(lower_layers)
    writer = TreeWriter(fileobj, times)
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
