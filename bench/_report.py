"""The benchmarks' machine-readable rows, and their merge into the one table of bench/RESULTS.md.

Owns: the output convention every bench/[!_]*.py follows, the run counts of a quick run, and
writing RESULTS.md (a header with the machine, the date and the load, ONE Markdown table of every
script's figures beside the peer's from the same run and the ratio, then each script's notes).
Must not: run any benchmark or tool itself (the Makefile's bench target runs the scripts).

Convention. A script prints its human Markdown (a line of notes, its own table, maybe more
notes) on stdout, as before, and its progress on stderr. When the environment variable
BENCH_JSON_FD names an open file descriptor, it also writes one JSON object per figure on that
fd, one per line (`row()` below does it):

    {"script": "run_rm_true", "figure": "`run --rm true`, median", "ours": 58.9,
     "peer": 283.3, "peer_name": "podman", "unit": "ms", "why": null}

`ours` and `peer` are numbers in `unit` (ms, s, MiB, ticks), or null when that tool has no
figure (then `why` says why: "not installed", "failed"); `peer_name` is null for a figure of
rootless-box alone (a breakdown, a floor). The ratio is computed here: ours / peer.

Usage (the Makefile does this):
    python bench/_report.py start DIR           the machine and the load before the run
    python bench/_report.py quick-args NAME     the smallest run counts for bench/NAME.py
    python bench/_report.py merge DIR > OUT.md
DIR holds meta.json, rows.jsonl (every script's rows), and per script NAME.md (its stdout) and
NAME.status ("EXIT-CODE ARGS...").
"""

import json
import os
import platform
import subprocess
import sys
import time

# Smallest run counts that still produce every figure (make bench QUICK=1): for checking the
# pipeline on a busy machine, not for quoting.
QUICK_ARGS = {
    "run_rm_true": ["--runs", "5", "--warmup", "1"],
    "networks": ["--runs", "3", "--size-mb", "64", "--lookups", "50"],
    "unpack_commit": ["--runs", "1"],
    "build": ["--runs", "1"],
    "reproducible": ["--runs", "2"],
    "pull": ["--runs", "1", "--warmup", "0"],
    "lifecycle": ["--runs", "3", "--warmup", "1", "--count", "10", "--idle", "2"],
    "aptbuild": ["--runs", "1"],
    "ports": ["--runs", "1", "--size-mb", "64", "--connections", "200"],
    "compose": ["--runs", "1"],
    "api": ["--runs", "3", "--warmup", "1", "--count", "10", "--activations", "2"],
}

PEER_VERSIONS = ("podman", "buildah", "skopeo", "umoci", "runc", "tar")


def row(figure, ours, peer=None, peer_name=None, unit="s", why=None, script=None):
    """Write one figure on $BENCH_JSON_FD (nothing when it is unset)."""
    fd = os.environ.get("BENCH_JSON_FD")
    if not fd:
        return
    if script is None:
        script = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    line = json.dumps({"script": script, "figure": figure, "ours": ours, "peer": peer,
                       "peer_name": peer_name, "unit": unit, "why": why}) + "\n"
    os.write(int(fd), line.encode())  # one write: lines of concurrent writers stay whole


# -- start -------------------------------------------------------------------------------------

def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _cpu_model():
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _version(tool):
    try:
        proc = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0].strip() if out and proc.returncode == 0 else None


def start(top):
    uname = os.uname()
    meta = {"started": time.time(), "kernel": "%s %s" % (uname.sysname, uname.release),
            "arch": uname.machine, "cores": os.cpu_count(), "cpu": _cpu_model(),
            "mem_gib": _mem_gib(), "load_before": os.getloadavg(),
            "python": platform.python_version(),
            "peers": {t: v for t in PEER_VERSIONS for v in [_version(t)] if v}}
    with open(os.path.join(top, "meta.json"), "w") as f:
        json.dump(meta, f)


def _mem_gib():
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / (1 << 20), 1)
    return None


# -- merge -------------------------------------------------------------------------------------

def _fmt(value, unit):
    if value is None:
        return None
    if unit == "ticks":
        return "%d ticks" % value
    if unit == "ms":
        return "%.1f ms" % value
    return "%.2f %s" % (value, unit)


def _scripts(top):
    """[(name, exit code, args)] in the order the Makefile ran them."""
    found = []
    for entry in os.listdir(top):
        if entry.endswith(".status"):
            path = os.path.join(top, entry)
            words = _read(path).split()
            found.append((os.path.getmtime(path), entry[:-len(".status")],
                          int(words[0]) if words else -1, words[1:]))
    return [(name, rc, args) for _t, name, rc, args in sorted(found)]


def _notes(md):
    """The script's stdout without its table: the lines of notes around it."""
    lines = [line for line in md.splitlines() if not line.lstrip().startswith("|")]
    text = "\n".join(lines).strip()
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def merge(top, out):
    meta = json.loads(_read(os.path.join(top, "meta.json")) or "{}")
    rows = []
    for line in _read(os.path.join(top, "rows.jsonl")).splitlines():
        if line.strip():
            rows.append(json.loads(line))
    scripts = _scripts(top)
    quick = [(name, args) for name, _rc, args in scripts if args]
    started = time.gmtime(meta.get("started", time.time()))
    load_after = os.getloadavg()
    w = out.write
    w("# Benchmark results\n\n")
    w("Written by `make bench` (bench/_report.py) on %s, from one run of every script in "
      "bench/, each beside its peers on the same machine in the same run.\n\n"
      % time.strftime("%Y-%m-%d %H:%M UTC", started))
    w("- Machine: %s cores (%s), %s GiB RAM, %s %s, Python %s.\n"
      % (meta.get("cores"), meta.get("cpu"), meta.get("mem_gib"), meta.get("kernel"),
         meta.get("arch"), meta.get("python")))
    lb = meta.get("load_before") or (0, 0, 0)
    w("- Load average (1/5/15 min): %.2f %.2f %.2f before, %.2f %.2f %.2f after; the "
      "machine is shared, so figures drift between runs.\n"
      % (tuple(lb) + tuple(load_after)))
    w("- Run time: %d min.\n" % round((time.time() - meta.get("started", time.time())) / 60))
    if meta.get("peers"):
        w("- Peers: %s.\n" % "; ".join(meta["peers"].values()))
    if quick:
        w("- **Quick run** (`make bench QUICK=1`): %s. These figures check the pipeline; "
          "their spread is wide. A full `make bench` uses each script's default counts.\n"
          % ", ".join("`%s %s`" % (name, " ".join(args)) for name, args in quick))
    failed = [name for name, rc, _args in scripts if rc != 0]
    if failed:
        w("- **Failed**: %s (exit status not 0; see the notes below and the run's stderr).\n"
          % ", ".join(failed))
    w("\nRatio = rootless-box / peer: below 1, rootless-box is faster or smaller.\n\n")
    w("| benchmark | figure | rootless-box | peer | peer's figure | ratio |\n")
    w("|---|---|---|---|---|---|\n")
    for r in rows:
        unit = r.get("unit", "s")
        ours = _fmt(r.get("ours"), unit) or "n/a (%s)" % (r.get("why") or "failed")
        peer_name = r.get("peer_name")
        if peer_name is None:
            peer_name, theirs = "-", "-"
        else:
            theirs = _fmt(r.get("peer"), unit) or "n/a (%s)" % (r.get("why") or "failed")
        ratio = "-"
        if r.get("ours") is not None and r.get("peer"):
            ratio = "%.2f" % (r["ours"] / r["peer"])
        w("| %s | %s | %s | %s | %s | %s |\n"
          % (r["script"], r["figure"], ours, peer_name, theirs, ratio))
    w("\n## Notes\n")
    for name, rc, args in scripts:
        w("\n### %s\n\n" % name)
        notes = _notes(_read(os.path.join(top, name + ".md")))
        if notes:
            w(notes + "\n")
        if not any(r["script"] == name for r in rows):
            w("\n(no figures: it wrote no rows)\n")
        if rc != 0:
            w("\n(`bench/%s.py` exited %d)\n" % (name, rc))


def main(argv):
    if len(argv) == 2 and argv[0] == "start":
        start(argv[1])
    elif len(argv) == 2 and argv[0] == "quick-args":
        print(" ".join(QUICK_ARGS.get(argv[1], [])))
    elif len(argv) == 2 and argv[0] == "merge":
        merge(argv[1], sys.stdout)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
