"""Benchmark: published ports (`run -p`) beside direct loopback on the same machine.

Owns: timing a 1 GB TCP transfer and 10k short connections (connect, one byte each way,
close) through `run -p` as it is by default (the server's bind() handed the host's socket:
no proxy in the data path), through the forwarder's relay (RBX_PORT_BYPASS=0: what serves
the cases the bypass does not take), through a bare splice proxy on the host (the least any
proxy costs on this machine), and the same client against the same server running on the
host's loopback, which is the floor (issue 9 asks for within 20% of its throughput). The server is the host's Python, bound into a busybox container read-only, so both
sides run identical code.
Must not: run as root (it measures rootless operation), touch the user's own store, or leave
a container behind. Prints a Markdown table on stdout (and its rows as JSON lines on
$BENCH_JSON_FD, bench/_report.py); progress and errors go to stderr.

Usage: python bench/ports.py [--runs 3] [--size-mb 1024] [--connections 10000]
As root, set BENCH_USER=NAME to re-run it as that user (who must be able to read this tree).
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from _report import row  # noqa: E402

# "S N\n": N bytes back, then close; "P\n": one byte back, then close
SERVER = r"""
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', int(sys.argv[1]))); l.listen(512)
block = memoryview(bytes(1 << 20))
while True:
    c, _ = l.accept()
    f = c.makefile('rb')
    line = f.readline().split()
    if line and line[0] == b'S':
        left = int(line[1])
        while left > 0:
            left -= c.send(block[:min(left, len(block))])
    else:
        c.sendall(b'x')
    f.close(); c.close()
"""
# The design's floor on this machine: the least a splice proxy can do for this protocol (read
# the request, pass it on, then splice the reply through a pipe in blocking calls, one
# connection at a time), in the host's namespace. What `-p` costs beyond it is the forwarder's.
BARE_PROXY = r"""
import fcntl, os, socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', int(sys.argv[1]))); l.listen(512)
pr, pw = os.pipe()
fcntl.fcntl(pw, 1031, 1 << 20)
while True:
    a, _ = l.accept()
    b = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
    request = b''
    while not request.endswith(b'\n'):
        request += a.recv(64)
    b.sendall(request)
    while True:
        n = os.splice(b.fileno(), pw, 1 << 20, flags=os.SPLICE_F_MOVE)
        if not n:
            break
        while n:
            n -= os.splice(pr, a.fileno(), n, flags=os.SPLICE_F_MOVE)
    a.close(); b.close()
"""
PYTHON_BINDS = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro"]


def log(msg):
    print("ports: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            short_connection(port)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server on port %d did not answer" % port)


def transfer(port, size):
    buf = bytearray(1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.perf_counter()
        s.sendall(b"S %d\n" % size)
        got = 0
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
        elapsed = time.perf_counter() - start
    if got != size:
        raise RuntimeError("got %d of %d bytes" % (got, size))
    return elapsed


def short_connection(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"P\n")
        if s.recv(1) != b"x":
            raise OSError("no answer")


def connections(port, count):
    start = time.perf_counter()
    for _ in range(count):
        short_connection(port)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=10000)
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        user = os.environ.get("BENCH_USER")
        if not user:
            log("refusing to run as root: set BENCH_USER=<user> to re-run it as that user")
            return 2
        os.execvp("runuser", ["runuser", "-u", user, "--", sys.executable,
                              os.path.abspath(__file__)] + (argv or sys.argv[1:]))
    size = args.size_mb << 20
    tmp = tempfile.mkdtemp(prefix="rbx-bench-ports-")
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "data"), PYTHONPATH=REPO)
    rbx = [sys.executable, "-m", "rootless_box"]
    from _peers import make_rootfs_tar
    tar = make_rootfs_tar(os.path.join(tmp, "rootfs.tar"))
    subprocess.run(rbx + ["import", tar, "bench-ports:latest"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    host_port, fwd_port, relay_port, bare_port = (free_port() for _ in range(4))
    direct = subprocess.Popen(["/usr/bin/python3", "-c", SERVER, str(host_port)])
    bare = subprocess.Popen(["/usr/bin/python3", "-c", BARE_PROXY, str(bare_port),
                             str(host_port)])
    cids = []
    try:
        for port, bypass in ((fwd_port, "1"), (relay_port, "0")):
            cids.append(subprocess.run(
                rbx + ["run", "-d", "-p", "%d:7000" % port] + PYTHON_BINDS +
                ["bench-ports:latest", "/usr/bin/python3", "-c", SERVER, "7000"],
                env=dict(env, RBX_PORT_BYPASS=bypass), check=True, capture_output=True,
                text=True).stdout.strip())
        for port in (host_port, fwd_port, relay_port, bare_port):
            wait_ready(port)
        results = {}
        for name, port in (("loopback", host_port), ("-p", fwd_port), ("relay", relay_port),
                           ("bare", bare_port)):
            log("%s: %d MiB x %d" % (name, args.size_mb, args.runs))
            results[name, "bytes"] = statistics.median(
                transfer(port, size) for _ in range(args.runs))
            log("%s: %d connections" % (name, args.connections))
            results[name, "conns"] = statistics.median(
                connections(port, args.connections) for _ in range(max(1, args.runs // 2)))
    finally:
        for proc in (direct, bare):
            proc.kill()
            proc.wait()
        if cids:
            subprocess.run(rbx + ["rm", "-f"] + cids, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", tmp])
    kinds = ("-p", "relay", "bare", "loopback")
    gbit = {k: size * 8 / results[k, "bytes"] / 1e9 for k in kinds}
    rate = {k: args.connections / results[k, "conns"] for k in kinds}
    print("Published ports: one TCP stream of %d MiB (container -> host) and %d sequential "
          "short connections, through `run -p` (the server on the host's socket), through "
          "the forwarder's relay (`RBX_PORT_BYPASS=0`), through a bare splice proxy on the "
          "host (the least any proxy costs here) and straight over loopback to the same "
          "server; median of %d.\n" % (args.size_mb, args.connections, args.runs))
    print("| figure | `-p` | `-p`, relay | bare splice proxy | loopback | `-p` / loopback "
          "| relay / loopback |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, key, fmt, values in (
            ("%d MiB transfer, s" % args.size_mb, "bytes", "%.2f",
             {k: results[k, "bytes"] for k in kinds}),
            ("throughput, Gbit/s", "gbit", "%.1f", gbit),
            ("%d connections, s" % args.connections, "conns", "%.2f",
             {k: results[k, "conns"] for k in kinds}),
            ("connections/s", "rate", "%.0f", rate)):
        print("| %s | %s | %s | %s | %s | %.2f | %.2f |" % (
            label, fmt % values["-p"], fmt % values["relay"], fmt % values["bare"],
            fmt % values["loopback"], values["-p"] / values["loopback"],
            values["relay"] / values["loopback"]))
    row("%d MiB through `-p`, median" % args.size_mb, results["-p", "bytes"],
        results["loopback", "bytes"], "loopback", "s")
    row("%d short connections through `-p`" % args.connections, results["-p", "conns"],
        results["loopback", "conns"], "loopback", "s")
    row("%d MiB through the relay, median" % args.size_mb, results["relay", "bytes"],
        results["bare", "bytes"], "a bare splice proxy (a relay's floor)", "s")
    row("%d short connections through the relay" % args.connections,
        results["relay", "conns"], results["bare", "conns"],
        "a bare splice proxy (a relay's floor)", "s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
