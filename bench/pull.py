"""Benchmark: `pull` of a ~100 MB three-layer image from a loopback registry, beside
`podman pull` and `skopeo copy` to an OCI directory from the same registry.

Owns: the image (made once and cached in the bench work dir as an OCI layout: three gzip layers
of about 60, 30 and 10 MB, random bytes mixed with text so gzip has work to do on both ends, and
a couple of thousand small files so unpacking has metadata work too), a docker-registry
(Debian's distribution 2.8) on a free loopback port for the length of the run, pushing the image
there with skopeo, and timing cold pulls: the image is removed from the store (rootless-box
`rmi`, `podman rmi`; skopeo's OCI directory deleted) before every run, the tools alternating in
one loop on one filesystem because the disk's speed here drifts from minute to minute. podman
gets a private store set up the fair way (bench/_peers.py, BASELINES.md).
Must not: run as root, import pytest, touch the user's own stores or registry config, or leave
processes or files behind (except the cached image in the work dir).

Usage: python bench/pull.py [--runs 5] [--warmup 1] [--workdir DIR]
"""

import argparse
import gzip
import hashlib
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, TOP)
sys.path.insert(0, HERE)

from _peers import PeerFailed, PodmanStore, check, timed  # noqa: E402
from _report import row  # noqa: E402

REGISTRY_BIN = "/usr/bin/docker-registry"
# Bump when the image's recipe changes, so a cached image of the old recipe is not reused.
IMAGE_VERSION = "v1"
# Target compressed sizes of the three layers, and how many small files each carries.
LAYERS = ((57 << 20, 1200), (28 << 20, 600), (9 << 20, 200))
REPO = "bench/pull"
OCI_MT = {"manifest": "application/vnd.oci.image.manifest.v1+json",
          "config": "application/vnd.oci.image.config.v1+json",
          "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
          "index": "application/vnd.oci.image.index.v1+json"}


def log(msg):
    print("pull: " + msg, file=sys.stderr, flush=True)


# -- the image ---------------------------------------------------------------------------------

class _Hashing:
    """A write-through file object that hashes and counts what passes (the diff ID)."""

    def __init__(self, out):
        self.out, self.sha, self.size = out, hashlib.sha256(), 0

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self):
        self.out.flush()


def _text_pool(rng, size):
    """Pseudo-English from a few thousand made-up words: gzip gets it to about a third, the
    way it does source code and documentation."""
    syllables = ["ka", "to", "re", "mi", "su", "an", "el", "or", "in", "ve", "lo", "pa", "th",
                 "st", "ng", "qu", "ex", "on", "at", "is"]
    vocab = ["".join(rng.choices(syllables, k=rng.randint(1, 5))) for _ in range(4000)]
    words = rng.choices(vocab, k=size // 5)
    lines, line = [], []
    for word in words:
        line.append(word)
        if len(line) >= 12:
            lines.append(" ".join(line))
            line = []
    return ("\n".join(lines) + "\n").encode()[:size]


def _write_layer(path, index, target, small_files, rng, pool):
    """One gzip layer of about target compressed bytes -> (digest, size, diff ID, unpacked
    bytes, files)."""
    files = data = 0
    with open(path, "wb") as raw:
        # level 6 is what docker, podman and skopeo push with
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            hashing = _Hashing(gz)
            with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                def add(name, payload, kind=tarfile.REGTYPE, mode=0o644):
                    info = tarfile.TarInfo(name)
                    info.type, info.mode, info.mtime = kind, mode, 1700000000
                    if kind == tarfile.REGTYPE:
                        info.size = len(payload)
                        tar.addfile(info, _BytesReader(payload))
                    else:
                        tar.addfile(info)

                top = "opt/layer%d" % index
                for d in ("opt", top, top + "/small", top + "/big"):
                    add(d, None, tarfile.DIRTYPE, 0o755)
                for sub in range(small_files // 100):
                    add("%s/small/d%02d" % (top, sub), None, tarfile.DIRTYPE, 0o755)
                for i in range(small_files):
                    n = rng.randint(512, 8192)
                    start = rng.randrange(len(pool) - n)
                    add("%s/small/d%02d/f%04d.txt" % (top, i // 100, i), pool[start:start + n])
                    files += 1
                    data += n
                i = 0
                while raw.tell() < target:
                    if i % 2 == 0:
                        payload = os.urandom(rng.randint(256 << 10, 2 << 20))
                    else:
                        n = rng.randint(256 << 10, 3 << 20)
                        start = rng.randrange(len(pool) - n)
                        payload = pool[start:start + n]
                    add("%s/big/f%04d.%s" % (top, i, "bin" if i % 2 == 0 else "txt"), payload)
                    files += 1
                    data += len(payload)
                    i += 1
    diff_id = "sha256:" + hashing.sha.hexdigest()
    return _file_digest(path), os.path.getsize(path), diff_id, data, files


class _BytesReader:
    def __init__(self, data):
        self.data, self.pos = memoryview(data), 0

    def read(self, n=-1):
        end = len(self.data) if n < 0 else self.pos + n
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return bytes(chunk)


def _file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _arch():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)


def _image(workdir):
    """The cached OCI layout (made on first use) -> (its path, facts for the table)."""
    layout = os.path.join(workdir, "image-" + IMAGE_VERSION)
    facts_path = os.path.join(layout, "bench-facts.json")
    if os.path.exists(facts_path):
        with open(facts_path) as f:
            return layout, json.load(f)
    log("making the image (once; cached in %s)" % layout)
    building = tempfile.mkdtemp(prefix="image-", dir=workdir)
    blobs = os.path.join(building, "blobs", "sha256")
    os.makedirs(blobs)
    rng = random.Random(20261128)
    pool = _text_pool(rng, 8 << 20)
    descs, diff_ids, history = [], [], []
    facts = {"compressed": 0, "unpacked": 0, "files": 0}
    for index, (target, small) in enumerate(LAYERS):
        tmp_path = os.path.join(building, "layer.tmp")
        digest, size, diff_id, data, files = _write_layer(tmp_path, index, target, small, rng,
                                                          pool)
        os.rename(tmp_path, os.path.join(blobs, digest[7:]))
        descs.append({"mediaType": OCI_MT["layer"], "digest": digest, "size": size})
        diff_ids.append(diff_id)
        history.append({"created": "2026-01-01T00:00:00Z",
                        "created_by": "bench/pull.py layer %d" % index})
        facts["compressed"] += size
        facts["unpacked"] += data
        facts["files"] += files
        log("layer %d: %.1f MB gzip, %.1f MB of file data" % (index, size / 1e6, data / 1e6))

    def put(obj, media_type):
        data = json.dumps(obj, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    config = put({"architecture": _arch(), "os": "linux", "created": "2026-01-01T00:00:00Z",
                  "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                     "/sbin:/bin"], "Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history},
                 OCI_MT["config"])
    manifest = put({"schemaVersion": 2, "mediaType": OCI_MT["manifest"], "config": config,
                    "layers": descs}, OCI_MT["manifest"])
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "bench"}
    with open(os.path.join(building, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with open(os.path.join(building, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": OCI_MT["index"], "manifests": [manifest]},
                  f)
    with open(os.path.join(building, "bench-facts.json"), "w") as f:
        json.dump(facts, f)
    # whole or not at all: an interrupted build leaves only a temporary, removed next time
    shutil.rmtree(layout, ignore_errors=True)
    os.rename(building, layout)
    return layout, facts


# -- the registry ------------------------------------------------------------------------------

class _Registry:
    """docker-registry on a free 127.0.0.1 port, plain HTTP, storage under workdir."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.log_path = os.path.join(workdir, "registry.log")
        # REGISTRY_* variables override distribution's config file; none get through.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        # setpriv: a bench killed with SIGKILL takes the registry with it
        prefix = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        for _attempt in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            config = os.path.join(workdir, "config.yml")
            with open(config, "w") as f:
                json.dump({"version": "0.1", "log": {"level": "warn", "accesslog":
                                                     {"disabled": True}},
                           "storage": {"filesystem": {"rootdirectory":
                                                      os.path.join(workdir, "storage")},
                                       "maintenance": {"uploadpurging": {"enabled": False}}},
                           "http": {"addr": "127.0.0.1:%d" % port},
                           "health": {"storagedriver": {"enabled": False}}}, f)  # JSON is YAML
            with open(self.log_path, "ab") as logf:
                self.proc = subprocess.Popen(prefix + [REGISTRY_BIN, "serve", config],
                                             stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=logf, env=env, cwd=workdir)
            self.host = "127.0.0.1:%d" % port
            if self._ready():
                return
            with open(self.log_path, errors="replace") as f:
                text = f.read()
            if "address already in use" not in text:
                raise PeerFailed("docker-registry did not start: " + text[-500:])
        raise PeerFailed("docker-registry found no free port")

    def _ready(self):
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen("http://%s/v2/" % self.host, timeout=1):
                    return True
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        self.stop()
        return False

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the tools ---------------------------------------------------------------------------------

class _Ours:
    name = "rootless-box"

    def __init__(self, tmp, workdir, ref):
        self.ref = ref
        self.env = dict(os.environ)
        # A private store and config home (no registries.conf or credentials of the user's).
        self.env["XDG_DATA_HOME"] = os.path.join(tmp, "rbx-data")
        self.env["XDG_CONFIG_HOME"] = os.path.join(tmp, "rbx-config")
        self.env["PYTHONPATH"] = TOP
        # An installed package has its bytecode compiled; a source tree the bench user may not
        # write to would be compiled again on every run and that is not what users pay.
        self.env["PYTHONPYCACHEPREFIX"] = os.path.join(workdir, "pycache")
        self.rbx = [sys.executable, "-m", "rootless_box"]
        self.layers = os.path.join(self.env["XDG_DATA_HOME"], "rootless-box", "layers")

    def setup(self):
        check(self.rbx + ["images"], self.env, "rootless-box images")

    def pull(self):
        return timed(self.rbx + ["pull", self.ref], self.env, "rootless-box pull")

    def reset(self):
        check(self.rbx + ["rmi", self.ref], self.env, "rootless-box rmi")
        left = [os.path.join(d, e) for d in _listdir(self.layers)
                for e in _listdir(os.path.join(self.layers, d))]
        if left:
            raise PeerFailed("rmi left layers behind, so the next pull would not be cold: %s"
                             % left[:3])


def _listdir(path):
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


class _Podman(PodmanStore):
    name = "podman"

    def __init__(self, tmp, ref):
        super().__init__(tmp)
        self.ref = ref

    def setup(self):
        self.check_overlay()

    def pull(self):
        return timed(self.base + ["--runtime", "runc", "pull", "--tls-verify=false", self.ref],
                     self.env, "podman pull")

    def reset(self):
        check(self.base + ["rmi", "-f", self.ref], self.env, "podman rmi")


class _Skopeo:
    name = "skopeo"

    def __init__(self, tmp, ref):
        self.src = "docker://" + ref
        self.dest = os.path.join(tmp, "skopeo-oci")
        # its blob-info cache and auth file stay in the bench's tmp
        self.env = dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "skopeo-data"),
                        REGISTRY_AUTH_FILE=os.path.join(tmp, "skopeo-auth.json"))

    def setup(self):
        pass

    def pull(self):
        return timed(["skopeo", "copy", "--src-tls-verify=false", self.src,
                      "oci:%s:latest" % self.dest], self.env, "skopeo copy")

    def reset(self):
        shutil.rmtree(self.dest, ignore_errors=True)


# -- the run -----------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed pulls per tool first (bytecode, store set-up)")
    parser.add_argument("--workdir", help="where the image is cached (default: "
                                          "$XDG_CACHE_HOME/rootless-box-bench/pull)")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless pulls")
        return 2
    if not os.access(REGISTRY_BIN, os.X_OK):
        log("%s is not installed (Debian package docker-registry)" % REGISTRY_BIN)
        return 1
    if not shutil.which("skopeo"):
        log("skopeo is not installed: it pushes the image to the registry")
        return 1
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    workdir = args.workdir or os.path.join(cache, "rootless-box-bench", "pull")
    os.makedirs(workdir, exist_ok=True)
    layout, facts = _image(workdir)

    tmp = tempfile.mkdtemp(prefix="rbx-bench-pull-")
    registry = podman = None
    failures = []
    try:
        os.mkdir(os.path.join(tmp, "registry"))
        registry = _Registry(os.path.join(tmp, "registry"))
        ref = "%s/%s:latest" % (registry.host, REPO)
        log("pushing the image to %s with skopeo" % registry.host)
        check(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
               "oci:%s:bench" % layout, "docker://" + ref],
              dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "push-data"),
                   REGISTRY_AUTH_FILE=os.path.join(tmp, "push-auth.json")), "skopeo copy (push)")

        tools = [_Ours(tmp, workdir, ref)]
        notes = {}
        if not shutil.which("podman"):
            notes["podman"] = "not installed"
        elif not shutil.which("runc"):
            notes["podman"] = "runc not installed"
        else:
            podman = _Podman(tmp, ref)
            tools.append(podman)
        tools.append(_Skopeo(tmp, ref))
        for tool in list(tools):
            try:
                tool.setup()
            except PeerFailed as exc:
                notes[tool.name] = "set-up failed"
                failures.append("%s: %s" % (tool.name, exc))
                tools.remove(tool)

        times = {tool.name: [] for tool in tools}
        for i in range(args.warmup + args.runs):
            log("round %d of %d" % (i + 1, args.warmup + args.runs))
            for tool in tools:
                if tool.name in notes:
                    continue
                try:
                    elapsed = tool.pull()
                    tool.reset()
                except PeerFailed as exc:
                    notes[tool.name] = "failed"
                    failures.append("%s: %s" % (tool.name, exc))
                    log("%s failed: %s" % (tool.name, exc))
                    continue
                if i >= args.warmup:
                    times[tool.name].append(elapsed)
        _table(args, tmp, facts, times, notes)
    finally:
        if registry is not None:
            registry.stop()
        if podman is not None:
            podman.close()
        _remove(tmp)
    for failure in failures:
        log("FAILED " + failure)
    return 1 if failures else 0


def _remove(tmp):
    from rootless_box.store import remove_tree
    if not remove_tree(tmp):
        # layers a failed run left, owned by subordinate ids
        from rootless_box.userns import idmap as idmaps
        from rootless_box.userns.launcher import run_in_userns
        run_in_userns(remove_tree, idmaps.plan(), tmp)
    if os.path.exists(tmp):
        log("could not remove %s entirely" % tmp)


def _fs_type(path):
    proc = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return proc.stdout.strip() or "unknown"


def _table(args, tmp, facts, times, notes):
    print("A three-layer gzip image (%.0f MB compressed, %.0f MB in %d files unpacked) from "
          "docker-registry on 127.0.0.1; %d runs after %d warm-up, tools alternating, every "
          "pull cold (image removed before it); stores on %s (%s)."
          % (facts["compressed"] / 1e6, facts["unpacked"] / 1e6, facts["files"], args.runs,
             args.warmup, os.path.dirname(tmp), _fs_type(tmp)))
    print()
    print("| figure | rootless-box | peer | ratio |")
    print("|---|---|---|---|")
    ours = times.get("rootless-box")
    for peer, label in (("podman", "`podman pull` (overlay)"),
                        ("skopeo", "`skopeo copy` to an OCI dir (no unpack)")):
        theirs = times.get(peer)
        for stat, fn in (("median", statistics.median), ("min", min)):
            a = "%.2f s" % fn(ours) if ours and "rootless-box" not in notes else \
                "n/a (%s)" % notes.get("rootless-box", "failed")
            if theirs and peer not in notes:
                b = "%.2f s" % fn(theirs)
            else:
                b = "n/a (%s)" % notes.get(peer, "failed")
            ratio = "%.2f" % (fn(ours) / fn(theirs)) if a[0].isdigit() and b[0].isdigit() \
                else "-"
            print("| pull, %s, beside %s | %s | %s | %s |" % (stat, label, a, b, ratio))
            row("cold `pull` of a %.0f MB 3-layer image, %s" % (facts["compressed"] / 1e6, stat),
                fn(ours) if a[0].isdigit() else None, fn(theirs) if b[0].isdigit() else None,
                label, "s", why=None if a[0].isdigit() and b[0].isdigit() else
                notes.get("rootless-box") or notes.get(peer, "failed"))
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
