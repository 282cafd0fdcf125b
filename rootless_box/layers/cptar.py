"""The tar streams of `cp`: a source (file, directory or symlink) written under the name the
copy gives it, and a stream extracted into a destination directory.

Owns: naming the entries of a copy (the source's top name, or "." for a directory's
contents, as moby's archive.TarResourceRebase does), renaming that top name on the receiving
side (archive.RebaseArchiveEntries), and extraction with Docker's `NoOverwriteDirNonDir`
(an existing directory is never replaced by a non-directory, nor a non-directory by a
directory) and without touching the destination directory itself (a "." entry is skipped).
Extraction is layers/unpack.py's hostile-tar unpacker: names cleaned, every write resolved
inside the destination, symlinks never followed out of it.
Must not: resolve container paths against anything but the root it is given, decide
Docker's copy rules (ops/cp.py does), or import anything lazily: it runs chrooted inside a
container, where the package's files are out of reach.
"""

import os
import stat
import tarfile

from ..errors import BadArchive
from . import unpack as _unpack
from .diff import TreeWriter, walk


def write_source(path, top, out_fd):
    """The entry at path (not followed) and, for a directory, everything below it, as a tar
    on out_fd, named top and top/...; top "." gives "./" and "./NAME" (a directory's
    contents). Returns the tar's size in bytes."""
    with os.fdopen(os.dup(out_fd), "wb", buffering=1 << 20) as out:
        writer = TreeWriter(out)
        st = os.lstat(path)
        writer.add(path, top, st)
        if stat.S_ISDIR(st.st_mode):
            for rel, child, child_st in walk(path):
                writer.add(child, top + "/" + rel, child_st)
        writer.close()
        return writer.size


class _CopyUnpacker(_unpack._Unpacker):
    """unpack's extractor with cp's rules: a renamed top entry, no "." entry applied to the
    destination, and Docker's NoOverwriteDirNonDir."""

    rename = None  # (old top, new top) or None

    def _extract(self, archive, member):
        if self.rename:
            member.name = _rebase(member.name, *self.rename)
            if member.islnk():
                member.linkname = _rebase(member.linkname, *self.rename)
        super()._extract(archive, member)

    def _root(self, member):
        # the destination directory is the user's (or the container's): the copy fills it
        # and leaves its owner and mode alone
        self.stats.skipped_entries += 1

    def _create(self, path, make):
        try:
            return make()
        except FileExistsError:
            found = os.lstat(path)
            if stat.S_ISDIR(found.st_mode):
                raise BadArchive("cannot overwrite directory %r with non-directory"
                                 % self._shown(path)) from None
            self._remove(path, found)
            return make()

    def _replace_with_dir(self, path):
        found = os.lstat(path)
        if not stat.S_ISDIR(found.st_mode):
            raise BadArchive("cannot overwrite non-directory %r with directory"
                             % self._shown(path))

    def _shown(self, path):
        return path if self.show_root is None else os.path.join(
            self.show_root, os.path.relpath(path, self._dest))

    show_root = None


def _rebase(name, old, new):
    """name with its first component old replaced by new (archive.RebaseArchiveEntries);
    names outside old are left for the cleaner to judge."""
    stripped = name[2:] if name.startswith("./") and old != "." else name
    if stripped == old or stripped == old + "/":
        return new
    if stripped.startswith(old + "/"):
        return new + stripped[len(old):]
    return name


def extract(in_fd, dest, *, keep_owners=False, owner=None, rename=None, shown_as=None):
    """Extract the tar read from in_fd into the existing directory dest. keep_owners: the
    headers' ids (cp -a into a container); owner: (uid, gid) for every entry instead;
    neither: the extracting user's. rename: (old top, new top). shown_as: how dest is named
    in error messages (the container path). Returns the bytes of file content written."""
    # an owner the id map lacks (a single mapping) is recorded, as a layer's is (owners.py)
    unpacker = _CopyUnpacker(os.path.abspath(dest), keep_owners or owner is not None, False,
                             record_owners=keep_owners or owner is not None)
    unpacker.owner = owner
    unpacker.rename = rename
    unpacker.show_root = shown_as
    stream = os.fdopen(os.dup(in_fd), "rb", buffering=1 << 20)
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8",
                          tarinfo=_unpack.StrictTarInfo) as archive:
            unpacker.extract_all(archive)
    except (tarfile.TarError, EOFError) as err:
        raise BadArchive("cannot extract the copied archive: corrupt or truncated tar: %s"
                         % err) from err
    finally:
        stream.close()
    unpacker.finish_directories()
    return unpacker.stats.bytes
