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


# -- a non-root USER (issue 22): the Node.js best-practice pattern, with a project npm would
# install replaced by files the user makes (no registry needed) ------------------------------

USER_DOCKERFILE = """FROM debian:bookworm
RUN useradd --create-home --uid 1000 --user-group node
USER node
WORKDIR /opt/node_app
COPY --chown=node:node package.json ./
RUN ["bash", "-c", "set -e; test \\"$(id -u):$(id -g):$(id -G):$(whoami)\\" = 1000:1000:1000:node; \\
test \\"$UID:$EUID\\" = 1000:1000; test \\"$HOME\\" = /home/node; \\
mkdir -p node_modules/dep ~/.npm/_cacache; echo '{}' > node_modules/dep/index.js; \\
cp package.json package-lock.json; chmod 600 package-lock.json; touch ~/.npm/_cacache/x"]
"""


def build_user_pattern(cli, tmp_path, tag):
    ctx = tmp_path / ("ctx-" + tag.replace(":", "-"))
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(USER_DOCKERFILE)
    (ctx / "package.json").write_text('{"name": "app"}\n')
    proc = cli("build", "-t", tag, str(ctx), timeout=600)
    assert proc.returncode == 0, "build failed:\n%s\n%s" % (proc.out[-3000:], proc.err)
    path = str(tmp_path / ("%s.tar" % tag.replace(":", "_")))
    cli.ok("save", "-o", path, tag, timeout=120)
    return saved_headers(path)


def saved_headers(path):
    """{path: (type, uid, gid, permission bits)} of a docker-archive's layers above the base
    (later layers winning)."""
    headers = {}
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        for name in manifest[0]["Layers"][1:]:  # the base's layer is the same tar for all
            with tarfile.open(fileobj=io.BytesIO(archive.extractfile(name).read())) as layer:
                for m in layer.getmembers():
                    name = m.name.rstrip("/")
                    headers[name[2:] if name.startswith("./") else name] = (
                        m.type, m.uid, m.gid, m.mode & 0o7777)
    return headers


def in_single_mode(debian_image, tmp_path_factory, build, *args):
    """build(cli, *args) in a store of its own under the single-id mapping, with the Debian
    image imported there; the store is pruned afterwards (its layers are big)."""
    single = Cli(str(tmp_path_factory.mktemp("single")), env={"RBX_USERNS": "single"})
    try:
        single.ok("import", "-c", 'CMD ["bash"]', DEBIAN_TAR, debian_image, timeout=300)
        return build(single, *args)
    finally:
        single("system", "prune", "-a", "-f", timeout=300)


def assert_node_owners(headers):
    node = (1000, 1000)
    for path in ("opt/node_app", "opt/node_app/package.json", "opt/node_app/node_modules",
                 "opt/node_app/node_modules/dep/index.js", "home/node/.npm/_cacache/x"):
        assert headers[path][1:3] == node, path
    assert headers["opt/node_app"][3] == 0o755
    assert headers["opt/node_app/package-lock.json"][1:] == node + (0o600,)
    assert headers["opt"][1:3] == (0, 0)  # existed in the base: untouched


def test_non_root_user_pattern_in_both_id_modes(debian_image, cli, tmp_path_factory, tmp_path):
    in_single = in_single_mode(debian_image, tmp_path_factory, build_user_pattern, tmp_path,
                               "nodepattern:single")
    assert_node_owners(in_single)
    from conftest import has_subuid
    if not has_subuid():
        return
    in_subuid = build_user_pattern(Cli(cli.data_home, env={"RBX_USERNS": "subuid"}), tmp_path,
                                   "nodepattern:subuid")
    assert_node_owners(in_subuid)
    # useradd's files (passwd, the home) and the user's steps alike. Not the shadow files:
    # useradd gives its new copy the old one's owner as stat shows it, and stat is not faked
    # under the single-id mapping (root:shadow reads as 0:0 there; README, fake-root limits)
    shadow = ("etc/shadow", "etc/shadow-", "etc/gshadow", "etc/gshadow-")
    assert {p: in_subuid.pop(p)[2] for p in shadow} == dict.fromkeys(shadow, 42)
    assert {p: in_single.pop(p)[2] for p in shadow} == dict.fromkeys(shadow, 0)
    assert in_single == in_subuid


@needs_subuid
def test_non_root_user_pattern_as_podman_builds_it(debian_image, cli, tmp_path):
    """The same Dockerfile built by rootless podman (runc, native overlay: BASELINES.md), when
    it is installed and works here: the same owners and modes as ours."""
    import shutil
    import subprocess
    if not shutil.which("podman"):
        pytest.skip("podman is not installed")
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n'
                    % (tmp_path / "graph", tmp_path / "run"))
    env = dict(os.environ, CONTAINERS_STORAGE_CONF=str(conf))

    def podman(*args):
        return subprocess.run(["podman", "--runtime", "runc"] + list(args), env=env,
                              capture_output=True, text=True, timeout=600)

    ctx = tmp_path / "podman-ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(USER_DOCKERFILE.replace(
        "FROM debian:bookworm", "FROM localhost/debian:bookworm"))
    (ctx / "package.json").write_text('{"name": "app"}\n')
    try:
        imported = podman("import", "-c", 'CMD ["bash"]', DEBIAN_TAR,
                          "localhost/debian:bookworm")
        if imported.returncode:
            pytest.skip("podman cannot import here: %s" % imported.stderr.strip()[-300:])
        built = podman("build", "--network", "host", "-t", "nodepattern:podman", str(ctx))
        assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
        saved = podman("save", "--format", "docker-archive", "-o",
                       str(tmp_path / "podman.tar"), "nodepattern:podman")
        assert saved.returncode == 0, saved.stderr
        theirs = saved_headers(str(tmp_path / "podman.tar"))
    finally:
        podman("rmi", "-a", "-f")
        # its layers belong to subordinate ids: removed from inside its user namespace
        podman("unshare", "rm", "-rf", str(tmp_path / "graph"), str(tmp_path / "run"))
    ours = build_user_pattern(Cli(cli.data_home, env={"RBX_USERNS": "subuid"}), tmp_path,
                              "nodepattern:vs-podman")
    # podman leaves its /etc/hosts placeholder and /run in the RUN layers; Docker and
    # rootless-box leave what exists only to be mounted onto out
    for leftover in ("etc/hosts", "run"):
        theirs.pop(leftover, None)
    assert ours == theirs


PIP_DOCKERFILE = """FROM debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip
# the host's CA bundle: this machine may reach PyPI through a proxy with its own CA
COPY host-ca.crt /etc/ssl/certs/host-ca.crt
ENV PIP_CERT=/etc/ssl/certs/host-ca.crt
RUN useradd --create-home --uid 1000 --user-group node
USER node
WORKDIR /home/node/app
COPY --chown=node:node requirements.txt ./
RUN pip install --user --no-cache-dir --break-system-packages -r requirements.txt && \\
    python3 -c "import os, six; print('ids', os.getuid(), os.geteuid(), os.getgid(), six.__name__)"
"""


HOST_CA = "/etc/ssl/certs/ca-certificates.crt"


@functools.lru_cache(maxsize=None)
def _pypi_reason():
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request("https://pypi.org/simple/six/", method="HEAD"),
                         timeout=5):
            return None
    except Exception as exc:
        return "PyPI is unreachable (%s)" % exc


def build_pip_project(cli, tmp_path, tag):
    ctx = tmp_path / ("pip-" + tag.replace(":", "-"))
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(PIP_DOCKERFILE)
    (ctx / "requirements.txt").write_text("six==1.16.0\n")
    with open(HOST_CA, "rb") as f:
        (ctx / "host-ca.crt").write_bytes(f.read())
    proc = cli("build", "--progress=plain", "-t", tag, str(ctx), timeout=900)
    assert proc.returncode == 0, "build failed:\n%s\n%s" % (proc.out[-3000:], proc.err)
    # pip saw a user, not root: no "Running pip as the 'root' user" warning
    assert "ids 1000 1000 1000 six" in proc.out
    assert "as the 'root' user" not in proc.out + proc.err
    path = str(tmp_path / ("%s.tar" % tag.replace(":", "_")))
    cli.ok("save", "-o", path, tag, timeout=120)
    with tarfile.open(path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        blob = archive.extractfile(manifest[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as layer:
        return {m.name.rstrip("/"): (m.type, m.uid, m.gid, m.mode & 0o7777)
                for m in layer.getmembers() if "__pycache__" not in m.name}


def test_pip_install_as_a_user_in_both_id_modes(debian_image, mirror, cli, tmp_path_factory,
                                                tmp_path):
    """The issue's pattern with a Python project: pip from PyPI, run as the image's USER."""
    reason = _pypi_reason() or (None if os.access(HOST_CA, os.R_OK) else
                                "no CA bundle at %s" % HOST_CA)
    if reason:
        pytest.skip(reason)
    in_single = in_single_mode(debian_image, tmp_path_factory, build_pip_project, tmp_path,
                               "pipproject:single")
    site = "home/node/.local/lib/python3.11/site-packages/six.py"
    assert in_single[site][1:3] == (1000, 1000)
    # all the user's but the directories the step wrote into (copied up: root's, as before)
    assert {p for p, owner in in_single.items() if owner[1:3] != (1000, 1000)} == \
        {"home", "tmp"}, in_single
    from conftest import has_subuid
    if has_subuid():
        in_subuid = build_pip_project(Cli(cli.data_home, env={"RBX_USERNS": "subuid"}),
                                      tmp_path, "pipproject:subuid")
        assert in_single == in_subuid
