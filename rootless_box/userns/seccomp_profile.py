"""Docker seccomp profiles (moby's profiles/seccomp format) compiled to classic BPF.

Owns: reading a profile as Docker does (moby profiles/seccomp/seccomp_linux.go's
setupSeccomp: `name`/`names`, the `includes`/`excludes` of capabilities, architectures and
minimum kernels, decided against the container's bounding set), libseccomp's semantics for what
is left (rules of one call tried in order, the comparisons of a rule all holding, 64-bit
argument comparisons, an unconditional rule as the call's fallback, the default action for
every call not named), runc's -ENOSYS for calls newer than any the profile names (so a libc
falls back from a call the profile does not know, as it does from clone3), and the program:
the arch word checked, then a binary search over runs of call numbers with the same verdict
(a few comparisons per call instead of a scan of ~400), far jumps through BPF_JA.
The native ABI and its 32-bit one (i386 on x86_64) are compiled; x32 calls get ENOSYS, as in
the other filters here (seccomp.py), and so does the 32-bit ABI of aarch64 (arm), which has no
table here.
Must not: install anything (seccomp.install_profile does), read files, or decide which profile
a container gets (ops/ does). Pure: tests/unit/test_seccomp_profile.py runs it.
"""

from .. import errors
from .seccomp import (
    AUDIT_ARCH_I386, BPF_AND_K, BPF_JEQ_K, BPF_JGE_K, BPF_LD_W_ABS, BPF_RET_K, ENOSYS, OFF_NR,
    SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, TABLES, X32_SYSCALL_BIT,
    _Assembler, off_arg)

# Part of the cache key (ops/seccomp): a change to how profiles compile must not reuse a
# program the old code made.
COMPILER_VERSION = "1"

BPF_JGT_K = 0x05 | 0x20 | 0x00
BPF_JA = 0x05 | 0x00
BPF_MAXINSNS = 4096

SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
EPERM = 1

# Go's names (moby's `arches`) for this machine; runtime.GOARCH decides, as in moby
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}
# libseccomp's names (`architectures`, `archMap`) of each ABI compiled here
_SCMP_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
              "i386": "SCMP_ARCH_X86"}
_COMPAT = {"x86_64": ("i386", AUDIT_ARCH_I386)}


def _table(abi):
    from . import syscalls  # ~0.4 ms: only a compile (a cache miss) needs the names
    return {"x86_64": syscalls.X86_64, "i386": syscalls.I386,
            "aarch64": syscalls.AARCH64}[abi]


def _bad(what):
    return errors.UsageError("invalid seccomp profile: %s" % what,
                             "give a profile in Docker's format (moby's "
                             "profiles/seccomp/default.json is one)")


def _action(name, errno_ret, default_errno=EPERM):
    """A profile's action name -> SECCOMP_RET_* value."""
    if name == "SCMP_ACT_ALLOW":
        return SECCOMP_RET_ALLOW
    if name == "SCMP_ACT_ERRNO":
        code = default_errno if errno_ret is None else errno_ret
        if not isinstance(code, int) or not 0 <= code <= 4095:
            raise _bad("errnoRet %r" % (code,))
        return SECCOMP_RET_ERRNO | code
    if name == "SCMP_ACT_TRACE":
        # with no tracer attached the kernel answers ENOSYS (seccomp(2))
        return SECCOMP_RET_TRACE | ((errno_ret or 0) & 0xFFFF)
    fixed = {"SCMP_ACT_KILL": SECCOMP_RET_KILL_THREAD,
             "SCMP_ACT_KILL_THREAD": SECCOMP_RET_KILL_THREAD,
             "SCMP_ACT_KILL_PROCESS": SECCOMP_RET_KILL_PROCESS,
             "SCMP_ACT_TRAP": SECCOMP_RET_TRAP, "SCMP_ACT_LOG": SECCOMP_RET_LOG}
    if name in fixed:
        return fixed[name]
    if name == "SCMP_ACT_NOTIFY":
        raise errors.UsageError("seccomp profile action SCMP_ACT_NOTIFY is not supported",
                                "it needs a listener rootless-box does not run; use "
                                "SCMP_ACT_ERRNO or SCMP_ACT_ALLOW")
    raise _bad("unknown action %r" % (name,))


def _kernel_at_least(release, wanted):
    def parts(text):
        out = []
        for piece in str(text).split(".")[:2]:
            digits = ""
            for ch in piece:
                if not ch.isdigit():
                    break
                digits += ch
            out.append(int(digits or 0))
        return tuple(out + [0] * (2 - len(out)))
    return parts(release) >= parts(wanted)


def _applies(call, goarch, caps, kernel):
    """moby's setupSeccomp filter: excludes first (any match drops the rule), then includes
    (every condition must hold)."""
    exc = call.get("excludes") or {}
    inc = call.get("includes") or {}
    if goarch in (exc.get("arches") or ()):
        return False
    if any(c in caps for c in (exc.get("caps") or ())):
        return False
    if exc.get("minKernel") and _kernel_at_least(kernel, exc["minKernel"]):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if any(c not in caps for c in (inc.get("caps") or ())):
        return False
    if inc.get("minKernel") and not _kernel_at_least(kernel, inc["minKernel"]):
        return False
    return True


_OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
        "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ")


def _arg(arg):
    if not isinstance(arg, dict):
        raise _bad("an argument filter is not an object")
    index, op = arg.get("index"), arg.get("op")
    value, two = arg.get("value", 0), arg.get("valueTwo", 0)
    if not isinstance(index, int) or not 0 <= index <= 5:
        raise _bad("argument index %r" % (index,))
    if op not in _OPS:
        raise _bad("unknown comparison %r" % (op,))
    for v in (value, two):
        if not isinstance(v, int) or not 0 <= v < 1 << 64:
            raise _bad("argument value %r" % (v,))
    return index, op, value, two


def rules(profile, caps, machine, kernel):
    """{syscall name: ([(args, verdict)], fallback verdict or None)} and the default verdict,
    after Docker's filtering. caps: the container's bounding set, as names without CAP_."""
    if not isinstance(profile, dict):
        raise _bad("not a JSON object")
    if profile.get("architectures") and profile.get("archMap"):
        raise _bad("both 'architectures' and 'archMap' are given")
    bounding = {"CAP_" + c for c in caps}
    goarch = _GOARCH.get(machine, machine)
    default = _action(profile.get("defaultAction") or "", None,
                      profile.get("defaultErrnoRet") or EPERM) \
        if profile.get("defaultAction") else None
    if default is None:
        raise _bad("no defaultAction")
    calls = profile.get("syscalls") or []
    if not isinstance(calls, list):
        raise _bad("'syscalls' is not a list")
    table = {}
    for call in calls:
        if not isinstance(call, dict):
            raise _bad("a syscalls entry is not an object")
        names = call.get("names") or []
        if call.get("name"):
            if names:
                raise _bad("both 'name' and 'names' are given")
            names = [call["name"]]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _bad("'names' is not a list of names")
        verdict = _action(call.get("action"), call.get("errnoRet"))
        args = [_arg(a) for a in (call.get("args") or [])]
        if not _applies(call, goarch, bounding, kernel):
            continue
        for name in names:
            conditional, fallback = table.get(name, ([], None))
            if args:
                conditional.append((args, verdict))
            else:
                fallback = verdict
            table[name] = (conditional, fallback)
    return table, default


def _abis(profile, machine):
    """The ABIs to compile: the native one, and its 32-bit one when the profile names it
    (archMap's subArchitectures or architectures) or names no architecture at all."""
    t = TABLES.get(machine)
    if t is None or machine not in _SCMP_ARCH:
        raise errors.SetupError(
            "the seccomp profile compiler has no syscall table for this machine's "
            "architecture (%s; it knows %s)" % (machine, ", ".join(sorted(_SCMP_ARCH)[:2])),
            "run with --security-opt seccomp=unconfined")
    abis = [(machine, t["arch"])]
    compat = _COMPAT.get(machine)
    if compat:
        listed = set(profile.get("architectures") or ())
        for entry in profile.get("archMap") or ():
            if isinstance(entry, dict) and entry.get("architecture") == _SCMP_ARCH[machine]:
                listed.add(entry["architecture"])
                listed.update(entry.get("subArchitectures") or ())
        if _SCMP_ARCH[compat[0]] in listed:
            abis.append(compat)
    return abis


def compile_profile(profile, caps, machine, kernel):
    """The program (a list of (code, jt, jf, k)) for a parsed profile, a container whose
    bounding set is caps (names without CAP_), on machine (os.uname().machine) running
    kernel (its release)."""
    table, default = rules(profile, caps, machine, kernel)
    asm = _Assembler()
    emit = asm.emit
    abis = _abis(profile, machine)
    native = TABLES[machine]
    emit(BPF_LD_W_ABS, 4)  # struct seccomp_data.arch
    for n, (abi, arch_word) in enumerate(abis):
        asm.label("abi%d" % n)
        # another arch word: the next ABI's section, or ENOSYS past the last
        emit(BPF_JEQ_K, arch_word, 1, 0)
        asm.ja("abi%d" % (n + 1))
        emit(BPF_LD_W_ABS, OFF_NR)
        if abi == machine and native["x32"]:
            emit(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1)
            emit(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS)
        _search(asm, _runs(_table(abi), table, default), "a%d" % n)
    asm.label("abi%d" % len(abis))
    emit(BPF_RET_K, SECCOMP_RET_ERRNO | ENOSYS)
    prog = asm.resolve()
    if len(prog) > BPF_MAXINSNS:
        raise _bad("it compiles to %d instructions, more than the kernel's %d"
                   % (len(prog), BPF_MAXINSNS))
    return prog


def _runs(numbers, table, default):
    """[(first number, leaf)] covering 0 up, each leaf ("ret", verdict) or ("rules", ...):
    consecutive numbers with one plain verdict merged. Past the highest number the profile
    names: ENOSYS (runc's patch for calls newer than the profile) unless the default
    allows."""
    verdicts = {}
    for name, (conditional, fallback) in table.items():
        nr = numbers.get(name)
        if nr is None:
            continue  # not a call of this ABI (as libseccomp skips it)
        fallback = default if fallback is None else fallback
        verdicts[nr] = ("rules", tuple(conditional), fallback) if conditional \
            else ("ret", fallback)
    highest = max(verdicts) if verdicts else -1
    runs = []
    for nr in range(highest + 1):
        leaf = verdicts.get(nr, ("ret", default))
        if runs and leaf[0] == "ret" and runs[-1][1] == leaf:
            continue
        runs.append((nr, leaf))
    beyond = default if default == SECCOMP_RET_ALLOW else SECCOMP_RET_ERRNO | ENOSYS
    if not runs or runs[-1][1] != ("ret", beyond):
        runs.append((highest + 1, ("ret", beyond)))
    return runs


def _search(asm, runs, prefix):
    """A binary search over runs (A holds the call's number): each node `A >= first of the
    upper half`, its upper half reached through BPF_JA (no u8 limit), the lower half next."""
    counter = [0]

    def node(lo, hi):
        if hi - lo == 1:
            _leaf(asm, runs[lo][1], "%s_%d" % (prefix, lo))
            return
        mid = (lo + hi) // 2
        counter[0] += 1
        upper = "%s_n%d" % (prefix, counter[0])
        asm.emit(BPF_JGE_K, runs[mid][0], 0, 1)
        asm.ja(upper)
        node(lo, mid)
        asm.label(upper)
        node(mid, hi)

    node(0, len(runs))


def _leaf(asm, leaf, prefix):
    if leaf[0] == "ret":
        asm.emit(BPF_RET_K, leaf[1])
        return
    _kind, conditional, fallback = leaf
    for r, (args, verdict) in enumerate(conditional):
        fail = "%s_r%d" % (prefix, r)
        for c, (index, op, value, two) in enumerate(args):
            ok = "%s_r%d_c%d" % (prefix, r, c)
            _compare(asm, index, op, value, two, ok, fail)
            asm.label(ok)
        asm.emit(BPF_RET_K, verdict)
        asm.label(fail)
    asm.emit(BPF_RET_K, fallback)


def _compare(asm, index, op, value, two, ok, fail):
    """libseccomp's 64-bit comparison of argument index against value, as two 32-bit
    halves (seccomp_data is little-endian on the machines here: the high half at +4)."""
    emit = asm.emit
    lo_off, hi_off = off_arg(index), off_arg(index) + 4
    hi, lo = value >> 32, value & 0xFFFFFFFF
    if op == "SCMP_CMP_MASKED_EQ":
        emit(BPF_LD_W_ABS, hi_off)
        emit(BPF_AND_K, hi)
        emit(BPF_JEQ_K, two >> 32, 0, fail)
        emit(BPF_LD_W_ABS, lo_off)
        emit(BPF_AND_K, lo)
        emit(BPF_JEQ_K, two & 0xFFFFFFFF, ok, fail)
        return
    emit(BPF_LD_W_ABS, hi_off)
    if op in ("SCMP_CMP_EQ", "SCMP_CMP_NE"):
        same, differ = (ok, fail) if op == "SCMP_CMP_EQ" else (fail, ok)
        emit(BPF_JEQ_K, hi, 0, differ)
        emit(BPF_LD_W_ABS, lo_off)
        emit(BPF_JEQ_K, lo, same, differ)
        return
    # ordered comparisons: the high halves decide unless they are equal
    above, below = (ok, fail) if op in ("SCMP_CMP_GT", "SCMP_CMP_GE") else (fail, ok)
    emit(BPF_JGT_K, hi, above, 0)
    emit(BPF_JEQ_K, hi, 0, below)
    emit(BPF_LD_W_ABS, lo_off)
    if op == "SCMP_CMP_GT":
        emit(BPF_JGT_K, lo, ok, fail)
    elif op == "SCMP_CMP_GE":
        emit(BPF_JGE_K, lo, ok, fail)
    elif op == "SCMP_CMP_LT":
        emit(BPF_JGE_K, lo, fail, ok)
    else:  # SCMP_CMP_LE
        emit(BPF_JGT_K, lo, fail, ok)
