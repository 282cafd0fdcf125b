"""Benchmark: unpacking a ~100 MB three-layer image, and committing a 10,000-file upper dir.

Owns: timing rootless-box's layer unpack (decompress, hash, extract inside the user namespace:
what `import`, `load` and `pull` pay per layer) beside `tar -x` of the same layers and
`umoci unpack --rootless` of the same image as an OCI layout (when umoci is installed), and
`commit` of a container that wrote 10,000 files beside `tar -c` of its upper dir. Runs of the
tools alternate in one loop on one filesystem (the disk here drifts from minute to minute).
Must not: run as root, touch the user's own store, or leave anything behind.

Usage: .venv/bin/python bench/unpack_commit.py [--runs 5]
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from _report import row  # noqa: E402 (bench/ is sys.path[0])

SOURCES = ("/usr/lib/python3.11", "/usr/share/perl", "/usr/share/locale")


def log(msg):
    print("unpack_commit: " + msg, file=sys.stderr, flush=True)


def _layer_from(path, out, limit):
    """A gzip layer of the host tree at path (at most limit bytes of file data)."""
    total = 0
    with gzip.open(out, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(top, name)
                if total > limit or not os.path.isfile(full) or os.path.islink(full):
                    continue
                info = tar.gettarinfo(full, arcname=os.path.relpath(full, "/"))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(full, "rb") as f:
                    tar.addfile(info, f)
                total += info.size
    return total


def _random_layer(out, size):
    """A gzip layer holding one file of incompressible data."""
    src = out + ".data"
    block = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    with gzip.open(out, "wb", compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w|") as tar:
        info = tar.gettarinfo(src, arcname="opt/blob.bin")
        info.uid = info.gid = 0
        with open(src, "rb") as f:
            tar.addfile(info, f)
    os.unlink(src)


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _diff_id(path):
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _oci_layout(layers, top):
    """An OCI image layout of the gzip layers, for umoci."""
    blobs = os.path.join(top, "blobs", "sha256")
    os.makedirs(blobs)
    descs = []
    for layer in layers:
        digest = _sha(layer)
        shutil.copy(layer, os.path.join(blobs, digest[7:]))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": digest, "size": os.path.getsize(layer)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers",
                                    "diff_ids": [_diff_id(p) for p in layers]}}).encode()

    def put(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest[7:]), "wb") as f:
            f.write(data)
        return digest

    manifest = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": descs}).encode()
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
         "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "b"}}]}
    with open(os.path.join(top, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(top, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _run(cmd, **kw):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--commit-only", action="store_true",
                        help="time the commit alone (no 100 MB image to unpack)")
    args = parser.parse_args(argv)
    if os.geteuid() == 0:
        log("refusing to run as root: this measures rootless operation")
        return 2
    from rootless_box.ops.storage import spread_subdirs, unpack_layers
    from rootless_box.store import Store, remove_tree
    from rootless_box.userns import idmap as idmaps
    idmap = idmaps.plan()
    tmp = tempfile.mkdtemp(prefix="rbx-bench-unpack-")
    try:
        if args.commit_only:
            _table(args, 0, {}, _bench_commit(tmp, args.runs))
            return 0
        log("making a three-layer image from host files")
        layers = [os.path.join(tmp, "l%d.tar.gz" % i) for i in range(3)]
        data = _layer_from(SOURCES[0], layers[0], 45 << 20)
        data += _layer_from(SOURCES[1], layers[1], 25 << 20)
        _random_layer(layers[2], 30 << 20)
        data += 30 << 20
        umoci = shutil.which("umoci")
        if umoci:
            _oci_layout(layers, os.path.join(tmp, "oci"))
        times = {"ours": [], "tar": [], "umoci": []}
        for run in range(args.runs):
            store = Store(os.path.join(tmp, "store%d" % run), idmap.key)
            store.on_tmp_made = spread_subdirs  # as ops/storage.open_store does
            store.ensure()

            def ours():
                # what load and pull do: the image's layers unpacked in parallel
                unpack_layers(store, idmap, [(layer, None) for layer in layers])
            times["ours"].append(_timed(ours))
            dest = os.path.join(tmp, "tar%d" % run)
            os.mkdir(dest)
            times["tar"].append(_timed(lambda: [_run(["tar", "-xzf", layer, "-C", dest])
                                                for layer in layers]))
            if umoci:
                bundle = os.path.join(tmp, "bundle%d" % run)
                times["umoci"].append(_timed(lambda: _run(
                    [umoci, "unpack", "--rootless", "--image", os.path.join(tmp, "oci") + ":b",
                     bundle])))
                remove_tree(bundle)
            from rootless_box.userns.launcher import run_in_userns
            run_in_userns(remove_tree, idmap, store.root)
            remove_tree(dest)
        commit = _bench_commit(tmp, args.runs)
        _table(args, data, times, commit)
    finally:
        from rootless_box.store import remove_tree
        if not remove_tree(tmp):
            from rootless_box.userns.launcher import run_in_userns
            run_in_userns(remove_tree, idmaps.plan(), tmp)
    return 0


def _bench_commit(tmp, runs):
    """commit of a container whose upper dir holds 10,000 small files, beside tar -c of it."""
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(tmp, "commit-data"),
               PYTHONPATH=os.path.dirname(HERE))
    # the installed command, as a user calls it (runpy's start-up is no part of it)
    rbx = [sys.executable, os.path.join(os.path.dirname(HERE), "bin", "rootless-box")]
    from rootless_box.ops.fromhost import write_rootfs_tar
    rootfs = os.path.join(tmp, "rootfs.tar")
    with open(rootfs, "wb") as f:
        write_rootfs_tar(["/bin/busybox"], f)
    _run(rbx + ["import", rootfs, "base"], env=env)
    _run(rbx + ["run", "--name", "w", "base", "sh", "-c",
                "mkdir /files; cd /files; i=0; while [ $i -lt 10000 ]; do echo $i > f$i; "
                "i=$((i+1)); done"], env=env)
    upper = None
    for name in os.listdir(os.path.join(env["XDG_DATA_HOME"], "rootless-box", "containers")):
        upper = os.path.join(env["XDG_DATA_HOME"], "rootless-box", "containers", name, "upper")
    times = {"ours": [], "tar": [], "first_run": []}
    for run in range(runs):
        times["ours"].append(_timed(lambda: _run(rbx + ["commit", "w", "c:%d" % run],
                                                 env=env)))
        # commit leaves the layer's directory to the first run of its image (issue 19):
        # shown, so the cost moved there is in the table too
        times["first_run"].append(_timed(lambda: _run(rbx + ["run", "--rm", "c:%d" % run,
                                                             "true"], env=env)))
        # the same changes give the same layer, which the next commit would reuse: remove
        # it, so every run pays for writing and unpacking the layer
        _run(rbx + ["rmi", "c:%d" % run], env=env)
        out = os.path.join(tmp, "upper%d.tar" % run)
        times["tar"].append(_timed(lambda: _run(["tar", "-cf", out, "-C", upper, "."])))
        os.unlink(out)
    return times


def _table(args, data, times, commit):
    med = {k: statistics.median(v) for k, v in times.items() if v}
    if not med:  # --commit-only
        print("| figure | rootless-box | peer | ratio |")
        print("|---|---|---|---|")
        _commit_rows(commit)
        return
    print("Three gzip layers, %d MB of file data (python3.11 and perl libraries, 30 MB of "
          "random data); %d runs alternating; the medians." % (data >> 20, args.runs))
    print()
    print("| figure | rootless-box | peer | ratio |")
    print("|---|---|---|---|")
    print("| unpack, beside `tar -xzf` of each layer | %.2f s | %.2f s | %.2f |"
          % (med["ours"], med["tar"], med["ours"] / med["tar"]))
    row("unpack of 3 gzip layers (%d MB)" % (data >> 20), med["ours"], med["tar"],
        "`tar -xzf` of each layer", "s")
    if "umoci" in med:
        print("| unpack, beside `umoci unpack --rootless` | %.2f s | %.2f s | %.2f |"
              % (med["ours"], med["umoci"], med["ours"] / med["umoci"]))
    row("unpack of 3 gzip layers (%d MB)" % (data >> 20), med["ours"], med.get("umoci"),
        "`umoci unpack --rootless`", "s", why=None if "umoci" in med else "not installed")
    _commit_rows(commit)


def _commit_rows(commit):
    ours, tar = statistics.median(commit["ours"]), statistics.median(commit["tar"])
    first = statistics.median(commit["first_run"])
    print("| commit of a 10,000-file upper dir, beside `tar -cf` of it (goal: 5x) | %.2f s | "
          "%.2f s | %.2f |" % (ours, tar, ours / tar))
    row("`commit` of a 10,000-file upper dir (goal: 5x)", ours, tar, "`tar -cf` of it", "s")
    print("| then the first `run --rm IMAGE true` of the committed image (unpacks the layer) "
          "| %.2f s | - | - |" % first)
    row("then the first `run --rm IMAGE true` of the committed image (unpacks the layer)",
        first, unit="s")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
