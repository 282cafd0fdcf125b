"""Benchmark: `compose up -d` / `up -d` again / `down` of a three-service app (web -> app ->
db, busybox httpd each), rootless-box beside podman-compose driving podman.

Owns: the project (written twice: as a user writes it, on the project network with health
checks gating depends_on; and the copy the peer can run here, every service with
`network_mode: host` and plain depends_on, since rootless podman needs tun for a network and
systemd for health checks), timing each step for both tools alternately (medians), and the
issue's targets: `up -d` and `down` at most 0.5x podman-compose's, an unchanged `up -d` under
0.3 s.
Must not: run as root, touch the user's own stores, or leave a container, network or volume
behind. Prints a Markdown table on stdout (and its rows on $BENCH_JSON_FD, bench/_report.py).

podman-compose is found as `podman-compose` on PATH or beside this Python (make bench installs
it into its venv), or given with --podman-compose (its
podman_compose.py, run with this Python: `pip download podman-compose` and unzip it).

Usage: python bench/compose.py [--runs 5] [--podman-compose PATH]
"""

import argparse
import os
import shutil
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

from _peers import PeerFailed, PodmanStore, check  # noqa: E402
from _report import row  # noqa: E402

SERVE = 'mkdir -p /www && %s && exec busybox httpd -f -p %s -h /www'
NETWORKED = """\
services:
  db:
    image: base
    init: true
    command: ["sh", "-c", "%(db)s"]
    healthcheck: {test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/"], interval: 100ms, retries: 100}
  app:
    image: base
    init: true
    depends_on: {db: {condition: service_healthy}}
    command: ["sh", "-c", "%(app)s"]
    healthcheck: {test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost/"], interval: 100ms, retries: 100}
  web:
    image: base
    init: true
    depends_on: {app: {condition: service_healthy}}
    ports: ["%(port)d:80"]
    command: ["sh", "-c", "%(web)s"]
"""
HOST = """\
services:
  db:
    image: %(image)s
    init: true
    network_mode: host
    command: ["sh", "-c", "%(db)s"]
  app:
    image: %(image)s
    init: true
    network_mode: host
    depends_on: [db]
    command: ["sh", "-c", "%(app)s"]
  web:
    image: %(image)s
    init: true
    network_mode: host
    depends_on: [app]
    command: ["sh", "-c", "%(web)s"]
"""


def log(msg):
    print("compose: " + msg, file=sys.stderr, flush=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def networked_project(port):
    return NETWORKED % {
        "db": SERVE % ("echo db-data > /www/index.html", 80),
        "app": SERVE % ("until wget -q -O /www/index.html http://db/; do sleep 0.05; done", 80),
        "web": SERVE % ("until wget -q -O /www/index.html http://app/; do sleep 0.05; done",
                        80),
        "port": port}


def host_project(image, ports):
    db, app, web = ports
    return HOST % {
        "image": image,
        "db": SERVE % ("echo db-data > /www/index.html", db),
        "app": SERVE % ("until wget -q -O /www/index.html http://127.0.0.1:%d/; do "
                        "sleep 0.05; done" % db, app),
        "web": SERVE % ("until wget -q -O /www/index.html http://127.0.0.1:%d/; do "
                        "sleep 0.05; done" % app, web)}


def served(port, timeout=30):
    """Wait until web answers with db's data through the chain (not timed)."""
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=2) as r:
                if r.read() == b"db-data\n":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise PeerFailed("the app did not answer on port %d" % port)


class Tool:
    def __init__(self, name, argv, env, workdir):
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir

    def step(self, *words):
        start = time.perf_counter()
        proc = subprocess.run(self.argv + list(words), env=self.env, cwd=self.workdir,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode:
            tail = proc.stderr.strip().splitlines()
            raise PeerFailed("%s %s exited %d: %s" % (self.name, " ".join(words),
                                                     proc.returncode, tail[-1] if tail else ""))
        return elapsed


def cycle(tool, port):
    up = tool.step("up", "-d")
    served(port)
    again = tool.step("up", "-d")
    down = tool.step("down")
    return up, again, down


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--podman-compose", help="podman_compose.py (else podman-compose on "
                                                 "PATH)")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root")
        return 2
    top = tempfile.mkdtemp(prefix="rbx-bench-compose-")
    made = {"store": None, "ours": []}  # what the clean-up undoes, whatever fails when
    try:
        figures, why = _measure(args, top, made)
    finally:
        for tool in made["ours"]:
            subprocess.run(tool.argv + ["down", "-v", "-t", "0"], env=tool.env,
                           cwd=tool.workdir, capture_output=True)
        if made["store"] is not None:
            made["store"].close()
        shutil.rmtree(top, ignore_errors=True)
    _print(figures, why)
    return 0


def _measure(args, top, made):
    """Both tools' cycles, alternately. -> ({"net"|"host"|"peer": [(up, again, down)]},
    why the peer has no figures or None)"""
    data = os.path.join(top, "rbx")
    env = dict(os.environ, XDG_DATA_HOME=data, PYTHONPATH=REPO)
    for key in list(env):
        if key.startswith("COMPOSE_"):
            del env[key]
    rbx = [sys.executable, "-m", "rootless_box"]
    from _peers import make_rootfs_tar
    tar = make_rootfs_tar(os.path.join(top, "rootfs.tar"))
    subprocess.run(rbx + ["import", "-c", 'CMD ["sh"]', tar, "base:latest"], env=env,
                   check=True, capture_output=True)
    ports = free_ports(4)
    dirs = {}
    for name, text in (("net", networked_project(ports[0])),
                       ("host", host_project("base", ports[1:])),
                       ("peer", host_project("localhost/bench-base", ports[1:]))):
        dirs[name] = os.path.join(top, name, "app")
        os.makedirs(dirs[name])
        with open(os.path.join(dirs[name], "compose.yaml"), "w") as f:
            f.write(text)
    ours_net = Tool("rootless-box", rbx + ["compose"], env, dirs["net"])
    ours_host = Tool("rootless-box", rbx + ["compose"], env, dirs["host"])
    made["ours"] = [ours_net, ours_host]
    peer, why = None, None
    # make bench installs it into the venv this Python runs from, which need not be on PATH
    pc = args.podman_compose or shutil.which("podman-compose") or shutil.which(
        "podman-compose", path=os.path.dirname(sys.executable))
    try:
        if shutil.which("podman") is None:
            raise PeerFailed("podman not installed")
        if not pc:
            raise PeerFailed("podman-compose not installed (pip install podman-compose)")
        store = made["store"] = PodmanStore(top, runtime_dir=True)
        check(store.podman + ["--runtime", "runc", "import", "-q", tar,
                              "localhost/bench-base"], store.env, "podman import")
        wrapper = os.path.join(top, "podman-runc")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec %s --runtime runc \"$@\"\n" % " ".join(store.podman))
        os.chmod(wrapper, 0o755)
        argv = ([sys.executable, pc] if pc.endswith(".py") else [pc]) + [
            "--podman-path", wrapper]
        peer = Tool("podman-compose", argv, store.env, dirs["peer"])
    except PeerFailed as exc:
        why = str(exc)
        log(why)
    figures = {"net": [], "host": [], "peer": []}
    for i in range(args.runs):
        log("round %d of %d" % (i + 1, args.runs))
        figures["net"].append(cycle(ours_net, ports[0]))
        figures["host"].append(cycle(ours_host, ports[3]))
        if peer is not None and why is None:
            try:
                figures["peer"].append(cycle(peer, ports[3]))
            except PeerFailed as exc:
                why = str(exc)
                log(why)
                subprocess.run(peer.argv + ["down"], env=peer.env, cwd=peer.workdir,
                               capture_output=True)
    return figures, why


def _print(figures, why):
    def med(key, i):
        values = [f[i] for f in figures[key]]
        return statistics.median(values) * 1000 if values else None

    print("Three services (busybox httpd, each fetching from the one before it). The peer "
          "runs a copy with `network_mode: host` and plain depends_on: rootless podman "
          "needs tun for a network and systemd for health checks here; rootless-box's own "
          "row on that copy is the comparison, its networked, health-gated row is what a "
          "user writes.\n")
    print("| figure | rootless-box (host copy) | podman-compose | ratio | rootless-box "
          "(project network, health-gated) |")
    print("|---|---|---|---|---|")
    for i, figure in enumerate(("`compose up -d`", "`compose up -d` again, unchanged",
                                "`compose down`")):
        ours, theirs, net = med("host", i), med("peer", i), med("net", i)
        ratio = "%.2f" % (ours / theirs) if theirs else "-"
        print("| %s, median | %.0f ms | %s | %s | %.0f ms |" % (
            figure, ours, "%.0f ms" % theirs if theirs else (why or "-"), ratio, net))
        row(figure + ", median (host network)", ours, theirs, "podman-compose", "ms",
            None if theirs else (why or "failed"))
        row(figure + ", median (project network, health-gated)", net, None, None, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
