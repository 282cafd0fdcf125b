"""A real distribution as the base image: the debootstrap Debian `make test` makes as root
(RBX_TEST_DEBIAN_TAR, see scripts/ci-root.sh) run, and built on with apt-get, whose layer must
carry the owners Docker's would (root:adm logs, the _apt user's dirs), in both mapping modes.

Without the tarball every test here skips, saying so; the apt builds also skip when the image's
Debian mirror cannot be reached, since apt inside the build uses the host's network.
"""

import functools
import io
import json
import os
import tarfile
import urllib.request

import pytest

from conftest import DEBIAN_TAR, Cli, needs_subuid, needs_userns

pytestmark = needs_userns

DOCKERFILE = ("FROM debian:bookworm\n"
              "RUN apt-get update && apt-get install -y --no-install-recommends hello\n")


@functools.lru_cache(maxsize=None)
def _mirror_reason():
    """Why apt in the image cannot reach its mirror, or None; asked once per session, briefly,
    of the very URI the image's sources.list names (a local mirror when CI used one)."""
    with tarfile.open(DEBIAN_TAR) as tar:
        member = tar.extractfile("./etc/apt/sources.list")
        lines = member.read().decode().splitlines() if member else []
    uris = [line.split()[1] for line in lines
            if len(line.split()) >= 3 and line.split()[0] == "deb"]
    if not uris:
        return "the Debian image's /etc/apt/sources.list names no mirror"
    url = uris[0].rstrip("/") + "/dists/bookworm/Release"
    # No proxy: apt in a RUN step gets none from the host either.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, method="HEAD"), timeout=5):
            return None
    except Exception as exc:
        return "the Debian mirror is unreachable (%s: %s)" % (url, exc)


@pytest.fixture
def mirror(debian_image):
    reason = _mirror_reason()
    if reason:
        pytest.skip(reason)


def last_layer(cli, name, tmp_path):
    """{path: (uid, gid, mode)} of the image's top layer, read from `save`, as a registry or
    `docker load` would get it."""
    path = str(tmp_path / ("%s.tar" % name.replace(":", "_")))
    cli.ok("save", "-o", path, name, timeout=120)
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        blob = archive.extractfile(manifest[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as layer:
        return {m.name.rstrip("/"): (m.uid, m.gid, m.mode) for m in layer.getmembers()}


def build_hello(cli, tmp_path, tag):
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    proc = cli("build", "-t", tag, str(ctx), timeout=600)
    assert proc.returncode == 0, "build failed:\n%s\n%s" % (proc.out[-3000:], proc.err)
    assert cli.ok("run", "--rm", tag, "hello").out == "Hello, world!\n"
    return last_layer(cli, tag, tmp_path)


def assert_docker_owners(cli, image, owners):
    apt_uid = int(cli.ok("run", "--rm", image, "id", "-u", "_apt").out)
    adm_gid = int(cli.ok("run", "--rm", image, "getent", "group", "adm").out.split(":")[2])
    assert owners["usr/bin/hello"] == (0, 0, 0o755)
    assert owners["var/log/apt"][:2] == (0, 0)
    assert owners["var/log/apt/term.log"] == (0, adm_gid, 0o640)
    assert owners["var/lib/apt/lists/partial"] == (apt_uid, 0, 0o700)
    assert owners["var/cache/apt/archives/partial"] == (apt_uid, 0, 0o700)
    # No host id leaks in: apt and dpkg leave only these owners.
    assert {o[:2] for o in owners.values()} <= {(0, 0), (0, adm_gid), (apt_uid, 0)}, owners


def test_run_debian(cli, debian_image):
    assert cli.ok("run", "--rm", debian_image, "cat", "/etc/debian_version").out.startswith("12.")
    # The owners root gave the rootfs survive the import, so Debian's own tools see them.
    out = cli.ok("run", "--rm", debian_image, "stat", "-c", "%u:%g %a",
                 "/etc/shadow", "/usr/bin/passwd").out
    assert out == "0:42 640\n0:0 4755\n"


@needs_subuid
def test_apt_build_under_subuid(cli, debian_image, mirror, tmp_path):
    owners = build_hello(Cli(cli.data_home, env={"RBX_USERNS": "subuid"}), tmp_path,
                         "hello:subuid")
    assert_docker_owners(cli, debian_image, owners)


def test_apt_build_under_single_mapping(debian_image, mirror, tmp_path_factory, tmp_path):
    single = Cli(str(tmp_path_factory.mktemp("single")), env={"RBX_USERNS": "single"})
    try:
        single.ok("import", "-c", 'CMD ["bash"]', DEBIAN_TAR, debian_image, timeout=300)
        owners = build_hello(single, tmp_path, "hello:single")
        assert_docker_owners(single, debian_image, owners)
    finally:
        single("system", "prune", "-a", "-f", timeout=300)
