"""Network namespace basics: bringing the loopback interface up (netdevice(7), SIOCSIFFLAGS),
how full a TCP server's accept queue is (sock_diag(7)), and what a socket has not sent yet.

Owns: the ioctls on a fresh network namespace, the sock_diag query, TIOCOUTQ (tcp(7)).
Must not: create namespaces (the launcher does).
"""

import fcntl
import socket
import struct

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo",
                                                              flags | _IFF_UP, b""))


# sock_diag(7): NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, struct inet_diag_req_v2/_msg
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCPF_LISTEN = 1 << 10
_DIAG_MSG = struct.Struct("=BBBBHH16s16sI8sIIIII")  # inet_diag_msg, 72 bytes


def unsent(fd):
    """The bytes socket fd's send queue still holds (TIOCOUTQ, tcp(7), unix(7)): 0 once the
    peer has taken all that was written. OSError where the socket takes no such question."""
    import termios
    return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def diag_socket():
    """A sock_diag socket for accept_room, in this process's network namespace."""
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)


def accept_room(port, nl=None):
    """How many more connections the TCP servers listening on `port` in this network
    namespace can take into their accept queues now (for each listener: its backlog + 1,
    the kernel's sk_acceptq_is_full, minus what waits in its queue; summed over listeners
    of both families), or None when nothing listens there. A listener's inet_diag_msg
    carries its queue length (idiag_rqueue) and backlog (idiag_wqueue)."""
    room = None
    own = nl is None
    if own:
        nl = diag_socket()
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            # inet_diag_req_v2: family, protocol, ext, pad, states; sockid with the port as
            # sport (the kernel skips listeners on other ports)
            req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, _TCPF_LISTEN) + \
                struct.pack(">H", port) + bytes(46)
            nl.send(struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY,
                                _NLM_F_REQUEST | _NLM_F_DUMP, 1, 0) + req)
            done = False
            while not done:
                data = nl.recv(65536)
                if not data:
                    break
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if length < 16:
                        done = True
                        break
                    if kind in (_NLMSG_DONE, _NLMSG_ERROR):
                        done = True
                    elif kind == _SOCK_DIAG_BY_FAMILY and length >= 16 + _DIAG_MSG.size:
                        fields = _DIAG_MSG.unpack_from(data, offset + 16)
                        sport, queued, backlog = socket.ntohs(fields[4]), fields[11], fields[12]
                        if sport == port:
                            room = (room or 0) + max(0, backlog + 1 - queued)
                    offset += (length + 3) & ~3
    finally:
        if own:
            nl.close()
    return room
