"""The chown supervisor's kernel side: seccomp user notifications (seccomp_unotify(2)) for the
chown family the fake-root filter sends to a supervisor, and for the get*id family when the
container's user is not root under a single-id mapping (the answer is that user's ids).

Owns: the listener's ioctls (SECCOMP_IOCTL_NOTIF_RECV, _SEND, _ID_VALID, _ADDFD) with
struct-packed buffers (also for the port bypass's bind listener, userns/portbypass.py),
reading a path argument from /proc/PID/mem, finding what a chown, lchown, fchown or
fchownat names inside the caller's root (/proc/PID/root, its cwd or its fds), the check that
the call is still pending after its memory was read (the pid may have been reused), and the
answer: always success, as the fake root answers; the fake ids' answers (getuid's value,
getresuid's and getgroups' arrays written into the caller's memory) and the few bytes that
carry those ids from the container's init to its keeper beside the listener (send_ids,
receive_ids).
Must not: import ctypes or anything heavy (the detached container's watcher, resident for the
container's life, calls `serve`), decide what a chown means for the files (the caller's
`on_chown` does: layers/owners.py through ops/), or ever make a chown fail: a call it cannot
resolve is answered with success and nothing recorded. Every argument is the container's and
hostile: paths are walked with securepath.open_in_root and never leave the caller's root.
"""

import errno
import fcntl
import os
import select
import struct

from .. import securepath
from . import seccomp

# linux/seccomp.h: struct seccomp_notif {u64 id; u32 pid; u32 flags; struct seccomp_data},
# struct seccomp_notif_resp {u64 id; s64 val; s32 error; u32 flags}. The ioctl numbers encode
# these sizes (_IOWR('!', nr, type)), so a kernel with larger structs would use other numbers;
# libc.seccomp_notif_sizes checks them once where ctypes is at hand.
NOTIF = struct.Struct("=QIIiIQ6Q")
RESP = struct.Struct("=QqiI")
SECCOMP_IOCTL_NOTIF_RECV = 0xC0000000 | NOTIF.size << 16 | 0x21 << 8 | 0
SECCOMP_IOCTL_NOTIF_SEND = 0xC0000000 | RESP.size << 16 | 0x21 << 8 | 1
# _IOR, as Linux 5.0-5.8 defined it; later kernels accept it beside the corrected _IOW
SECCOMP_IOCTL_NOTIF_ID_VALID = 0x80000000 | 8 << 16 | 0x21 << 8 | 2
# struct seccomp_notif_addfd {u64 id; u32 flags; u32 srcfd; u32 newfd; u32 newfd_flags},
# _IOW('!', 3, ...) (Linux 5.9)
ADDFD = struct.Struct("=QIIII")
SECCOMP_IOCTL_NOTIF_ADDFD = 0x40000000 | ADDFD.size << 16 | 0x21 << 8 | 3
SECCOMP_ADDFD_FLAG_SETFD = 1
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1  # (Linux 5.5) the call runs as if never stopped

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
PATH_MAX = 4096
_PAGE = 4096
NOOP_ID = 0xFFFFFFFF


def _s32(value):
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class Gone(Exception):
    """The call is no longer pending (its process died, or was interrupted)."""


def id_valid(listener, notif_id):
    """Raise Gone unless the notification notif_id still waits for its answer: what was read
    from its process (by pid) belongs to the call only then."""
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, struct.pack("=Q", notif_id))
    except OSError:
        raise Gone() from None


def answer(listener, notif_id, flags=0, error=0, val=0):
    """Answer a call: success (returning val), the failure -errno `error`, or with flags
    SECCOMP_USER_NOTIF_FLAG_CONTINUE, run it."""
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, RESP.pack(notif_id, val, error, flags))
    except OSError:
        pass  # ENOENT: the caller was killed or interrupted meanwhile; nobody to answer


def add_fd(listener, notif_id, srcfd, newfd, newfd_flags=0):
    """Install (a duplicate of) our srcfd as fd number newfd of the calling process,
    replacing what it was (SECCOMP_ADDFD_FLAG_SETFD); OSError if the kernel cannot."""
    fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD,
                ADDFD.pack(notif_id, SECCOMP_ADDFD_FLAG_SETFD, srcfd, newfd, newfd_flags))


def state(listener):
    """None when no call waits, "call" when one does, "gone" once the filter has no user
    left (a hangup: the container has ended) or the listener is bad."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    events = poller.poll(0)
    revents = events[0][1] if events else 0
    if revents & select.POLLIN:
        return "call"
    return "gone" if revents & (select.POLLHUP | select.POLLERR | select.POLLNVAL) else None


def receive(listener):
    """The waiting call as (id, pid, syscall nr, arch word, args), or None when it went away
    before it could be read; OSError when the listener fails."""
    buf = bytearray(NOTIF.size)
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf)
    except OSError as exc:
        # ENOENT: the caller went away between poll and recv
        if exc.errno in (errno.ENOENT, errno.EINTR):
            return None
        raise
    notif_id, pid, _flags, nr, arch, _ip, *args = NOTIF.unpack(buf)
    return notif_id, pid, nr, arch, args


def read_memory(pid, address, size):
    """size bytes at address in pid's memory (fewer if the mapping ends)."""
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, address)
    finally:
        os.close(fd)


def _read_path(pid, address):
    """The NUL-terminated string at address in pid's memory (at most PATH_MAX bytes)."""
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = b""
        while len(data) < PATH_MAX:
            # up to the page's end first: the next page may not be mapped
            chunk = os.pread(fd, _PAGE - (address + len(data)) % _PAGE, address + len(data))
            if not chunk:
                break
            end = chunk.find(b"\0")
            if end >= 0:
                return os.fsdecode(data + chunk[:end])
            data += chunk
    finally:
        os.close(fd)
    raise OSError(errno.ENAMETOOLONG, "no path at the pointer")


def _target(listener, notif_id, pid, name, args):
    """(O_PATH fd of the file the call names, uid, gid), or None when there is nothing to
    record; raises OSError or Gone when it cannot be found."""
    if name == "fchown":
        uid, gid = args[1], args[2]
        opened = ["/proc/%d/fd/%d" % (pid, _s32(args[0]))]
        path = None
    else:
        if name == "fchownat":
            dirfd, address, uid, gid, flags = _s32(args[0]), args[1], args[2], args[3], \
                args[4]
        else:
            dirfd, address, uid, gid = AT_FDCWD, args[0], args[1], args[2]
            flags = AT_SYMLINK_NOFOLLOW if name == "lchown" else 0
        path = _read_path(pid, address)
        base = "/proc/%d/cwd" % pid if dirfd == AT_FDCWD else "/proc/%d/fd/%d" % (pid, dirfd)
        if path == "" and flags & AT_EMPTY_PATH:
            opened, path = [base], None
        else:
            opened = ["/proc/%d/root" % pid] + ([] if path.startswith("/") else [base])
    uid, gid = uid & 0xFFFFFFFF, gid & 0xFFFFFFFF
    fds = []
    try:
        for proc_path in opened:
            # the magic links lead to what the process holds: its root, cwd, an open file
            fds.append(os.open(proc_path, os.O_PATH | os.O_CLOEXEC))
        # what was read and opened belongs to the call only if it is still pending
        id_valid(listener, notif_id)
        if path is None:
            return os.dup(fds[0]), uid, gid
        return securepath.open_in_root(
            fds[0], path, start_fd=fds[1] if len(fds) > 1 else None,
            follow_final=not flags & AT_SYMLINK_NOFOLLOW), uid, gid
    finally:
        for fd in fds:
            os.close(fd)


_NAMES = {}


def _names():
    if not _NAMES:
        entry = seccomp.table()
        _NAMES.update((nr, name) for name, nr in entry["chown"].items())
        _NAMES.update((nr, name) for name, nr in entry["getid"].items())
        _NAMES["arch"] = entry["arch"]
    return _NAMES


# the fake ids on the init -> keeper socket, right after the listener: uid, gid, the count of
# supplementary groups, then the groups (all u32; gid_t is 32 bits on every Linux ABI here)
_IDS = struct.Struct("=III")
_MAX_GROUPS = 65536  # NGROUPS_MAX


def send_ids(sock, ids):
    """ids: (uid, gid, [groups]) the keeper answers get*id with; (0, 0, []) for root."""
    uid, gid, groups = ids
    sock.sendall(_IDS.pack(uid, gid, len(groups)) + struct.pack("=%dI" % len(groups),
                                                                *groups))


def receive_ids(sock):
    """What send_ids sent, or None when the sender left first or sent root's ids."""
    def exactly(size):
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data
    try:
        head = exactly(_IDS.size)
        if head is None:
            return None
        uid, gid, count = _IDS.unpack(head)
        if count > _MAX_GROUPS:
            return None
        rest = exactly(4 * count) if count else b""
    except OSError:
        return None
    if rest is None or (uid, gid, count) == (0, 0, 0):
        return None
    return uid, gid, list(struct.unpack("=%dI" % count, rest))


def _getid(listener, notif_id, pid, name, args, ids):
    """The answer (val, -errno) to a get*id call from the fake ids: getuid & co. return
    them; getresuid/getresgid and getgroups write them into the caller's memory first."""
    uid, gid, groups = ids
    if name in ("getuid", "geteuid"):
        return uid, 0
    if name in ("getgid", "getegid"):
        return gid, 0
    if name == "getgroups":
        size = _s32(args[0])
        if size == 0:
            return len(groups), 0
        if size < len(groups) or size < 0:
            return 0, -errno.EINVAL
        writes = [(args[1], struct.pack("=%dI" % len(groups), *groups))] if groups else []
        result = len(groups)
    else:
        value = struct.pack("=I", uid if name == "getresuid" else gid)
        writes = [(address, value) for address in args[:3]]
        result = 0
    try:
        fd = os.open("/proc/%d/mem" % pid, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return 0, -errno.EFAULT
    try:
        # the memory is the caller's only while its call is pending (pid reuse)
        id_valid(listener, notif_id)
        for address, data in writes:
            if os.pwrite(fd, data, address) != len(data):
                return 0, -errno.EFAULT
    except OSError:
        return 0, -errno.EFAULT
    finally:
        os.close(fd)
    return result, 0


def serve(listener, on_chown, ids=None):
    """Answer the notification waiting on listener (call when select says it is readable).
    on_chown(path, uid, gid): record that the file at path (a /proc/self/fd link to an
    O_PATH fd; a symlink stays one) was chowned, uid/gid NOOP_ID meaning unchanged; what it
    raises is ignored. ids: (uid, gid, groups) the get*id family answers with (the filter
    sends them only for a non-root user under a single-id mapping). Returns False once the
    filter has no user left (the container has ended: the listener reports a hangup) or the
    listener fails; True otherwise."""
    ready = state(listener)
    if ready != "call":
        return ready is None
    try:
        call = receive(listener)
    except OSError:
        return False
    if call is None:
        return True
    notif_id, pid, nr, arch, args = call
    names = _names()
    name = names.get(nr) if arch == names["arch"] else None
    if name is not None and name.startswith("get"):
        try:
            val, error = _getid(listener, notif_id, pid, name, args, ids or (0, 0, []))
        except Gone:
            return True
        answer(listener, notif_id, error=error, val=val)
        return True
    if name is not None:
        try:
            fd, uid, gid = _target(listener, notif_id, pid, name, args)
        except (OSError, Gone, ValueError):
            fd = None  # not found, not ours to touch, or gone: success without a record
        if fd is not None:
            try:
                if (uid, gid) != (NOOP_ID, NOOP_ID):
                    on_chown("/proc/self/fd/%d" % fd, uid, gid)
            except Exception:  # noqa: BLE001  (never fail the program that chowns)
                pass
            finally:
                os.close(fd)
    answer(listener, notif_id)
    return True
