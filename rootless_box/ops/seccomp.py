"""Which seccomp profile a container gets, compiled once and kept by digest.

Owns: the profile's text (Docker's default, vendored in userns/seccomp_default.py, or a user's
`--security-opt seccomp=FILE.json`), and the compiled program's cache:
`$XDG_RUNTIME_DIR/rootless-box/seccomp/<sha256>.bpf`, keyed by the compiler's version, the
machine, the kernel release (a profile's minKernel), the bounding set (its capability rules)
and the profile's bytes. A hit costs one hash of ~13 KiB (_sha256, not hashlib) and one read:
no JSON parsing, no syscall table (~0.5 ms on `run` with these modules' imports, against
~6 ms to compile).
Must not: install a filter (userns/seccomp.py does, in the container), print, or import json
or hashlib.
"""

import os

from .. import config, errors


def default_text():
    from ..userns.seccomp_default import PROFILE
    return PROFILE


def read_profile(path):
    """A user's profile file's text, as Docker's CLI reads it before sending it."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.UsageError("opening seccomp profile (%s) failed: %s"
                                % (path, getattr(exc, "strerror", None) or exc),
                                "give a readable JSON file in Docker's profile format, or "
                                "seccomp=unconfined") from None


def check_profile(text, path):
    """A profile that is no JSON, or no profile, fails here, before anything is made."""
    from .. import fastjson
    try:
        profile = fastjson.loads(text)
    except ValueError as exc:
        raise errors.UsageError("invalid seccomp profile %s: not JSON: %s" % (path, exc),
                                "give a profile in Docker's format (moby's "
                                "profiles/seccomp/default.json is one)") from None
    from ..userns.seccomp_profile import rules
    uname = os.uname()
    rules(profile, (), uname.machine, uname.release)
    return profile


def compiled(text, caps):
    """The packed program for profile text and a bounding set of caps (names), as hex (the
    run spec is JSON); compiled on the first use, read from the cache after."""
    from _sha256 import sha256
    from ..userns.seccomp_profile import COMPILER_VERSION
    uname = os.uname()
    key = "%s\0%s\0%s\0%s\0" % (COMPILER_VERSION, uname.machine, uname.release,
                                ",".join(sorted(caps)))
    digest = sha256(key.encode() + text.encode()).hexdigest()
    directory = os.path.join(config.runtime_root(), "seccomp")
    path = os.path.join(directory, digest + ".bpf")
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data and len(data) % 8 == 0:
            return data.hex()
    except OSError:
        pass
    from ..userns.seccomp import pack
    from ..userns.seccomp_profile import compile_profile
    data = pack(compile_profile(check_profile(text, "(cached)"), caps, uname.machine,
                                uname.release))
    try:
        os.makedirs(directory, 0o700, exist_ok=True)
        tmp = "%s.%d.tmp" % (path, os.getpid())
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # concurrent runs each write whole files: the last rename wins
    except OSError:
        pass  # no cache this time: compiled again next time
    return data.hex()
