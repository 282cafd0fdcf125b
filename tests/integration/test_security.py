"""Issue 16's security flags end to end, as the unprivileged user runs them: capabilities
(--cap-add, --cap-drop, --privileged) seen in /proc/self/status and in inspect, Docker's default
seccomp profile and --security-opt, and the bad values refused with one line."""

import json
import os

from conftest import assert_one_error, inspect1, needs_userns

pytestmark = needs_userns

DOCKER_DEFAULT_CAPS = 0x00000000A80425FB
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
