"""`attach [--detach-keys K] [--no-stdin] CONTAINER`: the terminal of a `run -d -t` container
(through its monitor's socket), or the output of any other running container.

Owns: Docker's attach behaviour as a user sees it: the terminal in raw mode, ctrl-p ctrl-q (or
--detach-keys) to leave the container running (attach: "read escape sequence", status 1, as
Docker's CLI returns its EscapeError; run and start -a: nothing, status 0), the container's
exit status when it ends. Must not: touch the container's processes (its monitor holds the
terminal).
"""

import os
import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import Conflict
from ..userns.pty import detach_sequence  # noqa: F401  (run's -it uses it from here)


def command(verb, summary):
    return Command(verb, "attach [OPTIONS] CONTAINER", summary, (
        Opt("--detach-keys", VALUE, "Override the key sequence for detaching a container"),
        Opt("--no-stdin", FLAG, "Do not attach STDIN"),
        Opt("--sig-proxy", FLAG, "Proxy all received signals to the process (default true)"),
    ), min_args=1, max_args=1)


def main(parsed):
    from ..ops import containers
    from ..ops.storage import open_store
    keys = detach_sequence(parsed.detach_keys)
    store = open_store()
    record = containers.refresh_state(store, containers.find(store, parsed.args[0]))
    if record["State"].get("Status") == "restarting":
        raise Conflict("you cannot attach to a restarting container, wait until it is running",
                       None, exit_code=1)
    if record["State"].get("Status") not in ("running", "paused"):
        raise Conflict("you cannot attach to a stopped container, start it first", None,
                       exit_code=1)
    if not record.get("Config", {}).get("Tty"):
        from .start import _attach
        return _attach(store, record, since_now=True, stdin=not parsed.no_stdin)
    code = attach_terminal(store, record, stdin=not parsed.no_stdin, keys=keys)
    if code is None:
        sys.stderr.write("read escape sequence\n")
        return 1
    return code


def _terminal_of(conn):
    """The terminal's master the watcher sends first (for the window size), or None from a
    watcher that sends none (one started by an older version): then a first byte of output
    that came instead is shown."""
    import select
    import socket
    if not select.select([conn], [], [], 1.0)[0]:
        return None
    try:
        msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 1)
    except OSError:
        return None
    if fds:
        return fds[0]
    if msg:
        sys.stdout.buffer.write(msg)
    return None


def _restarted(store, record, run):
    """The run record started (its StartedAt) has ended and a restart policy started
    another."""
    if not run.ended():
        return False
    current = store.read_container(record["Id"])
    return current is not None and (current["State"].get("StartedAt") !=
                                    record["State"].get("StartedAt"))


def attach_terminal(store, record, stdin=True, keys=None, run=None):
    """The terminal of a -t container, through its watcher's socket, until the container
    ends (-> its exit status; its next exit: a restart policy's next run is not attached)
    or the detach keys are typed (-> None). run: the ops.lifecycle.NextExit made before
    the start."""
    import socket
    from ..ops import lifecycle
    from ..ops.monitor import attach_socket
    from ..userns.pty import relay
    import time
    run = run or lifecycle.NextExit(store, record["Id"])
    # a container just started (run --detach-keys, start -a): its monitor has answered but
    # its watcher may not listen yet; wait for that while the container runs
    deadline = time.monotonic() + 15
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(attach_socket(record["Id"]))
            if not _restarted(store, record, run):
                break
        except OSError:
            pass
        conn.close()
        # ended: not a restart's socket either, whose terminal is another run's
        if run.ended() or time.monotonic() > deadline:
            raise Conflict("cannot attach to %s: its monitor does not offer its terminal"
                           % record["Name"], "it was started before attach existed; restart "
                           "it", exit_code=1) from None
        time.sleep(0.02)
    terminal = _terminal_of(conn)
    fd = conn.detach()
    sys.stdout.flush()
    try:
        detached = relay(fd, stdin, detach_keys=keys or detach_sequence(None),
                         winsize_fd=terminal)
    finally:
        if terminal is not None:
            os.close(terminal)
    if detached:
        return None
    deadline = time.monotonic() + 10
    while not run.ended() and time.monotonic() < deadline:
        time.sleep(0.02)  # the watcher records the exit a moment after the terminal closes
    return run.code()
