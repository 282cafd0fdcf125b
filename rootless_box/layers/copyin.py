"""COPY/ADD into an image's root: files from the build context (or another image's root)
written at a destination inside a mounted container root.

Owns: creating the entries a COPY lists (directories, files, symlinks) below the destination,
resolving every destination path inside the root (symlinks in the image are followed inside it,
never out: securepath), the owner (--chown, default 0:0) and mode (--chmod, else the
source's), and Docker's rule that a source's mtime is kept. Runs inside the user namespace; an
owner outside its id map (a single mapping) is recorded in `user.rootlesscontainers` (owners.py).
Must not: read a source path it was not given (the caller resolved and filtered them).
"""

import os
import stat

from ..securepath import resolve_in_root
from . import owners
from .apply import place, remove_entry


def copy_into(root, entries, uid=0, gid=0, mode=None):
    """entries: [(source path, destination path inside the container)], parents before
    children. Returns the number of entries written."""
    count = 0
    # container directory -> its host path, resolved (and made) once rather than component
    # by component for each of its entries: 5,000 files in one directory cost 40,000
    # readlink/lstat calls otherwise. Nothing else writes to root meanwhile; when an entry
    # replaces something (which a cached path may lead through) the map is dropped.
    parents = {}
    for src, dest in entries:
        st = os.lstat(src)
        cdir, _, name = dest.rpartition("/")
        parent = parents.get(cdir) if name not in ("", ".", "..") else None
        if parent is not None:
            target = parent + "/" + name
        else:
            target = resolve_in_root(root, dest, follow_final=False)
            _ensure_parent(root, os.path.dirname(dest))
            if name not in ("", ".", ".."):
                parents[cdir] = os.path.dirname(target)
        existing = _lstat(target)
        kept = existing is not None and stat.S_ISDIR(existing.st_mode) and \
            stat.S_ISDIR(st.st_mode)
        if existing is not None and not kept:
            parents.clear()
        # fifos, sockets and devices in a context are not copied
        if not place(src, target, st, 0o755, specials=False, existing=existing):
            continue
        # a new entry has no owner record to drop
        owners.chown(target, uid, gid, fresh=not kept)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, mode if mode is not None else stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        count += 1
    return count


def write_file(root, dest, data, uid=0, gid=0, mode=0o644):
    """A file with the given content (COPY <<EOF)."""
    _ensure_parent(root, os.path.dirname(dest))
    target = resolve_in_root(root, dest, follow_final=False)
    existing = _lstat(target)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(21, "is a directory", dest)
    remove_entry(target)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    owners.chown(target, uid, gid)
    os.chmod(target, mode)


def _ensure_parent(root, cpath, uid=0, gid=0):
    """mkdir -p inside the root (Docker creates missing destination directories 0755, root);
    the directories it makes get uid:gid (WORKDIR after USER), existing ones stay as they
    are."""
    parts = [p for p in cpath.split("/") if p]
    current = ""
    for part in parts:
        current += "/" + part
        path = resolve_in_root(root, current)
        st = _lstat(path)
        if st is None:
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)  # whatever the umask
            if uid or gid:
                owners.chown(path, uid, gid)
        elif not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(20, "not a directory in the image", current)


def ensure_dir(root, cpath, uid=0, gid=0):
    """The host path of directory cpath inside root, created (0755, with its missing parents,
    owned by uid:gid) when missing."""
    _ensure_parent(root, cpath, uid, gid)
    return resolve_in_root(root, cpath)


def is_dir_in(root, cpath):
    st = _lstat(resolve_in_root(root, cpath))
    return st is not None and stat.S_ISDIR(st.st_mode)


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
