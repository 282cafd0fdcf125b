"""`events [--since] [--until] [-f FILTER] [--format]`: the journal every command appends to
(ops/events.py), as Docker's CLI prints it; without --until it follows new events until
interrupted. Owns the option grammar and the printing."""

import sys
import time

from ..cliparse import LIST, VALUE, Command, Opt


def command(verb, summary):
    return Command(verb, "events [OPTIONS]", summary, (
        Opt("-f,--filter", LIST, "Filter output based on conditions provided (container, "
                                 "event, image, label, type)", metavar="filter"),
        Opt("--format", VALUE, "Format output using a custom template: 'json' or a Go "
                               "template such as '{{.Action}}'"),
        Opt("--since", VALUE, "Show all events created since timestamp"),
        Opt("--until", VALUE, "Stream events until this timestamp"),
    ), max_args=0)


def _clock(ns):
    """jsonmessage.RFC3339NanoFixed in local time, as Docker's CLI prints events."""
    seconds, nanos = divmod(ns, 1000000000)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff
    zone = "Z" if offset == 0 else "%s%02d:%02d" % ("+" if offset > 0 else "-",
                                                    abs(offset) // 3600,
                                                    abs(offset) % 3600 // 60)
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + ".%09d" % nanos + zone


def line(event):
    """Docker's default event line: time, type, action, actor ID, (attributes sorted)."""
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    text = "%s %s %s %s" % (_clock(event["timeNano"]), event.get("Type", ""),
                            event.get("Action", ""), actor.get("ID", ""))
    if attributes:
        text += " (%s)" % ", ".join("%s=%s" % kv for kv in sorted(attributes.items()))
    return text


def _template_view(event):
    """The event with Go's field names too ({{.ID}}, {{.Status}}, {{.TimeNano}})."""
    view = dict(event)
    view.update(ID=event.get("id", (event.get("Actor") or {}).get("ID", "")),
                Status=event.get("status", ""), From=event.get("from", ""),
                Scope=event.get("scope", ""), Time=event.get("time", 0),
                TimeNano=event.get("timeNano", 0))
    return view


def main(parsed):
    from ..ops import events
    from ..ops.storage import open_store
    from .images import parse_filters
    from .logs import parse_timestamp
    filters = parse_filters(parsed.filter, events.FILTERS)
    now = time.time_ns()
    since = parse_timestamp(parsed.since, now) if parsed.since else None
    until = parse_timestamp(parsed.until, now) if parsed.until else None
    if since is None and until is None:
        since = now  # Docker: only what happens from now on
    fmt = parsed.format
    nodes = None
    if fmt and fmt != "json":
        from ._template import compile_template, render
        nodes = compile_template(fmt)
    store = open_store()
    for event in events.read(store, since, until, follow=until is None or until > now):
        if not events.matches(event, filters):
            continue
        if fmt == "json":
            from .. import fastjson
            text = fastjson.dumps(event, compact=True).decode()
        elif nodes is not None:
            text = render(nodes, _template_view(event))
        else:
            text = line(event)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return 0
