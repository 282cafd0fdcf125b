"""`info [--format json|TEMPLATE]`: print the preflight facts and the fixes for what is missing.

Owns: the text layout, and the DOCKER_HOST= line for the Engine API's socket. The `--format`
document is ops/info.document (the Engine API's /info serves it too). Must not: gather facts
(ops/info.py does).
"""

import sys

from ..cliparse import VALUE, Command, Opt
from ..ops.info import document, gather


def command(verb, summary):
    return Command(verb, "info [OPTIONS]", summary, (
        Opt("-f,--format", VALUE, "Format output using a custom template: 'json' or a Go "
                                  "template such as '{{.Driver}}'"),
    ), max_args=0)


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
    lines += ["", "Docker's clients reach `rootless-box system service` with:",
              "DOCKER_HOST=%s" % facts["api_socket"]]
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
