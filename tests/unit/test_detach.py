"""userns/detach.spawn, the one double fork of the monitor, the health checker, the zygote, the
port forwarder and the trash's deleter: what each relies on."""

import os

from rootless_box.userns import detach, libc


def _read_to_eof(fd):
    data = b""
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data.decode()
            data += chunk
    finally:
        os.close(fd)


def _children():
    """This process's children, every thread's (pytest may run threads)."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        with open("/proc/self/task/%s/children" % tid) as f:
            found |= {int(p) for p in f.read().split()}
    return found


def _reparented(report_w):
    """The grandchild's body: wait until the intermediate has gone (its pid is the session's
    id), then tell who we are."""
    while os.getppid() == os.getsid(0):
        os.sched_yield()
    os.write(report_w, b"%d %d %d %d" % (os.getpid(), os.getppid(), os.getsid(0),
                                         os.getpgid(0)))


def test_the_grandchild_is_nobodys_child_in_a_session_of_its_own():
    report = detach.spawn(_reparented, report=True)
    # the caller is back: the intermediate is reaped (no zombie), the grandchild not ours
    pid, ppid, sid, pgid = map(int, _read_to_eof(report).split())
    assert ppid != os.getpid()
    assert sid != os.getsid(0) and pgid == sid
    assert sid != pid  # not a session leader: no controlling terminal can come to it
    assert pid not in _children() and sid not in _children()  # sid: the intermediate's pid


def test_an_error_in_the_body_is_reported_and_the_grandchild_exits():
    def body(report_w):
        raise ValueError("no such thing")
    report = detach.spawn(body, report=True,
                          on_error=lambda fd, exc: os.write(fd, b"E%s" % str(exc).encode()))
    # read to EOF: the grandchild wrote the error and exited (os._exit, in the helper)
    assert _read_to_eof(report) == "Eno such thing"


def test_only_the_kept_fds_stay_open_with_stdio_on_dev_null_and_the_nice_value_raised():
    kept_r, kept_w = os.pipe()
    other_r, other_w = os.pipe()
    mine = os.nice(0)

    def body(report_w):
        state = []
        for fd in (kept_w, other_r, other_w):
            try:
                os.fstat(fd)
                state.append("open")
            except OSError:
                state.append("closed")
        state += [os.readlink("/proc/self/fd/%d" % fd) for fd in (0, 1, 2)]
        state.append(str(os.nice(0)))
        os.write(report_w, " ".join(state).encode())
        os.write(kept_w, b"kept")
    try:
        report = detach.spawn(body, report=True, keep={kept_w}, nice=3)
        state = _read_to_eof(report).split()
    finally:
        for fd in (kept_w, other_r, other_w):
            os.close(fd)
    assert state == ["open", "closed", "closed"] + ["/dev/null"] * 3 + [str(min(mine + 3, 19))]
    assert os.read(kept_r, 16) == b"kept"
    os.close(kept_r)


def test_a_subreaper_caller_does_not_get_the_grandchild_back():
    """health.spawn from a monitor (a subreaper): the checker goes to init, not to it (where
    nobody would reap it), and the caller is a subreaper again afterwards."""
    result_r, result_w = os.pipe()
    caller = os.fork()
    if caller == 0:
        code = 1
        try:
            libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
            apart = int(_read_to_eof(detach.spawn(_reparented, report=True,
                                                  subreaper=True)).split()[1])
            # and a subreaper again: a grandchild spawned without the flag comes back here
            back = int(_read_to_eof(detach.spawn(_reparented, report=True)).split()[1])
            os.write(result_w, b"%d %d %d" % (os.getpid(), apart, back))
            code = 0
        finally:
            os._exit(code)
    os.close(result_w)
    _pid, status = os.waitpid(caller, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    me, apart, back = map(int, _read_to_eof(result_r).split())
    assert apart != me and back == me
