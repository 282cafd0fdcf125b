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


# bind: asm/unistd_64.h 49, asm-generic/unistd.h 200
@pytest.mark.parametrize("machine,arch,bind,others", (
    ("x86_64", sc.AUDIT_ARCH_X86_64, 49, X86_64_OTHERS + (42, 43, 50, 105)),
    ("aarch64", sc.AUDIT_ARCH_AARCH64, 200, AARCH64_OTHERS + (201, 202, 203, 146))))
def test_the_bypass_filter_sends_bind_alone_to_its_supervisor(machine, arch, bind, others):
    prog = sc.bind_program(machine)
    for length in (16, 28, 110, 128):  # sockaddr_in, _in6, a unix path, sockaddr_storage
        assert run_bpf(prog, seccomp_data(bind, arch, (3, 0x7FFF0000, length))) == \
            sc.SECCOMP_RET_USER_NOTIF, length
    for length in (0, 12, 15, 129, 1 << 31):  # netlink's 12: no address the bypass takes
        assert run_bpf(prog, seccomp_data(bind, arch, (3, 0x7FFF0000, length))) == ALLOW
    for nr in others:  # connect, accept, listen, setuid ... run as they are
        assert run_bpf(prog, seccomp_data(nr, arch)) == ALLOW, nr
    # another arch word numbers its calls otherwise: nothing of it is stopped
    assert run_bpf(prog, seccomp_data(bind, AUDIT_ARCH_I386)) == ALLOW
    assert run_bpf(prog, seccomp_data(bind, AUDIT_ARCH_ARM)) == ALLOW
