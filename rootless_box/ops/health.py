"""Health checks: Docker's HEALTHCHECK and --health-* run against a running container, with
no daemon and no systemd.

Owns: the container's Config.Healthcheck (the image's, field by field overridden by the
flags; --no-healthcheck and `NONE` turn it off), Docker's defaults (interval 30 s, timeout
30 s, retries 3, start interval 5 s), the checker process and State.Health (Status starting,
healthy or unhealthy; FailingStreak; the last 5 results in Log, output cut at 4096 bytes):
moby daemon/health.go's rules (a failure in the start period does not count, a success
ends it). The checker is one small process per container that has a check, started beside its
keeper (the foreground `run`, or the monitor of a detached one): it sleeps until the next
check or until the container's init exits (a pidfd), runs the check as `exec` does (joining
the container), kills it at its timeout, and writes the result under the store lock. It
leaves with the container: a restarted one gets a new checker.
Must not: print; run when the container is not running; keep anything of its starter's open.
"""

import os
import sys
import time

from .. import errors

DEFAULTS = {"Interval": 30 * 10 ** 9, "Timeout": 30 * 10 ** 9, "Retries": 3,
            "StartPeriod": 0, "StartInterval": 5 * 10 ** 9}
MAX_LOG = 5
MAX_OUTPUT = 4096
FIELDS = {"health_cmd": None, "health_interval": None, "health_timeout": None,
          "health_retries": None, "health_start_period": None, "health_start_interval": None,
          "no_healthcheck": False, "health_test": None}


def _duration(flag, text):
    from ..oci.image import parse_duration
    try:
        value = parse_duration(text)
    except ValueError:
        raise errors.UsageError('invalid argument "%s" for "%s" flag: time: invalid '
                                'duration "%s"' % (text, flag, text)) from None
    if value < 0 or 0 < value < 10 ** 6:
        raise errors.UsageError("%s cannot be less than 1ms" % flag)
    return value


def flags(opts):
    """The --health-* flags as Healthcheck fields (only those given); --no-healthcheck is
    {"Test": ["NONE"]}. Bad values: one UsageError, before anything is made."""
    given = any(getattr(opts, name) not in (None, False) for name in FIELDS
                if name != "no_healthcheck")
    if opts.no_healthcheck:
        if given:
            raise errors.UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    check = {}
    if opts.health_test:  # the Engine API's Config.Healthcheck.Test, taken whole
        test = list(opts.health_test)
        if test[0] not in ("CMD", "CMD-SHELL", "NONE") or (test[0] == "CMD-SHELL" and
                                                           len(test) != 2):
            raise errors.UsageError("invalid Healthcheck.Test %r: it starts with CMD, "
                                    "CMD-SHELL (and one command line) or NONE" % (test,))
        check["Test"] = test
    if opts.health_cmd:
        check["Test"] = ["CMD-SHELL", opts.health_cmd]
    elif opts.health_test:  # a whole Test list (compose's healthcheck.test: CMD or CMD-SHELL)
        check["Test"] = list(opts.health_test)
    for name, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod"),
                      ("health_start_interval", "StartInterval")):
        text = getattr(opts, name)
        if text:
            check[key] = _duration("--" + name.replace("_", "-"), text)
    if opts.health_retries:
        try:
            check["Retries"] = int(opts.health_retries)
        except ValueError:
            raise errors.UsageError('invalid argument "%s" for "--health-retries" flag'
                                    % opts.health_retries) from None
        if check["Retries"] < 0:
            raise errors.UsageError("--health-retries cannot be negative")
    return check


def config(opts, image_check):
    """Config.Healthcheck: the image's with the flags over it, field by field (Docker's
    merge), or None when neither has one."""
    given = flags(opts)
    if given.get("Test") == ["NONE"]:
        return given
    check = dict(image_check or {}, **given)
    return check if check.get("Test") else None


def active(check):
    """Whether a Config.Healthcheck asks for checks (not NONE, not empty)."""
    test = (check or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def argv_of(test):
    """Test -> the command exec runs: CMD's words, or CMD-SHELL's under /bin/sh -c."""
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:]) if test[0] == "CMD" else list(test)


def _setting(check, key):
    value = check.get(key)
    return DEFAULTS[key] if not value else value


# -- the checker -------------------------------------------------------------------------------

def spawn(store, cid, subreaper=False):
    """Start the container's checker, apart from the caller (a new session, nothing of the
    caller's open, re-parented at once): `rootless-box __health STORE ID`. subreaper: the
    caller is one (a monitor): it stops being one while the checker is orphaned, which then
    goes to init instead of becoming the watcher's unreaped child."""
    from ..userns import detach
    argv = _argv([store.root, cid])
    detach.spawn(lambda: os.execv(sys.executable, argv), keep=(), subreaper=subreaper)


def _argv(args):
    if getattr(sys, "frozen", False):
        return [sys.executable, "__health"] + args
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    boot = ("import sys; sys.path.insert(0, %r); from rootless_box.cli import main; "
            "sys.exit(main())" % package_parent)
    return [sys.executable, "-c", boot, "__health"] + args


def main(argv):
    """The checker: `__health STORE ID`. Returns once the container's init has exited."""
    from ..store import Store
    store = Store(argv[0])
    cid = argv[1]
    record = store.read_container(cid)
    if record is None:
        return 0
    check = (record.get("Config") or {}).get("Healthcheck")
    pid = (record.get("State") or {}).get("Pid") or 0
    if not active(check) or not pid:
        return 0
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return 0  # gone already
    if not _record(store, cid, pid, None):
        return 0
    import select
    started = time.monotonic()
    start_period = _setting(check, "StartPeriod") / 1e9 if check.get("StartPeriod") else 0
    while True:
        in_start = time.monotonic() - started < start_period
        wait = _setting(check, "StartInterval" if in_start else "Interval") / 1e9
        ready, _w, _x = select.select([pidfd], [], [], wait)
        if ready:
            return 0  # the container exited
        if ((store.read_container(cid) or {}).get("State") or {}).get("Status") == "paused":
            continue  # moby skips a paused container's checks
        result = _run_check(cid, check)
        in_start = time.monotonic() - started < start_period
        if not _record(store, cid, pid, result, in_start, check):
            return 0


def _run_check(cid, check):
    """One check, as `exec CONTAINER CMD` with its output captured; killed at the timeout.
    -> Docker's log entry (Start, End, ExitCode, Output)."""
    import select
    import signal
    from ..oci.image import now_rfc3339
    start = now_rfc3339()
    out_r, out_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(out_r)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            from .exec import ExecOptions, exec_in
            code = exec_in(ExecOptions(cid, argv_of(check["Test"])))
        except errors.BoxError as exc:
            os.write(2, (exc.message + "\n").encode())
            code = exc.exit_code
        except BaseException:
            code = 125
        os._exit(code if 0 <= code < 256 else 125)
    os.close(out_w)
    timeout = _setting(check, "Timeout") / 1e9
    deadline = time.monotonic() + timeout
    output, timed_out = b"", False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _w, _x = select.select([out_r], [], [], left)
        if not ready:
            continue
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        output = (output + chunk)[:MAX_OUTPUT]
    os.close(out_r)
    if timed_out:
        # the exec'd process and its joiner go with it (their parent-death signals)
        os.kill(child, signal.SIGKILL)
    _pid, status = os.waitpid(child, 0)
    if timed_out:
        return {"Start": start, "End": now_rfc3339(), "ExitCode": -1,
                "Output": "Health check exceeded timeout (%gs)" % timeout}
    code = os.waitstatus_to_exitcode(status)
    return {"Start": start, "End": now_rfc3339(), "ExitCode": code,
            "Output": output.decode("utf-8", "replace")}


def _record(store, cid, pid, result, in_start=False, check=None):
    """State.Health after one result (None: the start, status starting), under the lock;
    False when the container is no longer the one checked (stopped, removed, restarted)."""
    with store.lock():
        current = store.read_container(cid)
        state = (current or {}).get("State") or {}
        if current is None or state.get("Pid") != pid or state.get("Status") not in (
                "running", "paused"):
            return False
        before = (state.get("Health") or {}).get("Status")
        state["Health"] = _next(state.get("Health"), result, in_start, check)
        store.write_container(current)
    if result is not None and state["Health"]["Status"] != before:
        from .events import container as event
        event(store, current, "health_status: " + state["Health"]["Status"])
    return True


def _next(health, result, in_start, check):
    """moby's handleProbeResult: a success makes healthy and resets the streak; a failure
    counts (not in the start period) and makes unhealthy at Retries."""
    if result is None:
        return {"Status": "starting", "FailingStreak": 0, "Log": []}
    health = dict(health or {"Status": "starting", "FailingStreak": 0, "Log": []})
    health["Log"] = (list(health.get("Log") or []) + [result])[-MAX_LOG:]
    if result["ExitCode"] == 0:
        health["Status"], health["FailingStreak"] = "healthy", 0
    elif not in_start:
        health["FailingStreak"] = (health.get("FailingStreak") or 0) + 1
        if health["FailingStreak"] >= _setting(check, "Retries"):
            health["Status"] = "unhealthy"
    return health


def status_suffix(state):
    """ps's STATUS suffix for a running container with a check: " (healthy)" and the like."""
    health = state.get("Health")
    if not health or state.get("Status") != "running":
        return ""
    if health.get("Status") == "starting":
        return " (health: starting)"
    return " (%s)" % health.get("Status")
