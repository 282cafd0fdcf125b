"""Layered images: commit (overlay and copy drivers), whiteouts both ways, export/import,
shared layers, concurrent changes to one store, kills."""

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time

import pytest

from conftest import Cli, needs_userns

pytestmark = needs_userns


def layer_tar(cli, image, index=-1):
    """The bytes of one layer blob of image (uncompressed layers, as commit writes them)."""
    manifest_digest = json.loads(open(os.path.join(cli.root, "images.json")).read())[
        "images"][cli.ok("inspect", "-f", "{{.Id}}", image).out.strip()]["manifest"]
    manifest = json.loads(blob(cli, manifest_digest))
    return blob(cli, manifest["layers"][index]["digest"])


def blob(cli, digest):
    with open(os.path.join(cli.root, "blobs", "sha256", digest[7:]), "rb") as f:
        return f.read()


def tar_names(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.mark.parametrize("driver", ["overlay", "copy"])
def test_commit_records_changes_and_deletions(cli, image, driver):
    env = {"RBX_STORAGE_DRIVER": driver}
    name = "commit-" + driver
    cli.ok("run", "--name", name, "-e", "FROM_RUN=1", image, "sh", "-c",
           "echo new > /new-file; rm /bin/vi; mkdir -p /tmp/keep && echo k > /tmp/keep/f; "
           "rm -rf /home; mkdir /home; echo only > /home/only; chmod 4755 /new-file", env=env)
    image_id = cli.ok("commit", "-m", "the message", "--author", "Ann <a@b>", "-c",
                      "LABEL stage=committed", name, "committed:" + driver, env=env).out.strip()
    assert image_id.startswith("sha256:")
    names = tar_names(layer_tar(cli, image_id))
    assert "bin/.wh.vi" in names or "usr/bin/.wh.vi" in names  # /bin may be a symlink
    assert names["new-file"].mode & 0o4000
    assert "etc/hosts" not in names and "etc/hostname" not in names  # mount placeholders
    if driver == "overlay":
        assert "home/.wh..wh..opq" in names
    out = cli.ok("run", "--rm", "committed:" + driver, "sh", "-c",
                 "cat /new-file; ls /bin/vi 2>&1; ls /home; cat /tmp/keep/f; "
                 "echo $FROM_RUN").out
    assert out.split("\n")[0] == "new"
    assert "No such file" in out and "only" in out and "k\n" in out and "1\n" in out
    inspect = json.loads(cli.ok("inspect", image_id).out)[0]
    assert inspect["Config"]["Labels"] == {"stage": "committed"}
    assert inspect["Author"] == "Ann <a@b>"
    assert inspect["Comment"] == "the message"
    base_layers = json.loads(cli.ok("inspect", image).out)[0]["RootFS"]["Layers"]
    assert inspect["RootFS"]["Layers"][:-1] == base_layers
    assert len(inspect["RootFS"]["Layers"]) == len(base_layers) + 1
    # the container's command becomes the image's CMD, as Docker does
    assert inspect["Config"]["Cmd"][0] == "sh"
    cli.ok("rm", name)


def test_layers_are_shared_and_stored_once(cli, image):
    for tag in ("a", "b"):
        cli.ok("run", "--name", "share-" + tag, image, "touch", "/" + tag)
        cli.ok("commit", "share-" + tag, "share:" + tag)
        cli.ok("rm", "share-" + tag)
    layers_a = json.loads(cli.ok("inspect", "share:a").out)[0]["RootFS"]["Layers"]
    layers_b = json.loads(cli.ok("inspect", "share:b").out)[0]["RootFS"]["Layers"]
    assert layers_a[0] == layers_b[0] and layers_a[1] != layers_b[1]
    from rootless_box.userns.idmap import plan
    layer_root = os.path.join(cli.root, "layers", plan().key)
    assert sorted(os.listdir(layer_root)).count(layers_a[0][7:]) == 1
    # every blob's name is its content's digest: identical content is one file
    for name in os.listdir(os.path.join(cli.root, "blobs", "sha256")):
        assert hashlib.sha256(blob(cli, "sha256:" + name)).hexdigest() == name


def test_three_layers_and_a_whiteout_over_a_whiteout(cli, image):
    cli.ok("run", "--name", "l2", image, "sh", "-c", "mkdir /stack && echo 2 > /stack/two")
    cli.ok("commit", "l2", "stack:2")
    cli.ok("run", "--name", "l3", "stack:2", "sh", "-c",
           "echo 3 > /stack/three; rm /stack/two; rm /bin/cat")
    cli.ok("commit", "l3", "stack:3")
    out = cli.ok("run", "--rm", "stack:3", "sh", "-c", "ls /stack; ls /bin/cat 2>&1; true").out
    assert out.split("\n")[0] == "three" and "No such file" in out
    assert cli.ok("run", "--rm", "stack:2", "cat", "/stack/two").out == "2\n"
    cli.ok("rm", "l2", "l3")


def test_export_import_round_trip(cli, image, tmp_path):
    cli.ok("run", "--name", "exp", image, "sh", "-c",
           "echo exported > /e; rm /bin/vi; mkdir -p /x/y; ln -s ../../e /x/y/link")
    out = tmp_path / "exp.tar"
    cli.ok("export", "-o", out, "exp")
    names = tar_names(out.read_bytes())
    assert "e" in names and "bin/vi" not in names
    assert not any(".wh." in n for n in names)
    assert names["x/y/link"].issym() and names["x/y/link"].linkname == "../../e"
    cli.ok("import", out, "reimported:1")
    assert cli.ok("run", "--rm", "reimported:1", "cat", "/x/y/link").out == "exported\n"
    # to stdout too, while refusing a terminal is the command's business
    piped = subprocess.run(cli.argv("export", "exp"), env=cli.env, capture_output=True)
    assert piped.returncode == 0 and set(tar_names(piped.stdout)) == set(names)
    cli.ok("rm", "exp")


def test_commit_of_unknown_container_and_bad_reference(cli, image):
    proc = cli("commit", "no-such-container")
    assert proc.returncode == 1 and "no such container" in proc.err  # Docker's CLI: 1
    cli.ok("run", "--name", "badref", image, "true")
    bad = cli("commit", "badref", "Bad:Name:x")
    assert bad.returncode == 1 and "invalid reference" in bad.err
    cli.ok("rm", "badref")


def _consistent(cli):
    """Every image has its config, manifest, layer blobs and layer directories; every blob
    matches its name; no temporaries are left."""
    from rootless_box.userns.idmap import plan
    index = json.loads(open(os.path.join(cli.root, "images.json")).read())
    for image_id, record in index["images"].items():
        assert hashlib.sha256(blob(cli, image_id)).hexdigest() == image_id[7:]
        manifest = json.loads(blob(cli, record["manifest"]))
        for layer in manifest["layers"]:
            blob(cli, layer["digest"])
        # a layer is unpacked, or (a commit's, until an image first needs it) its blob is
        # the uncompressed tar it is unpacked from
        unpacked = os.listdir(os.path.join(cli.root, "layers", plan().key))
        for diff_id, layer in zip(record["layers"], manifest["layers"]):
            assert diff_id[7:] in unpacked or (layer["mediaType"].endswith(".tar") and
                                               layer["digest"] == diff_id), diff_id
    for tag, image_id in index["tags"].items():
        assert image_id in index["images"], tag
    for name in os.listdir(os.path.join(cli.root, "blobs", "sha256")):
        assert hashlib.sha256(blob(cli, "sha256:" + name)).hexdigest() == name


def test_sixteen_concurrent_changes_leave_the_store_consistent(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    cli.ok("import", rootfs_tar, "base:latest")
    for i in range(4):
        cli.ok("run", "--name", "cc%d" % i, "base:latest", "sh", "-c", "echo %d > /f" % i)
    jobs = []
    for i in range(16):
        kind = i % 4
        if kind == 0:
            jobs.append(("import", rootfs_tar, "imp:%d" % i))
        elif kind == 1:
            jobs.append(("commit", "cc%d" % (i // 4), "com:%d" % i))
        elif kind == 2:
            jobs.append(("tag", "base:latest", "tagged:%d" % i))
        else:
            jobs.append(("rmi", "imp:%d" % (i - 3)))
    results = [None] * len(jobs)

    def work(n):
        results[n] = cli(*jobs[n], timeout=120)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for job, proc in zip(jobs, results):
        if job[0] == "rmi":
            # racing the import it removes: either it found the image or it did not
            assert proc.returncode in (0, 1), proc.err
        else:
            assert proc.returncode == 0, (job, proc.err)
    _consistent(cli)
    assert os.listdir(os.path.join(cli.root, "tmp")) == []
    for i in range(1, 16, 4):
        assert cli.ok("run", "--rm", "com:%d" % i, "cat", "/f").out == "%d\n" % (i // 4)


def test_kill_during_commit_leaves_the_store_usable(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    cli.ok("import", rootfs_tar, "base:latest")
    cli.ok("run", "--name", "big", "base:latest", "sh", "-c",
           "mkdir /many; i=0; while [ $i -lt 3000 ]; do echo $i > /many/$i; i=$((i+1)); done; "
           "dd if=/dev/urandom of=/blob bs=1M count=30 2>/dev/null")
    for delay in (0.3, 0.8):
        proc = subprocess.Popen(cli.argv("commit", "big", "killed:1"), env=cli.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.2)  # its user-namespace helper dies with it (parent-death signal)
        cli.ok("images")
        assert os.listdir(os.path.join(cli.root, "tmp")) == []
        _consistent(cli)
    image_id = cli.ok("commit", "big", "survived:1").out.strip()
    assert cli.ok("run", "--rm", image_id, "sh", "-c", "ls /many | wc -l").out.strip() == "3000"


def test_a_corrupt_blob_is_reported_and_removed(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    image_id = cli.ok("import", rootfs_tar, "base:latest").out.strip()
    config_path = os.path.join(cli.root, "blobs", "sha256", image_id[7:])
    with open(config_path, "r+b") as f:
        f.seek(5)
        f.write(b"X")
    proc = cli("run", "--rm", "base:latest", "true")
    assert proc.returncode == 125 and "corrupt" in proc.err and image_id in proc.err
    assert not os.path.exists(config_path)
    assert "Traceback" not in proc.err
