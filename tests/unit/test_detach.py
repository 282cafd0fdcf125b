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


def test_an_error_after_the_last_word_is_not_written_to_the_reused_number():
    """The monitor and the forwarder close their report after `R`; an error raised later
    must not go to that number, another file's by then (here: a pipe dup'd onto it)."""
    other_r, other_w = os.pipe()

    def body(report_w):
        detach.last_word(report_w, b"R")
        os.dup2(other_w, report_w)  # what the next open() would have been given
        raise ValueError("late")
    try:
        report = detach.spawn(body, report=True,
                              on_error=lambda fd, exc: os.write(fd, b"E%s" % str(exc).encode()))
    finally:
        os.close(other_w)
    assert _read_to_eof(report) == "R"
    assert _read_to_eof(other_r) == ""  # EOF once the grandchild exited: nothing written


def test_the_monitors_error_line_skips_a_spent_report():
    """monitor._send, which the zygote's starter also calls directly after a failure."""
    from rootless_box import errors
    from rootless_box.ops import monitor
    report_r, report_w = os.pipe()
    other_r, other_w = os.pipe()
    try:
        detach.last_word(report_w, b"R7\n")
        os.dup2(other_w, report_w)
        monitor._send(report_w, errors.SetupError("late"))
        os.close(report_w)
    finally:
        detach._spent.discard(report_w)  # this test process's numbers are reused later
        os.close(other_w)
    assert _read_to_eof(report_r) == "R7\n" and _read_to_eof(other_r) == ""
    # an unspent report still gets the error
    report_r, report_w = os.pipe()
    monitor._send(report_w, errors.SetupError("early"))
    os.close(report_w)
    assert _read_to_eof(report_r).startswith("E{")


def test_the_grandchild_leaves_the_callers_directory_keeping_relative_paths_meaning(tmp_path):
    """A keeper must not hold the directory `run -d` ran in; a relative XDG_DATA_HOME still
    names the same store when its restarts read it again, and a relative RBX_INIT_PATH the
    same init program (a restart looks it up again)."""
    here = os.getcwd()
    names = ("XDG_DATA_HOME", "RBX_INIT_PATH")
    saved = {name: os.environ.get(name) for name in names}
    os.chdir(str(tmp_path))
    os.environ["XDG_DATA_HOME"] = "data"
    os.environ["RBX_INIT_PATH"] = "bin/catatonit"
    try:
        report = detach.spawn(lambda report_w: os.write(report_w, ("%s %s %s" % (
            os.getcwd(), os.environ["XDG_DATA_HOME"], os.environ["RBX_INIT_PATH"])).encode()),
            report=True)
    finally:
        os.chdir(here)
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
    assert _read_to_eof(report).split() == ["/", str(tmp_path / "data"),
                                            str(tmp_path / "bin" / "catatonit")]


def test_the_store_and_runtime_roots_are_absolute_even_from_relative_variables(tmp_path,
                                                                               monkeypatch):
    from rootless_box import config
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_DATA_HOME", "data")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "run")
    assert config.data_root() == str(tmp_path / "data" / "rootless-box")
    assert config.runtime_root() == str(tmp_path / "run" / "rootless-box")
