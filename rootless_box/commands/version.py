"""`version [--format json|TEMPLATE]`: the tool's version, Python, kernel and how it was built.

Owns: the version document in Docker's shape (`{"Client": {...}, "Server": {...}}`, Docker's
key names, Go's runtime fields as Python's: GoVersion -> PythonVersion), the human text in
Docker's layout, and finding build info: `rootless_box/_build.py` (written by the binary build,
scripts/write_build_info.py) in a frozen binary, else `git describe` of the checkout the
package runs from, else _build.py if an installed copy has one.
There is no daemon: "Server" is this same program (as Podman reports itself locally), so
`{{.Server.Version}}` works in scripts that use it to check the engine; no API is served, so
ApiVersion is left out rather than invented.
Must not: be imported by other commands (the git call is paid by `version` alone).
"""

import os
import sys

from .. import config
from ..cliparse import VALUE, Command, Opt

# Go's GOARCH names, which Docker prints, for the machines Python reports otherwise
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm",
           "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
           "riscv64": "riscv64"}


def command(verb, summary):
    return Command(verb, "version [OPTIONS]", summary, (
        Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a Go "
                                  "template such as '{{.Client.Version}}'"),
    ), max_args=0)


def _git(checkout):
    import subprocess
    try:
        out = subprocess.run(
            ["git", "-C", checkout, "-c", "safe.directory=" + checkout, "describe", "--always",
             "--dirty", "--tags"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        out = None
    if out is not None and out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    # no git (or it refuses): HEAD read from .git itself, short like describe --always
    try:
        with open(os.path.join(checkout, ".git", "HEAD")) as f:
            head = f.read().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            try:
                with open(os.path.join(checkout, ".git", ref)) as f:
                    return f.read().strip()[:7]
            except FileNotFoundError:
                with open(os.path.join(checkout, ".git", "packed-refs")) as f:
                    for line in f:
                        if line.rstrip().endswith(" " + ref):
                            return line[:7]
        return head[:7]
    except OSError:
        return ""
    return ""


def build_info():
    """-> {"GitCommit", "BuildTime", "Frozen"}; empty strings when unknown."""
    frozen = bool(getattr(sys, "frozen", False))
    info = {"GitCommit": "", "BuildTime": "", "Frozen": frozen}
    try:
        from .. import _build
        info["GitCommit"] = getattr(_build, "GIT_COMMIT", "")
        info["BuildTime"] = getattr(_build, "BUILD_TIME", "")
    except ImportError:
        pass
    if not frozen:
        checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if os.path.exists(os.path.join(checkout, ".git")):
            # a checkout: its own commit, and no build time (nothing was built)
            info["GitCommit"], info["BuildTime"] = _git(checkout), ""
    return info


def document():
    uname = os.uname()
    build = build_info()
    engine = {"Version": config.VERSION, "PythonVersion": sys.version.split()[0],
              "GitCommit": build["GitCommit"], "Os": sys.platform,
              "Arch": _GOARCH.get(uname.machine, uname.machine),
              "BuildTime": build["BuildTime"], "Frozen": build["Frozen"]}
    client = dict({"Platform": {"Name": "rootless-box"}}, **engine)
    client["Context"] = "default"
    server = dict({"Platform": {"Name": "rootless-box (daemonless)"}}, **engine)
    server["KernelVersion"] = uname.release
    return {"Client": client, "Server": server}


def human(doc):
    c, s = doc["Client"], doc["Server"]
    rows = [("Version", c["Version"]), ("Python version", c["PythonVersion"]),
            ("Git commit", c["GitCommit"] or "unknown"),
            ("Built", c["BuildTime"] or ("unknown" if c["Frozen"] else "not built (run from "
                                         "source)")),
            ("Binary", "frozen (one-file executable)" if c["Frozen"] else "Python package"),
            ("OS/Arch", "%s/%s" % (c["Os"], c["Arch"])),
            ("Kernel", s["KernelVersion"])]
    return "Client: %s\n%s" % (c["Platform"]["Name"], "".join(
        " %s%s\n" % ((k + ":").ljust(19), v) for k, v in rows))


def main(parsed):
    fmt = parsed.format
    nodes = None
    if fmt and fmt != "json":
        from ._template import compile_template
        nodes = compile_template(fmt)
    doc = document()
    if not fmt:
        sys.stdout.write(human(doc))
    elif fmt == "json":
        import json
        sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
    else:
        from ._template import render
        sys.stdout.write(render(nodes, doc) + "\n")
    return 0
