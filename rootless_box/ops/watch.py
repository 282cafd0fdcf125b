"""The watcher: what a detached container's monitor becomes once the container runs.

Owns: copying the container's output into its json-file log, waiting for it while it answers
the container's chowns (the seccomp listener, ops/chowns.py: loaded only for a container that
has one), recording its exit, and applying its restart policy (no, on-failure[:N], always, unless-stopped) with
Docker's doubling delay; a restart or a --rm removal goes back to the full tool (monitor.py's
`serve_again`) by exec, in the same process, which stays the container's keeper.
Also reaps the keeper's other children: it is a child subreaper, so orphans come to it (the
port forwarder, which ends with the container it serves, and that forwarder's own children);
never the container's process, whose exit status its own wait takes.
Must not: import more than the standard library's os/select/time and the package's small
modules (it stays resident for the container's life: each import is memory per container), or
use CPU while the container is quiet (it blocks in select and waitpid).
"""

import _signal  # builtin; `signal` adds enums that would weigh on every keeper
import os
import select
import sys
import time

from .. import fastjson

_READ = 65536
# `run -t`/`start -a` of a -t container: its client connects just after the start; what the
# terminal shows before that is kept (its last MiB) and sent to the first client first
FIRST_CLIENT = "first-client"
_BACKLOG = 1 << 20
# Docker's restart delay: 100 ms, doubling, at most a minute; reset after 10 s of running.
_FIRST_DELAY = 0.1
_MAX_DELAY = 60.0
_STABLE = 10.0


def _parse_fds(text):
    fds = {}
    for item in text.split(","):
        if item:
            name, _, fd = item.partition("=")
            fds[int(fd)] = name
    return fds


def _copy_output(fds, log, attach="", services=None, backlog=None):
    """Until every output fd reaches its end. A pty master reports EIO once the container's
    side is closed: that is its end. With attach ("FD:PATH" of a listening socket, for -t or -i
    containers), `attach` clients connect there: they get the terminal's output from then on, and what they send goes to
    the terminal. That input is written without blocking: a container that does not read its
    stdin holds back its clients (they are not read while input waits), never its output
    or its log. backlog (a bytearray: a client is on its way) keeps the terminal's output
    until the first client comes, which gets it first (even after the end: see _late)."""
    # where attach clients' input goes: the terminal, or (-i without -t) the stdin pipe,
    # which closes when the first client leaves, as Docker's StdinOnce does
    target = next((fd for fd, name in fds.items() if name in ("tty", "stdin")), None)
    stdin = target if fds.get(target) == "stdin" else None
    if target is not None:
        os.set_blocking(target, False)
    pending = b""  # input for target not written yet
    close_stdin = False  # once pending is written: the client that sent it left
    listener, attach_path = _listener(attach)
    clients = set()
    services = services if services is not None else {}
    try:
        while any(name != "stdin" for name in fds.values()):
            watched = [fd for fd, name in fds.items() if name != "stdin"] + \
                ([] if pending else list(clients)) + \
                ([listener.fileno()] if listener else []) + list(services)
            writable = [target] if pending and target in fds else []
            try:
                ready, can_write, _x = select.select(watched, writable, [])
            except InterruptedError:
                continue
            if can_write:
                pending = _write_some(target, pending)
                if pending is None:  # the container closed its stdin, or its terminal went
                    pending = b""
                    close_stdin = stdin is not None
                if not pending and close_stdin and stdin in fds:
                    os.close(stdin)
                    del fds[stdin]
            # a client that left while this round's output went out is closed at once, but
            # select() listed it: skip it (its number may even be a client accepted since)
            left = set()
            for fd in ready:
                if fd in left:
                    continue
                if fd in services:
                    if not services[fd]():
                        del services[fd]
                    continue
                if listener is not None and fd == listener.fileno():
                    try:
                        conn, _addr = listener._accept()
                    except OSError:
                        continue
                    if fds.get(target) == "tty":
                        _offer_terminal(conn, target)
                    if backlog:  # even when the terminal has just ended
                        _send_backlog(conn, backlog)
                    backlog = None
                    clients.add(conn)
                    continue
                if fd in clients:
                    data = _read(fd)
                    if not data:
                        clients.discard(fd)
                        os.close(fd)
                        if stdin is not None and stdin in fds:
                            close_stdin = True
                            if not pending:
                                os.close(stdin)
                                del fds[stdin]
                    elif target in fds:
                        pending = _write_some(target, data)
                        if pending is None:
                            pending = b""
                            if target == stdin:
                                os.close(stdin)  # the container closed its stdin
                                del fds[stdin]
                    continue
                data = _read(fd)
                if data is None:
                    continue  # nothing after all (the master is non-blocking now)
                if not data:
                    os.close(fd)
                    del fds[fd]
                    continue
                if log is not None:
                    stream = "stdout" if fds[fd] == "tty" else fds[fd]
                    log.write(stream, data)
                if fds[fd] != "tty":
                    continue  # attach reads a pipe container's output from its log
                if backlog is not None:
                    backlog += data
                    del backlog[:-_BACKLOG]
                for client in list(clients):
                    # clients' sockets block: all is written, or the client has left
                    if _write_some(client, data) is None:
                        clients.discard(client)
                        os.close(client)
                        left.add(client)
    finally:
        for client in clients:
            os.close(client)
        for fd, name in list(fds.items()):
            if name == "stdin":
                os.close(fd)
        if listener is not None:
            if backlog:
                _late(listener, backlog)
            listener.close()
            try:
                os.unlink(attach_path)
            except OSError:
                pass


def _offer_terminal(conn, master):
    """An attach client's first message: one byte and the terminal's master, which it uses
    for the window size only (TIOCSWINSZ at attach and on each SIGWINCH, as `docker attach`
    resizes); the bytes keep flowing through this process. conn: the client's fd. _socket,
    not socket: the latter's enums weigh ~0.5 MiB in a process resident per container."""
    import _socket
    sock = _socket.socket(fileno=conn)
    try:
        sock.sendmsg([b"T"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS,
                               master.to_bytes(4, sys.byteorder))])
    except OSError:
        pass
    finally:
        sock.detach()


def expect_client(store, cid):
    """Before a start whose client attaches to its terminal right after (run -t, start -a):
    the watcher keeps what the terminal shows until that client comes."""
    with open(os.path.join(store.container_dir(cid), FIRST_CLIENT), "wb"):
        pass


# How long a container's end waits for the client that announced itself and has not come
# (one killed meanwhile delays the exit's record by this much, nothing else).
_FIRST_CLIENT_WAIT = 5


def _send_backlog(conn, backlog):
    """conn: the client's fd (a blocking socket: the write returns when all is sent)."""
    view = memoryview(backlog)
    try:
        while view:
            view = view[os.write(conn, view):]
    except OSError:
        pass  # the client left: it reads the log instead


def _late(listener, backlog):
    """The container ended before its client was accepted: a client already connecting
    gets the backlog (the whole session) and the end; one that comes later reads the log.
    The client announced itself (FIRST_CLIENT) before the start, so it is waited for a
    little: a container as quick as `echo` ends before `start -a` has connected."""
    select.select([listener.fileno()], [], [], _FIRST_CLIENT_WAIT)
    listener.setblocking(False)
    while True:
        try:
            conn, _addr = listener._accept()  # an fd: the listener is a bare _socket
        except OSError:
            return
        os.set_blocking(conn, True)
        _send_backlog(conn, backlog)
        os.close(conn)


def _write_some(fd, data):
    """Write what fd takes now (all of it, if fd blocks); the rest (b"" when all went), or
    None when the peer is gone (a container that closed its stdin, a client that left)."""
    try:
        while data:
            data = data[os.write(fd, data):]
    except BlockingIOError:
        return data
    except OSError:
        return None
    return data


def _read(fd):
    """Bytes, b"" at the end (EIO from a pty master whose other side closed), None when a
    non-blocking fd had nothing after all."""
    try:
        return os.read(fd, _READ)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _listener(attach):
    """The attach socket the monitor made ("FD:PATH"), or None."""
    if not attach:
        return None, None
    import _socket
    fd, _, path = attach.partition(":")
    return _socket.socket(fileno=int(fd)), path


def _reap_others(keep):
    """Reap the exited children but keep (the container's process, None: all of them): the
    orphans a subreaper is given would stay zombies for the container's whole life, two
    more at each restart (the forwarder and its helpers). waitid(WNOWAIT) looks without
    reaping, so keep's status stays for _wait; when keep is the first exited child, the
    others wait behind it for the sweep after its wait."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return  # no children at all
        except InterruptedError:
            continue
        if info is None or info.si_pid == keep:
            return
        try:
            os.waitpid(info.si_pid, 0)  # exited: at once
        except ChildProcessError:
            pass


def _reap_meanwhile(middle):
    """Orphans that ended before this watcher started (during a restart's set-up), then
    each as it ends (SIGCHLD). SA_RESTART: a blocking call is not cut short for it (the
    handler runs at the next select, which returns EINTR anyway, or after the wait)."""
    _signal.signal(_signal.SIGCHLD, lambda _sig, _frame: _reap_others(middle))
    _signal.siginterrupt(_signal.SIGCHLD, False)
    _reap_others(middle)


def _wait(middle, services=None):
    status = _serve_until_exit(middle, services) if services else None
    while status is None:
        try:
            _pid, status = os.waitpid(middle, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 125
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _serve_until_exit(pid, services):
    """The container closed its output but may still chown: serve until it exits. Returns
    its wait status when it had to be reaped here (no pidfds: Linux < 5.3), else None."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    try:
        while services:
            watched = list(services) + ([pidfd] if pidfd is not None else [])
            try:
                ready, _w, _x = select.select(watched, [], [],
                                              None if pidfd is not None else 0.5)
            except InterruptedError:
                continue
            if pidfd is not None and pidfd in ready:
                return None
            if pidfd is None:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    return None
                if done:
                    return status
            for fd in ready:
                if not services[fd]():
                    del services[fd]
    finally:
        if pidfd is not None:
            os.close(pidfd)
    return None


def _read_record(path):
    try:
        with open(path, "rb") as f:
            return fastjson.loads(f.read())
    except (OSError, ValueError):
        return None


def should_restart(record, code):
    """Docker's rules: no; on-failure[:N] (a non-zero exit, at most N restarts); always and
    unless-stopped (except after a `stop`)."""
    policy = (record.get("HostConfig") or {}).get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    state = record.get("State") or {}
    if name == "no" or state.get("StoppedByUser"):
        return False
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return code != 0 and (not limit or (record.get("RestartCount") or 0) < limit)
    return name in ("always", "unless-stopped")


def _fake_ids(text):
    """"UID:GID:G1,G2" -> (uid, gid, [groups]): the ids get*id answer with (a non-root user
    under the single-id mapping)."""
    uid, gid, groups = text.split(":")
    return int(uid), int(gid), [int(g) for g in groups.split(",") if g]


def main(argv):
    """argv: store root, container ID, the middle process's pid, fds ("stdout=N,stderr=M" or
    "tty=N"), the attach socket ("FD:PATH", empty: none), the seccomp listener's fd
    (empty: none) and, for a non-root user under the single-id mapping, its fake ids
    ("UID:GID:G1,G2")."""
    root, cid, middle, fd_text = argv[:4]
    _reap_meanwhile(int(middle))
    attach = argv[4] if len(argv) > 4 else ""
    services = {}
    listener = int(argv[5]) if len(argv) > 5 and argv[5] else None
    if listener is not None:
        from .chowns import serve
        ids = _fake_ids(argv[6]) if len(argv) > 6 and argv[6] else None
        services[listener] = lambda: serve(listener, ids)
    from .logwriter import LogWriter
    # the store's module is imported at the exit, not for the container's whole life (it
    # is a quarter of what the imports weigh); its layout: containers/<id>/
    cdir = os.path.join(root, "containers", cid)
    record_path = os.path.join(cdir, "container.json")
    record = _read_record(record_path) or {}
    started = time.monotonic()
    log = None
    log_path = record.get("LogPath")
    if log_path:
        config = (record.get("HostConfig") or {}).get("LogConfig") or {}
        # --log-driver none: nobody reads this log back (`logs` refuses), attach clients
        # alone follow it, so a little of it is enough
        opts = {"max-size": "1m", "max-file": "2"} if config.get("Type") == "none" else \
            config.get("Config") or {}
        log = LogWriter(log_path, **_log_options(opts))
    backlog = None
    try:
        os.unlink(os.path.join(cdir, FIRST_CLIENT))  # for this start only
        backlog = bytearray()
    except OSError:
        pass
    try:
        _copy_output(_parse_fds(fd_text), log, attach, services, backlog)
    finally:
        if log is not None:
            log.close()
    code = _wait(int(middle), services)
    _reap_others(None)  # the container's status is taken: whatever waited behind it
    if listener is not None:
        os.close(listener)  # a restart makes a new one
    cgroup = (record.get("State") or {}).get("CgroupPath")
    if cgroup:
        try:
            os.rmdir(cgroup)
        except OSError:
            pass  # a process the container left behind still holds it
    from ..oci.image import now_rfc3339
    from ..store import Store
    store = Store(root)
    now = now_rfc3339()
    with store.lock():
        record = _read_record(record_path)
        if record is None or not os.path.isdir(cdir):
            return 0  # removed meanwhile (rm -f)
        restart = should_restart(record, code)
        state = record.setdefault("State", {})
        state.update({"Running": False, "Paused": False, "Pid": 0, "ExitCode": code,
                      "FinishedAt": now, "Error": "", "CgroupPath": None})
        if restart:
            state.update({"Status": "restarting", "Restarting": True})
            record["RestartCount"] = (record.get("RestartCount") or 0) + 1
        else:
            state.update({"Status": "exited", "Restarting": False, "MonitorPid": 0})
        from .events import container as event
        # before the record says exited: whoever waits for that (stop) reports after it
        event(store, record, "die", exitCode=code)
        store.write_container(record)
    auto_remove = (record.get("HostConfig") or {}).get("AutoRemove")
    if restart:
        delay = _FIRST_DELAY if time.monotonic() - started > _STABLE else min(
            _MAX_DELAY, _FIRST_DELAY * 2 ** min(record["RestartCount"], 10))
        time.sleep(delay)
        _exec_full("restart", cid)
    elif auto_remove:
        _exec_full("remove", cid)
    return 0


def _log_options(opts):
    from .containers import parse_size
    result = {}
    if opts.get("max-size"):
        result["max_size"] = parse_size(opts["max-size"])
    if opts.get("max-file"):
        result["max_files"] = int(opts["max-file"])
    return result


def _exec_full(action, cid):
    """Back to the whole tool, in this process (a frozen binary: itself)."""
    if getattr(sys, "frozen", False):
        argv = [sys.executable, "__monitor", action, cid]
    else:
        boot = "import sys; sys.path.insert(0, %r); from rootless_box.cli import main; " \
               "sys.exit(main())" % os.path.dirname(os.path.dirname(os.path.dirname(
                   os.path.abspath(__file__))))
        argv = [sys.executable, "-c", boot, "__monitor", action, cid]
    os.execv(sys.executable, argv)
