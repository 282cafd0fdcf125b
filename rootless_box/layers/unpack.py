"""Unpack a (decompressed) layer or rootfs tar stream into a directory, treating the tar as hostile.

Owns: extracting every entry type a layer may hold, keeping every write inside the destination
(names cleaned and resolved with securepath, final components never followed), the OCI
image-spec whiteouts (layer.md) turned into overlayfs ones (0/0 character devices and the
`user.overlay.opaque` xattr of an overlay mounted with `userxattr`), owners, modes, times and
`user.*` xattrs; under a single-id mapping the owners chown cannot give are recorded in the
`user.rootlesscontainers` xattr instead (owners.py).
Must not: seek in the stream, hold a file's content in memory, follow a symlink out of the
destination, create device nodes other than whiteouts, remove the destination on failure (the
caller does), or decompress (compression.py does).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import os
import shutil
import stat
import tarfile
import zlib

from ..errors import BadArchive, StoreError
from ..securepath import clean_member_name, resolve_in_root
from . import owners

COPY_SIZE = 1 << 20

# OCI image-spec layer.md: `.wh.NAME` deletes NAME of the lower layers, `.wh..wh..opq` hides
# all of the lower layers' content of its directory; other `.wh..wh.` names are aufs' own.
WHITEOUT_PREFIX = ".wh."
AUFS_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
# overlayfs(5) with `userxattr`: the trusted.overlay.* attributes move to user.overlay.*
OPAQUE_XATTR = owners.OPAQUE_XATTR

_PAX_XATTR = "SCHILY.xattr."
# Only user.* can be set unprivileged; user.overlay.* is the kernel's to interpret, so an archive
# must not be able to forge an opaque dir or a redirect through it. The owner record is ours:
# the tar header says who owns an entry, never an xattr an archive carries.
_ALLOWED_XATTR = "user."
_FORBIDDEN_XATTR = ("user.overlay.", owners.XATTR)

_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (fifo(7)).
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC

# chown(2) answers EINVAL for an id outside the user namespace's map, EPERM without the privilege.
_UNMAPPED_ERRNOS = (errno.EINVAL, errno.EPERM)
# setxattr(2): ENOTSUP where the filesystem has no user xattrs, EPERM on a FIFO (xattr(7)).
_XATTR_REFUSED_ERRNOS = (errno.ENOTSUP, errno.EPERM)
# Failures of the destination rather than of the archive.
_STORE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES,
                           errno.ENOTSUP})


@dataclasses.dataclass
class UnpackStats:
    """What an unpack did. `entries` counts every member read, the others are parts of it."""

    entries: int = 0
    bytes: int = 0
    skipped_devices: int = 0
    ignored_whiteouts: int = 0
    unmapped_owners: int = 0
    skipped_entries: int = 0


def unpack(stream, dest: str, *, keep_owners: bool, whiteouts: bool = False,
           owner=None, record_owners: bool = False) -> UnpackStats:
    """Extract the tar read from `stream` into the existing directory `dest`.

    keep_owners: chown to the header's ids (inside a user namespace that maps them); an id the
    kernel refuses leaves the owner as is and is counted. whiteouts: turn whiteout entries into
    overlayfs whiteouts (Linux 5.8+, where anyone may mknod a 0/0 character device); otherwise
    they are skipped. owner: (uid, gid) given to every entry instead (ADD --chown).
    record_owners: an owner the id map lacks (a single mapping) is recorded in the
    `user.rootlesscontainers` xattr (owners.py) instead of dropped; implies keep_owners. Only
    an entry that cannot carry the xattr (a symlink or FIFO not owned by root) is counted.
    """
    unpacker = _Unpacker(os.path.abspath(dest),
                         keep_owners or owner is not None or record_owners, whiteouts,
                         record_owners)
    unpacker.owner = owner
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8",
                          tarinfo=StrictTarInfo) as archive:
            unpacker.extract_all(archive)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise BadArchive(f"cannot unpack layer: corrupt or truncated tar: {err}") from err
    unpacker.finish_directories()
    return unpacker.stats


class StrictTarInfo(tarfile.TarInfo):
    """A header reader that refuses a cut or garbled header anywhere in the archive.

    tarfile takes either, past the first member, for the end of the archive and stops quietly;
    Go's archive/tar, which Docker and containerd use, reports it.
    """

    @classmethod
    def fromtarfile(cls, tarfile_):
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as err:
            raise tarfile.ReadError(f"bad header at offset {tarfile_.offset}: {err}") from None


class _Unpacker:
    """The state of one unpack: resolved directories, directories whose metadata waits."""

    def __init__(self, dest, keep_owners, whiteouts, record_owners=False):
        self._dest = dest
        self._keep_owners = keep_owners
        self._record_owners = record_owners
        self._whiteouts = whiteouts
        self.owner = None
        self.stats = UnpackStats()
        # member name of a directory -> its host path, so that each parent is resolved once;
        # emptied whenever an entry is removed, as a removed symlink or directory may have been
        # on the way to any of them.
        self._dirs = {}
        # host path -> member of every directory entry: their modes and times are set last,
        # deepest first, so a read-only directory can still be filled by later entries.
        self._deferred = {}
        self._buffer = memoryview(bytearray(COPY_SIZE))

    def extract_all(self, archive):
        while (member := archive.next()) is not None:
            # a streaming TarFile keeps every header it read; nothing here looks back, so drop
            # them to keep memory flat on layers of hundreds of thousands of entries
            archive.members.clear()
            self.stats.entries += 1
            with _blame(member.name):
                self._extract(archive, member)

    def finish_directories(self):
        for path in sorted(self._deferred, key=lambda path: path.count("/"), reverse=True):
            member = self._deferred[path]
            with _blame(member.name):
                self._finish_at(path, _DIR_FLAGS, member)

    def _extract(self, archive, member):
        name = clean_member_name(member.name)
        if name is None:
            self._root(member)
            return
        parent_name, _, base = name.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout_entry(parent_name, base)
            return
        path = os.path.join(self._directory(parent_name), base)
        if member.isreg():
            self._file(path, member, archive)
        elif member.isdir():
            self._dir(name, path, member)
        elif member.issym():
            self._symlink(path, member)
        elif member.islnk():
            self._hardlink(path, member)
        elif member.isfifo():
            self._fifo(path, member)
        elif member.ischr() or member.isblk():
            self._device(path, member)
        else:
            # as moby's createTarFile does: an unknown type is not silently made a file
            raise BadArchive(f"cannot unpack layer entry: {member.name!r}: "
                             f"unsupported entry type {member.type!r}")

    def _root(self, member):
        if not member.isdir():
            # a file named "" or "." cannot replace the root: skipped, as Docker's and
            # buildah's extractors skip it (buildah's add/dir-not-dir context has one)
            self.stats.skipped_entries += 1
            return
        # The layer's own directory keeps the namespace root as owner and owner rwx: the
        # store moves it into place from outside the namespace, and rename(2) of a directory
        # needs write permission on it (a "./" entry from a user's own tar names that user,
        # which maps to a subordinate id and would lock the store out).
        member = copy.copy(member)
        member.uid = member.gid = 0
        member.mode |= 0o700
        self._deferred[self._dest] = member

    def _directory(self, name):
        """The host path of the directory `name`, resolved inside dest and created if missing."""
        host = self._dirs.get(name)
        if host is None:
            host = resolve_in_root(self._dest, name)
            _make_dirs(host)
            self._dirs[name] = host
        return host

    def _create(self, path, make):
        """Run `make`, which creates `path`; an entry already there is removed and make re-run.

        Creating first spares a lookup per entry: names are rarely taken twice in one layer.
        """
        try:
            return make()
        except FileExistsError:
            self._remove(path, os.lstat(path))
            return make()

    def _remove(self, path, found):
        if stat.S_ISDIR(found.st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        self._forget(path)

    def _forget(self, path):
        self._dirs.clear()
        inside = path + "/"
        self._deferred = {kept: member for kept, member in self._deferred.items()
                          if kept != path and not kept.startswith(inside)}

    def _file(self, path, member, archive):
        fd = self._create(path, lambda: os.open(path, _FILE_FLAGS, 0o600))
        try:
            if member.sparse:
                self.stats.bytes += _copy_sparse(archive, fd, member)
            else:
                with archive.extractfile(member) as source:
                    self.stats.bytes += self._copy(source, fd)
            self._finish(fd, member)
        finally:
            os.close(fd)

    def _copy(self, source, fd):
        total = 0
        while count := source.readinto(self._buffer):
            _write_all(fd, self._buffer[:count])
            total += count
        return total

    def _dir(self, name, path, member):
        try:
            # owner-writable until finish_directories sets the archive's mode
            os.mkdir(path, 0o700)
        except FileExistsError:
            self._replace_with_dir(path)
        self._dirs[name] = path
        self._deferred[path] = member

    def _replace_with_dir(self, path):
        """An existing directory stays (its entry's metadata comes later); anything else goes."""
        found = os.lstat(path)
        if stat.S_ISDIR(found.st_mode):
            return
        self._remove(path, found)
        os.mkdir(path, 0o700)
        if _is_whiteout(found):
            # the whiteout deleted the lower layers' NAME; this layer's own NAME must not show
            # their content through it (layer.md: a whiteout only applies to lower layers)
            _set_opaque(path)

    def _symlink(self, path, member):
        # the target is kept verbatim: an absolute one means the container's root, and every
        # later lookup through it goes through resolve_in_root
        self._create(path, lambda: os.symlink(member.linkname, path))
        self._chown(path, member, follow_symlinks=False)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def _hardlink(self, path, member):
        target_name = clean_member_name(member.linkname)
        if target_name is None:
            raise BadArchive(f"unsafe archive entry: {member.name!r}: hard link to the root")
        # not following the final component: a link to a symlink links the symlink itself, as
        # link(2) does, never the file outside dest that it may point to
        target = resolve_in_root(self._dest, target_name, follow_final=False)
        if not os.path.lexists(target):
            raise BadArchive(f"unsafe archive entry: {member.name!r}: hard link to "
                             f"{member.linkname!r}, which the archive has not created")
        if target != path:
            self._create(path, lambda: os.link(target, path, follow_symlinks=False))

    def _fifo(self, path, member):
        self._create(path, lambda: os.mkfifo(path, 0o600))
        self._finish_at(path, _FIFO_FLAGS, member)

    def _device(self, path, member):
        # A 0/0 character device is how overlayfs itself stores a whiteout, so a layer made
        # from an overlay upper dir keeps its meaning; other devices cannot be made rootless.
        if self._whiteouts and member.ischr() and (member.devmajor, member.devminor) == (0, 0):
            self._create(path, lambda: _make_whiteout(path))
        else:
            self.stats.skipped_devices += 1

    def _whiteout_entry(self, parent_name, base):
        if not self._whiteouts or (base.startswith(AUFS_META_PREFIX) and base != OPAQUE_MARKER):
            self.stats.ignored_whiteouts += 1
            return
        directory = self._directory(parent_name)
        if base == OPAQUE_MARKER:
            _set_opaque(directory)
        else:
            _whiteout(os.path.join(directory, _whiteout_target(base)))

    def _finish_at(self, path, flags, member):
        fd = os.open(path, flags)
        try:
            self._finish(fd, member)
        finally:
            os.close(fd)

    def _finish(self, fd, member):
        """Set xattrs, owner, mode and times, in the order that keeps each one possible."""
        # xattrs first: user.* needs write permission (xattr(7)), which the mode may take away
        for key, value in _user_xattrs(member):
            _set_xattr(fd, key, value)
        self._chown(fd, member)
        # after chown, which clears setuid/setgid (chown(2))
        os.chmod(fd, stat.S_IMODE(member.mode))
        os.utime(fd, (member.mtime, member.mtime))

    def _chown(self, target, member, **kwargs):
        if not self._keep_owners:
            return
        uid, gid = self.owner or (member.uid, member.gid)
        try:
            os.chown(target, uid, gid, **kwargs)
        except OSError as err:
            if err.errno not in _UNMAPPED_ERRNOS:
                raise
            if not (self._record_owners and owners.record(target, uid, gid, **kwargs)):
                self.stats.unmapped_owners += 1
            return
        if self._record_owners:
            # an entry met again (a directory listed twice) must not keep an earlier record
            owners.record(target, 0, 0, **kwargs)


@contextlib.contextmanager
def _blame(name):
    """Report a failure to write an entry as a BoxError that names the entry."""
    try:
        yield
    except (OSError, ValueError, OverflowError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        message = f"cannot unpack layer entry: {name!r}: {reason}"
        if getattr(err, "errno", None) in _STORE_ERRNOS:
            raise StoreError(message) from err
        raise BadArchive(message) from err


def _copy_sparse(archive, fd, member):
    """Only the data blocks of a sparse member are read and written, each at its offset; the
    holes stay holes. Reading the member through extractfile would produce every zero of a file
    that claims terabytes. The blocks lie one after another in the archive, in map order."""
    raw = archive.fileobj
    raw.seek(member.offset_data)
    total = 0
    for offset, size in member.sparse:
        if offset < 0 or size < 0 or offset + size > member.size:
            raise BadArchive("sparse entry %r has a block outside the file" % member.name)
        os.lseek(fd, offset, os.SEEK_SET)
        remaining = size
        while remaining:
            data = raw.read(min(remaining, COPY_SIZE))
            if not data:
                raise BadArchive("sparse entry %r is truncated" % member.name)
            _write_all(fd, data)
            remaining -= len(data)
            total += len(data)
    os.ftruncate(fd, member.size)
    return total


def _make_dirs(path):
    """Create the missing directories of a resolved path (which holds no symlink), mode 0755."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
    for directory in reversed(missing):
        os.mkdir(directory)
        # mkdir(2)'s mode is cut by the umask; the layer's must not depend on it
        os.chmod(directory, 0o755)


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def _whiteout_target(base):
    target = base[len(WHITEOUT_PREFIX):]
    if target in ("", ".", ".."):
        raise BadArchive(f"unsafe archive entry: whiteout {base!r} names no entry")
    return target


def _whiteout(path):
    """Delete the lower layers' entry at `path`, whatever the order of this layer's entries."""
    try:
        _make_whiteout(path)
    except FileExistsError:
        # This layer's own entry is already there and hides the lower one; a directory must
        # also hide the lower one's content. (layer.md: a whiteout only applies to lower layers.)
        if stat.S_ISDIR(os.lstat(path).st_mode):
            _set_opaque(path)


def _make_whiteout(path):
    try:
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
    except PermissionError as err:
        # mknod(2) of a whiteout needs no privilege since Linux 5.8 ("vfs: allow unprivileged
        # whiteout creation"); before, not even root of a user namespace may
        raise StoreError(f"cannot create overlay whiteout: {path}: {err.strerror}",
                         "rootless overlay whiteouts need Linux 5.8 or later; on an older "
                         "kernel choose a storage driver other than the kernel overlay") from err


def _is_whiteout(found):
    return stat.S_ISCHR(found.st_mode) and found.st_rdev == os.makedev(0, 0)


def _set_opaque(directory):
    os.setxattr(directory, OPAQUE_XATTR, b"y", follow_symlinks=False)


def _user_xattrs(member):
    for key, value in member.pax_headers.items():
        if not key.startswith(_PAX_XATTR):
            continue
        name = key[len(_PAX_XATTR):]
        if name.startswith(_ALLOWED_XATTR) and not name.startswith(_FORBIDDEN_XATTR):
            # tarfile decoded the raw value with surrogateescape; this gives the bytes back
            yield name, value.encode("utf-8", "surrogateescape")


def _set_xattr(fd, name, value):
    try:
        os.setxattr(fd, name, value)
    except OSError as err:
        if err.errno not in _XATTR_REFUSED_ERRNOS:
            raise
