"""Filling a new volume from the image (Docker's copy-up), inside the container's namespaces.

Owns: copying what the container's root holds at a volume's mount point into the volume's
empty directory, as moby's copyExistingContents does: only when the volume is empty, every
kind of entry but sockets and devices, owners, modes, times and user xattrs kept (the
`user.rootlesscontainers` owner record of a single-id mapping travels with its file), hard
links kept as links, and the volume's own directory given the owner and mode of the image's
directory. It runs in init, as root of the container's user namespace and before the volume
is bound, so owners are the container's under either id mapping.
Must not: follow a symlink it copies (symlinks are copied as symlinks), or write anywhere but
into the volume directory.
"""

import os
import stat


def fill(image_dir, volume_dir):
    """Copy image_dir's entries into volume_dir when volume_dir is empty. -> whether it did."""
    if os.listdir(volume_dir):
        return False
    links = {}
    _copy_children(image_dir, volume_dir, links)
    _metadata(image_dir, volume_dir, os.lstat(image_dir))
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
            _copy_file(src, dst, st.st_size)
            links[key] = dst
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(dst, 0o600)
        else:
            continue  # sockets, and devices a rootless namespace cannot make
        _metadata(src, dst, st)


def _copy_file(src, dst, size):
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600)
        try:
            while size > 0:
                sent = os.sendfile(fd_out, fd_in, None, min(size, 1 << 30))
                if not sent:
                    break
                size -= sent
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _metadata(src, dst, st):
    try:
        os.lchown(dst, st.st_uid, st.st_gid)
    except OSError:
        pass  # an owner this mapping lacks: the user.rootlesscontainers record keeps it
    if stat.S_ISLNK(st.st_mode):
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        return
    for name in os.listxattr(src, follow_symlinks=False):
        if name.startswith("user.") and not name.startswith("user.overlay."):
            try:
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                            follow_symlinks=False)
            except OSError:
                pass
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
