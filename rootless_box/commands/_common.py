"""Output helpers shared by the commands: Docker-style plain tables, sizes, ages, warnings.

Owns: formatting only. Tables are plain aligned columns as Docker prints them (scripts parse
them), so rich is not needed here.
"""

import sys
import time

from ..errors import BoxError
from ..ops.containerjson import human_duration  # one definition for ps and the Engine API


def report(exc):
    """A BoxError as the user sees it: one line, then the hint if there is one."""
    sys.stderr.write("rootless-box: error: %s\n" % exc.message)
    if exc.hint:
        sys.stderr.write("hint: %s\n" % exc.hint)


def for_each(names, action):
    """Docker's way with several names: act on each, report each failure on its line, go on,
    and fail (exit 1) at the end if any failed."""
    status = 0
    for name in names:
        try:
            action(name)
        except BoxError as exc:
            report(exc)
            status = 1
    return status


def given(parsed, dest):
    """A flag's value when the user gave it, else None (--tls-verify: not given means the
    registry's configured or default setting, not false)."""
    return getattr(parsed, dest) if dest in parsed.given else None


def warn(message):
    sys.stderr.write("rootless-box: warning: %s\n" % message)


def warn_unpack(report):
    """What unpacking layers had to leave out or change, rootless."""
    if report.get("skipped_devices"):
        warn("%d device node(s) in the layers were skipped: a rootless container cannot "
             "create devices (its /dev is provided at run time)" % report["skipped_devices"])
    if report.get("unmapped_owners"):
        warn("%d file(s) have owners outside this user's id range and belong to root in the "
             "image" % report["unmapped_owners"])


def table(headers, rows):
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in [headers] + rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        out.append("   ".join(cells).rstrip())
    sys.stdout.write("\n".join(out) + "\n")


def human_size(size):
    """Docker's decimal units: 4.26MB, 1.2GB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            text = ("%.3g" % value) if unit != "B" else "%d" % value
            return text + unit
        value /= 1000
    return "%dB" % size


def human_ago(epoch):
    """Docker's 'About a minute ago', '3 hours ago'."""
    if not epoch:
        return "N/A"
    seconds = max(0, time.time() - epoch)
    return human_duration(seconds) + " ago"


def inspect_each(names, make, fmt):
    """Docker's `X inspect`: make(name) for each name, the JSON list (or each object through
    the Go template fmt); a failure is reported on its line and makes the status 1."""
    template = None
    if fmt and fmt != "json":
        from ._template import compile_template
        template = compile_template(fmt)
    results = []
    status = for_each(names, lambda name: results.append(make(name)))
    if template is None:
        print_json(results)
    else:
        from ._template import render
        sys.stdout.write("".join(render(template, obj) + "\n" for obj in results))
    return status


def print_json(obj):
    import json
    sys.stdout.write(json.dumps(obj, indent=4) + "\n")
