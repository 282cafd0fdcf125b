"""The Engine API's fork server: where every job that may fork a container runs.

Owns: one process, forked by `system service` before its first thread, that stays
single-threaded for its whole life, with only the hot jobs' modules loaded (jobs.py,
build.py: what stays resident counts in the idle service's memory; a worker imports the
module of any other job itself, _job); per job it forks a worker (single-threaded too, so
unshare(CLONE_NEWUSER) and DESIGN.md's setup sequence hold in it), which runs one ops call
and answers over a socketpair the asking thread handed over with the job. A worker's answer is
JSON lines: `{"progress": ...}` lines while it works (pull), then one `{"ok": value}` or
`{"error": {...BoxError.to_dict()}}`. Extra fds may travel with a job (a hijacked client's
socket for exec). A request thread that goes away (client gone) closes its end: the worker
sees EPIPE and ends; nothing is left behind but what the ops call itself leaves on an error.
Must not: start a thread, or run a job in the server process itself (one job's crash must not
take the server down, and its state must not leak into the next job).
"""

import os
import select
import signal
import socket
import threading

from .. import errors, fastjson

# job name -> function(args, fds, progress) -> JSON value; filled by api/jobs.py
JOBS = {}
_MAX_MESSAGE = 1 << 20


class ForkServer:
    """The service's handle on the fork server (thread-safe)."""

    def __init__(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            code = 0
            try:
                _serve(theirs)
            except BaseException:
                code = 1
            os._exit(code)
        theirs.close()
        self.pid = pid
        self._sock = ours
        self._lock = threading.Lock()

    def submit(self, job, args, fds=()):
        """Start a job; -> a socket whose lines are the worker's answer."""
        mine, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            message = fastjson.dumps({"job": job, "args": args})
            with self._lock:
                socket.send_fds(self._sock, [message], [worker.fileno()] + list(fds))
        finally:
            worker.close()
        return mine

    def call(self, job, args, fds=(), on_progress=None):
        """Run a job to its end; -> its value, or raise its BoxError."""
        conn = self.submit(job, args, fds)
        try:
            return answer(conn, on_progress)
        finally:
            conn.close()

    def close(self):
        self._sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def answer(conn, on_progress=None):
    """Read a worker's lines from conn: progress to on_progress, then the value or the
    error raised here."""
    reader = conn.makefile("rb")
    try:
        for line in reader:
            msg = fastjson.loads(line)
            if "progress" in msg:
                if on_progress is not None:
                    on_progress(msg["progress"])
                continue
            if "ok" in msg:
                return msg["ok"]
            raise errors.from_dict(msg.get("error") or {})
    finally:
        reader.close()
    raise errors.BoxError("the service's worker died before it answered")


def _reap():
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _serve(control):
    """The fork server's loop: one worker per job, zombies reaped, gone with its service."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when we end
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # fill JOBS with what starting, running and building needs (jobs.py, build.py); here,
    # before any fork, while the service answers its first requests on the other core. The
    # other endpoint modules' jobs are imported by the worker that runs one (_job): resident
    # here, they would weigh on the idle service (bench/api.py) to save some ms on rare jobs
    from . import build, jobs  # noqa: F401
    while True:
        ready = select.select([control], [], [], 1.0)[0]
        _reap()
        if not ready:
            continue
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, _MAX_MESSAGE, 16)
        except OSError:
            return
        if not message:
            return  # the service closed its end: it is leaving, so do we
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            _worker(message, fds)  # never returns
        for fd in fds:
            os.close(fd)


def _worker(message, fds):
    reply = fds[0]
    code = 0
    try:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.setsid()  # a service stopped by ^C leaves its started containers alone

        def progress(value):
            _write(reply, {"progress": value})
        job = fastjson.loads(message)
        func = _job(job.get("job"))
        result = func(job.get("args") or {}, fds[1:], progress)
        _write(reply, {"ok": result})
    except errors.BoxError as exc:
        _write(reply, {"error": exc.to_dict()})
        code = 1
    except BaseException as exc:  # one job's bug is one answer, never the server's end
        _write(reply, {"error": {"class": "BoxError", "exit_code": 125, "hint": None,
                                 "message": "internal error: %s: %s" % (type(exc).__name__,
                                                                        exc)}})
        code = 1
    os._exit(code)


# the endpoint modules that define jobs of their own, besides jobs.py and build.py; last
# routes, which imports every endpoint module (a job added in a module not named here)
_JOB_MODULES = ("images2", "containers2", "objects", "routes")


def _job(name):
    """The function of a job, its module imported first when the fork server has not."""
    import importlib
    for module in (None,) + _JOB_MODULES:
        if module is not None:
            importlib.import_module("." + module, __package__)
        if name in JOBS:
            return JOBS[name]
    raise errors.BoxError("unknown job %r" % name)


def _write(fd, msg):
    data = fastjson.dumps(msg) + b"\n"
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
