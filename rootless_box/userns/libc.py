"""The only home of ctypes: thin wrappers over the Linux syscalls Python's os module lacks.

Owns: unshare, setns, mount, umount2, pivot_root, mount_setattr, open_tree, move_mount,
sethostname, setdomainname, prctl, malloc_trim,
capget/capset, seccomp, pidfd_getfd, connect with a raw address, a thread's own credentials,
the constants they take, and turning a failed call into OSError with the right errno.
Must not: decide policy (what to mount, which caps to keep); callers in userns/ do that.
"""

import ctypes
import errno
import os


_libc = ctypes.CDLL(None, use_errno=True)

# Per-architecture syscall numbers for calls glibc does not wrap (asm/unistd.h).
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "mount_setattr": 442,
               "openat2": 437, "seccomp": 317, "pidfd_getfd": 438,
               "open_tree": 428, "move_mount": 429,
               "setfsuid": 122, "setfsgid": 123, "setgroups": 116,
               "setresuid": 117, "setresgid": 119},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "mount_setattr": 442,
                "openat2": 437, "seccomp": 277, "pidfd_getfd": 438,
                "open_tree": 428, "move_mount": 429,
                "setfsuid": 151, "setfsgid": 152, "setgroups": 159,
                "setresuid": 147, "setresgid": 149},
}
_NR = _SYSCALLS.get(os.uname().machine, {})

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2

MOUNT_ATTR_RDONLY = 0x1
AT_RECURSIVE = 0x8000
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 4

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long


def _check(result, what, path=None):
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)), path)
    return result


def _b(text):
    return None if text is None else os.fsencode(text)


def _syscall(name, *args):
    nr = _NR.get(name)
    if nr is None:
        raise OSError(errno.ENOSYS, "%s: unsupported architecture %s" % (name,
                                                                         os.uname().machine))
    return _libc.syscall(ctypes.c_long(nr), *args)


def unshare(flags):
    _check(_libc.unshare(flags), "unshare")


def setns(fd, nstype=0):
    """Join the namespace fd refers to (setns(2)); nstype 0 accepts any kind."""
    _check(_libc.setns(fd, nstype), "setns")


def mount(source, target, fstype, flags=0, data=None):
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount2(target, flags=0):
    _check(_libc.umount2(_b(target), flags), "umount", target)


def pivot_root(new_root, put_old):
    _check(_syscall("pivot_root", ctypes.c_char_p(_b(new_root)), ctypes.c_char_p(_b(put_old))),
           "pivot_root", new_root)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def make_readonly_recursive(path):
    """Mark a mount and every mount below it read-only (mount_setattr, Linux 5.12+)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(_syscall("mount_setattr", ctypes.c_int(-100), ctypes.c_char_p(_b(path)),
                    ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr),
                    ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr", path)


def clone_tree(path, dirfd=-100):
    """A detached copy of the mount at path (relative to dirfd; open_tree OPEN_TREE_CLONE,
    Linux 5.2+), as a close-on-exec fd: move_tree attaches it in another mount namespace,
    which a bind mount across namespaces cannot do."""
    return _check(_syscall("open_tree", ctypes.c_int(dirfd), ctypes.c_char_p(_b(path)),
                           ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC)), "open_tree", path)


def move_tree(fd, target):
    """Attach the detached mount fd (clone_tree) at target (move_mount(2))."""
    _check(_syscall("move_mount", ctypes.c_int(fd), ctypes.c_char_p(b""), ctypes.c_int(-100),
                    ctypes.c_char_p(_b(target)), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
           "move_mount", target)


def sethostname(name):
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")


def setdomainname(name):
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)), "setdomainname")


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), "prctl")


def trim_heap():
    """Give the C heap's free pages back to the kernel (glibc's malloc_trim): a resident
    process that has finished its busy start keeps only what it still uses. A no-op on a C
    library without it (musl)."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def one_malloc_arena():
    """Keep the C heap in one arena (glibc's mallopt M_ARENA_MAX): by default each new thread
    that allocates may get an arena of its own, up to 8 per CPU, and each keeps the pages it
    touched. A threaded server whose requests are short lives with one. Call before the
    threads start. A no-op without mallopt (musl has one arena anyway)."""
    mallopt = getattr(_libc, "mallopt", None)
    if mallopt is not None:
        mallopt(-8, 1)  # M_ARENA_MAX (malloc.h)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective, permitted, inheritable):
    """Set the three capability sets of this thread from 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall("capset", ctypes.byref(header), ctypes.byref(data)), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP_SET_MODE_FILTER = 1


def seccomp_set_filter(program, count, flags=0):
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) with program the packed struct
    sock_filter array of count instructions; returns what the call returns (a listener fd
    with SECCOMP_FILTER_FLAG_NEW_LISTENER, else 0)."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(count, ctypes.cast(buf, ctypes.c_void_p))
    return _check(_syscall("seccomp", ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
                           ctypes.c_uint(flags), ctypes.byref(prog)), "seccomp")


class _NotifSizes(ctypes.Structure):
    _fields_ = [("notif", ctypes.c_uint16), ("resp", ctypes.c_uint16),
                ("data", ctypes.c_uint16)]


_SECCOMP_GET_NOTIF_SIZES = 3
# what userns/notify.py packs: struct seccomp_notif, seccomp_notif_resp, seccomp_data
_NOTIF_SIZES = (80, 24, 64)


def seccomp_check_notif_sizes():
    """SECCOMP_GET_NOTIF_SIZES: the kernel's user-notification structs must be the ones the
    supervisor packs (their sizes are in the ioctl numbers); OSError(ENOTSUP) if not, or
    ENOSYS/EINVAL from a kernel without user notifications (before 5.0)."""
    sizes = _NotifSizes()
    _check(_syscall("seccomp", ctypes.c_uint(_SECCOMP_GET_NOTIF_SIZES), ctypes.c_uint(0),
                    ctypes.byref(sizes)), "seccomp")
    if (sizes.notif, sizes.resp, sizes.data) != _NOTIF_SIZES:
        raise OSError(errno.ENOTSUP, "seccomp: unexpected user-notification struct sizes %r"
                      % ((sizes.notif, sizes.resp, sizes.data),))


def pidfd_getfd(pidfd, targetfd):
    """A duplicate of the process's fd targetfd, close-on-exec (pidfd_getfd(2), Linux 5.6;
    needs ptrace access to it)."""
    return _check(_syscall("pidfd_getfd", ctypes.c_int(pidfd), ctypes.c_int(targetfd),
                           ctypes.c_uint(0)), "pidfd_getfd")


_libc.connect.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.connect.restype = ctypes.c_int


def connect_raw(fd, address):
    """connect(2) of fd to the struct sockaddr bytes `address` as they are (any family);
    -> 0, or minus the errno."""
    result = _libc.connect(fd, address, len(address))
    return -ctypes.get_errno() if result < 0 else 0


def thread_credentials(euid, egid, fsuid, fsgid, groups, caps):
    """This thread alone (raw syscalls: glibc's wrappers change every thread of the process)
    becomes who another process is: its effective ids (what a unix socket's peer sees), its
    filesystem ids, supplementary groups and effective capabilities (a 64-bit mask, within
    what this thread has; none left once the ids are not 0). For a thread that ends once
    done. OSError if it cannot be that caller."""
    array = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    if _syscall("setgroups", ctypes.c_size_t(len(groups)), array) < 0 and \
            ctypes.get_errno() != errno.EPERM:
        # EPERM: setgroups is denied in this user namespace (a single-id mapping), whose
        # other groups are unmapped and grant nothing; the thread keeps those
        _check(-1, "setgroups")
    _check(_syscall("setresgid", ctypes.c_uint(egid), ctypes.c_uint(egid), ctypes.c_uint(egid)),
           "setresgid")
    _syscall("setfsgid", ctypes.c_uint(fsgid))
    _check(_syscall("setresuid", ctypes.c_uint(euid), ctypes.c_uint(euid), ctypes.c_uint(euid)),
           "setresuid")
    _syscall("setfsuid", ctypes.c_uint(fsuid))
    # setfs*id report the previous ids, never an error: asked again, they say the current one
    if _syscall("setfsuid", ctypes.c_uint(0xFFFFFFFF)) != fsuid or \
            _syscall("setfsgid", ctypes.c_uint(0xFFFFFFFF)) != fsgid:
        raise OSError(errno.EPERM, "setfsuid/setfsgid: not permitted")
    if euid == 0:
        capset(caps, caps, 0)  # from another uid the kernel has cleared them already


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 40
