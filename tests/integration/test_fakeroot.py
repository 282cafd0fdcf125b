"""The seccomp fake root under a single-id mapping, end to end: chown, set*id and device mknod
succeed as no-ops inside, change nothing outside, and fail again with seccomp=unconfined."""

import os

import pytest

from conftest import Cli, needs_subuid, needs_userns

pytestmark = needs_userns


def status_of(text):
    return dict((k.strip(), v.strip()) for k, _, v in
                (line.partition(":") for line in text.splitlines()))


HOST = status_of(open("/proc/self/status").read())
HOST_FILTERS = int(HOST.get("Seccomp_filters", "0"))


@pytest.fixture(scope="module")
def single(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("data")), env={"RBX_USERNS": "single"})
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return cli


def test_filter_is_there_at_the_first_instruction(single):
    # cat is the command itself: the filter was installed before its execve
    status = status_of(single.ok("run", "--rm", "base", "cat", "/proc/self/status").out)
    assert status["Seccomp"] == "2"
    # the fake root and Docker's default profile on top of it (test_security.py)
    assert int(status["Seccomp_filters"]) == HOST_FILTERS + 2
    assert status["NoNewPrivs"] == "1"


def test_faked_chown_succeeds_and_changes_nothing_on_the_host(single, tmp_path):
    target = tmp_path / "f"
    target.write_text("x")
    vol = "%s:/data" % tmp_path
    proc = single("run", "--rm", "-v", vol, "base", "sh", "-c",
                  "chown 1000:1000 /data/f && chgrp 1000 /data/f && chown -h 1000 /data/f "
                  "&& touch /tmp/g && chown 1000:1000 /tmp/g && echo done")
    assert (proc.returncode, proc.out) == (0, "done\n"), proc.err
    st = os.stat(target)
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    refused = single("run", "--rm", "-v", vol, "--security-opt", "seccomp=unconfined", "base",
                     "chown", "1000:1000", "/data/f")
    assert refused.returncode != 0
    assert "Invalid argument" in refused.err or "not permitted" in refused.err


def test_set_ids_and_groups_are_faked(single):
    # busybox su: setgroups, setgid, setuid to the image's user "app" (uid 1000, unmapped)
    switch = ("base", "su", "-s", "/bin/sh", "app", "-c", "echo switched")
    assert single.ok("run", "--rm", *switch).out == "switched\n"
    refused = single("run", "--rm", "--security-opt", "seccomp=unconfined", *switch)
    assert refused.returncode != 0 and "switched" not in refused.out


def test_device_mknod_is_faked_without_a_device(single):
    out = single.ok("run", "--rm", "base", "sh", "-c",
                    "mknod /tmp/dev c 1 3 && mknod /tmp/blk b 7 0 && echo made; "
                    "test -e /tmp/dev || echo no-dev; test -e /tmp/blk || echo no-blk; "
                    "mknod /tmp/fifo p && test -p /tmp/fifo && echo fifo").out
    assert out.split() == ["made", "no-dev", "no-blk", "fifo"]
    refused = single("run", "--rm", "--security-opt", "seccomp=unconfined", "base",
                     "mknod", "/tmp/dev", "c", "1", "3")
    assert refused.returncode != 0


def test_unconfined_has_no_filter_of_ours(single):
    status = status_of(single.ok("run", "--rm", "--security-opt", "seccomp:unconfined",
                                 "--security-opt", "no-new-privileges", "base", "cat",
                                 "/proc/self/status").out)
    assert int(status["Seccomp_filters"]) == HOST_FILTERS


def test_security_opt_and_userns_refuse_what_they_do_not_know(single):
    for args in (("--security-opt", "apparmor=x"), ("--security-opt", "seccomp=x.json"),
                 ("--userns", "host")):
        proc = single("run", "--rm", *args, "base", "true")
        assert proc.returncode == 125
        assert proc.err.count("error:") == 1 and "Traceback" not in proc.err


def test_exec_gets_the_containers_filter(single):
    cid = single.ok("run", "-d", "base", "sleep", "60").out.strip()
    try:
        status = status_of(single.ok("exec", cid, "cat", "/proc/self/status").out)
        assert status["Seccomp"] == "2"
        assert int(status["Seccomp_filters"]) == HOST_FILTERS + 2
        assert single.ok("exec", cid, "sh", "-c", "touch /f && chown 1000 /f && echo ok").out \
            == "ok\n"
    finally:
        single("rm", "-f", cid)


def test_build_run_step_gets_the_filter(single, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM base\n"
        "RUN touch /owned && chown 1000:1000 /owned && su -s /bin/sh app -c true && "
        "grep -q '^Seccomp:.*2' /proc/self/status\n")
    proc = single("build", "-q", str(tmp_path))
    assert proc.returncode == 0, proc.err


def test_apt_is_told_to_stay_root_for_the_step_alone(single, tmp_path):
    """apt's privilege drop checks getuid() and that it cannot become root again, which the
    faked calls contradict: apt is told to skip the drop, in a file that never reaches the
    image."""
    (tmp_path / "Dockerfile").write_text(
        "FROM base\n"
        "RUN mkdir -p /etc/apt/apt.conf.d\n"
        "RUN cat /etc/apt/apt.conf.d/00rootless-box-sandbox > /seen\n")
    single.ok("build", "-t", "aptish:1", str(tmp_path))
    assert single.ok("run", "--rm", "aptish:1", "cat", "/seen").out == \
        'Debug::NoDropPrivs "true";\n'
    listing = single.ok("run", "--rm", "aptish:1", "ls", "-a", "/etc/apt/apt.conf.d").out
    assert "00rootless-box-sandbox" not in listing
    # an image without apt gets nothing
    (tmp_path / "Dockerfile").write_text(
        "FROM base\nRUN test ! -e /etc/apt/apt.conf.d/00rootless-box-sandbox\n")
    single.ok("build", "-q", str(tmp_path))


@needs_subuid
def test_subuid_mapping_has_no_fake_root(single):
    # the same store's user asks for a subuid mapping: no fake root, real ids instead; the
    # default profile alone
    env = {"RBX_USERNS": "auto"}
    status = status_of(single.ok("run", "--rm", "--userns=subuid", "base", "cat",
                                 "/proc/self/status", env=env).out)
    assert int(status["Seccomp_filters"]) == HOST_FILTERS + 1


def test_userns_single_option_chooses_the_filter(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("data")))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    status = status_of(cli.ok("run", "--rm", "--userns=single", "base", "cat",
                              "/proc/self/status").out)
    assert int(status["Seccomp_filters"]) == HOST_FILTERS + 2  # fake root + profile


@needs_subuid
def test_created_single_container_starts_under_its_mapping(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("data")))  # default: the user's subuid range
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    cid = cli.ok("create", "--userns=single", "base", "cat", "/proc/self/status").out.strip()
    try:
        cli.ok("start", "-a", cid)
        status = status_of(cli.ok("logs", cid).out)
        assert int(status["Seccomp_filters"]) == HOST_FILTERS + 2  # fake root + profile
        assert "single" in cli.ok("inspect", "-f", "{{.HostConfig.UsernsMode}}", cid).out
    finally:
        cli("rm", "-f", cid)


def test_info_says_which_mode_and_what_it_cannot_do(single):
    text = single.ok("info").out
    mode = [line for line in text.splitlines() if line.startswith("build_and_run_mode:")][0]
    assert "fake root" in mode and "getuid() after setuid() still says 0" in mode
    if __import__("conftest").has_subuid():
        text = single.ok("info", env={"RBX_USERNS": "auto"}).out
        assert "build_and_run_mode:     real ids" in text


# -- the chown supervisor: the owner a chown asked for is recorded, not lost ------------------

def _layer_owners(cli, tmp_path, name, names):
    import io
    import tarfile
    out = tmp_path / "export.tar"
    cli.ok("export", "-o", str(out), name)
    with tarfile.open(fileobj=io.BytesIO(out.read_bytes())) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    return {n: (members[n].uid, members[n].gid) for n in names if n in members}


def _xattr(path):
    try:
        return os.getxattr(path, "user.rootlesscontainers", follow_symlinks=False)
    except OSError:
        return None


def test_foreground_chown_is_recorded_in_the_layer(single, tmp_path):
    name = "chowner-fg"
    single.ok("run", "--name", name, "base", "sh", "-c",
              "touch /f /g /k && mkdir -p /d/sub && touch /d/sub/h && chown 1000:1000 /f && "
              "chown 1001:1002 /g && cd /d && chown 1003:1004 sub/h sub && "
              "ln -s f /l && chown -h 1005 /l && chown 7:8 /k && chown 0:0 /k && echo ok")
    try:
        owners = _layer_owners(single, tmp_path, name, ["f", "g", "d/sub", "d/sub/h", "l", "k"])
        assert owners == {"f": (1000, 1000), "g": (1001, 1002), "d/sub": (1003, 1004),
                          "d/sub/h": (1003, 1004), "l": (0, 0), "k": (0, 0)}
        # commit keeps them too
        single.ok("commit", name, "chowned:1")
        out = single.ok("run", "--rm", "chowned:1", "sh", "-c", "echo").out
        assert out == "\n"
        owners = _layer_owners(single, tmp_path, single.ok("create", "chowned:1").out.strip(),
                               ["f", "g"])
        assert owners == {"f": (1000, 1000), "g": (1001, 1002)}
    finally:
        single("rm", "-f", name)


CHOWNF_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include <stdlib.h>
/* chownf f|e|n|d PATH UID GID [DIR]: fchown on PATH opened; fchownat(fd, "", AT_EMPTY_PATH);
   fchownat(AT_FDCWD, PATH, AT_SYMLINK_NOFOLLOW); fchownat(open(DIR), PATH, 0) */
int main(int c, char **v) {
  if (c < 5) return 2;
  int uid = atoi(v[3]), gid = atoi(v[4]), fd;
  switch (v[1][0]) {
  case 'f': fd = open(v[2], O_RDONLY); return fd < 0 || fchown(fd, uid, gid) != 0;
  case 'e': fd = open(v[2], O_RDONLY); return fd < 0 || fchownat(fd, "", uid, gid, AT_EMPTY_PATH);
  case 'n': return fchownat(AT_FDCWD, v[2], uid, gid, AT_SYMLINK_NOFOLLOW) != 0;
  case 'd': if (c < 6) return 2; fd = open(v[5], O_RDONLY | O_DIRECTORY);
            return fd < 0 || fchownat(fd, v[2], uid, gid, 0) != 0;
  }
  return 2;
}
"""


@pytest.fixture(scope="module")
def chownf(single, rootfs_tar, tmp_path_factory):
    """The base image plus a static helper that calls fchown and fchownat (busybox's applets
    use chown and lchown only, as strace shows)."""
    import shutil
    import subprocess
    from test_images import rootfs_plus
    work = tmp_path_factory.mktemp("chownf")
    (work / "chownf.c").write_text(CHOWNF_C)
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc or subprocess.run([cc, "-static", "-O", "-o", str(work / "chownf"),
                                 str(work / "chownf.c")], capture_output=True).returncode:
        pytest.skip("no C compiler with a static libc to build the fchown helper")
    tar = work / "rootfs.tar"
    tar.write_bytes(rootfs_plus(rootfs_tar, [
        ({"name": "usr/bin/chownf", "mode": 0o755}, (work / "chownf").read_bytes())]))
    single.ok("import", "-c", 'CMD ["sh"]', str(tar), "chownf:latest")
    return "chownf"


def test_fchown_and_fchownat_are_recorded(single, chownf, tmp_path):
    name = "chowner-f"
    single.ok("run", "--name", name, chownf, "sh", "-c",
              "set -e; touch /a /b /m /ro && mkdir -p /d/sub && touch /d/sub/c /d/sub/n && "
              "chownf f /a 1010 1011 && chownf e /b 1012 1013 && "
              "chownf f /m 1014 -1 && chownf f /m -1 1015 && "
              "chownf d sub/c 1016 1017 /d && cd /d && chownf n sub/n 1018 1019 && "
              "chownf n ../../d/sub 1020 1021 && chmod 444 /ro && chownf f /ro 1022 1023 && "
              "chownf f /dev/null 1 1 && echo ok")
    try:
        owners = _layer_owners(single, tmp_path, name,
                               ["a", "b", "m", "d/sub/c", "d/sub/n", "d/sub", "ro"])
        assert owners == {"a": (1010, 1011), "b": (1012, 1013), "m": (1014, 1015),
                          "d/sub/c": (1016, 1017), "d/sub/n": (1018, 1019),
                          "d/sub": (1020, 1021), "ro": (1022, 1023)}
    finally:
        single("rm", "-f", name)


def test_hostile_paths_record_nothing_outside_the_root(single, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("host file")
    before = os.stat(victim)
    name = "chowner-hostile"
    # absolute and relative symlinks that point out of the root, .. past the root, and the
    # host path itself: all resolve inside the container's root
    single.ok("run", "--name", name, "base", "sh", "-c",
              "ln -s %s /x && ln -s ../../../../../..%s /y && chown 1000 /x /y; "
              "chown 1000 ../../../..%s; cd /tmp && chown 1000 ../../..%s; "
              "chown -h 1000 /x; echo ok" % (victim, victim, victim, victim))
    try:
        assert _xattr(str(victim)) is None
        st = os.stat(victim)
        assert (st.st_uid, st.st_gid, st.st_mode, st.st_mtime_ns) == \
            (before.st_uid, before.st_gid, before.st_mode, before.st_mtime_ns)
    finally:
        single("rm", "-f", name)


def test_detached_containers_chown_is_recorded(single, tmp_path):
    cid = single.ok("run", "-d", "base", "sh", "-c",
                    "exec >/dev/null 2>&1; touch /f && chown 1000:1001 /f && sleep 1 && "
                    "touch /g && chown 1002:1003 /g").out.strip()
    try:
        assert single.ok("wait", cid).out.strip() == "0"
        owners = _layer_owners(single, tmp_path, cid, ["f", "g"])
        assert owners == {"f": (1000, 1001), "g": (1002, 1003)}
    finally:
        single("rm", "-f", cid)


def test_exec_chown_is_recorded(single, tmp_path):
    cid = single.ok("run", "-d", "base", "sleep", "60").out.strip()
    try:
        single.ok("exec", cid, "sh", "-c", "touch /e && chown 1000:1000 /e")
        single.ok("exec", "-t", cid, "sh", "-c", "touch /t && chown 1001:1001 /t")
        owners = _layer_owners(single, tmp_path, cid, ["e", "t"])
        assert owners == {"e": (1000, 1000), "t": (1001, 1001)}
    finally:
        single("rm", "-f", cid)


def test_tty_run_chown_is_recorded(single, tmp_path):
    name = "chowner-tty"
    single.ok("run", "-t", "--name", name, "base", "sh", "-c", "touch /f && chown 1000 /f")
    try:
        assert _layer_owners(single, tmp_path, name, ["f"]) == {"f": (1000, 0)}
    finally:
        single("rm", "-f", name)


def test_build_run_step_chown_reaches_the_saved_layer(single, tmp_path):
    import io
    import json
    import tarfile
    (tmp_path / "Dockerfile").write_text(
        "FROM base\nRUN touch /owned && chown 1000:1000 /owned\n")
    single.ok("build", "-t", "chownbuild:1", str(tmp_path))
    out = tmp_path / "save.tar"
    single.ok("save", "-o", str(out), "chownbuild:1")
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        last = tar.extractfile(manifest[0]["Layers"][-1]).read()
    with tarfile.open(fileobj=io.BytesIO(last)) as layer:
        member = layer.getmember("owned")
    assert (member.uid, member.gid) == (1000, 1000)
