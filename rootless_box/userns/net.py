"""Network namespace basics: bringing the loopback interface up (netdevice(7), SIOCSIFFLAGS).

Owns: the ioctls on a fresh network namespace. Must not: create namespaces (the launcher does).
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
