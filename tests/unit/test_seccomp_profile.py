"""Docker's seccomp profile compiled to classic BPF (userns/seccomp_profile.py), run by a small
interpreter over seccomp_data records: the allow-list, the capability rules, the argument
filters on clone, personality and socket, runc's ENOSYS past the profile, the 32-bit ABI, and a
user's profile in Docker's format."""

import json
import struct

import pytest

from rootless_box import errors
from rootless_box.userns import seccomp as sc
from rootless_box.userns import seccomp_profile as sp
from rootless_box.userns import syscalls
from rootless_box.userns.caps import DOCKER_DEFAULT
from rootless_box.userns.seccomp_default import PROFILE

ALLOW = sc.SECCOMP_RET_ALLOW
EPERM = sc.SECCOMP_RET_ERRNO | 1
ENOSYS = sc.SECCOMP_RET_ERRNO | 38
X86_64, I386 = sc.AUDIT_ARCH_X86_64, sc.AUDIT_ARCH_I386
CLONE_NEWUSER, CLONE_THREAD = 0x10000000, 0x00010000


def run_bpf(prog, nr, arch=X86_64, args=()):
    args = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0x401000, *args)
    acc, pc = 0, 0
    for _step in range(len(prog) + 1):
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            acc &= k
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x35:
            pc += jt if acc >= k else jf
        elif code == 0x25:
            pc += jt if acc > k else jf
        elif code == 0x05:
            pc += k
        elif code == 0x06:
            return k
        else:
            raise AssertionError("unexpected BPF instruction %r" % (prog[pc - 1],))
    raise AssertionError("program ran past its end")


def default(caps=DOCKER_DEFAULT, machine="x86_64", kernel="6.1.0"):
    return sp.compile_profile(json.loads(PROFILE), caps, machine, kernel)


NR = syscalls.X86_64


def test_allow_list_and_default_errno():
    prog = default()
    for name in ("read", "openat", "execve", "clone", "setuid", "chown", "bind", "futex"):
        assert run_bpf(prog, NR[name]) == ALLOW, name
    for name in ("keyctl", "add_key", "request_key", "mount", "umount2", "unshare", "reboot",
                 "init_module", "kexec_load", "bpf", "io_uring_setup"):
        assert run_bpf(prog, NR[name]) == EPERM, name


def test_capability_rules_follow_the_bounding_set():
    plain, admin = default(), default(list(DOCKER_DEFAULT) + ["SYS_ADMIN"])
    assert run_bpf(plain, NR["unshare"]) == EPERM
    assert run_bpf(admin, NR["unshare"]) == ALLOW
    assert run_bpf(plain, NR["clone3"]) == ENOSYS  # glibc falls back to clone
    assert run_bpf(admin, NR["clone3"]) == ALLOW
    ptrace = default(list(DOCKER_DEFAULT) + ["SYS_PTRACE"])
    assert run_bpf(ptrace, NR["pidfd_getfd"]) == ALLOW
    assert run_bpf(plain, NR["pidfd_getfd"]) == EPERM
    # ptrace itself: allowed on kernels from 4.8 (its minKernel), refused before
    assert run_bpf(plain, NR["ptrace"]) == ALLOW
    assert run_bpf(default(kernel="4.4.0"), NR["ptrace"]) == EPERM


def test_clone_flags_need_sys_admin_for_namespaces():
    plain, admin = default(), default(list(DOCKER_DEFAULT) + ["SYS_ADMIN"])
    assert run_bpf(plain, NR["clone"], args=[CLONE_THREAD]) == ALLOW
    assert run_bpf(plain, NR["clone"], args=[CLONE_NEWUSER]) == EPERM
    assert run_bpf(plain, NR["clone"], args=[CLONE_NEWUSER | (1 << 40)]) == EPERM
    assert run_bpf(admin, NR["clone"], args=[CLONE_NEWUSER]) == ALLOW


def test_personality_and_socket_arguments():
    prog = default()
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run_bpf(prog, NR["personality"], args=[value]) == ALLOW, value
    for value in (0x0040000, 1, 0x1_0000_0000):
        assert run_bpf(prog, NR["personality"], args=[value]) == EPERM, value
    for family in (1, 2, 10, 16, 17, 39, 41, 45):
        assert run_bpf(prog, NR["socket"], args=[family]) == ALLOW, family
    for family in (38, 40):
        assert run_bpf(prog, NR["socket"], args=[family]) == EPERM, family


def test_past_the_profile_enosys_and_x32_and_other_arches():
    prog = default()
    assert run_bpf(prog, 1000) == ENOSYS
    assert run_bpf(prog, sc.X32_SYSCALL_BIT + 1) == ENOSYS
    assert run_bpf(prog, 1, arch=sc.AUDIT_ARCH_ARM) == ENOSYS


def test_i386_has_its_own_numbers():
    prog = default()
    nr32 = syscalls.I386
    assert run_bpf(prog, nr32["read"], arch=I386) == ALLOW
    assert run_bpf(prog, nr32["keyctl"], arch=I386) == EPERM
    assert run_bpf(prog, nr32["socketcall"], arch=I386) == ALLOW
    assert nr32["keyctl"] != NR["keyctl"]


def test_aarch64_compiles_with_its_table():
    prog = default(machine="aarch64")
    nr = syscalls.AARCH64
    arch = sc.AUDIT_ARCH_AARCH64
    assert run_bpf(prog, nr["openat"], arch=arch) == ALLOW
    assert run_bpf(prog, nr["keyctl"], arch=arch) == EPERM
    assert run_bpf(prog, nr["read"], arch=X86_64) == ENOSYS


def test_a_users_profile_in_dockers_format():
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
        {"name": "kill", "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_KILL"]}},
        {"names": ["write"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 100, "op": "SCMP_CMP_GT"}]},
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 10, "op": "SCMP_CMP_LE"}]},
    ]}
    prog = sp.compile_profile(profile, ["KILL"], "x86_64", "6.1")
    assert run_bpf(prog, NR["mkdir"]) == sc.SECCOMP_RET_ERRNO | 13
    assert run_bpf(prog, NR["kill"], args=[1, 9]) == EPERM
    assert run_bpf(prog, NR["kill"], args=[1, 15]) == ALLOW
    assert run_bpf(prog, NR["getpid"]) == ALLOW  # excluded: the container has CAP_KILL
    assert run_bpf(prog, NR["write"], args=[1, 0, 101]) == EPERM
    assert run_bpf(prog, NR["write"], args=[1, 0, 100]) == ALLOW
    assert run_bpf(prog, NR["write"], args=[1, 0, 1 << 33]) == EPERM
    assert run_bpf(prog, NR["read"], args=[0, 0, 10]) == EPERM
    assert run_bpf(prog, NR["read"], args=[0, 0, 11]) == ALLOW
    assert run_bpf(prog, 1000) == ALLOW  # the default allows: no ENOSYS past the profile


@pytest.mark.parametrize("profile", [
    [], {"syscalls": []}, {"defaultAction": "SCMP_ACT_NOPE"},
    {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "X"}]},
    {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 9, "op": "SCMP_CMP_EQ"}]}]},
    {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
     "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]},
])
def test_bad_profiles_are_usage_errors(profile):
    with pytest.raises(errors.UsageError, match="seccomp profile"):
        sp.compile_profile(profile, [], "x86_64", "6.1")


def test_the_default_fits_and_stays_small():
    assert len(default()) < 1000  # a binary search, not a scan: BPF_MAXINSNS is 4096
