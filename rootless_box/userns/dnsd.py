"""The user networks' DNS responder, run by the network holder (userns/netholder.py) on
port 53 of its network namespace, with aardvark-dns's semantics: a container's name, short
ID and aliases are answered only to containers that share a network with it (the asker is
known by its source address), with its address on that shared network; a known name with
no IPv6 address gets an empty NOERROR answer to AAAA (never NXDOMAIN: busybox's nslookup
fails on it); `NAME.<search domain>` is NAME; everything else is forwarded to the host's
resolvers through a socket made on the host, except for askers on internal networks only.

Owns: the DNS wire format it needs (RFC 1035 header, question, A answers), the table's
reload (a JSON file ops/networks.py rewrites by rename; read again when its mtime changes),
forwarding with rewritten IDs. Must not: read the store.
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
            stamp = os.stat(self.path).st_mtime_ns
        except OSError:
            return
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

    def scope(self, source):
        """The networks the asker at `source` is on."""
        cids = {e["cid"] for e in self.entries if e["ip"] == source}
        return {e["net"] for e in self.entries if e["cid"] in cids}

    def lookup(self, name, nets):
        """Addresses of `name` on the networks `nets`; None when nobody there has it."""
        for candidate in (name,) + tuple(name[:-len(s)] for s in self.search
                                         if name.endswith(s)):
            found = [e["ip"] for e in self.entries
                     if e["net"] in nets and candidate in e["names"] and _alive(e)]
            if found:
                return found
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
    """The reply to `packet`: its question, and an A record per address (AAAA: none)."""
    qid, flags, _name, qtype, end = question
    records = b""
    count = 0
    if qtype == 1:
        for ip in addresses or ():
            records += struct.pack(">HHHIH", 0xC00C, 1, 1, _TTL, 4) + socket.inet_aton(ip)
            count += 1
    # QR, AA, RD copied, RA
    head = struct.pack(">HHHHHH", qid, 0x8400 | (flags & 0x0100) | 0x0080 | rcode,
                       1, count, 0, 0)
    return head + packet[12:end] + records


def _networks_left(watch):
    try:
        return any(name.endswith(".json") for name in os.listdir(watch))
    except OSError:
        return False


def serve(dns, upstream, table_path, watch):
    """The holder's loop: questions on `dns` (N0), forwarded ones on `upstream` (host).
    Returns once the store's network directory `watch` has held no network for two checks
    a second apart (the last network removed, or the store itself)."""
    table = Table(table_path)
    empty = 0
    pending = {}  # forwarded id -> (client address, its id, deadline)
    next_id = int.from_bytes(os.urandom(2), "big")
    poller = select.poll()
    poller.register(dns.fileno(), select.POLLIN)
    poller.register(upstream.fileno(), select.POLLIN)
    while True:
        events = poller.poll(1000)
        if not events:
            empty = 0 if _networks_left(watch) else empty + 1
            if empty >= 2:
                return
        for fd, _ev in events:
            if fd == dns.fileno():
                try:
                    packet, client = dns.recvfrom(4096)
                except OSError:
                    continue
                question = parse_question(packet)
                if question is None:
                    continue
                table.refresh()
                nets = table.scope(client[0])
                found = table.lookup(question[2], nets) if question[3] in (1, 28) else None
                if found is not None:
                    dns.sendto(answer(packet, question, found), client)
                elif not table.upstreams or (nets and nets <= table.internal):
                    dns.sendto(answer(packet, question, (), 3 if nets else 5), client)
                else:
                    next_id = (next_id + 1) & 0xFFFF
                    pending[next_id] = (client, question[0], time.monotonic() +
                                        _FORWARD_TIMEOUT)
                    out = struct.pack(">H", next_id) + packet[2:]
                    for server in table.upstreams[:3]:
                        try:
                            upstream.sendto(out, (server, 53))
                        except OSError:
                            pass
            else:
                try:
                    packet, _server = upstream.recvfrom(65536)
                except OSError:
                    continue
                if len(packet) < 12:
                    continue
                entry = pending.pop(struct.unpack_from(">H", packet)[0], None)
                if entry is not None:
                    try:
                        dns.sendto(struct.pack(">H", entry[1]) + packet[2:], entry[0])
                    except OSError:
                        pass
        if pending:
            now = time.monotonic()
            for key in [k for k, v in pending.items() if v[2] < now]:
                del pending[key]
