"""Filling a new volume from the image (Docker's copy-up), inside the container's namespaces.

Owns: copying what the container's root holds at a volume's mount point into the volume's
empty directory, as moby's copyExistingContents does: only when the volume is empty, every
kind of entry but sockets and devices, owners, modes, times and user xattrs kept (the
`user.rootlesscontainers` owner record of a single-id mapping travels with its file), hard
links kept as links, and the volume's own directory given the owner and mode of the image's
directory. It runs in init, as root of the container's user namespace and before the volume
is bound, so owners are the container's under either id mapping.
A copy that fails leaves the volume empty again (a partly filled one would never be filled).
Must not: follow a symlink it copies (symlinks are copied as symlinks), or write anywhere but
into the volume directory.
"""

import os
import stat

from ..fscopy import copy_file, copy_metadata


def fill(image_dir, volume_dir):
    """Copy image_dir's entries into volume_dir when volume_dir is empty. -> whether it did."""
    if os.listdir(volume_dir):
        return False
    try:
        _copy_children(image_dir, volume_dir, {})
        copy_metadata(image_dir, volume_dir, os.lstat(image_dir), owner_optional=True)
    except BaseException:
        # a half-filled volume would never be filled again (it is not empty): empty it
        import shutil
        for name in os.listdir(volume_dir):
            path = os.path.join(volume_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        raise
    return True


def _copy_children(src_dir, dst_dir, links):
    with os.scandir(src_dir) as entries:
        children = list(entries)
    for entry in children:
        src, dst = entry.path, os.path.join(dst_dir, entry.name)
        st = entry.stat(follow_symlinks=False)
        mode = st.st_mode
        key = (st.st_dev, st.st_ino)
        if stat.S_ISDIR(mode):
            os.mkdir(dst, 0o700)
            _copy_children(src, dst, links)
        elif stat.S_ISREG(mode) and st.st_nlink > 1 and key in links:
            os.link(links[key], dst, follow_symlinks=False)
            continue
        elif stat.S_ISREG(mode):
            copy_file(src, dst, st)
            links[key] = dst
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dst, 0o600)
        else:
            continue  # sockets, and devices a rootless namespace cannot make
        copy_metadata(src, dst, st, owner_optional=True)
