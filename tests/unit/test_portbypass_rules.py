"""What the port bypass reads from a container's bind() call: the struct sockaddr, taken from
the caller's memory (hostile: short, another family, garbage), and which addresses it takes
over (the wildcard and loopback, what the relay reaches from inside too)."""

import socket
import struct

import pytest

from rootless_box.userns.portbypass import parse_sockaddr, taken_address


def sockaddr_in(ip, port):
    return struct.pack("=H", socket.AF_INET) + struct.pack(">H", port) + \
        socket.inet_pton(socket.AF_INET, ip) + bytes(8)


def sockaddr_in6(ip, port, flowinfo=0, scope=0):
    return struct.pack("=H", socket.AF_INET6) + struct.pack(">HI", port, flowinfo) + \
        socket.inet_pton(socket.AF_INET6, ip) + struct.pack("=I", scope)


def test_inet_addresses_are_read():
    assert parse_sockaddr(sockaddr_in("0.0.0.0", 80)) == (socket.AF_INET, "0.0.0.0", 80)
    assert parse_sockaddr(sockaddr_in("127.0.0.1", 65535)) == \
        (socket.AF_INET, "127.0.0.1", 65535)
    assert parse_sockaddr(sockaddr_in6("::", 8080)) == (socket.AF_INET6, "::", 8080)
    assert parse_sockaddr(sockaddr_in6("::ffff:127.0.0.1", 443, 7, 2)) == \
        (socket.AF_INET6, "::ffff:127.0.0.1", 443)


@pytest.mark.parametrize("raw", [
    # shorter than the kernel's minimum (sizeof(sockaddr_in) 16, SIN6_LEN_RFC2133 24): EINVAL
    b"", b"\x02", sockaddr_in("0.0.0.0", 80)[:7], sockaddr_in("0.0.0.0", 80)[:15],
    sockaddr_in6("::", 80)[:23],
    struct.pack("=H", socket.AF_UNIX) + b"/tmp/sock\0",
    struct.pack("=H", 0xFFFF) + bytes(30)])
def test_anything_else_is_not_ours(raw):
    assert parse_sockaddr(raw) is None


@pytest.mark.parametrize("family,address,taken", [
    (socket.AF_INET, "0.0.0.0", True), (socket.AF_INET, "127.0.0.1", True),
    (socket.AF_INET6, "::", True), (socket.AF_INET6, "::ffff:127.0.0.1", True),
    # an address of the container's own interface, or another loopback one: the relay
    # does not reach it either, and the bind runs as it would
    (socket.AF_INET, "10.0.2.100", False), (socket.AF_INET, "127.0.0.2", False),
    (socket.AF_INET6, "fe80::1", False)])
def test_which_binds_are_taken_over(family, address, taken):
    assert taken_address(family, address) is taken
