"""`logs [OPTIONS] CONTAINER`: a container's json-file log as Docker prints it (stdout entries on
stdout, stderr entries on stderr, in order; -t, --tail, --since, --until, -f).

Owns: the option grammar of `docker logs`, and Docker's time arguments for --since/--until
(moby api/types/time GetTimestamp: RFC 3339 dates and times with or without a zone, Unix
seconds with a fraction, Go durations such as 10m or 1h30m meaning that long ago).
Must not: know the file format or rotation (ops/logfile.py does).
"""

import os
import sys
import time

from .. import errors
from ..cliparse import FLAG, VALUE, Command, Opt
from ..ops import containers as container_ops
from ..ops import logfile, logwriter
from ..ops.storage import open_store


def command(verb, summary):
    return Command(verb, "logs [OPTIONS] CONTAINER", summary, (
        Opt("--details", FLAG, "Show extra details provided to logs"),
        Opt("-f,--follow", FLAG, "Follow log output"),
        Opt("--since", VALUE, 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or '
                              'relative (e.g. "42m" for 42 minutes)'),
        Opt("-n,--tail", VALUE, 'Number of lines to show from the end of the logs (default '
                                '"all")'),
        Opt("-t,--timestamps", FLAG, "Show timestamps"),
        Opt("--until", VALUE, 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
                              'relative (e.g. "42m" for 42 minutes)'),
    ), min_args=1, max_args=1)


# Go's time.ParseDuration units, in nanoseconds
_UNITS = {"ns": 1, "us": 1000, "\u00b5s": 1000, "\u03bcs": 1000, "ms": 1000000,
          "s": 1000000000, "m": 60000000000, "h": 3600000000000}


def parse_duration(text):
    """Go's time.ParseDuration -> nanoseconds: [-+]?([0-9]*(\\.[0-9]*)?unit)+ or "0".
    ValueError otherwise."""
    s = text
    sign = 1
    if s[:1] in ("-", "+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError("invalid duration %r" % text)
    total = 0
    while s:
        i = 0
        while i < len(s) and "0" <= s[i] <= "9":
            i += 1
        whole, s = s[:i], s[i:]
        frac = ""
        if s[:1] == ".":
            j = 1
            while j < len(s) and "0" <= s[j] <= "9":
                j += 1
            frac, s = s[1:j], s[j:]
        if not whole and not frac:
            raise ValueError("invalid duration %r" % text)
        j = 0
        while j < len(s) and s[j] != "." and not ("0" <= s[j] <= "9"):
            j += 1
        unit, s = s[:j], s[j:]
        if unit not in _UNITS:
            raise ValueError("invalid duration %r" % text)
        scale = _UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
    return sign * total


def _parse_clock(value, local_offset):
    """Docker's layouts: a date, then optionally Thh, Thh:mm or Thh:mm:ss[.frac], with a zone
    (Z or +hh:mm/-hh:mm) exactly when GetTimestamp would not parse in the local zone (the value
    has z, Z or +, or three dashes). -> epoch ns; ValueError."""
    in_location = not (any(c in value for c in "zZ+") or value.count("-") == 3)
    body, zone = value, ""
    if value.endswith("Z"):
        body, zone = value[:-1], "Z"
    elif len(value) > 6 and value[-6] in "+-" and value[-3] == ":":
        body, zone = value[:-6], value[-6:]
    if bool(zone) == in_location:
        raise ValueError(value)
    date, tee, clock = body.partition("T")
    if len(date) != 10:
        raise ValueError(value)
    pieces = clock.split(":") if tee else ["00", "00", "00"]
    if len(pieces) > 3 or ("." in body and len(pieces) != 3) or \
            not (1 <= len(pieces[0]) <= 2 and pieces[0].isdigit()):
        raise ValueError(value)
    pieces += ["00"] * (3 - len(pieces))
    ns = logfile.parse_time("%sT%s:%s:%s%s" % (date, pieces[0].zfill(2), pieces[1], pieces[2],
                                                zone or "Z"))
    return ns - local_offset * 1000000000 if in_location else ns


def parse_timestamp(value, now_ns=None):
    """A --since/--until argument as Docker's CLI reads it -> epoch ns."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    try:
        if value != "0":
            # Docker sends whole seconds for a duration (reference.Add(-d).Unix())
            return (now_ns - parse_duration(value)) // 1000000000 * 1000000000
    except ValueError:
        pass
    local_offset = time.localtime(now_ns // 1000000000).tm_gmtoff
    try:
        return _parse_clock(value, local_offset)
    except (ValueError, IndexError):
        pass
    if "-" not in value:
        sec, dot, frac = value.partition(".")
        if sec.isdigit() and sec.isascii() and (not dot or (frac.isdigit() and frac.isascii())):
            return int(sec) * 1000000000 + (int((frac + "0" * 9)[:9]) if frac else 0)
        raise errors.UsageError("failed to parse value as time or duration: %r" % value)
    raise errors.UsageError("invalid time %r" % value,
                            'use RFC 3339 ("2013-01-02T13:23:37Z"), Unix seconds, or a '
                            'duration ("42m")')


def _tail_count(text):
    if text is None or text == "all":
        return None
    try:
        count = int(text)
    except ValueError:
        raise errors.UsageError("invalid --tail %r: a number of lines or \"all\"" % text) \
            from None
    return None if count < 0 else count


def _out(text):
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a foreign file: U+FFFD, as Go
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def main(parsed):
    store = open_store()
    try:
        record = container_ops.find(store, parsed.args[0])
    except errors.NotFound as exc:
        exc.exit_code = 1  # Docker's "No such container" exits 1
        raise
    now = time.time_ns()
    since = parse_timestamp(parsed.since, now) if parsed.since else None
    until = parse_timestamp(parsed.until, now) if parsed.until else None
    count = _tail_count(parsed.tail)
    path = container_ops.readable_log(store, record)
    if not parsed.follow:
        record = container_ops.settled(store, record)
    cid = record["Id"]

    if parsed.follow:
        def running():
            current = store.read_container(cid)
            if current is None:
                return False
            state = container_ops.refresh_state(store, current).get("State", {})
            return state.get("Status") in container_ops.LIVE_STATES
        entries = logfile.follow(path, running, tail=count, since=since, until=until)
    elif not os.path.exists(path) and not os.path.exists(path + ".1"):
        return 0  # a foreground run logs nothing: its output went to the terminal
    elif count is None:
        entries = logfile.read_entries(path, since=since, until=until)
    else:
        entries = (e for e in logfile.tail(path, count)
                   if (since is None or e.ns >= since) and (until is None or e.ns <= until))

    out, err = sys.stdout.buffer, sys.stderr.buffer
    prefix_details = parsed.details
    last = None
    for entry in entries:
        stream = err if entry.stream == "stderr" else out
        if last is not None and stream is not last:
            last.flush()
        line = _out(entry.log)
        if prefix_details:
            line = b" " + line  # Docker: the attrs (none here), a space, the line
        if parsed.timestamps:
            line = logwriter.format_time(entry.ns, fixed=True).encode() + b" " + line
        stream.write(line)
        if parsed.follow:
            stream.flush()
        last = stream
    out.flush()
    err.flush()
    return 0
