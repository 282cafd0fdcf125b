"""`info [--format json|TEMPLATE]`: print the preflight facts and the fixes for what is missing.

Owns: the text layout, and the `--format` document: Docker's info field names where one means
the same here (ServerVersion, KernelVersion, OSType, Architecture, Driver, DockerRootDir,
Warnings), every fact under its own name in "Facts", each missing piece with its fix in
"Fixes". Must not: gather facts (ops/info.py does).
"""

import sys

from ..cliparse import VALUE, Command, Opt
from ..ops.info import gather


def command(verb, summary):
    return Command(verb, "info [OPTIONS]", summary, (
        Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a Go "
                                  "template such as '{{.Driver}}'"),
    ), max_args=0)


def document(facts, fixes):
    return {"ServerVersion": facts["version"], "KernelVersion": facts["kernel"],
            "OSType": "linux", "Architecture": facts["arch"],
            "Driver": facts.get("storage_driver", ""), "DockerRootDir": facts["data_root"],
            "SecurityOptions": ["name=rootless", "name=userns"],
            "Warnings": ["WARNING: %s" % problem for problem, _fix in fixes],
            "Facts": facts,
            "Fixes": [{"Problem": problem, "Fix": fix} for problem, fix in fixes]}


def main(parsed):
    nodes = None
    if parsed.format and parsed.format != "json":
        from ._template import compile_template
        nodes = compile_template(parsed.format)
    facts, fixes = gather()
    if parsed.format:
        doc = document(facts, fixes)
        if nodes is None:
            import json
            sys.stdout.write(json.dumps(doc, separators=(",", ":")) + "\n")
        else:
            from ._template import render
            sys.stdout.write(render(nodes, doc) + "\n")
        return 0
    width = max(len(k) for k in facts) + 1
    lines = ["%s %s" % ((key + ":").ljust(width + 1), value) for key, value in facts.items()]
    if fixes:
        lines.append("")
        lines.append("Missing pieces and how to fix them:")
        for problem, fix in fixes:
            lines.append("  - %s" % problem)
            lines.append("    fix: %s" % fix)
    else:
        lines.append("")
        lines.append("Everything rootless-box uses is available.")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
