"""The user networks' DNS responder, run by the network holder (userns/netholder.py) on
port 53 of its network namespace, with aardvark-dns's semantics: a container's name, short
ID and aliases are answered only to containers that share a network with it (the asker is
known by its source address), with its address on that shared network (A, and AAAA on an
IPv6 network); a known name with no IPv6 address gets an empty NOERROR answer to AAAA
(never NXDOMAIN: busybox's nslookup fails on it); `NAME.<search domain>` is NAME, and an unknown name in the tool's own domain
gets NXDOMAIN at once; everything else is forwarded to the host's resolvers through a socket
made on the host, except for askers on internal networks only.
A UDP answer longer than the asker takes (512 bytes, or its EDNS0 size) is sent empty with
TC set, and the client asks again over TCP, which is served too (questions forwarded from
TCP go upstream over UDP with EDNS0, the host side having no TCP socket).

Owns: the DNS wire format it needs (RFC 1035 header, question, A and AAAA answers, TC, the EDNS0
OPT record's size), TCP clients (length-prefixed messages), the table's
reload (a JSON file ops/networks.py rewrites by rename; read again when its inode or mtime
changes), forwarding with rewritten IDs. Must not: read the store.
"""

import os
import select
import socket
import struct
import time

from .. import fastjson

_TTL = 60
_FORWARD_TIMEOUT = 5.0


class Table:
    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.entries = []
        self.search = ()
        self.internal = set()
        self.upstreams = []

    def refresh(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return
        # the inode too: a rewrite is a new file (rename), and two can share an mtime when
        # written within one clock tick
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        try:
            with open(self.path, "rb") as f:
                data = fastjson.loads(f.read().decode())
        except (OSError, ValueError):
            return
        self.stamp = stamp
        self.entries = data.get("entries") or []
        self.search = tuple("." + s.lower().strip(".") for s in data.get("search") or ())
        self.internal = set(data.get("internal") or ())
        self.upstreams = data.get("upstreams") or []

    def own(self, name):
        """`name` is in the tool's search domain (the first; ops/networks._search): nobody
        upstream knows it, so a miss there is answered at once, not forwarded (with no
        upstream reachable, a resolver waited its whole timeout on each, before trying
        the next form of the name)."""
        return bool(self.search) and name.endswith(self.search[0])

    def scope(self, source):
        """The networks the asker at `source` is on."""
        cids = {e["cid"] for e in self.entries if source in (e["ip"], e.get("ip6"))}
        return {e["net"] for e in self.entries if e["cid"] in cids}

    def lookup(self, name, nets, source=None, qtype=1):
        """Addresses of `name` on the networks `nets` (IPv4 ones, or for AAAA (28) the IPv6
        ones: [] when it has none); None when nobody there has it. An entry with "for" (a
        link's alias) answers the asker at that address alone."""
        for candidate in (name,) + tuple(name[:-len(s)] for s in self.search
                                         if name.endswith(s)):
            found = [e for e in self.entries
                     if e["net"] in nets and candidate in e["names"] and
                     e.get("for", source) == source and _alive(e)]
            if found:
                return [e["ip6"] for e in found if e.get("ip6")] if qtype == 28 else \
                    [e["ip"] for e in found]
        return None


def _alive(entry):
    """The container's end of its veth still exists in this namespace (a container that
    died takes its veth pair with it)."""
    try:
        socket.if_nametoindex(entry["link"])
        return True
    except OSError:
        return False


def parse_question(packet):
    """-> (id, flags, name (lower case, no final dot), qtype, end of the question) or None."""
    if len(packet) < 12:
        return None
    qid, flags, qdcount = struct.unpack_from(">HHH", packet, 0)
    if qdcount != 1 or flags & 0x8000:
        return None
    labels = []
    offset = 12
    while True:
        if offset >= len(packet):
            return None
        size = packet[offset]
        offset += 1
        if size == 0:
            break
        if size & 0xC0:
            return None
        labels.append(packet[offset:offset + size].decode("ascii", "replace"))
        offset += size
    if offset + 4 > len(packet):
        return None
    qtype, _qclass = struct.unpack_from(">HH", packet, offset)
    return qid, flags, ".".join(labels).lower(), qtype, offset + 4


def answer(packet, question, addresses, rcode=0):
    """The reply to `packet`: its question, and an A record per IPv4 address (for an A
    question) or an AAAA record per IPv6 one (for AAAA)."""
    qid, flags, _name, qtype, end = question
    records = b""
    count = 0
    if qtype in (1, 28):
        family, size = (socket.AF_INET6, 16) if qtype == 28 else (socket.AF_INET, 4)
        for ip in addresses or ():
            if (":" in ip) == (qtype == 28):
                records += struct.pack(">HHHIH", 0xC00C, qtype, 1, _TTL, size) + \
                    socket.inet_pton(family, ip)
                count += 1
    # QR, AA, RD copied, RA
    head = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0100) | 0x0080 | rcode,
                       1, count, 0, 0)
    return head + packet[12:end] + records


def truncated(packet, question):
    """An empty reply with TC set: the client asks again over TCP (RFC 1035 4.2.1)."""
    qid, flags, _name, _qtype, end = question
    head = struct.pack(">HHHHHH", qid, 0x8600 | (flags & 0x0100) | 0x0080, 1, 0, 0, 0)
    return head + packet[12:end]


def udp_limit(packet, question):
    """The largest UDP reply the asker takes: 512, or its EDNS0 OPT record's payload size
    (the record right after the question of a plain query)."""
    end = question[4]
    if struct.unpack_from(">H", packet, 10)[0] and packet[end:end + 3] == b"\0\0\x29" and \
            len(packet) >= end + 5:
        return max(512, struct.unpack_from(">H", packet, end + 3)[0])
    return 512


def with_edns(packet):
    """A query with no additional record, given an EDNS0 OPT record (payload 4096): a
    question asked over TCP is forwarded over UDP (the host side has no TCP socket), and
    this way the upstream answers in full rather than truncated."""
    if len(packet) < 12 or struct.unpack_from(">H", packet, 10)[0]:
        return packet
    return packet[:10] + struct.pack(">H", 1) + packet[12:] + \
        b"\0" + struct.pack(">HHIH", 41, 4096, 0, 0)


def networks_left(watch):
    try:
        return any(name.endswith(".json") for name in os.listdir(watch))
    except OSError:
        return False


_TCP_CLIENTS = 64
_TCP_IDLE = 10.0


class _Server:
    """The holder's loop state: the sockets, forwarded questions, TCP clients."""

    def __init__(self, dns, upstream, table_path, tcp):
        self.dns, self.upstream, self.tcp = dns, upstream, tcp
        self.table = Table(table_path)
        self.pending = {}  # forwarded id -> (client: address or TCP socket, its id, deadline)
        self.next_id = int.from_bytes(os.urandom(2), "big")
        self.clients = {}  # fd -> [socket, bytes received, deadline]
        self.poller = select.poll()
        for sock in (dns, upstream, tcp):
            if sock is not None:
                self.poller.register(sock.fileno(), select.POLLIN)

    def ask(self, packet, source, client):
        """Answer or forward one question; client: a UDP address or a TCP socket."""
        question = parse_question(packet)
        if question is None:
            return
        table = self.table
        table.refresh()
        nets = table.scope(source)
        found = table.lookup(question[2], nets, source, question[3]) \
            if question[3] in (1, 28) else None
        if found is not None:
            self.reply(client, answer(packet, question, found), packet, question)
        elif not table.upstreams or (nets and nets <= table.internal) or \
                table.own(question[2]):
            self.reply(client, answer(packet, question, (), 3 if nets else 5), packet,
                       question)
        else:
            self.next_id = (self.next_id + 1) & 0xFFFF
            self.pending[self.next_id] = (client, question[0],
                                          time.monotonic() + _FORWARD_TIMEOUT)
            out = struct.pack(">H", self.next_id) + packet[2:]
            if not isinstance(client, tuple):
                out = with_edns(out)
            for server in table.upstreams[:3]:
                try:
                    self.upstream.sendto(out, (server, 53))
                except OSError:
                    pass

    def reply(self, client, data, packet=None, question=None):
        if isinstance(client, tuple):
            if question is not None and len(data) > udp_limit(packet, question):
                data = truncated(packet, question)
            try:
                self.dns.sendto(data, client)
            except OSError:
                pass
            return
        if client.fileno() not in self.clients:
            return  # the TCP client left meanwhile
        try:
            client.sendall(struct.pack(">H", len(data)) + data)
        except OSError:
            self.drop(client.fileno())

    def accept(self):
        try:
            sock, _addr = self.tcp.accept()
        except OSError:
            return
        if len(self.clients) >= _TCP_CLIENTS:
            sock.close()
            return
        sock.settimeout(2.0)  # a reply to a client that reads nothing cannot stall the rest
        self.clients[sock.fileno()] = [sock, b"", time.monotonic() + _TCP_IDLE]
        self.poller.register(sock.fileno(), select.POLLIN)

    def receive(self, fd):
        entry = self.clients[fd]
        try:
            data = entry[0].recv(65537)
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        entry[1] += data
        entry[2] = time.monotonic() + _TCP_IDLE
        while len(entry[1]) >= 2:
            size = struct.unpack_from(">H", entry[1])[0]
            if len(entry[1]) < 2 + size:
                break
            packet, entry[1] = entry[1][2:2 + size], entry[1][2 + size:]
            try:
                source = entry[0].getpeername()[0]
            except OSError:
                self.drop(fd)
                return
            self.ask(packet, source, entry[0])
            if fd not in self.clients:
                return

    def drop(self, fd):
        entry = self.clients.pop(fd, None)
        if entry is not None:
            self.poller.unregister(fd)
            entry[0].close()

    def upstream_answer(self):
        try:
            packet, _server = self.upstream.recvfrom(65536)
        except OSError:
            return
        if len(packet) < 12:
            return
        entry = self.pending.pop(struct.unpack_from(">H", packet)[0], None)
        if entry is not None:
            self.reply(entry[0], struct.pack(">H", entry[1]) + packet[2:])

    def expire(self):
        now = time.monotonic()
        for key in [k for k, v in self.pending.items() if v[2] < now]:
            del self.pending[key]
        for fd in [fd for fd, v in self.clients.items() if v[2] < now]:
            self.drop(fd)


def serve(dns, upstream, table_path, watch, tcp=None):
    """The holder's loop: questions on `dns` (UDP, N0) and on `tcp` (its listening TCP
    socket, for clients that ask again after a truncated answer), forwarded ones on
    `upstream` (UDP, host). Returns once the store's network directory `watch` has held no
    network for two checks a second apart (the last network removed, or the store)."""
    server = _Server(dns, upstream, table_path, tcp)
    empty = 0
    while True:
        events = server.poller.poll(1000)
        if not events:
            empty = 0 if networks_left(watch) else empty + 1
            if empty >= 2:
                return
        for fd, _ev in events:
            if fd == dns.fileno():
                try:
                    packet, client = dns.recvfrom(4096)
                except OSError:
                    continue
                server.ask(packet, client[0], client)
            elif fd == upstream.fileno():
                server.upstream_answer()
            elif tcp is not None and fd == tcp.fileno():
                server.accept()
            elif fd in server.clients:
                server.receive(fd)
        if server.pending or server.clients:
            server.expire()
