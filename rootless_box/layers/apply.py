"""Stacking unpacked layer directories into one plain directory (the copy driver's rootfs).

Owns: applying a layer directory onto a rootfs the way overlayfs would show it: whiteouts (0/0
character devices) delete, opaque directories (`user.overlay.opaque`) hide what lies below, a
directory replaces a symlink of the same name instead of being written through it (so a layer
cannot reach outside the rootfs by a symlink an earlier layer planted), and owners, modes, times,
hard links and user xattrs are kept. Runs inside the user namespace.
Must not: follow a symlink at the destination, ever.
"""

import os
import stat

from .. import fscopy
from .diff import is_opaque, is_whiteout


def remove_entry(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.chmod(path, 0o700)
        with os.scandir(path) as entries:
            children = [e.path for e in entries]
        for child in children:
            remove_entry(child)
        os.rmdir(path)
    else:
        os.unlink(path)


def _clear(directory):
    with os.scandir(directory) as entries:
        children = [e.path for e in entries]
    for child in children:
        remove_entry(child)


copy_file = fscopy.copy_file
_metadata = fscopy.copy_metadata


_UNKNOWN = object()


def place(src, dst, st, dir_mode, specials=True, existing=_UNKNOWN):
    """Make dst an entry of src's kind (st: src's lstat): a directory stays or replaces
    what is there (a new one is made with dir_mode); anything else
    replaces what is there, never written through it. Returns False for a kind not placed
    (sockets; fifos and devices too unless specials): what was there is gone all the same.
    existing: dst's lstat (None: nothing there) when the caller has it."""
    if existing is _UNKNOWN:
        existing = _lstat(dst)
    if stat.S_ISDIR(st.st_mode):
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            if existing is not None:
                remove_entry(dst)
            os.mkdir(dst, dir_mode)
        return True
    if existing is not None:
        remove_entry(dst)
    if stat.S_ISREG(st.st_mode):
        copy_file(src, dst, st)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif specials and stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o600)
    elif specials and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        os.mknod(dst, st.st_mode, st.st_rdev)
    else:
        return False
    return True


def apply_layer(layer, root):
    """Apply one unpacked layer directory onto root (the layers below already applied)."""
    links = {}
    dirs = []
    stack = [("", layer)]
    while stack:
        rel, src_dir = stack.pop()
        dst_dir = os.path.join(root, rel) if rel else root
        if rel and is_opaque(src_dir):
            _clear(dst_dir)
        with os.scandir(src_dir) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:
            child_rel = os.path.join(rel, entry.name) if rel else entry.name
            dst = os.path.join(dst_dir, entry.name)
            st = entry.stat(follow_symlinks=False)
            if is_whiteout(st):
                remove_entry(dst)
                continue
            if stat.S_ISDIR(st.st_mode):
                place(entry.path, dst, st, 0o700)
                os.chmod(dst, 0o700)  # writable until its own metadata, at the end
                dirs.append((entry.path, dst, st))
                stack.append((child_rel, entry.path))
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in links:
                remove_entry(dst)
                os.link(links[key], dst, follow_symlinks=False)
                continue
            if not place(entry.path, dst, st, 0o700):
                continue
            if stat.S_ISREG(st.st_mode):
                links[key] = dst
            _metadata(entry.path, dst, st)
    for src, dst, st in reversed(dirs):
        # deepest last-created first, so modes that forbid writing come after the writes
        _metadata(src, dst, st)


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def populate(layers, root):
    """Stack layers (topmost first, overlayfs' lowerdir order) into the empty directory root."""
    for layer in reversed(layers):
        apply_layer(layer, root)
    return True
