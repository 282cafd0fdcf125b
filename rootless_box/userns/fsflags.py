"""A file's inode flags, as chattr(1) sets them (FS_IOC_GETFLAGS / FS_IOC_SETFLAGS, ioctl(2)).

Owns: `set_topdir`, the "top of directory hierarchies" flag (chattr +T) on a directory.
Must not: decide where it goes (the store's tmp/, set by ops/storage.open_store) or fail
loudly: the flag is a hint that file systems other than ext4 do not take.
"""

import fcntl
import os
import sys

# linux/fs.h: FS_IOC_GETFLAGS, FS_IOC_SETFLAGS (_IOR/_IOW 'f' 1 and 2, long), FS_TOPDIR_FL
_GETFLAGS, _SETFLAGS, _TOPDIR_FL = 0x80086601, 0x40086602, 0x00020000


def set_topdir(path):
    """Set FS_TOPDIR_FL on directory path, where the file system takes it: ext4's Orlov
    allocator then places each directory made in it in a block group of its own choosing
    instead of the parent's. Nothing happens elsewhere (other file systems, no permission)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _GETFLAGS, buf, True)
        flags = int.from_bytes(buf[:4], sys.byteorder)
        if not flags & _TOPDIR_FL:
            fcntl.ioctl(fd, _SETFLAGS, (flags | _TOPDIR_FL).to_bytes(4, sys.byteorder) + bytes(4))
    except OSError:
        pass  # not ext4, or not allowed: only a hint
    finally:
        os.close(fd)
