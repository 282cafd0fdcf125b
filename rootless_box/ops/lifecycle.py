"""stop, kill, wait and restart: signals to a container and waiting for its recorded exit.

Owns: Docker's stop (the container's stop signal, then SIGKILL after the timeout; a stop is
remembered so restart policies leave the container down), kill (SIGKILL by default, any signal
by name or number), wait (until the exit is recorded; the Engine API's conditions as dockerd
answers them: wait_condition), restart, and NextExit: one run of a container as a client
attached to it sees it end (Docker's `next-exit`).
Must not: write a container's exit itself while its monitor lives (the monitor knows the
status), or print.
"""

import os
import time

from .. import errors
from . import containers

_POLL = 0.02
DEFAULT_STOP_TIMEOUT = 10


def signal_number(text):
    """SIGTERM, TERM, term, 15 -> 15 (Docker accepts all of these)."""
    import signal
    value = str(text).strip()
    if value.isdigit():
        number = int(value)
        if 0 < number < 65:
            return number
    else:
        name = value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        number = getattr(signal, name, None)
        if isinstance(number, int) and name.isidentifier():
            return int(number)
    raise errors.UsageError("invalid signal: %s" % text,
                            "give a name such as SIGTERM or KILL, or a number")


def _running(store, record):
    record = containers.refresh_state(store, record)
    state = record["State"]
    if state.get("Status") not in containers.LIVE_STATES or not state.get("Pid"):
        return None
    return record


def kill(store, name, sig="KILL"):
    """`kill [-s SIG]`: the signal to the container's init. A container that is not running
    is Docker's error (exit 1 per name)."""
    number = signal_number(sig)
    record = containers.find(store, name)
    running = _running(store, record)
    if running is None:
        raise errors.Conflict("cannot kill container %s: container %s is not running" % (
            name, record["Id"]), None, exit_code=1)
    from .events import container as event
    event(store, running, "kill", signal=number)  # before: a `die` it causes comes after
    _signal(running, number)
    return record


def _signal(record, number):
    pid = record["State"]["Pid"]
    if containers.proc_start_time(pid) != record["State"].get("PidStartTime"):
        return False
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return False
    return True


def wait_exit(store, record, timeout=None):
    """Until the container's exit is recorded (or its keeper is found gone). -> the record,
    or None when the container was removed meanwhile."""
    deadline = None if timeout is None else time.monotonic() + timeout
    cid = record["Id"]
    while True:
        current = store.read_container(cid)
        if current is None:
            return None
        current = containers.refresh_state(store, current)
        if current["State"].get("Status") not in containers.LIVE_STATES:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            return current
        time.sleep(_POLL)


class NextExit:
    """The next exit of a container, as Docker's CLI waits for it in `run` without -d, `start
    -a` and `attach` (condition next-exit): the first exit after this was made, even when a
    restart policy starts the container again at once. Make it before the start (or the
    attach). The exit is the first `die` event of the container since then (its watcher
    writes it before it records the exit, before any restart); a record gone, or found not
    running (a keeper killed writes no event), ends it too."""

    def __init__(self, store, cid):
        from . import events
        self.store, self.cid = store, cid
        self.since = time.time_ns()
        self.journal = events.mark(store)
        self.die = None  # the die event, once seen
        self.ended_at = None  # when a record found not running ended it (no event)
        self.live_at = 0  # ns: the run was found live at this time (entries up to it are its)

    def ended(self):
        """The run has exited (and may have been restarted since)."""
        if self.die is not None or self.ended_at is not None:
            return True
        checked = time.time_ns()
        if self._died():
            return True
        current = self.store.read_container(self.cid)
        if current is None or containers.refresh_state(self.store, current)["State"].get(
                "Status") not in ("running", "paused"):
            # an exit the record shows since the read above has its event already
            self._died()
            self.ended_at = checked
            return True
        self.live_at = checked
        return False

    def _died(self):
        from . import events
        mark = events.mark(self.store)  # before the read: nothing written meanwhile is missed
        for event in events.read(self.store, since=self.since, after=self.journal):
            if event.get("Action") == "die" and event.get("Type") == "container" and \
                    event.get("id") == self.cid:
                self.die = event
                return True
        self.journal = mark
        return False

    def owns(self, ns):
        """Whether something written at time ns (a log entry) is of this run, not of a
        restart after it."""
        if ns <= self.live_at:
            return True
        if not self.ended():
            return True
        return self.die is None or ns <= self.die["timeNano"]

    def connect(self, timeout=10, stop=None):
        """A connection to this run's attach socket (its watcher's: stdin, a terminal), waited
        for while the run lives (its monitor records it running a moment before its watcher
        listens) -> the socket, or None once the run has ended (the socket may be a restart's
        then: its input is not this client's), stop() says so, or after timeout. A connection
        made before the run is found not ended is this run's: a restart's watcher listens
        only after this run's die event."""
        import socket
        from .monitor import attach_socket
        deadline = time.monotonic() + timeout
        while True:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                conn.connect(attach_socket(self.cid))
            except OSError:
                conn.close()
                conn = None
            if self.ended():
                if conn is not None:
                    conn.close()
                return None
            if conn is not None:
                return conn
            if (stop is not None and stop()) or time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def code(self, default=0):
        """The exit status: the die event's, else the record's (once ended)."""
        if self.die is not None:
            try:
                return int(self.die["Actor"]["Attributes"].get("exitCode", default))
            except (TypeError, ValueError):
                return default
        current = self.store.read_container(self.cid)
        if current is None:
            return default
        return current["State"].get("ExitCode", default) or 0


WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def wait_condition(store, record, condition="not-running", gone=None, run=None):
    """Docker's wait conditions, as dockerd's State.Wait answers them -> the exit status, or
    None once gone() says the client left. not-running: at once for a container that is
    not running (created, exited), else its next exit; a restarting container counts as
    running, as in dockerd (Running stays true), and so does one being started. next-exit:
    the first exit after this call (NextExit's die event), even one a restart policy
    follows at once. removed: the removal, with the last exit's status. A removal ends every
    condition (dockerd wakes all its waiters); one of a live container is rm -f's SIGKILL.
    run: a NextExit made when the wait began (before its answer's headers, after which the
    docker CLI starts the container)."""
    cid = record["Id"]
    run = run or NextExit(store, cid)
    # the state read again after the mark: an exit before it is not this wait's next one
    state = containers.refresh_state(store, store.read_container(cid) or record)["State"]
    if condition == "not-running" and not _live(state):
        return state.get("ExitCode") or 0
    started = state.get("StartedAt") or ""
    code = state.get("ExitCode") or 0
    # being started counts as live, not as having run: the API's `create` worker is its
    # record's starter until it exits, and a next-exit wait seeing it go has seen no run
    ran = state.get("Status") in containers.LIVE_STATES
    while True:
        if condition != "removed" and run._died():
            return run.code()
        current = store.read_container(cid)
        if current is None:
            if condition != "removed" and run._died():
                return run.code()
            return _last_die(store, run, 137 if ran else code)
        state = containers.refresh_state(store, current)["State"]
        if state.get("Status") in containers.LIVE_STATES:
            ran = True
        elif not containers.being_started(state):
            code = state.get("ExitCode") or 0
            # an exit with no die event (a killed keeper's), once this call saw a run; a
            # stopped container waits for its next start under next-exit (dockerd)
            if condition != "removed" and (
                    ran or condition == "not-running" or
                    (state.get("StartedAt") or "") != started):
                return run.code(code) if run._died() else code
            ran = False
        if gone is not None and gone():
            return None
        time.sleep(_POLL)


def _live(state):
    return state.get("Status") in containers.LIVE_STATES or containers.being_started(state)


def _last_die(store, run, default):
    """The status of cid's last die event since run was made (the record, and its State, can
    be gone before a poll saw the exit)."""
    from . import events
    for event in events.read(store, since=run.since, after=run.journal):
        if event.get("Type") == "container" and event.get("Action") == "die" and \
                event.get("id") == run.cid:
            try:
                default = int(event["Actor"]["Attributes"].get("exitCode", default))
            except (TypeError, ValueError):
                pass
    return default


def stop(store, name, timeout=None, sig=None):
    """`stop [-t N] [-s SIG]`: the stop signal (sig, else the container's), then SIGKILL
    after N seconds (the container's StopTimeout, else 10). Stopping a stopped container is
    not an error (Docker)."""
    record = containers.find(store, name)
    if timeout is None:
        timeout = record.get("Config", {}).get("StopTimeout")
        timeout = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
    record = containers.update_state(store, record, StoppedByUser=True) or record
    running = _running(store, record)
    if running is None:
        return record
    if running["State"].get("Status") == "paused":
        from . import pause
        pause.thaw(store, running)
    number = signal_number(sig or running.get("Config", {}).get("StopSignal") or "SIGTERM")
    from .events import container as event
    event(store, running, "kill", signal=number)
    if timeout < 0:
        timeout = None  # Docker: -1 waits for ever
    if _signal(running, number) and timeout != 0:
        done = wait_exit(store, running, timeout)
        if done is None or done["State"].get("Status") not in containers.LIVE_STATES:
            event(store, done or running, "stop")
            return done or record
    current = store.read_container(record["Id"])
    if current is not None and current["State"].get("Status") in containers.LIVE_STATES:
        # the event first, as for the stop signal above: the watcher writes `die` as soon
        # as the container dies, which a busy machine let come before a kill written after
        event(store, current, "kill", signal=9)
        _signal(current, 9)
        current = wait_exit(store, current) or current
    event(store, current or running, "stop")
    return current or record


def restart(store, idmap, name, timeout=None, sig=None):
    from .run import start
    stop(store, name, timeout, sig)
    record = containers.find(store, name)
    record = start(store, idmap, record)
    from .events import container as event
    event(store, record, "restart")
    return record
