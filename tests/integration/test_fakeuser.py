"""A non-root USER in both id modes (issue 22): WORKDIR made for the current USER, `run -w`
as Docker makes it, and, under the single-id mapping (no /etc/subuid), a step or container
run as a non-root user: it sees that user's ids (get*id answered by the chown supervisor)
and what it creates is that user's in the layer, as under Docker."""

import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from conftest import Cli, assert_one_error, needs_subuid, needs_userns

pytestmark = needs_userns

IDS_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
#include <grp.h>
/* every id call a program may ask: getuid geteuid getgid getegid getresuid getresgid
   getgroups (the count first, then the list) */
int main(void) {
  uid_t r, e, s; gid_t gr, ge, gs; gid_t list[64];
  if (getresuid(&r, &e, &s) || getresgid(&gr, &ge, &gs)) return 1;
  int n = getgroups(0, NULL), m = getgroups(64, list);
  printf("uid=%u euid=%u gid=%u egid=%u res=%u,%u,%u resg=%u,%u,%u n=%d groups=",
         getuid(), geteuid(), getgid(), getegid(), r, e, s, gr, ge, gs, n);
  for (int i = 0; i < m; i++) printf(i ? ",%u" : "%u", list[i]);
  printf(" small=%d\n", n > 0 ? getgroups(n - 1, list) : 0);
  return 0;
}
"""


def _cli(tmp_path_factory, rootfs_tar, ids_helper, mode):
    env = {"RBX_USERNS": "single"} if mode == "single" else {}
    cli = Cli(str(tmp_path_factory.mktemp("data-" + mode)), env=env)
    if ids_helper:
        from test_images import rootfs_plus
        tar = tmp_path_factory.mktemp("ids") / "rootfs.tar"
        tar.write_bytes(rootfs_plus(rootfs_tar, [
            ({"name": "usr/bin/ids", "mode": 0o755}, open(ids_helper, "rb").read())]))
        rootfs_tar = str(tar)
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return cli


@pytest.fixture(scope="module")
def ids_helper(tmp_path_factory):
    """A static program printing what every get*id call answers (busybox's id asks only
    getuid/getgid/getgroups), or None without a static C compiler."""
    work = tmp_path_factory.mktemp("idsc")
    (work / "ids.c").write_text(IDS_C)
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc or subprocess.run([cc, "-static", "-O", "-o", str(work / "ids"),
                                 str(work / "ids.c")], capture_output=True).returncode:
        return None
    return str(work / "ids")


@pytest.fixture(scope="module")
def single(tmp_path_factory, rootfs_tar, ids_helper):
    return _cli(tmp_path_factory, rootfs_tar, ids_helper, "single")


@pytest.fixture(scope="module")
def subuid(tmp_path_factory, rootfs_tar, ids_helper):
    return _cli(tmp_path_factory, rootfs_tar, ids_helper, "subuid")


MODES = ["single", pytest.param("subuid", marks=needs_subuid)]


@pytest.fixture(params=MODES)
def mode_cli(request):
    return request.getfixturevalue(request.param)


def _context(tmp_path, dockerfile, files=None):
    ctx = tmp_path / ("ctx%d" % len(list(tmp_path.iterdir())))
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (ctx / name).write_text(data)
    return str(ctx)


def layer_headers(cli, tmp_path, name):
    """{path: (type, uid, gid, mode)} of every layer the image added over the base (the
    saved tar's layer entries, later layers winning), as `docker save` would show them."""
    out = tmp_path / ("save-%s-%s.tar" % (os.path.basename(cli.root), name.replace(":", "-")))
    cli.ok("save", "-o", str(out), name)
    headers = {}
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        for layer in manifest[0]["Layers"][1:]:
            data = tar.extractfile(layer).read()
            with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                for m in inner.getmembers():
                    headers[m.name.rstrip("/")] = (m.type, m.uid, m.gid, m.mode)
    return headers


# -- WORKDIR and run -w -----------------------------------------------------------------------

def test_workdir_is_made_for_the_current_user(mode_cli, tmp_path):
    # the Node.js pattern: USER, then WORKDIR, then the user writes there (npm's EACCES
    # on node_modules when WORKDIR came out root's)
    ctx = _context(tmp_path, "FROM base\nRUN mkdir -p /opt/kept && chmod 700 /opt/kept\n"
                             "USER app\nWORKDIR /opt/kept\nWORKDIR /opt/app/sub\n"
                             "RUN mkdir node_modules && touch node_modules/m\n"
                             "USER 1234\nWORKDIR /srv/numeric\n")
    mode_cli.ok("build", "-t", "wd:1", ctx)
    h = layer_headers(mode_cli, tmp_path, "wd:1")
    # made by WORKDIR, parents too, 0755, the user's and its group
    for path in ("opt/app", "opt/app/sub"):
        assert h[path] == (tarfile.DIRTYPE, 1000, 1000, 0o755), path
    assert h["opt/app/sub/node_modules/m"][1:3] == (1000, 1000)
    # an existing directory is left alone (no entry after the RUN that made it)
    assert h["opt/kept"] == (tarfile.DIRTYPE, 0, 0, 0o700)
    # a numeric USER with no group: BuildKit's chown takes the uid for the gid too
    assert h["srv/numeric"] == (tarfile.DIRTYPE, 1234, 1234, 0o755)
    assert h["srv"][1:3] == (1234, 1234)


def test_run_w_makes_a_missing_directory_as_docker_does(mode_cli, tmp_path):
    # moby's SetupWorkingDirectory: MkdirAllAndChownNew(path, 0755, the container's root),
    # whatever -u says; an existing directory is not touched
    name = "rw-" + os.path.basename(mode_cli.root)
    proc = mode_cli("run", "--name", name, "-u", "app", "-w", "/new/dir", "base", "sh", "-c",
                    "pwd; mkdir -p /tmp/x && chmod 700 /tmp/x")
    assert (proc.returncode, proc.out) == (0, "/new/dir\n"), proc.err
    try:
        out = tmp_path / "export.tar"
        mode_cli.ok("export", "-o", str(out), name)
        with tarfile.open(out) as tar:
            for path in ("new", "new/dir"):
                m = tar.getmember(path)
                assert (m.uid, m.gid, m.mode) == (0, 0, 0o755), path
        again = mode_cli("run", "--rm", "-w", "/tmp", "base", "stat", "-c", "%a", "/tmp")
        assert again.out == "1777\n", again.err
    finally:
        mode_cli("rm", "-f", name)


# -- a non-root user without /etc/subuid ------------------------------------------------------

def test_run_as_a_user_sees_its_ids(single):
    # app is in no group's member list: no supplementary groups, as runc sets them
    assert single.ok("run", "--rm", "-u", "app", "base", "id").out == \
        "uid=1000(app) gid=1000(app)\n"
    assert single.ok("run", "--rm", "-u", "4321:77", "base", "sh", "-c",
                     "id -u; id -g").out == "4321\n77\n"
    # root stays root, and its get*id are not sent to the keeper at all
    assert single.ok("run", "--rm", "base", "id", "-u").out == "0\n"


def test_every_id_call_answers_as_the_user(single, ids_helper, tmp_path):
    if not ids_helper:
        pytest.skip("no C compiler with a static libc to build the id helper")
    ctx = _context(tmp_path, "FROM base\nRUN echo 'extra:x:2000:app' >> /etc/group && "
                             "echo 'more:x:2001:root,app' >> /etc/group\n")
    single.ok("build", "-t", "groups:1", ctx)
    out = single.ok("run", "--rm", "-u", "app", "groups:1", "ids").out
    # getgroups(n-1, list) fails with EINVAL, as the kernel's does
    assert out == ("uid=1000 euid=1000 gid=1000 egid=1000 res=1000,1000,1000 "
                   "resg=1000,1000,1000 n=2 groups=2000,2001 small=-1\n")
    # detached: the watcher answers them; exec: the exec CLI answers its own process's
    name = "ids-detached"
    single.ok("run", "-d", "--name", name, "-u", "app", "groups:1", "sleep", "60")
    try:
        assert single.ok("exec", name, "id", "-u").out == "1000\n"
        assert single.ok("exec", "-u", "0", name, "id", "-u").out == "0\n"
        assert single.ok("exec", "-u", "1500:1600", name, "ids").out.startswith(
            "uid=1500 euid=1500 gid=1600 egid=1600 res=1500,1500,1500 resg=1600,1600,1600")
        single.ok("run", "-d", "--name", name + "2", "-u", "app", "groups:1", "sh", "-c",
                  "id -u > /tmp/id.new && mv /tmp/id.new /tmp/id; sleep 60")
        assert single.ok("exec", name + "2", "sh", "-c",
                         "until [ -e /tmp/id ]; do sleep 0.1; done; cat /tmp/id").out == "1000\n"
    finally:
        single("rm", "-f", name, name + "2")


def test_commit_gives_a_users_files_to_it(single, tmp_path):
    name = "committed-as-app"
    single.ok("run", "--name", name, "-u", "app", "base", "sh", "-c",
              "mkdir /tmp/d && touch /tmp/d/f && echo x > /tmp/g && chown 1005 /tmp/g")
    try:
        single.ok("commit", name, "byapp:1")
        h = layer_headers(single, tmp_path, "byapp:1")
        assert h["tmp/d"][1:3] == (1000, 1000) and h["tmp/d/f"][1:3] == (1000, 1000)
        assert h["tmp/g"][1:3] == (1005, 1000)
        assert h["tmp"][1:] == (0, 0, 0o1777)  # copied up: the image's
    finally:
        single("rm", "-f", name)


def test_unconfined_cannot_fake_a_user(single):
    proc = single("run", "--rm", "-u", "app", "--security-opt", "seccomp=unconfined", "base",
                  "id")
    assert_one_error(proc, 125)
    assert "subordinate id range" in proc.err and "seccomp=unconfined" in proc.err


# What a non-root user may do under Docker too: create files and directories where it owns
# the directory, chmod them, chgrp one to a group it is a member of.
USER_STEP = (
    "FROM base\n"
    "RUN echo 'extra:x:2000:app' >> /etc/group\n"
    "USER app\n"
    "WORKDIR /home/app/project\n"
    "COPY --chown=app:app package.txt ./\n"
    "RUN id -u > uid && id -g > gid && mkdir -p build/out && touch build/out/a made && "
    "chmod 640 made && chgrp 2000 made && ln -s made link\n")


def test_step_as_a_user_makes_the_users_files(single, tmp_path):
    ctx = _context(tmp_path, USER_STEP, {"package.txt": "{}\n"})
    single.ok("build", "-t", "userstep:1", ctx)
    h = layer_headers(single, tmp_path, "userstep:1")
    project = "home/app/project/"
    assert h["home/app/project"] == (tarfile.DIRTYPE, 1000, 1000, 0o755)
    assert h[project + "package.txt"][1:3] == (1000, 1000)
    for path in ("uid", "gid", "build", "build/out", "build/out/a"):
        assert h[project + path][1:3] == (1000, 1000), path
    assert h[project + "made"] == (tarfile.REGTYPE, 1000, 2000, 0o640)
    # the parents copied up for the step keep their owners
    assert h["home"][1:3] == (0, 0)
    out = single.ok("run", "--rm", "userstep:1", "sh", "-c",
                    "cat uid gid; id -un; echo $HOME").out
    assert out == "1000\n1000\napp\n/home/app\n"


def test_a_user_step_may_do_what_docker_would_refuse(single, tmp_path):
    # Under Docker, app can neither create a file in root's 0755 /etc (EACCES) nor chown a
    # file to another user (EPERM). Here the step runs as uid 0 of the single-id namespace
    # with its capabilities (there is no other id to run it as) and chowns are faked, so
    # both succeed: permission checks are more lenient, as the README says. What it made is
    # still recorded with the owner it asked for, or else as app's.
    ctx = _context(tmp_path, "FROM base\nUSER app\nRUN touch /etc/by-app /x /y && "
                             "chown 1001:1002 /x && chown 0:0 /y && chown 1003 /y\n")
    single.ok("build", "-t", "lenient:1", ctx)
    h = layer_headers(single, tmp_path, "lenient:1")
    assert h["etc/by-app"][1:3] == (1000, 1000)
    assert h["x"][1:3] == (1001, 1002)
    # A 0 from a non-root user is what stat showed it (every file is uid 0 on disk), passed
    # back by chgrp and `chown USER` (busybox's passes the current gid): it keeps the id.
    # Docker would refuse a chown to root anyway.
    assert h["y"][1:3] == (1003, 1000)


@needs_subuid
def test_same_owners_and_modes_in_both_id_modes(single, subuid, tmp_path):
    ctx = _context(tmp_path, USER_STEP, {"package.txt": "{}\n"})
    single.ok("build", "-t", "same:1", ctx)
    subuid.ok("build", "-t", "same:1", ctx)
    a = layer_headers(single, tmp_path, "same:1")
    b = layer_headers(subuid, tmp_path, "same:1")
    project = "home/app/project/"
    # a symlink keeps no owner under the single-id mapping (no user xattrs on symlinks:
    # xattr(7)); Docker and a subuid build give it the user's
    assert a.pop(project + "link")[:3] == (tarfile.SYMTYPE, 0, 0)
    assert b.pop(project + "link")[:3] == (tarfile.SYMTYPE, 1000, 1000)
    assert a == b
