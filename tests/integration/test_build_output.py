"""`build -o/--output`, `--push`, `--load`, `--metadata-file` (issue 20): each output read by
its consumer: a directory and a tar as files, an OCI layout by skopeo and umoci, a
docker-archive by `podman load`, a pushed image pulled back from a real registry."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import Cli, assert_one_error, needs_userns

pytestmark = needs_userns

DOCKERFILE = ("FROM %s\nRUN mkdir /out && echo built > /out/a && chmod 600 /out/a && "
              "echo said-by-run\nCMD [\"cat\", \"/out/a\"]\n")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, image):
    top = tmp_path_factory.mktemp("ctx")
    (top / "Dockerfile").write_text(DOCKERFILE % image)
    return str(top)


def members(path):
    with tarfile.open(path) as tar:
        return {m.name: (m, tar.extractfile(m).read() if m.isfile() else None)
                for m in tar.getmembers()}


def test_local_and_tar_outputs_hold_the_filesystem(cli, ctx, tmp_path):
    local, tar = tmp_path / "local", tmp_path / "fs.tar"
    short = tmp_path / "short"
    image_id = cli.ok("build", "-q", "-t", "out:fs", "-o", "type=local,dest=%s" % local,
                      "--output", "type=tar,dest=%s" % tar, "-o", short, ctx).out.strip()
    for top in (local, short):
        st = os.lstat(top / "out" / "a")
        assert (top / "out" / "a").read_text() == "built\n"
        # written as the user, as BuildKit's rootless local exporter does; times reproducible
        assert (st.st_uid, st.st_mode & 0o777, st.st_mtime) == (os.getuid(), 0o600, 315532800)
        assert os.path.isfile(top / "bin" / "busybox") or os.path.islink(top / "bin")
    entries = members(tar)
    assert entries["out/a"][1] == b"built\n" and entries["out/a"][0].uid == 0
    assert all(m.mtime <= 315532800 for m, _data in entries.values())
    # the image is in the store too, tagged
    assert cli.ok("run", "--rm", "out:fs").out == "built\n"
    assert json.loads(cli.ok("inspect", "out:fs").out)[0]["Id"] == image_id


def test_tar_to_standard_output_keeps_the_progress_off_it(cli, ctx, tmp_path):
    proc = cli("build", "--no-cache", "--progress", "plain", "-o", "-", ctx)
    assert proc.returncode == 0, proc.err
    path = tmp_path / "stdout.tar"
    path.write_bytes(proc.stdout)
    assert members(path)["out/a"][1] == b"built\n"
    # the steps and the RUN's own output
    assert "STEP 2/3" in proc.err and "said-by-run" in proc.err


def test_oci_output_is_read_by_skopeo_and_umoci(cli, ctx, tmp_path):
    for tool in ("skopeo", "umoci"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    archive, meta = tmp_path / "img.oci.tar", tmp_path / "meta.json"
    cli.ok("build", "-q", "-t", "out:oci", "-o", "type=oci,dest=%s" % archive,
           "--metadata-file", meta, ctx)
    metadata = json.loads(meta.read_text())
    assert metadata["image.name"] == "docker.io/library/out:oci"
    names = set(members(archive))
    assert {"oci-layout", "index.json"} <= names and "manifest.json" not in names
    inspected = json.loads(subprocess.run(["skopeo", "inspect", "oci-archive:%s" % archive],
                                          check=True, capture_output=True).stdout)
    assert inspected["Digest"] == metadata["containerimage.digest"]
    config = json.loads(subprocess.run(
        ["skopeo", "inspect", "--config", "oci-archive:%s" % archive], check=True,
        capture_output=True).stdout)
    assert config["config"]["Cmd"] == ["cat", "/out/a"]
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout)  # our own archive: regular files and two directories
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--rootless", "--image", "%s:oci" % layout, bundle],
                   check=True, capture_output=True)
    assert (bundle / "rootfs" / "out" / "a").read_text() == "built\n"


def _podman_reason(env, root):
    if shutil.which("podman") is None:
        return "podman is not installed"
    probe = subprocess.run(["podman"] + root + ["info"], env=env, capture_output=True,
                           timeout=120)
    if probe.returncode != 0:
        return "podman does not work as this user: %s" % probe.stderr.decode()[-200:]
    return None


def test_docker_output_is_loaded_by_podman(cli, ctx, tmp_path):
    archive = tmp_path / "img.docker.tar"
    image_id = cli.ok("build", "-q", "-t", "out:docker", "--load",
                      "-o", "type=docker,dest=%s" % archive, ctx).out.strip()
    assert {"manifest.json", "index.json"} <= set(members(archive))
    home = tmp_path / "podman"
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
               XDG_DATA_HOME=str(home / "data"))
    import tempfile
    run = tempfile.mkdtemp(prefix="rbxp-")  # podman wants a runroot under 50 characters
    root = ["--root", str(home / "root"), "--runroot", run]
    reason = _podman_reason(env, root)
    if reason:
        pytest.skip(reason)
    try:
        loaded = subprocess.run(["podman"] + root + ["load", "-i", str(archive)], env=env,
                                capture_output=True, timeout=300)
        assert loaded.returncode == 0, loaded.stderr
        assert "docker.io/library/out:docker" in loaded.stdout.decode()
        ids = subprocess.run(["podman"] + root + ["images", "--no-trunc", "-q",
                                                  "out:docker"], env=env, check=True,
                             capture_output=True).stdout.decode().split()
        assert ids == [image_id]
    finally:
        # podman's store holds files of subordinate ids; its own reset removes them
        subprocess.run(["podman"] + root + ["system", "reset", "-f"], env=env,
                       capture_output=True, timeout=300)
        shutil.rmtree(run, ignore_errors=True)


def test_push_and_image_outputs_reach_the_registry(cli, ctx, plain_registry, tmp_path):
    name = plain_registry.ref("built/pushed", "v1")
    other = plain_registry.ref("built/named", "v2")
    meta = tmp_path / "meta.json"
    image_id = cli.ok("build", "-q", "-t", name, "--push", "--metadata-file", meta,
                      "-o", "type=image,name=%s,push=true" % other, ctx).out.strip()
    metadata = json.loads(meta.read_text())
    assert metadata["containerimage.config.digest"] == image_id
    assert metadata["image.name"] == "%s,%s" % (name, other)
    for repo, tag in (("built/pushed", "v1"), ("built/named", "v2")):
        status, _ctype, _doc, digest = plain_registry.manifest(repo, tag)
        assert (status, digest) == (200, metadata["containerimage.digest"])
    fresh = Cli(str(tmp_path / "fresh"))
    fresh.ok("pull", name)
    assert fresh.ok("run", "--rm", name).out == "built\n"
    assert json.loads(fresh.ok("inspect", name).out)[0]["Id"] == image_id


@pytest.mark.parametrize("args", [
    ("-o", "type=zip,dest=x"), ("-o", "type=local"), ("-o", "type=tar,dest=x,name=y"),
    ("-o", "dest=x"), ("--push",), ("-o", "type=image,push=maybe"),
    ("-o", "type=registry"), ("-o", "-", "-o", "type=oci,dest=-")])
def test_bad_outputs_are_one_line_before_the_build(cli, ctx, args):
    proc = cli("build", *args, ctx)
    assert_one_error(proc, 1)
    assert "STEP" not in proc.out
