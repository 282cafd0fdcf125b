"""The fake-root seccomp program, run by a small classic-BPF interpreter over seccomp_data
records (nr, arch, args) for both architectures: which calls are faked, which pass."""

import struct

import pytest

from rootless_box import errors
from rootless_box.userns import seccomp as sc

ALLOW, FAKE = sc.SECCOMP_RET_ALLOW, sc.SECCOMP_RET_ERRNO | 0
ENOSYS = sc.SECCOMP_RET_ERRNO | 38
AUDIT_ARCH_I386 = 3 | 0x40000000
AUDIT_ARCH_ARM = 40 | 0x40000000


def seccomp_data(nr, arch, args=()):
    args = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, 0x401000, *args)


def run_bpf(prog, data):
    """Classic BPF as seccomp accepts it: A, absolute word loads, ALU AND, JEQ/JGE on k,
    RET k. Anything else in the program is a test failure."""
    acc, pc = 0, 0
    for _step in range(4096):
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:  # BPF_LD|BPF_W|BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:  # BPF_ALU|BPF_AND|BPF_K
            acc &= k
        elif code == 0x15:  # BPF_JMP|BPF_JEQ|BPF_K
            pc += jt if acc == k else jf
        elif code == 0x35:  # BPF_JMP|BPF_JGE|BPF_K
            pc += jt if acc >= k else jf
        elif code == 0x06:  # BPF_RET|BPF_K
            return k
        else:
            raise AssertionError("unexpected BPF opcode %#x" % code)
        assert 0 <= pc < len(prog)
    raise AssertionError("no verdict")


# numbers from the kernel's tables (asm/unistd_64.h, asm-generic/unistd.h)
X86_64 = {"setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114, "setresuid": 117,
          "setresgid": 119, "setfsuid": 122, "setfsgid": 123, "setgroups": 116, "capset": 126}
X86_64_CHOWN = {"chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260}
AARCH64 = {"setuid": 146, "setgid": 144, "setreuid": 145, "setregid": 143, "setresuid": 147,
           "setresgid": 149, "setfsuid": 151, "setfsgid": 152, "setgroups": 159, "capset": 91}
AARCH64_CHOWN = {"fchown": 55, "fchownat": 54}
# calls that must pass untouched: read, write, openat, execve, getuid, kill, ...
X86_64_OTHERS = (0, 1, 2, 59, 102, 62, 257, 90, 91, 268)
AARCH64_OTHERS = (63, 64, 56, 221, 174, 129, 52, 53)

CASES = (("x86_64", sc.AUDIT_ARCH_X86_64, X86_64, X86_64_CHOWN, X86_64_OTHERS),
         ("aarch64", sc.AUDIT_ARCH_AARCH64, AARCH64, AARCH64_CHOWN, AARCH64_OTHERS))


def test_arch_words():
    assert sc.AUDIT_ARCH_X86_64 == 0xC000003E
    assert sc.AUDIT_ARCH_AARCH64 == 0xC00000B7


@pytest.mark.parametrize("machine,arch,fake,chown,others", CASES)
def test_credential_calls_are_faked(machine, arch, fake, chown, others):
    prog = sc.program(machine)
    for name, nr in fake.items():
        assert run_bpf(prog, seccomp_data(nr, arch, [1000, 1000, 1000])) == FAKE, name
    for name, nr in chown.items():
        assert run_bpf(prog, seccomp_data(nr, arch, [3, 1000, 1000])) == FAKE, name
    for nr in others:
        assert run_bpf(prog, seccomp_data(nr, arch)) == ALLOW, nr


@pytest.mark.parametrize("machine,arch,fake,chown,others", CASES)
def test_chown_family_verdict_can_go_to_a_supervisor(machine, arch, fake, chown, others):
    prog = sc.program(machine, chown_action=sc.SECCOMP_RET_USER_NOTIF)
    for nr in chown.values():
        assert run_bpf(prog, seccomp_data(nr, arch)) == sc.SECCOMP_RET_USER_NOTIF
    for nr in fake.values():
        assert run_bpf(prog, seccomp_data(nr, arch)) == FAKE


# the get*id family (asm/unistd_64.h, asm-generic/unistd.h)
X86_64_GETID = {"getuid": 102, "getgid": 104, "geteuid": 107, "getegid": 108,
                "getgroups": 115, "getresuid": 118, "getresgid": 120}
AARCH64_GETID = {"getresuid": 148, "getresgid": 150, "getgroups": 158, "getuid": 174,
                 "geteuid": 175, "getgid": 176, "getegid": 177}


@pytest.mark.parametrize("machine,arch,getid,fake", (
    ("x86_64", sc.AUDIT_ARCH_X86_64, X86_64_GETID, X86_64),
    ("aarch64", sc.AUDIT_ARCH_AARCH64, AARCH64_GETID, AARCH64)))
def test_get_ids_go_to_the_supervisor_only_for_a_fake_user(machine, arch, getid, fake):
    assert sc.table(machine)["getid"] == getid
    plain = sc.program(machine, chown_action=sc.SECCOMP_RET_USER_NOTIF)
    faked = sc.program(machine, chown_action=sc.SECCOMP_RET_USER_NOTIF, fake_ids=True)
    for name, nr in getid.items():
        # root's own ids need no answer: they are the real ones
        assert run_bpf(plain, seccomp_data(nr, arch)) == ALLOW, name
        assert run_bpf(faked, seccomp_data(nr, arch)) == sc.SECCOMP_RET_USER_NOTIF, name
    for name, nr in fake.items():
        assert run_bpf(faked, seccomp_data(nr, arch)) == FAKE, name
    # the 32-bit ABI's numbers pass (its getuid there shows the real id, 0)
    compat = AUDIT_ARCH_I386 if machine == "x86_64" else AUDIT_ARCH_ARM
    assert run_bpf(faked, seccomp_data(24, compat)) == ALLOW


@pytest.mark.parametrize("machine,arch,calls", (
    ("x86_64", sc.AUDIT_ARCH_X86_64, ((133, 1), (259, 2))),
    ("aarch64", sc.AUDIT_ARCH_AARCH64, ((33, 2),))))
def test_only_device_mknod_is_faked(machine, arch, calls):
    prog = sc.program(machine)
    for nr, mode_index in calls:
        def verdict(mode):
            args = [0] * 6
            args[mode_index] = mode
            args[mode_index + 1] = (1 << 8) | 3  # dev 1:3
            return run_bpf(prog, seccomp_data(nr, arch, args))
        assert verdict(0o020666) == FAKE  # S_IFCHR
        assert verdict(0o060660) == FAKE  # S_IFBLK
        assert verdict(0o010644) == ALLOW  # fifo
        assert verdict(0o100644) == ALLOW  # regular file
        assert verdict(0o140755) == ALLOW  # socket
        # garbage above the 32-bit mode is not looked at (umode_t is 32 bits)
        assert verdict((0xFFFF << 32) | 0o010644) == ALLOW
    # aarch64 has no mknod: x86_64's number is rt_sigsuspend there, and passes
    if machine == "aarch64":
        assert run_bpf(prog, seccomp_data(133, arch, [0, 0o020666])) == ALLOW


def test_x32_calls_are_refused_on_x86_64():
    prog = sc.program("x86_64")
    arch = sc.AUDIT_ARCH_X86_64
    for nr in (92, 105, 0, 59):
        assert run_bpf(prog, seccomp_data(sc.X32_SYSCALL_BIT | nr, arch)) == ENOSYS
    assert run_bpf(prog, seccomp_data(0x3FFFFFFF, arch)) == ALLOW


def test_other_arch_words_pass_untouched():
    # the numbers mean other calls under another arch word: never faked
    for machine, foreign in (("x86_64", AUDIT_ARCH_I386), ("x86_64", sc.AUDIT_ARCH_AARCH64),
                             ("aarch64", AUDIT_ARCH_ARM), ("aarch64", sc.AUDIT_ARCH_X86_64)):
        prog = sc.program(machine)
        for nr in (92, 105, 146, 55, 213, 0x40000000 | 92):
            assert run_bpf(prog, seccomp_data(nr, foreign)) == ALLOW
    # each arch's setuid number means another call on the other (init_module,
    # sched_get_priority_max): no cross-talk between the tables
    assert run_bpf(sc.program("aarch64"), seccomp_data(105, sc.AUDIT_ARCH_AARCH64)) == ALLOW
    assert run_bpf(sc.program("x86_64"), seccomp_data(146, sc.AUDIT_ARCH_X86_64)) == ALLOW


def test_unknown_machine_is_a_clear_error():
    with pytest.raises(errors.SetupError) as info:
        sc.program("riscv64")
    assert "riscv64" in info.value.message and "seccomp" in info.value.message
    assert "unconfined" in info.value.hint


def test_packed_layout():
    prog = sc.program("x86_64")
    data = sc.pack(prog)
    assert len(data) == 8 * len(prog)
    assert struct.unpack_from("=HBBI", data, 0) == prog[0] == (0x20, 0, 0, 4)
    assert prog[-1][0] in (0x06, 0x15)


# asm/unistd_64.h and asm-generic/unistd.h: bind, connect, shutdown, listen, io_uring_setup; the
# 32-bit ABIs' (syscall_32.tbl, arm's syscall.tbl): connect, shutdown, io_uring_setup, socketcall
BYPASS = (("x86_64", sc.AUDIT_ARCH_X86_64, (49, 42, 48, 50, 425), X86_64_OTHERS + (43, 105),
           AUDIT_ARCH_I386, (362, 373, 425, 102), (361, 3, 4, 5)),
          ("aarch64", sc.AUDIT_ARCH_AARCH64, (200, 203, 210, 201, 425), AARCH64_OTHERS + (202,),
           AUDIT_ARCH_ARM, (283, 293, 425, None), (282, 3, 4, 5)))
NOTIF = sc.SECCOMP_RET_USER_NOTIF


@pytest.mark.parametrize("machine,arch,calls,others,compat,compat_calls,compat_others", BYPASS)
def test_the_bypass_filter(machine, arch, calls, others, compat, compat_calls, compat_others):
    bind, connect, shutdown, listen, io_uring = calls
    prog = sc.bypass_program(machine)

    def verdict(nr, args=(), word=arch):
        return run_bpf(prog, seccomp_data(nr, word, args))

    for length in (16, 28, 110, 128):  # sockaddr_in, _in6, a unix path, sockaddr_storage
        assert verdict(bind, (3, 0x7FFF0000, length)) == NOTIF, length
    for length in (0, 12, 15, 129, 1 << 31):  # netlink's 12: no address the bypass takes
        assert verdict(bind, (3, 0x7FFF0000, length)) == ALLOW
    # every connect, and shutdowns that can take a listening socket out of listening
    assert verdict(connect, (3, 0x7FFF0000, 16)) == NOTIF
    assert verdict(connect, (3, 0x7FFF0000, 0)) == NOTIF
    assert verdict(shutdown, (3, 0)) == NOTIF  # SHUT_RD
    assert verdict(shutdown, (3, 2)) == NOTIF  # SHUT_RDWR
    assert verdict(shutdown, (3, 1)) == ALLOW  # SHUT_WR: a half-close, nothing to a listener
    # every listen: a host socket's backlog stays SOMAXCONN
    assert verdict(listen, (3, 9)) == NOTIF
    assert verdict(io_uring) == sc.SECCOMP_RET_ERRNO | 1
    for nr in others:  # accept, setuid ... run as they are
        assert verdict(nr) == ALLOW, nr
    c_connect, c_shutdown, c_io_uring, socketcall = compat_calls
    assert verdict(c_connect, (3, 0x7FF0000, 16), compat) == NOTIF
    assert verdict(c_shutdown, (3, 0), compat) == NOTIF
    assert verdict(c_shutdown, (3, 1), compat) == ALLOW
    assert verdict(c_io_uring, (), compat) == sc.SECCOMP_RET_ERRNO | 1
    if socketcall is not None:
        assert verdict(socketcall, (3, 0x7FF0000), compat) == NOTIF  # SYS_CONNECT
        assert verdict(socketcall, (13, 0x7FF0000), compat) == NOTIF  # SYS_SHUTDOWN
        for call in (1, 2, 4, 5, 9, 11):  # socket, bind, listen, accept, send, sendto
            assert verdict(socketcall, (call, 0x7FF0000), compat) == ALLOW
    for nr in compat_others:  # its bind binds inside; read, write, open
        assert verdict(nr, (3, 0, 16), compat) == ALLOW
    # a third arch word does not run here; one that did is refused whole
    assert verdict(connect, (), 62) == sc.SECCOMP_RET_ERRNO | 38


def test_x32_calls_are_refused_by_the_bypass_filter():
    prog = sc.bypass_program("x86_64")
    for nr in (42, 49, 48, 0, 1):
        assert run_bpf(prog, seccomp_data(sc.X32_SYSCALL_BIT | nr, sc.AUDIT_ARCH_X86_64)) \
            == sc.SECCOMP_RET_ERRNO | 38


def test_fake_ids_travel_beside_the_listener():
    import socket
    from rootless_box.userns import notify
    a, b = socket.socketpair()
    try:
        notify.send_ids(a, (1000, 1001, [20, 30]))
        notify.send_ids(a, (0, 0, []))
        assert notify.receive_ids(b) == (1000, 1001, [20, 30])
        assert notify.receive_ids(b) is None  # root: nothing to fake
        a.sendall(b"\x01\x00")  # the sender died mid-way
        a.close()
        assert notify.receive_ids(b) is None
    finally:
        b.close()


def test_a_dropped_capability_is_not_faked():
    """--cap-drop CHOWN/SETUID/MKNOD: those calls fail as for root without the capability,
    instead of being faked; the others still are."""
    t = sc.TABLES["x86_64"]
    arch = sc.AUDIT_ARCH_X86_64
    caps = ["SETGID", "KILL"]
    prog = sc.program("x86_64", caps=caps)
    assert run_bpf(prog, seccomp_data(t["chown"]["chown"], arch, [0, 1000, 1000])) == ALLOW
    assert run_bpf(prog, seccomp_data(t["fake"]["setuid"], arch, [1000])) == ALLOW
    assert run_bpf(prog, seccomp_data(t["mknod"]["mknod"][0], arch, [0, 0o020000])) == ALLOW
    assert run_bpf(prog, seccomp_data(t["fake"]["setgid"], arch, [1000])) == FAKE
    assert run_bpf(prog, seccomp_data(t["fake"]["capset"], arch)) == FAKE
    full = sc.program("x86_64")
    assert run_bpf(full, seccomp_data(t["chown"]["chown"], arch, [0, 1000, 1000])) == FAKE


def test_the_compiled_default_profile_is_cached_by_its_digest(tmp_path, monkeypatch):
    """Compiled once; every later run reads the program back (the 2 ms budget on run), keyed
    by the profile's bytes and the bounding set."""
    from rootless_box.ops import seccomp as ops_seccomp
    from rootless_box.userns import caps, seccomp_profile
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    text = ops_seccomp.default_text()
    first = ops_seccomp.compiled(text, caps.DOCKER_DEFAULT)
    cached = list((tmp_path / "rootless-box" / "seccomp").iterdir())
    assert len(cached) == 1 and cached[0].name.endswith(".bpf")

    def no_compiling(*_args, **_kw):
        raise AssertionError("compiled again")
    monkeypatch.setattr(seccomp_profile, "compile_profile", no_compiling)
    assert ops_seccomp.compiled(text, caps.DOCKER_DEFAULT) == first
    with pytest.raises(AssertionError):  # another bounding set: another program
        ops_seccomp.compiled(text, list(caps.DOCKER_DEFAULT) + ["CAP_SYS_ADMIN"])
