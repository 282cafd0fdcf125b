"""The port forwarder: host ports moved into a container's private network namespace.

Owns: the forwarder process. It holds the listening sockets ops/ports.py bound on the host,
starts the outbound helper (pasta or slirp4netns, which gives the namespace a tap device
routed through the host's sockets) while still on the host, then enters the container's user
and network namespaces (setns through /proc/PID/ns). The sockets it had keep the host's
namespace; every socket it makes from then on is the container's. So for each accepted
connection it connects a new socket to 127.0.0.1:PORT inside, itself, and moves bytes
between the two with splice(2) through a pipe per direction (half-closes included); for UDP
it keeps one socket inside per client address and relays datagrams. It connects inside only
as many as the server's accept queue has room for (sock_diag), and keeps the rest waiting
here: see Relay._admit for why. RootlessKit's builtin
port driver makes the inner socket in a child and hands it over with SCM_RIGHTS: one process
and one round trip per connection fewer here. No tap device, no root, no copy through user
space. With the container's bind() listener (userns/portbypass.py) it also serves the bind
bypass, which takes TCP servers out of the relay, and leaves a maker child on the host for
the host sockets the bypass needs once this process is inside.
Must not: start threads before it has joined the container (setns of a user namespace
refuses a threaded process, and the rule is fork before any thread; the bypass's blocking
connects run in threads after), know about records or the store, or outlive the container: it
watches the container's init through a pidfd and leaves when it exits, and its helper with
it (init itself dies with its keeper, the foreground `run` or the detached monitor, by its
parent-death signal).
"""

import errno
import os
import select
import socket
import _signal as signal

from . import detach, libc
from .detach import keep_only

_CHUNK = 1 << 20
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
_UDP_IDLE = 90.0  # Docker's userland proxy forgets a UDP client after 90 s
_BURST = 64  # splices per event before others get their turn
_ADMIT_TICK = 10  # ms between looks at a full accept queue while connections wait for it
_ROOM_AGE = 0.05  # s a look at an accept queue is trusted for (it only frees up meanwhile)


def spawn(pid, listeners, outbound=None, bind_listener=None):
    """listeners: [(fd, "tcp"|"udp", container port)], fds bound on the host. Start a
    forwarder for the container whose init is host pid `pid`; return once it has joined the
    container's namespaces (and the outbound helper, "pasta" or "slirp4netns", has
    configured the namespace's interface and default route), or raise the SetupError that
    stopped it. bind_listener: the seccomp listener of the container's bind() calls, which
    the forwarder serves (userns/portbypass.py). The forwarder is not our child (double
    fork): a CLI that exits leaves no zombie."""
    from ..errors import SetupError
    try:
        pidfd = os.pidfd_open(pid)
        ns = [os.open("/proc/%d/ns/%s" % (pid, name), os.O_RDONLY | os.O_CLOEXEC)
              for name in ("user", "net")]
    except OSError as exc:
        raise SetupError("cannot reach the container's network namespace: %s" % exc) from None
    keep = {pidfd, *ns, *(fd for fd, _p, _c in listeners)} | \
        ({bind_listener} if bind_listener is not None else set())
    try:
        report_r = detach.spawn(
            lambda report_w: _forwarder(pidfd, ns, listeners, report_w, (outbound, pid),
                                        bind_listener),
            report=True, on_error=_report_error, keep=keep)
    finally:
        for fd in ns + [pidfd]:
            os.close(fd)
    try:
        word = os.read(report_r, 4096)
    finally:
        os.close(report_r)
    if word != b"R":
        raise SetupError("the port forwarder did not start: %s" % (
            word[1:].decode(errors="replace") or "it died"))


def _report_error(report_w, exc):
    try:
        os.write(report_w, ("E%s" % exc).encode(errors="replace"))
    except OSError:
        pass


def _forwarder(pidfd, ns, listeners, report_w, outbound, bind_listener):
    """In the detached forwarder (userns/detach: only the fds it serves left open)."""
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    if outbound[0]:
        # from the host, before entering the container: the helper's own sockets must be
        # the host's. Its exit-fd stays open in this process until it ends.
        _start_outbound(*outbound)
    # the host's sockets the bypass needs once this process is inside come from a child
    # left here
    maker = _start_maker() if bind_listener is not None else None
    # the user namespace first: it grants the capability setns(net) needs
    libc.setns(ns[0], libc.CLONE_NEWUSER)
    libc.setns(ns[1], libc.CLONE_NEWNET)
    for fd in ns:
        os.close(fd)
    detach.last_word(report_w, b"R")  # a later error is not written to its number
    Relay(pidfd, listeners, bind_listener, maker, outbound[1]).loop()
    os._exit(0)


def _start_maker():
    """The bypass's maker (portbypass.maker) as a child on the host; -> our end of its
    socket. It ends with this process (its socket's end, and a parent-death signal)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:
        try:
            ours.close()
            keep_only({theirs.fileno()})
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
            from .portbypass import maker
            maker(theirs)
        finally:
            os._exit(0)
    theirs.close()
    return ours


# -- outbound traffic: pasta or slirp4netns --------------------------------------------------

_READY_TIMEOUT = 10.0


def outbound_argv(kind, pid, ready_fd=None, exit_fd=None):
    """The helper's command line for the container whose init is host pid `pid`: it joins
    the container's user namespace (which owns its network namespace) and gives it a tap
    device with an address and a default route. Podman's choices: MTU 65520, no way to the
    host's loopback from inside, no port forwarding of its own (the forwarder publishes)."""
    if kind == "slirp4netns":
        return ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                "--enable-sandbox", "--ready-fd=%d" % ready_fd, "--exit-fd=%d" % exit_fd,
                "--userns-path=/proc/%d/ns/user" % pid, str(pid), "tap0"]
    return ["pasta", "--config-net", "--quiet", "--foreground", "--mtu", "65520",
            "--no-map-gw", "-t", "none", "-u", "none", "-T", "none", "-U", "none",
            "--userns", "/proc/%d/ns/user" % pid, "--netns", "/proc/%d/ns/net" % pid]


def _start_outbound(kind, pid):
    """Start the helper as this process's child (it dies with it: parent-death signal, and
    slirp4netns's exit-fd) and wait until the namespace has a default route. Returns the fds
    that stay open while it serves (this process holds them until it ends)."""
    import time
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe2(os.O_CLOEXEC)
    # its stderr: memory read back if it fails; a pipe left unread would block or kill it
    err = os.memfd_create("outbound-stderr", os.MFD_CLOEXEC)
    argv = outbound_argv(kind, pid, ready_w, exit_r)
    child = os.fork()
    if child == 0:
        try:
            os.set_inheritable(exit_r, True)  # Python's pipes are close-on-exec
            os.set_inheritable(ready_w, True)
            os.dup2(err, 2)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                # Python's ignored signals survive exec; pasta 2023.03 even refuses to
                # start with SIGPIPE already ignored ("Couldn't install signal handlers")
                signal.signal(sig, signal.SIG_DFL)
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
            for name in ("LD_LIBRARY_PATH", "LD_PRELOAD"):
                os.environ.pop(name, None)  # a frozen binary's bundle is not for helpers
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    for fd in (ready_w, exit_r):
        os.close(fd)
    deadline = time.monotonic() + _READY_TIMEOUT
    try:
        while not _has_default_route(pid):
            done, status = os.waitpid(child, os.WNOHANG)
            if done:
                child = None
                raise OSError("%s exited with status %d before the network was up%s" % (
                    kind, os.waitstatus_to_exitcode(status), _last_words(err)))
            if time.monotonic() > deadline:
                raise OSError("%s did not bring the network up in %d s%s"
                              % (kind, _READY_TIMEOUT, _last_words(err)))
            time.sleep(0.005)
    except BaseException:
        if child is not None:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        os.close(ready_r)
        raise
    finally:
        os.close(err)
    # ready_r stays open too: slirp4netns may write its ready byte after the route is up,
    # and a closed pipe would kill it with SIGPIPE
    return exit_w, ready_r


def _last_words(fd):
    """The end of what a failed helper wrote to its stderr, for the error line."""
    try:
        size = os.fstat(fd).st_size
        text = os.pread(fd, 4096, max(0, size - 4096)).decode(errors="replace").strip()
    except OSError:
        return ""
    return ": " + text.splitlines()[-1] if text else ""


def _has_default_route(pid):
    """The container's network namespace has an IPv4 default route (its /proc/net/route,
    read through its init)."""
    try:
        with open("/proc/%d/net/route" % pid) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return False
    return any(len(fields) > 2 and fields[1] == "00000000" and fields[0] != "lo"
               for fields in (line.split() for line in lines))


# -- the relay ------------------------------------------------------------------------------

def _raise_fd_limit():
    """The soft RLIMIT_NOFILE raised to the hard one (each connection holds four fds, and
    1024 is a common soft limit; docker-proxy and rootlessport do the same). -> the limit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return soft


class _Pipes:
    """Spare pipes, empty, for the next connections: a short connection then costs no
    pipe2 call. Grown to _PIPE_SIZE only once a stream fills the default 64 KiB, and a grown
    one is not kept: a pipe's capacity counts against the user's pipe-user-pages-soft (64 MiB
    by default, past which every new pipe of the user gets one page)."""

    def __init__(self, keep=16):
        self.free = []
        self.keep = keep

    def take(self):
        if self.free:
            return self.free.pop()
        return list(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)) + [False]

    def give(self, pipe):
        if len(self.free) < self.keep and not pipe[2]:
            self.free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])


class _Direction:
    """One way of a TCP connection: src -> pipe -> dst."""

    def __init__(self, src, dst, pipes):
        self.src, self.dst = src, dst
        self.pipes = pipes
        self.pipe = pipes.take()  # [read end, write end, grown]
        self.pending = 0
        self.eof = False
        self.done = False
        self.want = select.POLLIN  # POLLIN on src, or POLLOUT on dst, or 0 when done

    def pump(self):
        """Move what can be moved now. False on an error that ends the connection."""
        flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
        pr, pw = self.pipe[0], self.pipe[1]
        for _ in range(_BURST):
            if self.pending:
                try:
                    n = os.splice(pr, self.dst, self.pending, flags=flags)
                except BlockingIOError:
                    self.want = select.POLLOUT
                    return True
                except OSError:
                    return False
                self.pending -= n
                continue
            if self.eof:
                try:
                    # the half-close travels on: the other way may still carry a reply
                    _shutdown_write(self.dst)
                except OSError:
                    pass
                self.done = True
                self.want = 0
                return True
            try:
                n = os.splice(self.src, pw, _CHUNK, flags=flags)
            except BlockingIOError:
                self.want = select.POLLIN
                return True
            except OSError:
                return False
            if n == 0:
                self.eof = True
            elif n >= 65536 and not self.pipe[2]:
                self.pipe[2] = True  # a bulk stream: fewer, larger splices
                try:
                    import fcntl
                    fcntl.fcntl(pw, _F_SETPIPE_SZ, _PIPE_SIZE)
                except OSError:
                    pass  # above /proc/sys/fs/pipe-max-size: 64 KiB still works
            self.pending += n
        # a busy stream yields to the others; level-triggered poll brings it back
        self.want = select.POLLOUT if self.pending else select.POLLIN
        return True

    def close(self):
        if self.pending:
            # bytes left in it: not reusable
            os.close(self.pipe[0])
            os.close(self.pipe[1])
        else:
            self.pipes.give(self.pipe)
        self.pipe = None


def _socket(family):
    try:
        return socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None


def _shutdown_write(fd):
    sock = socket.socket(fileno=fd)
    try:
        sock.shutdown(socket.SHUT_WR)
    finally:
        sock.detach()


class _Conn:
    """A client's connection and its socket inside; until that one is connected
    (connecting), only its POLLOUT is waited for."""

    def __init__(self, outer, inner, pipes, port=None):
        self.socks = (outer, inner)
        self.pipes = pipes
        self.port = port  # the container port of a paced connection (Relay._admit)
        self.connecting = True
        self.ab = self.ba = None

    def connected(self):
        a, b = self.socks
        self.connecting = False
        self.ab = _Direction(a.fileno(), b.fileno(), self.pipes)
        self.ba = _Direction(b.fileno(), a.fileno(), self.pipes)

    def masks(self):
        a, b = self.socks[0].fileno(), self.socks[1].fileno()
        if self.connecting:
            return {a: 0, b: select.POLLOUT}
        mask = {a: 0, b: 0}
        for d in (self.ab, self.ba):
            if d.want == select.POLLIN:
                mask[d.src] |= select.POLLIN
            elif d.want == select.POLLOUT:
                mask[d.dst] |= select.POLLOUT
        return mask

    def close(self):
        for d in (self.ab, self.ba):
            if d is not None:
                d.close()
        for s in self.socks:
            s.close()


class Relay:
    """The forwarder's single-threaded loop over poll(2), inside the container's network
    namespace with the host's listening sockets."""

    def __init__(self, pidfd, listeners, bind_listener=None, maker=None, init_pid=None):
        self.poll = select.poll()
        self.pidfd = pidfd
        self.pipes = _Pipes()
        self.fd_limit = _raise_fd_limit()
        self.paused = set()  # listeners not accepted from while fds are short
        self.listeners = {}
        self.conns = {}  # fd -> _Conn
        self.registered = {}  # fd -> mask
        self.udp = {}  # (listener fd, client addr) -> [inner socket, last use]
        self.udp_inner = {}  # inner fd -> (listener fd, client addr)
        self.waiting = {}  # container port -> deque of accepted clients not yet connected
        self.connecting = {}  # container port -> inner connects under way
        self.room = {}  # container port -> [connects its queue takes, when seen, seen full]
        self.diag = None  # the sock_diag socket, made inside the container's namespace
        for fd, proto, port in listeners:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            self.listeners[fd] = (sock, proto, port)
            self._set(fd, select.POLLIN)
        self._set(pidfd, select.POLLIN)
        self.bypass = None
        if bind_listener is not None:
            self._start_bypass(bind_listener, maker, init_pid)

    def _start_bypass(self, bind_listener, maker, init_pid):
        """The container's bind() calls served: its TCP ports published once each can be
        handed over (a port published twice stays the relay's: one server socket cannot be
        two host sockets)."""
        from .portbypass import Bypass, Port
        counts = {}
        for sock, proto, port in self.listeners.values():
            counts[(proto, port)] = counts.get((proto, port), 0) + 1
        ports = {port: Port(sock, port) for sock, proto, port in self.listeners.values()
                 if proto == "tcp" and counts[(proto, port)] == 1}
        self.bypass = Bypass(bind_listener, ports, self, maker, init_pid)
        self._set(bind_listener, select.POLLIN)

    def stop(self, sock):
        """The bypass handed sock to the container's server: not accepted from any more."""
        fd = sock.fileno()
        self.listeners.pop(fd, None)
        self.paused.discard(fd)
        self._set(fd, 0)

    def resume(self, sock, port):
        """sock (a host socket of container port `port`) is the relay's again."""
        self.listeners[sock.fileno()] = (sock, "tcp", port)
        self._set(sock.fileno(), select.POLLIN)

    def drain(self, sock):
        """Relay what waits in sock's backlog now (it is about to be closed)."""
        if sock.fileno() in self.listeners:
            self._listener_ready(sock.fileno())

    def add_inside(self, sock, target):
        """A listener of the bypass inside the container: what it accepts goes to target,
        (family, address) of the host's socket the server took over."""
        sock.setblocking(False)
        self.listeners[sock.fileno()] = (sock, "inside", target)
        self._set(sock.fileno(), select.POLLIN)

    def drop_inside(self, sock):
        self.stop(sock)
        sock.close()

    def _set(self, fd, mask):
        old = self.registered.get(fd)
        if mask == 0:
            # an fd with nothing to wait for is left out: poll would report its HUP forever
            if old is not None:
                self.poll.unregister(fd)
                del self.registered[fd]
            return
        if old is None:
            self.poll.register(fd, mask)
        elif old != mask:
            self.poll.modify(fd, mask)
        self.registered[fd] = mask

    def loop(self):
        import time
        while True:
            try:
                events = self.poll.poll(_ADMIT_TICK if self.waiting else
                                        30000 if self.udp else None)
            except InterruptedError:
                continue
            for fd, _ev in events:
                if fd == self.pidfd:
                    return  # the container's init exited
                if self.bypass is not None and fd == self.bypass.listener:
                    if not self.bypass.serve():
                        self._set(fd, 0)
                elif fd in self.listeners:
                    self._listener_ready(fd)
                elif fd in self.conns:
                    self._drive(self.conns[fd])
                elif fd in self.udp_inner:
                    self._udp_back(fd)
            for port in list(self.waiting):
                self._admit(port)
            if self.udp:
                now = time.monotonic()
                for key, (sock, used) in list(self.udp.items()):
                    if now - used > _UDP_IDLE:
                        self._udp_drop(key)

    def _room(self):
        """Whether one more connection fits in the fd limit: its two sockets and two pipes,
        with a margin for the UDP sockets and pooled pipes."""
        # a waiting client holds one fd now and will need the five more of a connection
        used = 3 * len(self.conns) + len(self.udp) + 2 * len(self.pipes.free) + \
            6 * sum(len(q) for q in self.waiting.values())
        return used + 6 + 32 < self.fd_limit

    def _listener_ready(self, fd):
        sock, proto, port = self.listeners[fd]
        if proto != "udp":
            for _ in range(256):
                if not self._room():
                    # the rest wait in the backlog until connections end (an EMFILE after
                    # accept would reset a client whose request had already arrived)
                    self.paused.add(fd)
                    self._set(fd, 0)
                    return
                try:
                    outer, _addr = sock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return  # EMFILE and friends: the client waits in the backlog
                if proto == "tcp":
                    self._admit(port, outer)
                else:
                    family, address = port
                    self._connect(outer, self.bypass.make(family), address)
            return
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._udp_send(fd, addr, port, data)

    def _admit(self, port, outer=None):
        """Connect to the server inside (127.0.0.1:port) the clients waiting for it, outer
        added last, as far as its accept queue has room; the rest wait here, looked at again
        every _ADMIT_TICK ms. Why: connections past a full accept queue are not refused.
        The kernel drops the SYN, or answers it with a SYN cookie and then drops the ACK
        (the client believes it is connected and its request is lost), and the client
        retries on TCP's timers, which back off exponentially: 1, 3, 7, 15, 31, 63 s. A
        burst of clients, all relayed at once to a server with a small backlog (busybox
        httpd listens with 9, Python's socketserver with 5) that is slow to accept for a
        moment (a busy CPU), so had connections stall for up to a minute, all retrying at
        the same instants and finding the queue full again. The host's listening socket has
        a backlog of SOMAXCONN, so here they wait without loss, and each is relayed as soon
        as the server can take it."""
        queue = self.waiting.get(port)
        if outer is not None:
            if queue is None:
                import collections
                queue = self.waiting[port] = collections.deque()
            queue.append(outer)
        if not queue:
            return
        import time
        now = time.monotonic()
        while queue:
            room = self.room.get(port)  # [connects it still takes, when seen, seen full]
            if room is None or room[0] <= 0 or now - room[1] > _ROOM_AGE:
                if room is not None and room[2] and now - room[1] < _ADMIT_TICK / 1000:
                    break  # seen full a moment ago: looked at again on the next tick
                free = self._accept_room(port)
                if free is None:
                    free = len(queue)  # nothing listens: each is refused, as it would be
                else:
                    free -= self.connecting.get(port, 0)
                room = self.room[port] = [free, now, free <= 0]
                if free <= 0:
                    break
            inner = _socket(socket.AF_INET)
            if inner is None:
                break  # no fd for it now (counted, so rare): it waits for the next tick
            room[0] -= 1
            self._connect(queue.popleft(), inner, ("127.0.0.1", port), port)
        if not queue:
            del self.waiting[port]

    def _accept_room(self, port):
        """net.accept_room through one sock_diag socket; None (connect, as if nothing
        listened) where sock_diag cannot answer."""
        from . import net
        try:
            if self.diag is None:
                self.diag = net.diag_socket()
            return net.accept_room(port, self.diag)
        except OSError:
            return None

    def _connect(self, outer, inner, address, port=None):
        """inner (a socket inside: this process is in the container's network namespace
        now; or the host's, from the bypass's maker) connected to address without blocking:
        a full backlog there must not stall the others. port: the container port, for a
        connection paced by _admit."""
        if inner is None:
            outer.close()
            return
        outer.setblocking(False)
        inner.setblocking(False)
        err = inner.connect_ex(address)
        if err not in (0, errno.EINPROGRESS):
            outer.close()  # nothing listens inside: the client sees its connection end
            inner.close()
            return
        conn = _Conn(outer, inner, self.pipes, port)
        for s in conn.socks:
            self.conns[s.fileno()] = conn
        self._count(conn, 1)
        if err == 0:
            self._drive(conn)
        else:
            self._watch(conn)

    def _count(self, conn, step):
        """Inner connects under way for a paced connection's port (in the server's SYN
        queue, not yet in its accept queue: sock_diag does not count them)."""
        if conn.port is not None:
            self.connecting[conn.port] = self.connecting.get(conn.port, 0) + step

    def _drive(self, conn):
        if conn.connecting:
            err = conn.socks[1].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not err:
                try:
                    conn.socks[1].getpeername()
                except OSError:
                    return  # not yet (SO_ERROR is 0 while the handshake goes on)
            self._count(conn, -1)
            conn.connecting = False
            try:
                if err:
                    raise OSError(err, os.strerror(err))
                conn.connected()  # its pipes: EMFILE ends this connection, not the loop
            except OSError:
                self._end(conn)
                return
        ok = conn.ab.pump() and conn.ba.pump()
        if not ok or (conn.ab.done and conn.ba.done):
            self._end(conn)
            return
        self._watch(conn)

    def _watch(self, conn):
        for fd, mask in conn.masks().items():
            self._set(fd, mask)

    def _end(self, conn):
        if conn.connecting:
            self._count(conn, -1)
            conn.connecting = False
        for s in conn.socks:
            self._set(s.fileno(), 0)
            self.conns.pop(s.fileno(), None)
        conn.close()
        if self.paused and self._room():
            for fd in self.paused:
                self._set(fd, select.POLLIN)
            self.paused.clear()

    def _udp_send(self, lfd, addr, port, data):
        import time
        key = (lfd, addr)
        entry = self.udp.get(key)
        if entry is None:
            try:
                inner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                inner.setblocking(False)
                inner.connect(("127.0.0.1", port))
            except OSError:
                return
            entry = self.udp[key] = [inner, 0.0]
            self.udp_inner[inner.fileno()] = key
            self._set(inner.fileno(), select.POLLIN)
        entry[1] = time.monotonic()
        try:
            entry[0].send(data)
        except OSError:
            pass

    def _udp_back(self, fd):
        lfd, addr = self.udp_inner[fd]
        inner = self.udp[(lfd, addr)][0]
        listener = self.listeners[lfd][0]
        for _ in range(256):
            try:
                data = inner.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ECONNREFUSED: nothing listens inside (yet); forget this client's socket
                self._udp_drop((lfd, addr))
                return
            try:
                listener.sendto(data, addr)
            except OSError:
                pass

    def _udp_drop(self, key):
        sock, _used = self.udp.pop(key)
        self.udp_inner.pop(sock.fileno(), None)
        self._set(sock.fileno(), 0)
        sock.close()
