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
    assert int(status["Seccomp_filters"]) == HOST_FILTERS + 1
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
    for args in (("--security-opt", "apparmor=unconfined"), ("--security-opt", "seccomp=x.json"),
                 ("--userns", "host")):
        proc = single("run", "--rm", *args, "base", "true")
        assert proc.returncode == 125
        assert proc.err.count("error:") == 1 and "Traceback" not in proc.err


def test_exec_gets_the_containers_filter(single):
    cid = single.ok("run", "-d", "base", "sleep", "60").out.strip()
    try:
        status = status_of(single.ok("exec", cid, "cat", "/proc/self/status").out)
        assert status["Seccomp"] == "2"
        assert int(status["Seccomp_filters"]) == HOST_FILTERS + 1
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
    """apt's sandbox drops to _apt and then checks it cannot become root again, which the
    faked setuid lets it: apt is told to stay root, in a file that never reaches the image."""
    (tmp_path / "Dockerfile").write_text(
        "FROM base\n"
        "RUN mkdir -p /etc/apt/apt.conf.d\n"
        "RUN cat /etc/apt/apt.conf.d/00rootless-box-sandbox > /seen\n")
    single.ok("build", "-t", "aptish:1", str(tmp_path))
    assert single.ok("run", "--rm", "aptish:1", "cat", "/seen").out == \
        'APT::Sandbox::User "root";\n'
    listing = single.ok("run", "--rm", "aptish:1", "ls", "-a", "/etc/apt/apt.conf.d").out
    assert "00rootless-box-sandbox" not in listing
    # an image without apt gets nothing
    (tmp_path / "Dockerfile").write_text(
        "FROM base\nRUN test ! -e /etc/apt/apt.conf.d/00rootless-box-sandbox\n")
    single.ok("build", "-q", str(tmp_path))


@needs_subuid
def test_subuid_mapping_has_no_filter(single):
    # the same store's user asks for a subuid mapping: no fake root, real ids instead
    env = {"RBX_USERNS": "auto"}
    status = status_of(single.ok("run", "--rm", "--userns=subuid", "base", "cat",
                                 "/proc/self/status", env=env).out)
    assert status["Seccomp"] == HOST["Seccomp"]
    assert int(status["Seccomp_filters"]) == HOST_FILTERS


def test_userns_single_option_chooses_the_filter(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("data")))
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    status = status_of(cli.ok("run", "--rm", "--userns=single", "base", "cat",
                              "/proc/self/status").out)
    assert status["Seccomp"] == "2"


@needs_subuid
def test_created_single_container_starts_under_its_mapping(tmp_path_factory, rootfs_tar):
    cli = Cli(str(tmp_path_factory.mktemp("data")))  # default: the user's subuid range
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    cid = cli.ok("create", "--userns=single", "base", "cat", "/proc/self/status").out.strip()
    try:
        cli.ok("start", "-a", cid)
        status = status_of(cli.ok("logs", cid).out)
        assert status["Seccomp"] == "2"
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
