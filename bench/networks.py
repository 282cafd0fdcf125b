"""Benchmark: user-defined networks (issue 15): what a container on one costs to start, how
fast its names resolve, and how fast two containers on it talk, each beside its baseline.

Owns: timing `run --rm --network NET busybox true` beside `run --rm busybox true` (medians),
a name resolved by the holder's DNS (busybox's nslookup can't be timed per query, so the
host's Python, bound read-only into the container, sends A queries to the gateway and times
them), and a TCP transfer between two containers on one network beside the same client and
server on the host's loopback (the same Python on both sides). Issue 15 asks: at most 1.2x
the plain run, a name under 5 ms, at least 0.8x loopback's throughput.
Must not: run as root, touch the user's own store, or leave a container or network behind.
Prints a Markdown table on stdout (and its rows on $BENCH_JSON_FD, bench/_report.py).

Usage: python bench/networks.py [--runs 15] [--size-mb 1024] [--lookups 500]
"""

import argparse
import os
import shutil
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

PYTHON_BINDS = ["-v", "/usr:/usr:ro", "-v", "/usr/lib:/lib:ro", "-v", "/usr/lib64:/lib64:ro"]
SERVER = r"""
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 7000)); l.listen(8)
block = memoryview(bytes(1 << 20))
while True:
    c, _ = l.accept()
    left = int(c.recv(64).split()[0])
    while left > 0:
        left -= c.send(block[:min(left, len(block))])
    c.close()
"""
CLIENT = r"""
import socket, sys, time
host, size = sys.argv[1], int(sys.argv[2])
for _ in range(600):
    try:
        s = socket.create_connection((host, 7000)); break
    except OSError:
        time.sleep(0.05)
buf = bytearray(1 << 20); got = 0
start = time.perf_counter(); s.sendall(b'%d\n' % size)
while True:
    n = s.recv_into(buf)
    if not n: break
    got += n
print(time.perf_counter() - start if got == size else -1)
"""
LOOKUP = r"""
import socket, struct, sys, time
name, count = sys.argv[1], int(sys.argv[2])
server = open('/etc/resolv.conf').read().split('nameserver')[1].split()[0]
q = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0'
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((server, 53)); s.settimeout(5)
times = []
for i in range(count):
    msg = struct.pack('>HHHHHH', i, 0x0100, 1, 0, 0, 0) + q + struct.pack('>HH', 1, 1)
    t = time.perf_counter(); s.send(msg); r = s.recv(512); times.append(time.perf_counter() - t)
    assert struct.unpack('>H', r[6:8])[0] >= 1, 'no answer'
times.sort(); print(times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000)
"""


def log(msg):
    print("networks: " + msg, file=sys.stderr, flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--lookups", type=int, default=500)
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root")
        return 2
    data = tempfile.mkdtemp(prefix="rbx-bench-net-")
    env = dict(os.environ, XDG_DATA_HOME=data, PYTHONPATH=REPO)
    rbx = [sys.executable, "-m", "rootless_box"]

    def cli(*words, check=True):
        proc = subprocess.run(rbx + list(words), env=env, capture_output=True, text=True)
        if check and proc.returncode:
            raise RuntimeError("%s: %s" % (" ".join(words), proc.stderr.strip()))
        return proc.stdout

    from _peers import make_rootfs_tar
    try:
        cli("import", "-c", 'CMD ["sh"]', make_rootfs_tar(os.path.join(data, "r.tar")),
            "base:latest")
        cli("network", "create", "bench")
        cli("run", "--rm", "--network", "bench", "base", "true")  # the holder, the bridge

        def once(*words):
            start = time.perf_counter()
            cli("run", "--rm", *words, "base", "true")
            return time.perf_counter() - start
        # interleaved, so a busy moment of the machine weighs on both alike
        pairs = [(once(), once("--network", "bench")) for _ in range(args.runs)]
        plain = statistics.median(p for p, _n in pairs) * 1000
        on_net = statistics.median(n for _p, n in pairs) * 1000
        print("| figure | rootless-box | baseline | ratio |\n|---|---|---|---|")
        print("| `run --rm --network NET busybox true`, median | %.1f ms | %.1f ms "
              "(`run --rm busybox true`) | %.2f |" % (on_net, plain, on_net / plain))
        row("`run --rm --network NET true`, median", on_net, plain, "run --rm true", "ms")

        cli("run", "-d", "--name", "srv", "--network", "bench", *PYTHON_BINDS, "base",
            "python3", "-c", SERVER, "0.0.0.0")
        out = cli("run", "--rm", "--network", "bench", *PYTHON_BINDS, "base", "python3",
                  "-c", LOOKUP, "srv", str(args.lookups))
        median, p99 = (float(x) for x in out.split())
        print("| name resolved by the holder's DNS, median (p99 %.2f ms) | %.2f ms | 5 ms "
              "(issue 15) | %.2f |" % (p99, median, median / 5))
        row("name lookup, median", median, 5.0, "issue's limit", "ms")

        size = args.size_mb << 20
        server = subprocess.Popen([sys.executable, "-c", SERVER, "127.0.0.1"])
        between = loopback = 0.0
        try:
            for _ in range(3):  # interleaved; the best of each
                out = cli("run", "--rm", "--network", "bench", *PYTHON_BINDS, "base",
                          "python3", "-c", CLIENT, "srv", str(size))
                between = max(between, size / float(out.strip()) / (1 << 20))
                loop = subprocess.run([sys.executable, "-c", CLIENT, "127.0.0.1", str(size)],
                                      capture_output=True, text=True, check=True).stdout
                loopback = max(loopback, size / float(loop.strip()) / (1 << 20))
        finally:
            server.kill()
            server.wait()
        print("| container to container over the bridge, %d MiB, best of 3 | %.0f MiB/s | %.0f MiB/s "
              "(host loopback) | %.2f |" % (args.size_mb, between, loopback,
                                            between / loopback))
        row("container-to-container throughput", between, loopback, "host loopback", "MiB/s")
    finally:
        for name in ("srv",):
            cli("rm", "-f", name, check=False)
        cli("network", "rm", "bench", check=False)
        shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
