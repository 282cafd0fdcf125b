"""pull, push, login and logout against a real registry (Debian's docker-registry on loopback).

What a user relies on: an image pushed by skopeo pulls and runs; pulling again fetches
nothing; digests are recorded and usable (`name@sha256:...`); a manifest list gives this
machine's image or the one --platform names; zstd layers stay zstd through pull and push;
TLS with a CA from certs.d, --tls-verify=false, htpasswd and bearer-token registries with
login/logout (credentials checked before they are saved, file mode 0600, tokens cached per
scope); push skips blobs the registry has, mounts them from another repository, uploads in one
request or in chunks, and what it pushes skopeo reads back whole. Hostile registries and faults
are in test_registry_hostile.py.
"""

import json
import os
import stat

import pytest

import registry_server as rs
from conftest import Cli, assert_one_error, needs_userns

pytestmark = needs_userns


@pytest.fixture
def user(tmp_path):
    """A fresh user of rootless-box: its own store and config home, no registries.conf of the
    machine's."""
    conf = tmp_path / "registries.conf"
    conf.write_text("")
    return Cli(str(tmp_path / "data"), env={"XDG_CONFIG_HOME": str(tmp_path / "config"),
                                            "RBX_REGISTRIES_CONF": str(conf)})


def trust(user, registry):
    """The registry's CA in the user's certs.d, as a user would install it."""
    registry.install_ca(user.env["XDG_CONFIG_HOME"])


def images(user, *args):
    return user.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", *args).out.split(
        "\n")[:-1]


def store_tmp(user):
    path = os.path.join(user.root, "tmp")
    return os.listdir(path) if os.path.isdir(path) else []


def manifest_of(registry, repo, tag="latest"):
    status, _ctype, doc, digest = registry.manifest(repo, tag)
    assert status == 200, status
    return doc, digest


# -- pull -----------------------------------------------------------------------------------------

def test_pull_runs_and_records_the_digest(user, plain_registry, busybox_layout):
    digest = rs.push_busybox(plain_registry, busybox_layout, "library/bb1")
    name = plain_registry.ref("library/bb1", "latest")
    first = user.ok("pull", name)
    lines = first.out.splitlines()
    assert lines[0] == "latest: Pulling from library/bb1"
    assert "Digest: %s" % digest in lines
    assert "Status: Downloaded newer image for %s" % name in lines
    assert lines[-1] == name
    assert any(line.endswith(": Pull complete") for line in lines)
    assert user.ok("run", "--rm", name, "echo", "pulled").out == "pulled\n"

    again = user.ok("pull", name)
    assert "Status: Image is up to date for %s" % name in again.out
    assert "Pull complete" not in again.out and ": Already exists" in again.out

    info = json.loads(user.ok("image", "inspect", name).out)[0]
    assert info["RepoDigests"] == ["%s/library/bb1@%s" % (plain_registry.host, digest)]
    rows = user.ok("images", "--digests", "--format", "{{.Digest}}").out.split()
    assert rows == [digest]
    # a second tag; rmi by digest then forgets the digest, and the tags stay
    user.ok("tag", name, "again:1")
    user.ok("rmi", "%s/library/bb1@%s" % (plain_registry.host, digest))
    assert json.loads(user.ok("image", "inspect", name).out)[0]["RepoDigests"] == []
    user.ok("pull", name)
    # by digest: resolves locally, and runs
    by_digest = "%s/library/bb1@%s" % (plain_registry.host, digest)
    assert user.ok("run", "--rm", by_digest, "true").returncode == 0
    assert store_tmp(user) == []


def test_pull_by_digest_makes_no_tag(user, plain_registry, busybox_layout):
    digest = rs.push_busybox(plain_registry, busybox_layout, "library/bb2")
    by_digest = "%s/library/bb2@%s" % (plain_registry.host, digest)
    out = user.ok("pull", by_digest).out
    assert out.splitlines()[-1] == by_digest
    assert images(user)[0].startswith("%s/library/bb2:<none> " % plain_registry.host)
    assert user.ok("run", "--rm", by_digest, "echo", "ok").out == "ok\n"
    # its last name gone, the image goes
    out = user.ok("rmi", by_digest).out.splitlines()
    assert out[0] == "Untagged: %s" % by_digest and out[1].startswith("Deleted: sha256:")
    assert images(user) == []


def test_quiet_pull_prints_only_the_name(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/bb3")
    name = plain_registry.ref("library/bb3")
    proc = user.ok("pull", "-q", name)
    assert proc.out == name + "\n"


def test_default_tag_is_latest(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/bb4")
    proc = user.ok("pull", "%s/library/bb4" % plain_registry.host)
    assert proc.out.startswith("Using default tag: latest\n")
    assert images(user)[0].startswith("%s/library/bb4:latest " % plain_registry.host)


def test_bad_platform_is_one_error_before_anything_is_printed(user, plain_registry):
    proc = user("pull", "--platform", "linux", plain_registry.ref("library/any"))
    assert_one_error(proc)
    assert "invalid platform" in proc.err and proc.out == ""


def test_missing_tag_is_one_error(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/bb5")
    proc = user("pull", plain_registry.ref("library/bb5", "nope"))
    assert_one_error(proc)
    assert "not found" in proc.err and "bb5:nope" in proc.err
    assert images(user) == [] and store_tmp(user) == []


def test_manifest_list_gives_this_machines_image_or_the_platform_asked(user, plain_registry,
                                                                         multiarch_layout):
    rs.push_multiarch(plain_registry, multiarch_layout, "library/multi")
    name = plain_registry.ref("library/multi")
    index, index_digest = manifest_of(plain_registry, "library/multi")
    assert "manifests" in index
    user.ok("pull", name)
    info = json.loads(user.ok("image", "inspect", name).out)[0]
    assert info["Architecture"] == rs.host_arch()
    # Docker records the index's digest: the one that names the image on every platform
    assert info["RepoDigests"] == ["%s/library/multi@%s" % (plain_registry.host,
                                                            index_digest)]
    assert user.ok("run", "--rm", name, "echo", "native").out == "native\n"

    other = "arm64" if rs.host_arch() != "arm64" else "amd64"
    user.ok("pull", "--platform", "linux/" + other, name)
    info = json.loads(user.ok("image", "inspect", name).out)[0]
    assert info["Architecture"] == other

    proc = user("pull", "--platform", "linux/s390x", name)
    assert_one_error(proc)
    assert "linux/amd64" in proc.err and "linux/arm64" in proc.err


def test_zstd_layers_pull_and_push_as_zstd(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/zbb", compress="zstd")
    doc, _digest = manifest_of(plain_registry, "library/zbb")
    assert doc["layers"][0]["mediaType"].endswith("+zstd")
    name = plain_registry.ref("library/zbb")
    user.ok("pull", name)
    assert user.ok("run", "--rm", name, "echo", "z").out == "z\n"

    target = plain_registry.ref("copies/zbb", "v1")
    user.ok("push", name, target)
    copy, _d = manifest_of(plain_registry, "copies/zbb", "v1")
    assert copy == doc  # the same manifest: same layers, same compression, same digest


# -- TLS and auth ---------------------------------------------------------------------------------

def test_loopback_registries_are_insecure_unless_configured(user, tls_registry,
                                                            busybox_layout):
    rs.push_busybox(tls_registry, busybox_layout, "library/lbb")
    # Docker's default: a registry on 127.0.0.0/8 may use an unverified certificate
    user.ok("pull", tls_registry.ref("library/lbb"))


def test_tls_registry_trusted_through_certs_d(user, tls_registry, busybox_layout):
    rs.push_busybox(tls_registry, busybox_layout, "library/tbb")
    name = tls_registry.ref("library/tbb")
    with open(user.env["RBX_REGISTRIES_CONF"], "w") as f:
        f.write('[[registry]]\nlocation = "%s"\ninsecure = false\n' % tls_registry.host)
    proc = user("pull", name)
    assert_one_error(proc)
    assert "certificate" in proc.err and "certs.d" in proc.err
    user.ok("pull", "--tls-verify=false", name)
    user.ok("rmi", name)
    trust(user, tls_registry)
    user.ok("pull", name)
    assert user.ok("run", "--rm", name, "echo", "tls").out == "tls\n"


def test_htpasswd_login_pull_push_logout(user, auth_registry, busybox_layout):
    trust(user, auth_registry)
    rs.push_busybox(auth_registry, busybox_layout, "library/abb")
    name = auth_registry.ref("library/abb")
    proc = user("pull", name)
    assert_one_error(proc)
    assert "authentication required" in proc.err and "login" in proc.err

    auth_file = os.path.join(user.env["XDG_CONFIG_HOME"], "rootless-box", "auth.json")
    bad = user("login", "-u", auth_registry.username, "--password-stdin", auth_registry.host,
               input=b"wrong\n")
    assert_one_error(bad)
    assert not os.path.exists(auth_file)

    good = user.ok("login", "-u", auth_registry.username, "--password-stdin",
                   auth_registry.host, input=auth_registry.password.encode() + b"\n")
    assert good.out == "Login Succeeded\n"
    assert auth_registry.password not in good.out + good.err
    assert stat.S_IMODE(os.stat(auth_file).st_mode) == 0o600
    with open(auth_file) as f:
        assert auth_registry.host in json.load(f)["auths"]

    user.ok("pull", name)
    user.ok("push", name, auth_registry.ref("pushed/abb", "1"))
    assert rs.inspect(auth_registry, "pushed/abb", "1")["Digest"].startswith("sha256:")

    out = user.ok("logout", auth_registry.host).out
    assert out == "Removing login credentials for %s\n" % auth_registry.host
    assert user.ok("logout", auth_registry.host).out == "Not logged in to %s\n" % \
        auth_registry.host
    user.ok("rmi", name)
    assert_one_error(user("pull", name))


def test_token_registry_anonymous_pull_and_cached_tokens(user, token_registry,
                                                         busybox_layout):
    trust(user, token_registry)
    rs.push_busybox(token_registry, busybox_layout, "library/kbb")
    token_registry.token_server.reset()
    name = token_registry.ref("library/kbb")
    user.ok("pull", name)
    # manifest, config and layer requests share one token for the repository's pull scope
    assert token_registry.token_server.count("repository:library/kbb:pull") == 1
    requests = token_registry.token_server.requests
    assert requests and all(r["user"] is None for r in requests)

    # anonymous users may not push; after login they may
    proc = user("push", name, token_registry.ref("team/kbb", "1"))
    assert_one_error(proc)
    assert "login" in proc.err
    user.ok("login", "-u", token_registry.username, "--password-stdin", token_registry.host,
            input=token_registry.password.encode())
    user.ok("push", name, token_registry.ref("team/kbb", "1"))
    assert rs.inspect(token_registry, "team/kbb", "1")["Architecture"] == rs.host_arch()


def test_token_login_with_a_wrong_password_fails(user, token_registry):
    trust(user, token_registry)
    proc = user("login", "-u", token_registry.username, "--password-stdin",
                token_registry.host, input=b"nope")
    assert_one_error(proc)
    assert not os.path.exists(os.path.join(user.env["XDG_CONFIG_HOME"], "rootless-box",
                                           "auth.json"))


# -- push -----------------------------------------------------------------------------------------

def test_push_of_a_local_image_reads_back_whole(user, plain_registry, rootfs_tar, tmp_path):
    name = plain_registry.ref("mine/app", "1.0")
    user.ok("import", "-c", "CMD [\"sh\"]", rootfs_tar, name)
    out = user.ok("push", name).out.splitlines()
    assert out[0] == "The push refers to repository [%s/mine/app]" % plain_registry.host
    assert any(line.endswith(": Pushed") for line in out)
    assert out[-1].startswith("1.0: digest: sha256:")
    digest = out[-1].split()[2]

    # skopeo copies it out whole (every blob verified), and the digest is the one printed
    oci = tmp_path / "oci"
    plain_registry.skopeo("copy", "--quiet", *plain_registry.skopeo_args("src"),
                          "docker://" + name, "oci:%s:x" % oci)
    _doc, served = manifest_of(plain_registry, "mine/app", "1.0")
    assert served == digest
    info = json.loads(user.ok("image", "inspect", name).out)[0]
    assert info["RepoDigests"] == ["%s/mine/app@%s" % (plain_registry.host, digest)]

    again = user.ok("push", name).out
    assert ": Layer already exists" in again and ": Pushed" not in again

    # a fresh user pulls it and gets the same image
    other = Cli(str(tmp_path / "other"), env=user.env)
    other.ok("pull", name)
    assert json.loads(other.ok("image", "inspect", name).out)[0]["Id"] == info["Id"]


def test_push_to_another_repository_mounts_the_blobs(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/mbb")
    name = plain_registry.ref("library/mbb")
    user.ok("pull", name)
    out = user.ok("push", name, plain_registry.ref("elsewhere/mbb", "v2")).out
    assert ": Mounted from library/mbb" in out and ": Pushed" not in out
    assert rs.inspect(plain_registry, "elsewhere/mbb", "v2")["Layers"]


def test_chunked_upload(user, plain_registry, rootfs_tar, tmp_path):
    name = plain_registry.ref("chunked/app", "1")
    user.ok("import", rootfs_tar, name)
    user.ok("push", name, env={"RBX_UPLOAD_CHUNK_SIZE": "65536"})
    # the registry's access log shows the PATCHes; skopeo reads the result whole
    with open(plain_registry.log_path, errors="replace") as f:
        assert f.read().count('"PATCH /v2/chunked/app/blobs/uploads/') > 2
    plain_registry.skopeo("copy", "--quiet", *plain_registry.skopeo_args("src"),
                          "docker://" + name, "oci:%s:x" % (tmp_path / "oci"))


def test_push_needs_a_name_not_an_id(user, plain_registry, rootfs_tar):
    image_id = user.ok("import", rootfs_tar).out.strip()
    proc = user("push", image_id[7:19])
    assert_one_error(proc)
    assert "tag it first" in proc.err


def test_push_of_a_missing_image(user, plain_registry):
    proc = user("push", plain_registry.ref("no/such"))
    assert_one_error(proc)
    assert "no such image" in proc.err
    assert proc.out == ""


def test_pull_all_tags(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/tags", "one")
    rs.push_busybox(plain_registry, busybox_layout, "library/tags", "two")
    user.ok("pull", "-a", "%s/library/tags" % plain_registry.host)
    rows = sorted(images(user))
    assert [r.split()[0] for r in rows] == ["%s/library/tags:one" % plain_registry.host,
                                           "%s/library/tags:two" % plain_registry.host]


def test_skopeo_reads_a_docker_schema2_push(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/s2", fmt="v2s2")
    doc, digest = manifest_of(plain_registry, "library/s2")
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    name = plain_registry.ref("library/s2")
    user.ok("pull", name)
    user.ok("push", name, plain_registry.ref("library/s2copy"))
    copy, copy_digest = manifest_of(plain_registry, "library/s2copy")
    assert copy_digest == digest


# -- run pulls what is missing ---------------------------------------------------------------------

def test_run_pulls_a_missing_image(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/rbb")
    name = plain_registry.ref("library/rbb")
    never = user("run", "--rm", "--pull", "never", name, "true")
    assert_one_error(never)
    assert "no such image" in never.err

    proc = user.ok("run", "--rm", name, "echo", "from the registry")
    # stdout is the container's alone; the pull talks on stderr, as Docker's does
    assert proc.out == "from the registry\n"
    assert proc.err.startswith("Unable to find image '%s' locally\n" % name)
    assert "Pull complete" in proc.err

    again = user.ok("run", "--rm", name, "true")
    assert again.err == ""
    always = user.ok("run", "--rm", "--pull", "always", name, "true")
    assert "Image is up to date" in always.err and "Unable to find" not in always.err
    user.ok("rmi", name)
    quiet = user.ok("run", "-q", "--rm", name, "echo", "quietly")  # pulled, saying nothing
    assert quiet.out == "quietly\n" and quiet.err == ""

    bad = user("run", "--rm", "--pull", "sometimes", name, "true")
    assert_one_error(bad)


# -- mirrors and the terminal display ---------------------------------------------------------------

def test_docker_hub_names_through_a_mirror(user, plain_registry, busybox_layout, tmp_path):
    """A docker.io mirror in registries.conf serves `busybox` (docker.io/library/busybox);
    a mirror that is down is passed over for the next one."""
    rs.push_busybox(plain_registry, busybox_layout, "library/busybox", "1.36")
    dead = rs.free_port()
    with open(user.env["RBX_REGISTRIES_CONF"], "w") as f:
        f.write('[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
                '[[registry.mirror]]\nlocation = "127.0.0.1:%d"\n'
                '[[registry.mirror]]\nlocation = "%s"\n' % (dead, plain_registry.host))
    proc = user.ok("pull", "busybox:1.36")
    assert proc.out.splitlines()[0] == "1.36: Pulling from library/busybox"
    assert proc.out.splitlines()[-1] == "docker.io/library/busybox:1.36"
    assert images(user)[0].startswith("busybox:1.36 ")
    assert user.ok("run", "--rm", "busybox:1.36", "echo", "mirrored").out == "mirrored\n"


def test_progress_bars_on_a_terminal(user, plain_registry, busybox_layout):
    from conftest import run_in_pty
    rs.push_busybox(plain_registry, busybox_layout, "library/pbb")
    name = plain_registry.ref("library/pbb")
    text, status = run_in_pty(user, ["pull", name], timeout=60)
    assert status == 0, text
    # rich draws a bar per layer with its size, and the result lines stay
    assert "Pull complete" in text and "MB" in text and "━" in text
    assert "Status: Downloaded newer image for %s" % name in text


def test_credential_helper_from_docker_config(user, auth_registry, busybox_layout, tmp_path):
    """~/.docker/config.json's credHelpers: the helper is asked, and its login used."""
    trust(user, auth_registry)
    rs.push_busybox(auth_registry, busybox_layout, "library/hbb")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    asked = tmp_path / "asked"
    helper = bindir / "docker-credential-rbxtest"
    helper.write_text("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread url\n"
                      "echo \"$url\" >> %s\n"
                      "printf '{\"ServerURL\":\"%%s\",\"Username\":\"%s\",\"Secret\":\"%s\"}' "
                      "\"$url\"\n" % (asked, auth_registry.username, auth_registry.password))
    helper.chmod(0o755)
    docker_config = tmp_path / "docker"
    docker_config.mkdir()
    (docker_config / "config.json").write_text(json.dumps(
        {"credHelpers": {auth_registry.host: "rbxtest"}}))
    env = {"DOCKER_CONFIG": str(docker_config),
           "PATH": "%s:%s" % (bindir, os.environ.get("PATH", "/usr/bin:/bin"))}
    user.ok("pull", auth_registry.ref("library/hbb"), env=env)
    assert asked.read_text().split()[0] == auth_registry.host


# -- build pulls its bases -----------------------------------------------------------------------

def test_build_pulls_a_missing_base_and_copy_from_image(user, plain_registry, busybox_layout,
                                                        tmp_path):
    rs.push_busybox(plain_registry, busybox_layout, "library/base")
    base = plain_registry.ref("library/base")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM %s\nCOPY --from=%s /bin/busybox /copied-busybox\nRUN echo built > /made\n"
        % (base, base))
    proc = user.ok("build", "-t", "child:1", str(ctx))
    assert "Unable to find image '%s' locally" % base in proc.err
    assert user.ok("run", "--rm", "child:1", "cat", "/made").out == "built\n"
    assert user.ok("run", "--rm", "child:1", "ls", "/copied-busybox").returncode == 0

    # --pull asks the registry again, even with the base here
    again = user.ok("build", "--pull", "-t", "child:2", str(ctx))
    assert "Image is up to date for %s" % base in again.err
    assert "Unable to find" not in again.err


def test_run_quiet_pulls_without_a_word(user, plain_registry, busybox_layout):
    rs.push_busybox(plain_registry, busybox_layout, "library/rbq")
    name = plain_registry.ref("library/rbq")
    proc = user.ok("run", "--rm", "-q", name, "echo", "hi")
    assert (proc.out, proc.err) == ("hi\n", "")
    cid = user.ok("create", "--quiet", "--pull", "always", name, "true").out.strip()
    user.ok("rm", cid)
