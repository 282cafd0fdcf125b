"""rtnetlink(7) from Python: the few link, address and route requests user networks need
(a bridge, a veth pair with its peer made in another network namespace, an address, a
default route, IPv4 or IPv6, a link removed), on an AF_NETLINK/NETLINK_ROUTE socket with struct-packed
messages: no `ip` process per container.

Owns: message layouts (nlmsghdr, ifinfomsg, ifaddrmsg, rtmsg, rtattr; linux/rtnetlink.h,
linux/if_link.h, linux/veth.h) and the ACK/error reading. Must not: enter namespaces (the
caller is already in the one the socket must belong to).
"""

import os
import socket
import struct

RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = \
    1, 3, 4, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02
RTA_OIF, RTA_GATEWAY = 4, 5
IFF_UP = 0x1
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")


def _attr(kind, payload):
    if isinstance(payload, str):
        payload = payload.encode() + b"\0"
    data = struct.pack("=HH", 4 + len(payload), kind) + payload
    return data + bytes((4 - len(data) % 4) % 4)


class Netlink:
    """One NETLINK_ROUTE socket of the caller's network namespace."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, kind, body, flags=0):
        """Send one request, wait for its ACK; an error ACK raises OSError(errno)."""
        self.seq += 1
        msg = struct.pack("=IHHII", 16 + len(body), kind,
                          NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0) + body
        self.sock.send(msg)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, _flags, seq = struct.unpack_from("=IHHI", data, offset)
                if mtype == NLMSG_ERROR and seq == self.seq:
                    code = struct.unpack_from("=i", data, offset + 16)[0]
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(16, (length + 3) & ~3)

    def add_bridge(self, name, mac=None):
        """A bridge named `name`; False when it exists already. mac: its own address, kept
        for its life (one given at creation is never replaced by a port's)."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name) + \
            _attr(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, "bridge"))
        if mac:
            body += _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
        try:
            self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)
        except FileExistsError:
            return False
        return True

    def add_veth(self, name, master_index, peer_name, peer_netns_fd, mac=None, mtu=65520):
        """A veth pair: `name` here, enslaved to the bridge `master_index`, and its peer
        made directly in the network namespace `peer_netns_fd` as `peer_name`. A large
        MTU, as loopback's, since the pair never leaves the machine."""
        peer = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, peer_name) + \
            _attr(IFLA_MTU, struct.pack("=I", mtu)) + \
            _attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd))
        if mac:
            peer += _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
        info = _attr(IFLA_INFO_KIND, "veth") + \
            _attr(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer))
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name) + \
            _attr(IFLA_MTU, struct.pack("=I", mtu)) + \
            _attr(IFLA_MASTER, struct.pack("=I", master_index)) + \
            _attr(IFLA_LINKINFO, info)
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def set_up(self, index, mtu=None):
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
        if mtu:
            body += _attr(IFLA_MTU, struct.pack("=I", mtu))
        self.request(RTM_NEWLINK, body)

    def delete(self, name):
        """Remove the link `name` (a veth's peer goes with it); False when there is none."""
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name)
        try:
            self.request(RTM_DELLINK, body)
        except (FileNotFoundError, OSError) as exc:
            if exc.errno in (19, 2):  # ENODEV, ENOENT
                return False
            raise
        return True

    def add_address(self, index, address, prefix):
        """An IPv4 or IPv6 address (by its text); an IPv6 one without duplicate address
        detection (IFA_F_NODAD): the addresses here are handed out by the tool, and a
        tentative one could not be used for its first second or two."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        flags = IFA_F_NODAD if family == socket.AF_INET6 else 0
        body = _IFADDR.pack(family, prefix, flags, 0, index) + \
            _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        try:
            self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)
        except FileExistsError:
            pass

    def add_default_route(self, gateway, index):
        # rtmsg: AF_INET(6), dst_len 0, src_len 0, tos 0, table main (254), proto boot (3),
        # scope universe (0), type unicast (1)
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        body = _RTMSG.pack(family, 0, 0, 0, 254, 3, 0, 1, 0) + \
            _attr(RTA_GATEWAY, socket.inet_pton(family, gateway)) + \
            _attr(RTA_OIF, struct.pack("=I", index))
        try:
            self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)
        except FileExistsError:
            pass
