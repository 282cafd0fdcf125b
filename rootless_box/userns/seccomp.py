"""The seccomp "fake root" filter for single-id mappings, as a classic BPF program.

Owns: the per-architecture syscall numbers the filter names (from the kernel's tables:
arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h for aarch64),
building the program in Python (struct sock_filter, no libseccomp), and installing it.
Under a single-id mapping only uid/gid 0 exist, so the credential changes package managers
make (apt's `seteuid 100`, setgroups, chown to a system user) fail; the filter makes them
return success without doing anything (SECCOMP_RET_ERRNO with errno 0), as Charliecloud's
`--seccomp` and enroot do; the chown family either alike, or, when a keeper supervises the
container (`install(..., supervised=True)`), as user notifications its keeper answers after
recording the owner asked for (userns/notify.py); for a non-root user under the single-id
mapping the get*id family also goes to the keeper, which answers with that user's ids.
Also the published-port bypass's filter (bypass_program): a container's bind(), connect() and
shutdown() go to its forwarder as user notifications (userns/portbypass.py answers them).
And installing a compiled Docker profile (install_profile; seccomp_profile.py compiles it), the
last of a container's filters.
Must not: grant anything. The filter only turns some failures into no-op successes; a process
under it can touch no file its user could not touch without it. Nor decide when the filter
applies (ops/ sets spec["seccomp"]).
"""

import os
import struct

from .. import errors

# linux/audit.h: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH_X86_64 = 62 | 0x80000000 | 0x40000000
AUDIT_ARCH_AARCH64 = 183 | 0x80000000 | 0x40000000
AUDIT_ARCH_I386 = 3 | 0x40000000
AUDIT_ARCH_ARM = 40 | 0x40000000
# arch/x86/include/uapi/asm/unistd.h: x32 calls carry this bit in their number and the
# x86_64 arch word, with numbers of their own a filter for x86_64 would not recognise
X32_SYSCALL_BIT = 0x40000000

# linux/seccomp.h
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3

# linux/bpf_common.h
BPF_LD_W_ABS = 0x00 | 0x00 | 0x20
BPF_JEQ_K = 0x05 | 0x10 | 0x00
BPF_JGE_K = 0x05 | 0x30 | 0x00
BPF_AND_K = 0x04 | 0x50 | 0x00
BPF_RET_K = 0x06 | 0x00
BPF_JA = 0x05 | 0x00

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
# Both architectures are little-endian, so an argument's low 32 bits sit at its offset.
OFF_NR, OFF_ARCH = 0, 4


def off_arg(index):
    return 16 + 8 * index


S_IFMT, S_IFCHR, S_IFBLK = 0o170000, 0o020000, 0o060000
ENOSYS = 38
EPERM = 1
SHUT_WR = 1
SYS_CONNECT, SYS_SHUTDOWN = 3, 13  # linux/net.h: socketcall's call numbers

# machine -> (arch word, {name: number}); chown-family names listed apart, mknod with the
# index of its mode argument
TABLES = {
    "x86_64": {
        "arch": AUDIT_ARCH_X86_64, "x32": True,
        "fake": {"setuid": 105, "setgid": 106, "setreuid": 113, "setregid": 114,
                 "setgroups": 116, "setresuid": 117, "setresgid": 119, "setfsuid": 122,
                 "setfsgid": 123, "capset": 126},
        "chown": {"chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260},
        "getid": {"getuid": 102, "getgid": 104, "geteuid": 107, "getegid": 108,
                  "getgroups": 115, "getresuid": 118, "getresgid": 120},
        "mknod": {"mknod": (133, 1), "mknodat": (259, 2)},
        "bind": 49, "connect": 42, "shutdown": 48, "listen": 50, "io_uring_setup": 425,
        # the 32-bit ABI this machine also runs (arch/x86/entry/syscalls/syscall_32.tbl)
        "compat": {"arch": AUDIT_ARCH_I386, "connect": 362, "shutdown": 373,
                   "io_uring_setup": 425, "socketcall": 102},
    },
    "aarch64": {
        "arch": AUDIT_ARCH_AARCH64, "x32": False,
        "fake": {"capset": 91, "setregid": 143, "setgid": 144, "setreuid": 145,
                 "setuid": 146, "setresuid": 147, "setresgid": 149, "setfsuid": 151,
                 "setfsgid": 152, "setgroups": 159},
        "chown": {"fchownat": 54, "fchown": 55},
        "getid": {"getresuid": 148, "getresgid": 150, "getgroups": 158, "getuid": 174,
                  "geteuid": 175, "getgid": 176, "getegid": 177},
        "mknod": {"mknodat": (33, 2)},
        "bind": 200, "connect": 203, "shutdown": 210, "listen": 201, "io_uring_setup": 425,
        # arm's EABI (arch/arm/tools/syscall.tbl): no socketcall
        "compat": {"arch": AUDIT_ARCH_ARM, "connect": 283, "shutdown": 293,
                   "io_uring_setup": 425, "socketcall": None},
    },
}

FAKE_SUCCESS = SECCOMP_RET_ERRNO | 0


def table(machine=None):
    """The syscall table of machine (default: this one), or a BoxError naming it."""
    machine = machine or os.uname().machine
    entry = TABLES.get(machine)
    if entry is None:
        raise errors.SetupError(
            "the seccomp fake root has no syscall table for this machine's architecture "
            "(%s; it knows %s)" % (machine, ", ".join(sorted(TABLES))),
            "run with --security-opt seccomp=unconfined, or use a subordinate id mapping "
            "(--userns=subuid)")
    return entry


# the capability root needs for each faked call (capabilities(7)); capset needs none to lower
_NEEDS = {"setuid": "SETUID", "setreuid": "SETUID", "setresuid": "SETUID",
          "setfsuid": "SETUID", "setgid": "SETGID", "setregid": "SETGID",
          "setresgid": "SETGID", "setfsgid": "SETGID", "setgroups": "SETGID"}


def program(machine=None, chown_action=FAKE_SUCCESS, fake_ids=False, caps=None):
    """The fake-root filter for machine as a list of (code, jt, jf, k). chown_action: the
    verdict for the chown family (fake success, or SECCOMP_RET_USER_NOTIF for a supervisor
    that records the owner asked for). fake_ids: the get*id family goes to the supervisor
    too, which answers with the ids of the container's user (a non-root USER under a
    single-id mapping: the process stays uid 0, the only id there is); SECCOMP_RET_ERRNO
    can only return -errno, so a positive id needs a supervisor's answer. caps: the
    container's capabilities (None: all); a call whose capability was dropped (--cap-drop
    CHOWN, SETUID, SETGID, MKNOD) is not faked: it fails as it would for root without that
    capability."""
    t = table(machine)
    have = (lambda name: True) if caps is None else (lambda name: name in caps)
    t = dict(t, fake={k: v for k, v in t["fake"].items() if k == "capset" or have(_NEEDS[k])},
             chown=t["chown"] if have("CHOWN") else {},
             mknod=t["mknod"] if have("MKNOD") else {})
    asm = _Assembler()
    emit = asm.emit
    # Another arch word (i386 on x86_64, arm32 on aarch64) numbers its calls differently:
    # nothing below applies, and allowing is safe as the filter only fakes successes.
    # x32's chown would slip past under its own numbers: refused as on a kernel built
    # without x32 (ENOSYS), not allowed, so no call escapes the table unnoticed.
    asm.prologue(t, other_arch="allow", x32="x32")
    for nr in sorted(t["fake"].values()):
        emit(BPF_JEQ_K, nr, "fake", 0)
    for nr in sorted(t["chown"].values()):
        emit(BPF_JEQ_K, nr, "chown", 0)
    if fake_ids:
        for nr in sorted(t["getid"].values()):
            emit(BPF_JEQ_K, nr, "notify", 0)
    for name, (nr, _arg) in sorted(t["mknod"].items()):
        emit(BPF_JEQ_K, nr, "mknod_" + name, 0)
    # classic BPF jumps forward only: the mknod checks sit between the list and the verdicts
    asm.label("allow")
    emit(BPF_RET_K, SECCOMP_RET_ALLOW)
    for name, (_nr, arg) in sorted(t["mknod"].items()):
        # only device nodes are faked: a fifo, socket or regular file is made for real
        asm.label("mknod_" + name)
        emit(BPF_LD_W_ABS, off_arg(arg))
        emit(BPF_AND_K, S_IFMT)
        emit(BPF_JEQ_K, S_IFCHR, "fake", 0)
        emit(BPF_JEQ_K, S_IFBLK, "fake", "allow_file")
    asm.label("allow_file")
    emit(BPF_RET_K, SECCOMP_RET_ALLOW)
    asm.label("fake")
    emit(BPF_RET_K, FAKE_SUCCESS)
    asm.label("chown")
    emit(BPF_RET_K, chown_action)
    if fake_ids:
        asm.label("notify")
        emit(BPF_RET_K, SECCOMP_RET_USER_NOTIF)
    if t["x32"]:
        asm.label("x32")
        emit(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS)
    return asm.resolve()


def pack(prog):
    """struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k, native byte order."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in prog)


def install(policy, supervised=False, fake_ids=False, caps=None):
    """Install the filter named by policy in this (single-threaded) process; it is kept
    across fork and execve. Needs no_new_privs (or CAP_SYS_ADMIN): seccomp(2). supervised:
    the chown family goes to a supervisor, and the listener fd is returned (for the caller
    to send to it: until someone answers, a chown waits); else None. fake_ids (supervised
    only): the get*id family goes to it too; where the kernel has no user notifications,
    a SetupError, as nobody could answer them."""
    if policy != "fakeroot":
        raise errors.SetupError("unknown seccomp policy %r" % policy)
    from . import libc
    if supervised:
        try:
            libc.seccomp_check_notif_sizes()
        except OSError:
            supervised = False  # no user notifications here: chowns are faked, owners lost
    if fake_ids and not supervised:
        raise errors.SetupError(
            "a user other than root under the single-id mapping needs seccomp user "
            "notifications (Linux 5.0) and a process that answers them",
            "run as root (-u 0), or ask an administrator for a subordinate id range: "
            "run 'rootless-box info' for the exact command")
    prog = program(chown_action=SECCOMP_RET_USER_NOTIF if supervised else FAKE_SUCCESS,
                   fake_ids=fake_ids, caps=caps)
    try:
        fd = libc.seccomp_set_filter(pack(prog), len(prog),
                                     SECCOMP_FILTER_FLAG_NEW_LISTENER if supervised else 0)
        return fd if supervised else None
    except OSError as exc:
        raise errors.SetupError("cannot install the seccomp fake-root filter: %s"
                                % exc.strerror,
                                "run with --security-opt seccomp=unconfined") from None


class _Assembler:
    """A classic BPF program being written: instructions (code, jt, jf, k) whose jumps may
    name labels, resolved to forward offsets at the end."""

    def __init__(self):
        self.code = []
        self.labels = {}

    def emit(self, op, k, jt=0, jf=0):
        self.code.append((op, jt, jf, k))

    def prologue(self, t, other_arch, x32):
        """The arch word checked (another one jumps to other_arch; the arch word stays
        loaded for it), then the call's number loaded, an x32 call jumping to x32."""
        self.emit(BPF_LD_W_ABS, OFF_ARCH)
        self.emit(BPF_JEQ_K, t["arch"], 0, other_arch)
        self.emit(BPF_LD_W_ABS, OFF_NR)
        if t["x32"]:
            self.emit(BPF_JGE_K, X32_SYSCALL_BIT, x32, 0)

    def label(self, name):
        self.labels[name] = len(self.code)

    def ja(self, label):
        """An unconditional jump to label: its 32-bit offset reaches any distance."""
        self.code.append((BPF_JA, 0, 0, label))

    def resolve(self):
        out = []
        for i, (op, jt, jf, k) in enumerate(self.code):
            if op == BPF_JA and isinstance(k, str):
                k = self.labels[k] - i - 1
            jt = self.labels[jt] - i - 1 if isinstance(jt, str) else jt
            jf = self.labels[jf] - i - 1 if isinstance(jf, str) else jf
            if not (0 <= jt < 256 and 0 <= jf < 256):  # u8 forward offsets
                raise AssertionError("seccomp program jump out of range")
            out.append((op, jt, jf, k))
        return out


def bypass_program(machine=None):
    """The bypass filter (userns/portbypass.py), for a container whose servers may be handed
    a host's listening socket. To its forwarder, as user notifications: bind() with an
    address length an IPv4 or IPv6 address can have (16 to 128: not netlink's 12); every
    connect(), and shutdown() other than SHUT_WR, which the forwarder carries out itself on
    the caller's socket (a host socket that left the listening state could connect out of
    the private network; answering "continue" after a check would let another thread swap
    the fd in between); listen(), so that a server's small backlog does not shrink the host
    socket's (the forwarder answers it for a host socket, which is listening already).
    Refused: io_uring_setup (its rings connect and shut down sockets
    out of a filter's sight; Docker's default profile refuses it too), and x32 calls (their
    own numbers). The 32-bit ABI's connect, shutdown and socketcall(CONNECT/SHUTDOWN) are
    notified alike; its bind runs as it is (inside the container, where the relay serves)."""
    t = table(machine)
    compat = t["compat"]
    asm = _Assembler()
    emit = asm.emit
    asm.prologue(t, other_arch="compat", x32="enosys")
    emit(BPF_JEQ_K, t["bind"], "bind", 0)
    emit(BPF_JEQ_K, t["connect"], "notify", 0)
    emit(BPF_JEQ_K, t["shutdown"], "shutdown", 0)
    emit(BPF_JEQ_K, t["listen"], "notify", 0)
    emit(BPF_JEQ_K, t["io_uring_setup"], "eperm", "allow")
    asm.label("compat")
    # no third arch word runs on these machines: one that did is refused whole
    emit(BPF_JEQ_K, compat["arch"], 0, "enosys")
    emit(BPF_LD_W_ABS, OFF_NR)
    emit(BPF_JEQ_K, compat["connect"], "notify", 0)
    emit(BPF_JEQ_K, compat["shutdown"], "shutdown", 0)
    if compat["socketcall"] is not None:
        emit(BPF_JEQ_K, compat["socketcall"], "socketcall", 0)
    emit(BPF_JEQ_K, compat["io_uring_setup"], "eperm", "allow")
    asm.label("bind")
    emit(BPF_LD_W_ABS, off_arg(2))
    emit(BPF_JGE_K, 16, 0, "allow")
    emit(BPF_JGE_K, 129, "allow", "notify")
    asm.label("shutdown")
    emit(BPF_LD_W_ABS, off_arg(1))
    emit(BPF_JEQ_K, SHUT_WR, "allow", "notify")
    if compat["socketcall"] is not None:
        asm.label("socketcall")
        emit(BPF_LD_W_ABS, off_arg(0))
        emit(BPF_JEQ_K, SYS_CONNECT, "notify", 0)
        emit(BPF_JEQ_K, SYS_SHUTDOWN, "notify", "allow")
    asm.label("notify")
    emit(BPF_RET_K, SECCOMP_RET_USER_NOTIF)
    asm.label("allow")
    emit(BPF_RET_K, SECCOMP_RET_ALLOW)
    asm.label("eperm")
    emit(BPF_RET_K, SECCOMP_RET_ERRNO | EPERM)
    asm.label("enosys")
    emit(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS)
    return asm.resolve()


def install_profile(program):
    """Install a compiled profile (packed struct sock_filter bytes, seccomp_profile.py) in
    this single-threaded process, kept across fork and execve. Installed after the fake-root
    filter: the kernel runs every filter and the strictest verdict wins (an errno over a user
    notification over allow); between two errnos the filter installed last wins, so a
    profile's refusal beats the fake root's faked success. Needs no_new_privs (or
    CAP_SYS_ADMIN): seccomp(2)."""
    from . import libc
    try:
        libc.seccomp_set_filter(program, len(program) // 8, 0)
    except OSError as exc:
        raise errors.SetupError("cannot install the seccomp profile: %s" % exc.strerror,
                                "run with --security-opt seccomp=unconfined") from None


def install_bind_notify():
    """Install the bypass filter in this (single-threaded) process, kept across fork and
    execve; -> its listener fd, or None where the kernel cannot (no user notifications, or
    a listener already in this process's filters). Needs CAP_SYS_ADMIN in its user namespace
    or no_new_privs."""
    from . import libc
    try:
        libc.seccomp_check_notif_sizes()
        prog = bypass_program()
        return libc.seccomp_set_filter(pack(prog), len(prog), SECCOMP_FILTER_FLAG_NEW_LISTENER)
    except (OSError, errors.BoxError):
        return None
