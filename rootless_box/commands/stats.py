"""`stats [OPTIONS] [CONTAINER...]`: containers' resource use, as Docker's table shows it.

Owns: the verb, its columns (.Container .Name .ID .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO
.PIDs), and the sampling: two samples of /proc 0.5 s apart give CPU % (100% = one CPU, as
Docker's); memory is the processes' PSS against MemTotal (no cgroup limit is set). NET I/O
is `--` for a host-network container (its traffic is the host's, not the container's).
Without --no-stream the table is printed again every second until interrupted (cleared
first on a terminal), as Docker streams.
Must not: read /proc itself (ops/procstats.py does).
"""

import sys
import time

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import BoxError
from ..ops import containers as container_ops
from ..ops import procstats
from ..ops.storage import open_store
from ._common import human_size, report
from .images import compile_format, write_formatted

DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}" \
          "\t{{.BlockIO}}\t{{.PIDs}}"
HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
           "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
           "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
INTERVAL = 0.5


def command(verb, summary):
    return Command(verb, "stats [OPTIONS] [CONTAINER...]", summary, (
        Opt("-a,--all", FLAG, "Show all containers (default shows just running)"),
        Opt("--format", VALUE, "Format output using a custom template: 'table', "
                               "'table TEMPLATE', 'json', or a Go template"),
        Opt("--no-stream", FLAG, "Disable streaming stats and only pull the first result"),
        Opt("--no-trunc", FLAG, "Do not truncate output"),
    ))


def bytes_size(size):
    """go-units BytesSize: binary units, 4 significant digits (`1.5MiB`, `7.627GiB`)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return "%.4g%s" % (value, unit)
        value /= 1024


def stat_row(given, record, before, after, seconds, limit, trunc):
    """One row from two samples (None for a container that is not running: zeros)."""
    network = (record.get("HostConfig") or {}).get("NetworkMode") or "host"
    cpu = mem = read = write = tasks = 0
    if before is not None and after is not None:
        cpu = max(0, after["ticks"] - before["ticks"]) / procstats.CLK_TCK / seconds * 100
        mem, read, write, tasks = (after["memory"], after["read"], after["write"],
                                   after["tasks"])
    running = before is not None
    return {"Container": given, "ID": record["Id"][:12] if trunc else record["Id"],
            "Name": record["Name"], "CPUPerc": "%.2f%%" % cpu,
            "MemUsage": "%s / %s" % (bytes_size(mem), bytes_size(limit if running else 0)),
            "MemPerc": "%.2f%%" % (mem * 100.0 / limit if running and limit else 0),
            "NetIO": "--" if network == "host" else "0B / 0B",
            "BlockIO": "%s / %s" % (human_size(read), human_size(write)), "PIDs": str(tasks)}


def _targets(store, parsed):
    """(name as given, record) pairs; unknown names are reported, and fail the command."""
    if not parsed.args:
        records = container_ops.all_records(store)
        records.sort(key=lambda r: r.get("Created", ""), reverse=True)
        return [(r["Name"], r) for r in records if parsed.all or
                (r.get("State") or {}).get("Status") in procstats.LIVE_STATES], 0
    found, status = [], 0
    for name in parsed.args:
        try:
            found.append((name, container_ops.find(store, name)))
        except BoxError as exc:
            report(exc)
            status = 1
    return found, status


def _measure(targets, trunc):
    limit = procstats.memory_total()
    pids = [procstats.container_pids(record) for _name, record in targets]
    start = time.monotonic()
    before = [procstats.sample(p) if p else None for p in pids]
    time.sleep(INTERVAL)
    seconds = time.monotonic() - start
    after = [procstats.sample(p) if p else None for p in pids]
    return [stat_row(name, record, b, a, seconds, limit, trunc)
            for (name, record), b, a in zip(targets, before, after)]


def main(parsed):
    compiled = compile_format(parsed.format, DEFAULT)
    store = open_store()
    targets, status = _targets(store, parsed)
    if parsed.args and not targets:
        return status
    trunc = not parsed.no_trunc
    if parsed.no_stream:
        write_formatted(compiled, _measure(targets, trunc), HEADERS)
        return status
    clear = sys.stdout.isatty()
    while True:
        rows = _measure(targets, trunc)
        if clear:
            sys.stdout.write("\033[2J\033[H")
        write_formatted(compiled, rows, HEADERS)
        sys.stdout.flush()
        time.sleep(max(0, 1 - INTERVAL))
        if not parsed.args:
            targets, _status = _targets(store, parsed)
        else:
            targets = [(n, container_ops.refresh_state(store, store.read_container(r["Id"])
                                                       or r)) for n, r in targets]
