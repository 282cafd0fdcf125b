"""The published-port bypass: a container's server listens on the host's socket itself.

Owns: answering the bind(), connect() and shutdown() calls of a container with published TCP
ports (seccomp's bypass_program sends them to the container's forwarder, whose loop calls
`Bypass.serve`). When a process binds a published container port on the wildcard or loopback
address, the forwarder installs the host's listening socket of that port in place of the
process's socket (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SETFD), with the options
the process had set (non-blocking, close-on-exec, TCP_NODELAY, keepalive...), and answers
success. The server then listens and accepts on the host's socket: clients' bytes go from the
host's TCP stack to it with no proxy in between, and it sees their real addresses
(bypass4netns's idea, for bind() alone). A process binding with another address family than
the host's socket has gets a socket of its family bound in its place (a dual-stack IPv6 one
for an IPv4 wildcard binding). Its socket being the host's, the server is no longer reachable
inside the container's network namespace: the forwarder listens there in its place, on what
the server asked for (so the port stays taken inside, and `wget localhost:PORT` in the
container still reaches it through a relay to the host's port, over a socket the maker, a
small process left on the host, makes). Every other bind runs as it would
(SECCOMP_USER_NOTIF_FLAG_CONTINUE).
A host's socket must stay a listening one: disconnected (connect with AF_UNSPEC, or
shutdown(SHUT_RD)), it could connect anywhere the host reaches, out of the private network.
So every connect() of the container, and every shutdown() but SHUT_WR, is carried out here on
the caller's socket (taken with pidfd_getfd) and answered with its result, EPERM on a host's
socket: never "continue", which would let another thread swap the fd or the address between
the check and the call. A blocking connect, or one to a unix socket's path (resolved in the
caller's root, as the caller: its fs ids, groups and capabilities on the thread doing it),
runs in a thread of its own.
Must not: fail a bind it does not take over (in doubt, the call runs as it would), trust what
the caller gives (the address is read from its memory once, its socket taken with
pidfd_getfd, both belonging to the call only if it is still pending, checked after reading),
block the forwarder's loop beyond a socket() round trip to the maker or a non-blocking
connect, or leave a call unanswered.
"""
import errno
import fcntl
import os
import queue
import socket
import stat
import struct
import threading

from .. import securepath
from . import libc, notify, seccomp

_O_CLOEXEC = 0o2000000
# what a server sets on its listening socket before bind() that its connections inherit
_OPTIONS = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE), (socket.SOL_SOCKET, socket.SO_OOBINLINE),
            (socket.IPPROTO_TCP, socket.TCP_NODELAY),
            (socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT),
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            (socket.IPPROTO_TCP, socket.TCP_KEEPCNT)]
_LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def parse_sockaddr(raw):
    """(family, address text, port) of an AF_INET/AF_INET6 struct sockaddr, or None."""
    if len(raw) < 2:
        return None
    family = struct.unpack_from("=H", raw)[0]
    # the kernel's own minimums: sizeof(struct sockaddr_in), SIN6_LEN_RFC2133
    if family == socket.AF_INET and len(raw) >= 16:
        return family, socket.inet_ntop(family, raw[4:8]), struct.unpack_from(">H", raw, 2)[0]
    if family == socket.AF_INET6 and len(raw) >= 24:
        return family, socket.inet_ntop(family, raw[8:24]), struct.unpack_from(">H", raw, 2)[0]
    return None


def taken_address(family, address):
    """Whether a bind to address is one the bypass takes over: the wildcard, or loopback
    (which the relay reaches too, from inside)."""
    return address in ("0.0.0.0", "127.0.0.1", "::", "::ffff:127.0.0.1")


class Port:
    """A published TCP container port with a single host binding: the host's socket (the
    relay's listener until a server takes it over), where to reach it from inside, and the
    forwarder's listener inside once taken over."""

    def __init__(self, sock, container_port):
        self.sock = sock
        self.container_port = container_port
        ip, host_port = sock.getsockname()[:2]
        if ip in ("0.0.0.0", "::"):
            ip = _LOOPBACK[sock.family]
        self.target = (sock.family, (ip, host_port))
        self.inside = None
        self.taken = False


class Bypass:
    """The bind listener's server. relay: the forwarder's loop (stop(sock) once a host socket
    it listens on is handed over, resume(sock, port) when it is the relay's again, drain(sock)
    before one is closed, add_inside(sock, target)/drop_inside(sock) for its listeners in the
    container); maker: a socket to the maker on the host, or None; init_pid: the container's
    init (its pid namespace tells the container's processes)."""

    def __init__(self, listener, ports, relay, maker, init_pid):
        self.listener = listener
        self.ports = ports  # container port -> Port
        self.relay = relay
        self.maker = maker
        self.init_pid = init_pid
        self._workers = _Workers()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.netns = _netns_cookie(probe.fileno())  # this process has joined it
        finally:
            probe.close()
        t = seccomp.table()
        compat = t["compat"]
        self.calls = {(t["arch"], t["bind"]): "bind", (t["arch"], t["connect"]): "connect",
                      (t["arch"], t["shutdown"]): "shutdown", (t["arch"], t["listen"]): "listen",
                      (compat["arch"], compat["connect"]): "connect",
                      (compat["arch"], compat["shutdown"]): "shutdown",
                      (compat["arch"], compat["socketcall"]): "socketcall"}

    def serve(self):
        """Answer the call waiting on the listener (call when poll says it is readable).
        False once the filter has no user left or the listener fails."""
        ready = notify.state(self.listener)
        if ready != "call":
            return ready is None
        try:
            call = notify.receive(self.listener)
        except OSError:
            return False
        if call is None:
            return True
        notif_id, pid, nr, arch, args = call
        kind = self.calls.get((arch, nr))
        if kind in ("connect", "shutdown", "socketcall"):
            self._guard(kind, notif_id, pid, args)
            return True
        flags = notify.SECCOMP_USER_NOTIF_FLAG_CONTINUE
        if kind == "listen":
            if self._keeps_backlog(pid, args):
                flags = 0
        elif kind == "bind":
            try:
                if self._take(notif_id, pid, args):
                    flags = 0  # its fd is the host's socket, already bound: success
            except Exception:  # noqa: BLE001  (the forwarder must live: were its
                pass  # listener closed, every bind() in the container would fail ENOSYS)
        notify.answer(self.listener, notif_id, flags)
        return True

    # -- connect() and shutdown(), carried out here ----------------------------------------

    def _guard(self, kind, notif_id, tid, args):
        """Have a worker carry out the caller's connect() or shutdown() on its socket and
        answer with the result. Sockets of the host's network namespace (the published ports'
        listening sockets and what they accept) must keep their state: no connect on them
        (disconnected with AF_UNSPEC, one could connect anywhere the host reaches), no
        shutdown of a listening one (which disconnects it): EPERM. Never "continue": the
        kernel would read the fd and the address again, after another thread of the caller
        may have changed them. Nothing of it on this loop: a connect may block (O_NONBLOCK is
        the caller's to flip at any moment), so may reading the caller's memory."""
        try:
            self._workers.run(self._carry_out, kind, notif_id, tid, args)
        except (OSError, RuntimeError):
            notify.answer(self.listener, notif_id, error=-errno.EAGAIN)

    def _carry_out(self, kind, notif_id, tid, args):
        """On a worker: the call, then its answer (always one)."""
        try:
            result = self._call(kind, notif_id, tid, args)
        except notify.Gone:
            return
        except OSError as exc:
            result = -(exc.errno or errno.EIO)
        except Exception:  # noqa: BLE001  (a call is always answered)
            result = -errno.EIO
        notify.answer(self.listener, notif_id, error=min(result, 0))

    def _call(self, kind, notif_id, tid, args):
        """-> 0 or -errno."""
        if kind == "socketcall":
            # the 32-bit ABI's: the call's arguments are in its memory (read once, here)
            count = 3 if args[0] & 0xFFFFFFFF == seccomp.SYS_CONNECT else 2
            raw = notify.read_memory(tid, args[1] & 0xFFFFFFFF, 4 * count)
            if len(raw) < 4 * count:
                return -errno.EFAULT
            kind = "connect" if count == 3 else "shutdown"
            args = list(struct.unpack("=%dI" % count, raw)) + [0]
        fd = args[0] & 0xFFFFFFFF
        if fd > 0x7FFFFFFF:
            return -errno.EBADF
        if kind == "shutdown":
            how = args[1] & 0xFFFFFFFF
            if how > 2:
                return -errno.EINVAL
            dup = _their_fd(tid, fd)
            try:
                notify.id_valid(self.listener, notif_id)
                if self._foreign(dup) and _tcp_state(dup) == _TCP_LISTEN:
                    return -errno.EPERM
                return _shutdown(dup, how)
            finally:
                os.close(dup)
        length = args[2] & 0xFFFFFFFF
        if length > 128:
            return -errno.EINVAL  # larger than struct sockaddr_storage, as the kernel says
        address = notify.read_memory(tid, args[1], length) if length else b""
        if len(address) < length:
            return -errno.EFAULT
        dup = _their_fd(tid, fd)
        opened = []
        try:
            is_socket = stat.S_ISSOCK(os.fstat(dup).st_mode)
            unix = is_socket and _domain(dup) == socket.AF_UNIX
            if unix:
                # its root, working directory and credentials: a path is resolved there,
                # and the peer sees who connects (SO_PEERCRED)
                opened = [os.open("/proc/%d/%s" % (tid, name), os.O_PATH | os.O_CLOEXEC)
                          for name in ("root", "cwd")]
                creds = _credentials(tid)
            notify.id_valid(self.listener, notif_id)  # all that was read is this call's
            if not is_socket:
                return -errno.ENOTSOCK
            if self._foreign(dup):
                return -errno.EPERM
            if unix:
                _Workers.taint()
                libc.thread_credentials(*creds)
                if len(address) > 2 and address[2] != 0 and \
                        struct.unpack_from("=H", address)[0] == socket.AF_UNIX:
                    path = os.fsdecode(address[2:].split(b"\0")[0])
                    opened.append(securepath.open_in_root(opened[0], path,
                                                          start_fd=opened[1]))
                    address = struct.pack("=H", socket.AF_UNIX) + \
                        b"/proc/self/fd/%d\0" % opened[-1]
            return libc.connect_raw(dup, address)
        finally:
            for fd_ in [dup] + opened:
                try:
                    os.close(fd_)
                except OSError:
                    pass

    def _keeps_backlog(self, tid, args):
        """Whether a listen() is on a host's socket the container was handed, which is
        listening already with a backlog of SOMAXCONN: it is answered with success and the
        backlog stays. A server's own small backlog (busybox httpd's 9, Python's
        socketserver's 5) on it would make the kernel drop connections of a burst that
        comes while the server is slow to accept, and their clients retry on TCP's
        exponential timers (up to a minute); the relay's host socket keeps SOMAXCONN too.
        Any other listen() runs as it is (a race that swaps the fd meanwhile could at most
        set a host socket's backlog)."""
        fd = args[0] & 0xFFFFFFFF
        if fd > 0x7FFFFFFF:
            return False
        try:
            dup = _their_fd(tid, fd)
        except OSError:
            return False
        try:
            return self._foreign(dup) and _tcp_state(dup) == _TCP_LISTEN
        except OSError:
            return False  # not a socket
        finally:
            os.close(dup)

    def _foreign(self, fd):
        """Whether the socket at fd is not of the container's network namespace (the host's
        sockets of the published ports, and the connections they accepted)."""
        return _netns_cookie(fd) != self.netns

    # -- bind(): the hand-over ----------------------------------------------------------------

    def _take(self, notif_id, pid, args):
        """pid: the calling thread's host id."""
        fd, address, length = args[0] & 0xFFFFFFFF, args[1], args[2] & 0xFFFFFFFF
        if fd > 0x7FFFFFFF or not 16 <= length <= 128:
            return False
        parsed = parse_sockaddr(notify.read_memory(pid, address, length))
        if parsed is None:
            return False
        family, ip, port = parsed
        entry = self.ports.get(port)
        if entry is None or not taken_address(family, ip):
            return False
        if _inode(pid, fd) == _inode(None, entry.sock.fileno()):
            # the host's socket already: a bind restarted after a signal came between the
            # hand-over and the answer. It is bound.
            notify.id_valid(self.listener, notif_id)
            return True
        if entry.taken and not self._held(entry):
            self._release(entry)  # the server that took it is gone: start afresh
        theirs = _their_socket(pid, fd)
        try:
            cloexec = _cloexec(pid, fd)
            notify.id_valid(self.listener, notif_id)  # what was read is this call's
            if not self._eligible(theirs, family):
                return False
            fresh_inside = entry.inside is None
            if fresh_inside and not self._listen_inside(entry, family, ip):
                return False  # the port is taken inside: the bind fails as it would
            host = self._host_socket(entry, family)
            if host is not None:
                try:
                    _copy_options(theirs, host)
                    notify.add_fd(self.listener, notif_id, host.fileno(), fd,
                                  _O_CLOEXEC if cloexec else 0)
                except OSError:
                    self._give_back(entry, host)
                    host = None
            if host is None:
                if fresh_inside:
                    self.relay.drop_inside(entry.inside)
                    entry.inside = None
                return False
            self._handed(entry, host)
            return True  # the caller's fd is the host's socket now: nothing may undo that
        finally:
            theirs.close()

    def _handed(self, entry, host):
        """Bookkeeping once host is the caller's: the relay leaves it; a new socket (the
        dual-stack one) replaces the old, whose backlog is relayed first."""
        try:
            if host is not entry.sock:
                old, entry.sock = entry.sock, host
                self.relay.drain(old)
                self.relay.stop(old)
                old.close()  # the port is the new socket's alone
                host.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
            elif not entry.taken:
                self.relay.stop(host)
        except OSError:
            pass
        entry.taken = True

    def _held(self, entry):
        """Whether a process of the container still holds the host's socket of entry (the
        forwarder and the maker are not in the container's pid namespace)."""
        target = "socket:[%d]" % _inode(None, entry.sock.fileno())
        try:
            ours = os.readlink("/proc/%d/ns/pid" % self.init_pid)
        except OSError:
            return True  # cannot tell: keep it as it is
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % name) != ours:
                    continue
                fds = os.listdir("/proc/%s/fd" % name)
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink("/proc/%s/fd/%s" % (name, fd)) == target:
                        return True
                except OSError:
                    pass
        return False

    def _release(self, entry):
        """Nobody in the container holds entry's host socket: the relay serves it again and
        the port inside is free."""
        if entry.inside is not None:
            self.relay.drop_inside(entry.inside)
            entry.inside = None
        entry.sock.setblocking(False)
        self.relay.resume(entry.sock, entry.container_port)
        entry.taken = False

    @staticmethod
    def _eligible(sock, family):
        """A TCP socket of the address's family, not yet bound, without SO_REUSEPORT (a
        group of servers sharing the port: not ours to split) nor IPV6_V6ONLY."""
        if sock.family != family or sock.type != socket.SOCK_STREAM or \
                sock.proto not in (0, socket.IPPROTO_TCP):
            return False
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
            return False
        if family == socket.AF_INET6 and sock.getsockopt(socket.IPPROTO_IPV6,
                                                         socket.IPV6_V6ONLY):
            return False
        return sock.getsockname()[1] == 0

    def _listen_inside(self, entry, family, ip):
        """The forwarder's listener in the container's namespace, where the server asked."""
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((ip, entry.container_port))
            sock.listen(socket.SOMAXCONN)
        except OSError:
            sock.close()
            return False
        entry.inside = sock
        self.relay.add_inside(sock, entry.target)
        return True

    def _host_socket(self, entry, family):
        """The host's socket for a server of family: the one bound at start when the families
        agree; for an IPv6 server and an IPv4 binding, a dual-stack IPv6 socket bound beside
        it (made by the maker: this process is inside the container's namespace), which
        replaces it once handed over."""
        current = entry.sock
        if current.family == family:
            return current
        if family != socket.AF_INET6 or current.family != socket.AF_INET or entry.taken:
            return None
        fresh = self.make(socket.AF_INET6)
        if fresh is None:
            return None
        ip, host_port = current.getsockname()[:2]
        try:
            fresh.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # both with SO_REUSEPORT while the new one binds and listens beside the old: the
            # port is never free, and the server's listen() finds it listening already
            current.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            fresh.bind(("::" if ip == "0.0.0.0" else "::ffff:" + ip, host_port))
            fresh.listen(socket.SOMAXCONN)
        except OSError:
            self._give_back(entry, fresh)
            return None
        return fresh

    @staticmethod
    def _give_back(entry, host):
        """A hand-over that did not happen: a new socket closed, the old one as it was."""
        if host is not entry.sock:
            host.close()
        try:
            entry.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
            if not entry.taken:
                entry.sock.setblocking(False)  # the relay's again
        except OSError:
            pass

    def make(self, family):
        """A new socket of family in the host's network namespace, from the maker."""
        if self.maker is None:
            return None
        try:
            self.maker.send(b"6" if family == socket.AF_INET6 else b"4")
            _msg, fds, _flags, _addr = socket.recv_fds(self.maker, 1, 1)
        except OSError:
            return None
        return socket.socket(fileno=fds[0]) if fds else None


def _inode(pid, fd):
    """The inode number of the socket at fd (of pid, or ours for None), or None."""
    try:
        if pid is None:
            return os.fstat(fd).st_ino
        link = os.readlink("/proc/%d/fd/%d" % (pid, fd))
    except OSError:
        return None
    return int(link[8:-1]) if link.startswith("socket:[") and link.endswith("]") else None


_PIDFD_THREAD = os.O_EXCL  # linux/pidfd.h (6.9): a pidfd for this very thread


class _Workers:
    """Threads for the carried-out calls, kept for the next ones (a thread's start costs
    more than a connect), at most _MAX at once. One that took a caller's credentials ends
    after that call instead of going back to the pool."""

    _MAX = 256
    _local = threading.local()  # a worker's "tainted" mark

    def __init__(self):
        self.queue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.idle = 0
        self.alive = 0

    def run(self, func, *args):
        """Queue func(*args) for a worker; OSError(EAGAIN) when none can take it."""
        with self.lock:
            if self.idle:
                self.idle -= 1
                spare = True
            elif self.alive >= self._MAX:
                raise OSError(errno.EAGAIN, "every worker is busy")
            else:
                self.alive += 1
                spare = False
        if not spare:
            try:
                # started before the job is queued: a start that fails leaves no job behind
                threading.Thread(target=self._work, daemon=True).start()
            except BaseException:
                with self.lock:
                    self.alive -= 1
                raise
        self.queue.put((func, args))

    @classmethod
    def taint(cls):
        """The current worker is taking someone's credentials: it is not to be reused."""
        cls._local.tainted = True

    def _work(self):
        while True:
            func, args = self.queue.get()
            try:
                func(*args)
            except BaseException:  # noqa: BLE001  (func answers its call itself)
                pass
            if getattr(_Workers._local, "tainted", False):
                with self.lock:
                    self.alive -= 1
                return
            with self.lock:
                self.idle += 1


def _their_fd(tid, fd):
    """A duplicate of thread tid's fd (pidfd_getfd)."""
    try:
        pidfd = os.pidfd_open(tid, _PIDFD_THREAD)
    except OSError:
        # before 6.9 only a thread group leader has a pidfd; threads share its fd table
        # (CLONE_FILES, as every pthread)
        pidfd = os.pidfd_open(_tgid(tid))
    try:
        return libc.pidfd_getfd(pidfd, fd)
    finally:
        os.close(pidfd)


def _their_socket(tid, fd):
    """A duplicate of thread tid's fd as a socket object (OSError if it is none)."""
    dup = _their_fd(tid, fd)
    try:
        return socket.socket(fileno=dup)
    except BaseException:
        os.close(dup)  # not a socket: nothing kept of it
        raise


_SO_NETNS_COOKIE = 71  # asm-generic/socket.h (Linux 5.14)
_TCP_LISTEN = 10


def _netns_cookie(fd):
    """The cookie of the network namespace the socket at fd belongs to."""
    return _getsockopt(fd, socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8)


def _domain(fd):
    return struct.unpack("=i", _getsockopt(fd, socket.SOL_SOCKET, socket.SO_DOMAIN, 4))[0]


def _tcp_state(fd):
    """The TCP state of the socket at fd (tcp_info's first byte), or None if not TCP."""
    try:
        if struct.unpack("=i", _getsockopt(fd, socket.SOL_SOCKET, socket.SO_PROTOCOL, 4))[0] \
                != socket.IPPROTO_TCP:
            return None
        return _getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return None


def _getsockopt(fd, level, name, size):
    sock = socket.socket(fileno=os.dup(fd))
    try:
        return sock.getsockopt(level, name, size)
    finally:
        sock.close()


def _shutdown(fd, how):
    """shutdown(2) of fd -> 0 or -errno."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError as exc:
        return -(exc.errno or errno.EIO)
    try:
        sock.shutdown(how)
        return 0
    except OSError as exc:
        return -(exc.errno or errno.EIO)
    finally:
        sock.close()


def _credentials(tid):
    """(euid, egid, fsuid, fsgid, supplementary groups, effective capabilities) of thread tid,
    as its /proc status shows them (in this process's user namespace: the container's). A
    caller in a user namespace of its own has its capabilities there, none here."""
    fields = {}
    with open("/proc/%d/status" % tid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    caps = int(fields["CapEff"][0], 16)
    if os.readlink("/proc/%d/ns/user" % tid) != os.readlink("/proc/self/ns/user"):
        caps = 0
    return (int(fields["Uid"][1]), int(fields["Gid"][1]), int(fields["Uid"][3]),
            int(fields["Gid"][3]), [int(g) for g in fields.get("Groups", [])], caps)


def _tgid(tid):
    with open("/proc/%d/status" % tid) as f:
        for line in f:
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    raise OSError("no Tgid for %d" % tid)


def _cloexec(pid, fd):
    """Whether the process's fd is close-on-exec (the "flags:" line of its fdinfo)."""
    with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
        for line in f:
            if line.startswith("flags:"):
                return bool(int(line.split()[1], 8) & _O_CLOEXEC)
    return False


def _copy_options(theirs, host):
    """The options the server set before bind() onto the host's socket, and its blocking
    mode (a file status flag, which the host's socket's own file carries)."""
    for level, name in _OPTIONS:
        try:
            host.setsockopt(level, name, theirs.getsockopt(level, name))
        except OSError:
            pass
    mode = fcntl.fcntl(theirs.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
    flags = fcntl.fcntl(host.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(host.fileno(), fcntl.F_SETFL, (flags & ~os.O_NONBLOCK) | mode)


def maker(sock):
    """The maker's loop (a process left on the host): a byte "4" or "6" asks for a new TCP
    socket of that family, sent back over sock; it ends when the forwarder does."""
    while True:
        try:
            word = sock.recv(1)
        except InterruptedError:
            continue
        except OSError:
            return
        if not word:
            return
        try:
            made = socket.socket(socket.AF_INET6 if word == b"6" else socket.AF_INET,
                                 socket.SOCK_STREAM)
        except OSError:
            sock.send(b"e")
            continue
        try:
            socket.send_fds(sock, [b"s"], [made.fileno()])
        finally:
            made.close()
