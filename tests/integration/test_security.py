"""Issue 16's security flags end to end, as the unprivileged user runs them: capabilities
(--cap-add, --cap-drop, --privileged) seen in /proc/self/status and in inspect, Docker's default
seccomp profile and --security-opt, and the bad values refused with one line."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import Cli, assert_one_error, inspect1, needs_userns

pytestmark = needs_userns

DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
HOST_FILTERS = int(dict(line.split(":", 1) for line in open("/proc/self/status")
                        if ":" in line).get("Seccomp_filters", "0").strip() or 0)
# under the single-id mapping (RBX_USERNS=single) the fake root is one filter more
FAKE_ROOT = 1 if os.environ.get("RBX_USERNS") == "single" else 0
CAP = {"CHOWN": 0, "NET_ADMIN": 12, "SYS_PTRACE": 19, "SYS_ADMIN": 21}


def status(cli, image, *flags, cmd="cat /proc/self/status"):
    out = cli.ok("run", "--rm", *flags, image, "sh", "-c", cmd).out
    return dict((k.strip(), v.strip()) for k, _, v in
                (line.partition(":") for line in out.splitlines()))


def all_caps():
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    return (1 << (last + 1)) - 1


# -- capabilities -----------------------------------------------------------------------------

def test_default_caps_are_dockers_fourteen(cli, image):
    fields = status(cli, image)
    assert int(fields["CapEff"], 16) == DOCKER_DEFAULT_CAPS
    assert int(fields["CapBnd"], 16) == DOCKER_DEFAULT_CAPS


def test_cap_add_and_drop_take_dockers_spellings(cli, image):
    fields = status(cli, image, "--cap-add", "sys_ptrace", "--cap-add", "CAP_NET_ADMIN",
                    "--cap-drop", "chown")
    want = DOCKER_DEFAULT_CAPS | 1 << CAP["SYS_PTRACE"] | 1 << CAP["NET_ADMIN"]
    want &= ~(1 << CAP["CHOWN"])
    assert int(fields["CapEff"], 16) == want
    assert int(fields["CapBnd"], 16) == want


def test_drop_all_and_add_one(cli, image):
    fields = status(cli, image, "--cap-drop", "ALL", "--cap-add", "SYS_PTRACE")
    assert int(fields["CapEff"], 16) == 1 << CAP["SYS_PTRACE"]
    fields = status(cli, image, "--cap-drop", "all")
    assert int(fields["CapEff"], 16) == 0
    # without CAP_CHOWN root in the container cannot give a file away
    out = cli("run", "--rm", "--cap-drop", "CHOWN", image, "sh", "-c",
              "touch /f && chown 1:1 /f && echo changed")
    assert "changed" not in out.out


def test_add_all_minus_one(cli, image):
    fields = status(cli, image, "--cap-add", "ALL", "--cap-drop", "SYS_ADMIN")
    assert int(fields["CapEff"], 16) == all_caps() & ~(1 << CAP["SYS_ADMIN"])


def test_inspect_shows_the_flags(cli, image):
    cid = cli.ok("create", "--cap-add", "sys_ptrace", "--cap-drop", "ALL", image,
                 "true").out.strip()
    try:
        host = inspect1(cli, cid)["HostConfig"]
        assert host["CapAdd"] == ["CAP_SYS_PTRACE"] and host["CapDrop"] == ["ALL"]
        assert host["Privileged"] is False
    finally:
        cli("rm", "-f", cid)
    cid = cli.ok("create", "--privileged", image, "true").out.strip()
    try:
        host = inspect1(cli, cid)["HostConfig"]
        assert host["Privileged"] is True and host["CapAdd"] is None
    finally:
        cli("rm", "-f", cid)


def test_unknown_capability_is_one_error(cli, image):
    for flag in ("--cap-add", "--cap-drop"):
        proc = cli("run", "--rm", flag, "NOPE", image, "true")
        assert_one_error(proc, 125)
        assert "unknown capability" in proc.err and "CAP_NOPE" in proc.err


def test_privileged_has_every_cap_no_masks_and_the_users_devices(cli, image):
    fields = status(cli, image, "--privileged")
    assert int(fields["CapEff"], 16) == all_caps()
    masked = [p for p in ("/proc/timer_list", "/proc/sched_debug", "/proc/keys")
              if os.path.exists(p) and os.access(p, os.R_OK) and open(p).read(1)]
    if masked:
        out = cli.ok("run", "--rm", "--privileged", image, "wc", "-c", masked[0]).out
        assert int(out.split()[0]) > 0  # masked (empty) without --privileged
    # /proc/sys is writable as far as the user namespace allows: no read-only bind on it
    out = cli.ok("run", "--rm", "--privileged", image, "sh", "-c",
                 "grep ' /proc/sys ' /proc/self/mounts || echo none").out
    assert out.strip() == "none"
    mine = sorted("/dev/" + n for n in os.listdir("/dev")
                  if n not in ("null", "zero", "full", "random", "urandom", "tty", "ptmx",
                               "console")
                  and os.path.exists("/dev/" + n) and not os.path.isdir("/dev/" + n)
                  and not os.path.islink("/dev/" + n)
                  and (os.access("/dev/" + n, os.R_OK) or os.access("/dev/" + n, os.W_OK)))
    theirs = cli.ok("run", "--rm", "--privileged", image, "ls", "/dev").out.split()
    for path in mine:
        assert os.path.basename(path) in theirs
    plain = cli.ok("run", "--rm", image, "ls", "/dev").out.split()
    assert not [p for p in mine if os.path.basename(p) in plain]


# -- seccomp ----------------------------------------------------------------------------------

PROBE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
/* one syscall named on the command line; prints ok or the errno's number */
int main(int argc, char **argv) {
    long r = -1;
    if (!strcmp(argv[1], "keyctl"))  /* KEYCTL_GET_KEYRING_ID of the session keyring */
        r = syscall(SYS_keyctl, 0, -3, 1);
    else if (!strcmp(argv[1], "add_key"))
        r = syscall(SYS_add_key, "user", "rbx", "x", 1, -2);
    else if (!strcmp(argv[1], "personality"))
        r = syscall(SYS_personality, strtoul(argv[2], 0, 0));
    else if (!strcmp(argv[1], "vsock"))
        r = socket(40, SOCK_STREAM, 0);
    if (r < 0) printf("errno %d\n", errno); else printf("ok\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler to build the syscall probe")
    top = tmp_path_factory.mktemp("probe")
    (top / "probe.c").write_text(PROBE_C)
    built = subprocess.run([gcc, "-static", "-O", "-o", str(top / "probe"), str(top / "probe.c")],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip("cannot build a static probe: %s" % built.stderr[-200:])
    return "%s:/probe:ro" % (top / "probe")


def probe_all(cli, image, probe, *flags):
    cmd = ("for c in keyctl add_key 'personality 0x0040000' 'personality 8' vsock; do "
           "/probe $c; done; unshare -U true 2>/dev/null && echo ok || echo errno 1")
    return cli.ok("run", "--rm", "-v", probe, *flags, image, "sh", "-c", cmd).out.splitlines()


def test_default_profile_denies_with_eperm(cli, image, probe):
    # keyctl, add_key, a personality it does not list, AF_VSOCK, a new user namespace
    assert probe_all(cli, image, probe) == ["errno 1", "errno 1", "errno 1", "ok", "errno 1",
                                            "errno 1"]
    fields = status(cli, image)
    assert fields["Seccomp"] == "2"
    assert int(fields["Seccomp_filters"]) == HOST_FILTERS + 1 + FAKE_ROOT


def test_unconfined_and_privileged_have_no_profile(cli, image, probe):
    for flags in (("--security-opt", "seccomp=unconfined"), ("--privileged",)):
        got = probe_all(cli, image, probe, *flags)
        assert got[0] == "ok" and got[1] == "ok" and got[2] == "ok", (flags, got)
        assert got[5] == "ok", flags  # unshare(CLONE_NEWUSER)
        fields = status(cli, image, *flags)
        # unconfined: no filter at all; --privileged keeps the fake root (emulation, not
        # confinement) where the mapping has one
        fake = FAKE_ROOT if flags == ("--privileged",) else 0
        assert int(fields["Seccomp_filters"]) == HOST_FILTERS + fake


def test_sys_admin_allows_what_its_rules_allow(cli, image, probe):
    got = probe_all(cli, image, probe, "--cap-add", "SYS_ADMIN")
    assert got[5] == "ok" and got[0] == "errno 1"


def test_exec_gets_the_profile(cli, image, probe):
    cid = cli.ok("run", "-d", "-v", probe, image, "sleep", "60").out.strip()
    try:
        assert cli.ok("exec", cid, "/probe", "keyctl").out == "errno 1\n"
    finally:
        cli("rm", "-f", cid)


def test_a_profile_file_in_dockers_format(cli, image, tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    proc = cli("run", "--rm", "--security-opt", "seccomp=%s" % profile, image, "sh", "-c",
               "mkdir /made && echo made; touch /t && echo touched")
    assert proc.out == "touched\n" and "Permission denied" in proc.err


def test_a_profile_that_is_not_json_is_one_error(cli, image, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    before = cli.ok("ps", "-aq").out
    for opt in ("seccomp=%s" % bad, "seccomp=%s" % (tmp_path / "missing.json"),
                "apparmor=some-profile"):
        proc = cli("run", "--rm", "--security-opt", opt, image, "true")
        assert_one_error(proc, 125)
    assert cli.ok("ps", "-aq").out == before


def test_label_and_apparmor_unconfined_are_accepted_with_a_note(cli, image):
    proc = cli.ok("run", "--rm", "--security-opt", "label=disable", "--security-opt",
                  "apparmor=unconfined", "--security-opt", "no-new-privileges", image,
                  "echo", "hi")
    assert proc.out == "hi\n"
    assert proc.err.count("rootless-box: warning:") == 2 and "no effect" in proc.err


def test_single_mapping_stacks_the_fake_root_and_the_profile(tmp_path_factory, rootfs_tar,
                                                             probe):
    single = Cli(str(tmp_path_factory.mktemp("single")), env={"RBX_USERNS": "single"})
    single.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    out = single.ok("run", "--rm", "-v", probe, "base", "sh", "-c",
                    "grep Seccomp_filters /proc/self/status; /probe keyctl; "
                    "touch /f && chown 1000 /f && echo chowned").out.split("\n")
    assert int(out[0].split()[1]) == HOST_FILTERS + 2
    assert out[1:3] == ["errno 1", "chowned"]


def test_published_ports_stack_the_bind_bypass_and_the_profile(cli, image, probe):
    out = cli.ok("run", "--rm", "-p", "80", "-v", probe, image, "sh", "-c",
                 "grep Seccomp_filters /proc/self/status; /probe keyctl").out.split("\n")
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    if release >= (5, 14) and os.environ.get("RBX_PORT_BYPASS", "1") != "0":
        assert int(out[0].split()[1]) == HOST_FILTERS + 2  # the bypass's, then the profile
    assert out[1] == "errno 1"
