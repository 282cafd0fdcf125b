"""Processes that outlive their caller: the detached double fork, written once.

Owns: `spawn`, which runs a function in a grandchild of the caller that is nobody's child
(the intermediate child starts a new session, forks the grandchild and exits; the caller
reaps it before `spawn` returns, so no zombie is left and the grandchild goes to init or the
nearest subreaper), with what its callers need around it: a close-on-exec report pipe (its
read end returned, its write end the body's; an error raised before or in the body is
written there by the caller's `on_error`), the fds the grandchild keeps (the rest closed,
stdio on /dev/null), a nice increment, and the caller's child-subreaper flag set aside while
the intermediate exits. `last_word`: a report's line, after which no error is written to
its fd number (the number may be another file's by then). The grandchild leaves the
caller's working directory (`leave_cwd`).
`keep_only`, for every process that outlives its caller.
Must not: run anything of the caller's in the intermediate child (setsid, fork, _exit only),
or let a child return into the caller's code or finalize the interpreter (atexit handlers,
the caller's buffered output written again): both end in os._exit. Light: the run path
imports it (ops/storage); ctypes only when a subreaper is set aside.
"""

import os
import sys

_FAILED = 125  # what a child that raised exits with (nobody waits for it: for ps and strace)
# the paths a keeper may read again after it left the caller's directory, where relative ones
# were relative to: the store and the runtime dir (config.py), and what a restart looks up anew
# (the init program, the subordinate id files)
_PATH_VARIABLES = ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR",
                   "RBX_INIT_PATH", "RBX_SUBUID_FILE", "RBX_SUBGID_FILE", "RBX_REGISTRIES_CONF",
                   "RBX_LAUNCHER")
_spent = set()  # report fds this process closed after their line (last_word)


def spawn(body, report=False, on_error=None, keep=None, nice=0, subreaper=False):
    """Run body() in a detached grandchild; return once the intermediate child is reaped.
    report: a close-on-exec pipe between them: body(report_w) is called instead, and the
    read end is returned (the caller reads and closes it; EOF once every holder of the write
    end closed it or exited). on_error(report_w, exc): how an exception raised in the
    intermediate or the grandchild is written there (otherwise it is dropped).
    keep: None leaves the caller's fds open in the grandchild (the body closes them); an
    iterable: stdio on /dev/null and every fd closed but those and report_w, before body.
    nice: added to the grandchild's nice value. subreaper: the caller is a child subreaper:
    it is not one until the intermediate has exited, so that the grandchild goes to init
    rather than becoming the caller's own child, which nobody would reap.
    Raises OSError when the fork fails (nothing left open then)."""
    _flush()  # or a child that writes would write the caller's buffered output again
    report_r = report_w = None
    if report:
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
    if subreaper:
        _set_subreaper(False)
    try:
        try:
            first = os.fork()
        except BaseException:
            if report:
                os.close(report_r)
                os.close(report_w)
            raise
        if first == 0:
            _child(body, report_r, report_w, on_error, keep, nice)  # never returns
        if report:
            os.close(report_w)
        os.waitpid(first, 0)  # the grandchild is orphaned when the intermediate exits
    finally:
        if subreaper:
            _set_subreaper(True)
    return report_r


def _child(body, report_r, report_w, on_error, keep, nice):
    code = _FAILED
    try:
        try:
            if report_r is not None:
                os.close(report_r)
            os.setsid()
            if os.fork():
                code = 0
                return  # the intermediate: gone at once (finally: os._exit)
            leave_cwd()
            if keep is not None:
                keep_only(set(keep) | ({report_w} if report_w is not None else set()))
            if nice:
                os.nice(nice)
            if report_w is not None:
                body(report_w)
            else:
                body()
            code = 0
        except BaseException as exc:  # nothing may escape into the caller's code paths
            if on_error is not None and report_w is not None and not spent(report_w):
                on_error(report_w, exc)
    finally:
        os._exit(code)


def last_word(fd, data):
    """Write a report's one line (R...) and close its fd. The number is marked spent: an
    error raised after it is not written there (on_error, monitor._send), since by then
    the number may be another file's (the container's log, a client's socket). Such an
    error is dropped: the caller has its answer, and a monitor that dies of it shows in the
    state as exited (255), as any dead keeper does."""
    try:
        os.write(fd, data)
    finally:
        _spent.add(fd)
        os.close(fd)


def spent(fd):
    """Whether fd is a report this process already closed with last_word."""
    return fd in _spent


def leave_cwd(cwd=None):
    """chdir("/") in a process that outlives its caller: it keeps no directory of the
    caller's busy for its whole life (a mount the user could not unmount while a container
    lives; Docker's daemon and Podman's conmon hold none of the client's). Relative paths in
    the environment are made absolute first, from cwd (the caller's directory when this
    process was not started in it: a zygote's keeper) or this process's own."""
    for name in _PATH_VARIABLES:
        value = os.environ.get(name)
        if value and not value.startswith("/"):
            try:
                os.environ[name] = os.path.normpath(os.path.join(cwd or os.getcwd(), value))
            except OSError:
                pass  # the directory is gone: nothing to be relative to
    os.chdir("/")


def keep_only(keep):
    """In a process that outlives its caller (the port forwarder, a detached exec's joiner):
    stdio on /dev/null and every other fd but `keep` closed, so nothing of the caller's stays
    open with it (a shell reading the caller's stdout to its end, the store's lock file)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the fd of the listing itself, gone by now


def _flush():
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass  # closed or broken: the caller hears of it at its own next write


def _set_subreaper(on):
    from . import libc
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1 if on else 0)
