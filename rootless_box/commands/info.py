"""`info`: print the preflight facts and the fixes for what is missing."""

import sys

from ..cliparse import Command
from ..ops.info import gather


def command(verb, summary):
    return Command(verb, "info", summary, (), max_args=0)


def main(parsed):
    facts, fixes = gather()
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
