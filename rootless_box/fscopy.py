"""Copying one file system entry's bytes and metadata, for the two tree copiers that run inside
a user namespace (layers/apply.py stacks layers for the copy driver, userns/copyup.py fills a
new volume from the image): they sit side by side and may not import each other.

Owns: a regular file's bytes copied without following a symlink at either end
(copy_file_range, falling back to read/write), and owners, mode, user xattrs (not overlayfs'
own `user.overlay.*`) and times copied from one entry to another, in that order (chown
clears set-id bits, so the mode comes after it).
Must not: import anything but the standard library.
"""

import os
import stat

_BUF = 1 << 20
_SMALL = 64 << 10


def copy_file(src, dst, st):
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                         os.O_CLOEXEC, 0o600)
        try:
            remaining = st.st_size
            # copy_file_range fails (EXDEV) between most pairs of file systems these copies
            # meet (a context on ext4 into an overlay): a small file goes by read and write
            # without that wasted call, and a failed call is not tried again
            use_range = remaining > _SMALL
            while remaining > 0:
                count = 0
                if use_range:
                    try:
                        count = os.copy_file_range(fd_in, fd_out, min(remaining, 1 << 30))
                    except OSError:
                        use_range = False
                if not use_range:
                    count = os.write(fd_out, os.read(fd_in, _BUF))
                if count == 0:
                    break
                remaining -= count
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def copy_metadata(src, dst, st, owner_optional=False):
    """st: src's lstat. owner_optional: an owner the namespace cannot give is left as it is
    (a single-id mapping, where the user.rootlesscontainers xattr keeps the real one)."""
    try:
        os.lchown(dst, st.st_uid, st.st_gid)
    except OSError:
        if not owner_optional:
            raise
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        for name in os.listxattr(src, follow_symlinks=False):
            if name.startswith("user.") and not name.startswith("user.overlay."):
                try:
                    os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                                follow_symlinks=False)
                except OSError:
                    pass
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
