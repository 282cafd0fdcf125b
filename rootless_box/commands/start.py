"""`start [-a] CONTAINER...`: start created or stopped containers under a monitor.

Owns: Docker's output (each name as given, or with -a the container's output until it exits,
and its exit status). Must not: start anything itself (ops/run.py start does).
"""

import os
import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import UsageError
from ._common import for_each


def command(verb, summary):
    return Command(verb, "start [OPTIONS] CONTAINER [CONTAINER...]", summary, (
        Opt("-a,--attach", FLAG, "Attach STDOUT/STDERR and forward signals"),
        Opt("-i,--interactive", FLAG, "Attach container's STDIN"),
        Opt("--detach-keys", VALUE, "Override the key sequence for detaching a container"),
    ), min_args=1)


def main(parsed):
    from ..ops import containers, run as run_ops
    from ..ops.storage import open_store
    from ..userns import idmap as idmaps
    if parsed.attach and len(parsed.args) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    from .attach import detach_sequence
    keys = detach_sequence(parsed.detach_keys)  # a bad value fails before anything starts
    idmap = idmaps.plan()
    store = open_store(idmap)

    def start_one(name, client=False):
        record = containers.find(store, name)
        if client and record.get("Config", {}).get("Tty") and containers.refresh_state(
                store, record)["State"].get("Status") not in containers.LIVE_STATES:
            from ..ops.watch import expect_client
            expect_client(store, record["Id"])  # its first output is for us
        record = run_ops.start(store, idmap, record)  # as started: its StartedAt
        if not parsed.attach:
            sys.stdout.write(name + "\n")
        return record

    if not parsed.attach and not parsed.interactive:
        return for_each(parsed.args, start_one)
    if len(parsed.args) > 1:
        raise UsageError("you cannot start and attach multiple containers at once")
    from ..ops.lifecycle import NextExit
    run = NextExit(store, containers.find(store, parsed.args[0])["Id"])
    record = start_one(parsed.args[0], client=True)
    if record.get("Config", {}).get("Tty"):
        from ..errors import Conflict
        from .attach import attach_terminal
        try:
            code = attach_terminal(store, record, stdin=parsed.interactive, keys=keys, run=run)
        except Conflict:
            # the run ended (and was restarted, or went) before this client connected, as
            # in run's kept-apart path: its output is all in the log
            if not run.ended():
                raise
            return _attach(store, record, run=run)
        return 0 if code is None else code  # detached: Docker's start -a says nothing
    return _attach(store, record, stdin=parsed.interactive, run=run)


def _feed_stdin(run):
    """A child process that copies our stdin into the container's (through its watcher's
    attach socket: run's, an ops.lifecycle.NextExit, never a restart's) until it ends; -> its
    pid, or None when the container takes no input (or that run has ended)."""
    conn = run.connect(timeout=0)  # its watcher listens before the start is answered
    if conn is None:
        return None
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        conn.close()
        return pid
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            conn.sendall(data)
    except OSError:
        pass
    os._exit(0)


def _attach(store, record, since_now=False, stdin=False, log=None, run=None):
    """-a: this start's output as the container writes it (since_now: from now on, for
    `attach`), then its exit status (Docker's start -a returns the container's status), at
    its next exit: a restart policy's next run is not followed. stdin: our input goes to a
    container made with -i. log: the log's path, when not the record's. run: the
    ops.lifecycle.NextExit made before the start."""
    import time
    from ..ops import containers, logfile
    from ..ops.lifecycle import NextExit
    cid = record["Id"]
    run = run or NextExit(store, cid)
    current = store.read_container(cid) or record
    # the start record says (a restart since has a later StartedAt)
    started = record["State"].get("StartedAt") or current["State"].get("StartedAt")
    since = time.time_ns() if since_now else logfile.parse_time(started or "") or None

    def running():
        return not run.ended()

    feeder = _feed_stdin(run) if stdin and current.get("Config", {}).get("OpenStdin") \
        else None
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for entry in logfile.follow(log or current.get("LogPath") or
                                    containers.log_path(store, cid), running, since=since):
            if not run.owns(entry.ns):
                break  # a restart's output: this run ended before it
            stream = err if entry.stream == "stderr" else out
            stream.write(entry.log.encode("utf-8", "replace"))
            stream.flush()
    finally:
        if feeder:
            try:
                os.kill(feeder, 9)
            except ProcessLookupError:
                pass
            os.waitpid(feeder, 0)
    return run.code()

