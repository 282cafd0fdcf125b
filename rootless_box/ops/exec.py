"""The `exec` use case: a command in a running container, and its exit status.

Owns: Docker's rules for exec (moby daemon/exec.go, docker/cli container/exec.go): the
container must be running (else "container ID is not running", exit 1, as Docker's CLI exits
on a daemon error), the user and working directory default to the container's, the
environment is the container's plus TERM=xterm with -t plus -e/--env-file (later wins),
the container's --ulimit values apply, a missing working directory is not created; the exec
spec handed to userns/join.py; signals to the CLI forwarded to the command, its pty relayed.
Must not: print, call syscalls (userns/ does), or change the container's record.
"""

import os

from .. import errors
from ..userns import join
from . import containers
from .run import SignalForwarder, _wait, merge_env, parse_env_file
from .storage import open_store


class ExecOptions:
    """What `exec` was asked for; commands/exec.py fills it from the command line."""

    def __init__(self, container, command, **kw):
        self.container = container
        self.command = list(command)
        self.env = list(kw.get("env", ()))
        self.env_file = list(kw.get("env_file", ()))
        self.workdir = kw.get("workdir")
        self.user = kw.get("user")
        self.interactive = kw.get("interactive", False)
        self.tty = kw.get("tty", False)
        self.detach = kw.get("detach", False)
        self.winsize = kw.get("winsize")  # (rows, cols) when the caller's terminal is not ours
        # the Engine API's: the keys (bytes) that end a -it exec's attachment and leave it
        # running, and what lets the client go then (its socket shut); the CLI has neither
        self.detach_keys = kw.get("detach_keys")
        self.on_detach = kw.get("on_detach")


def _not_running(record):
    # Docker's CLI exits 1 on any error the daemon answers with
    return errors.Conflict("container %s is not running" % record["Id"],
                           "start it first; 'rootless-box ps -a' shows its state",
                           exit_code=1)


def find_running(store, name):
    """The record of a running container, for exec (and cp/top on running containers)."""
    try:
        record = containers.find(store, name)
    except errors.NotFound as exc:
        exc.exit_code = 1
        raise
    status = record.get("State", {}).get("Status")
    if status == "paused":
        raise errors.Conflict("container %s is paused, unpause the container before exec"
                              % record["Id"], exit_code=1)
    if status != "running":
        raise _not_running(record)
    return record


def open_container(record):
    """Hold the running container's namespaces and root open (a join.Target); the record's
    pid start time guards against a pid the kernel gave to another process meanwhile."""
    state = record["State"]
    pid = state.get("Pid") or 0
    if not pid:
        raise _not_running(record)
    try:
        target = join.open_target(pid, lambda: containers.proc_start_time(pid) ==
                                  state.get("PidStartTime"))
    except OSError as exc:
        raise errors.SetupError("cannot enter container %s: %s: %s"
                                % (record["Name"], exc.filename or "", exc.strerror))
    if target is None:
        raise _not_running(record)
    return target


def build_spec(record, opts, target):
    """The exec spec (argv, env, cwd, user, tty, stdin) from the record and the options."""
    if not opts.command or not opts.command[0]:
        raise errors.UsageError("no command specified", "give a command after the container")
    config = record.get("Config") or {}
    workdir = opts.workdir or config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise errors.UsageError("the working directory %r is invalid, it needs to be an "
                                "absolute path" % workdir)
    user = opts.user if opts.user is not None else config.get("User") or ""
    extra = []
    for path in opts.env_file:
        extra += parse_env_file(path)
    extra += opts.env
    # Docker's daemon environment (TERM with a tty) under the container's own, then -e
    base = (["TERM=xterm"] if opts.tty else []) + list(config.get("Env") or [])
    spec = {"argv": opts.command, "env": merge_env(base, extra, os.environ), "cwd": workdir,
            "user": user, "tty": opts.tty and not opts.detach,
            "stdin": opts.interactive and not opts.detach, "winsize": None,
            # the container's --ulimit, as Docker's exec (its process spec is the container's)
            "ulimits": (record.get("HostConfig") or {}).get("Ulimits") or None}
    if spec["tty"]:
        from ..userns.pty import host_winsize
        spec["winsize"] = opts.winsize or host_winsize()
    return spec


def _seccomp_of(store, record):
    """The seccomp filter the container's init installed (its kept run spec): an exec'd
    process gets the same, as it gets the same capabilities."""
    try:
        kept = containers.load_spec(store, record)
        return kept.get("seccomp"), kept.get("seccomp_bpf")
    except errors.Conflict:
        return None, None  # no kept spec: no filter of ours


def exec_in(opts):
    """Run opts.command in the running container opts.container; returns its exit status
    (Docker's numbers), or 0 at once when detached."""
    store = open_store()
    record = find_running(store, opts.container)
    target = open_container(record)
    try:
        spec = build_spec(record, opts, target)
        spec["seccomp"], spec["seccomp_bpf"] = _seccomp_of(store, record)
        # the exec'd process is no descendant of init: it installs a filter of its own, whose
        # chowns this process answers while it waits (ops/chowns.py); detached, nobody
        # stays to answer them, so they are faked (join.spawn)
        spec["chown_notify"] = bool(spec["seccomp"])
        from .events import container as event
        words = " ".join(opts.command)
        event(store, record, "exec_create: " + words)
        event(store, record, "exec_start: " + words)
        if opts.detach:
            join.spawn(target, spec, detach=True)
            return 0
        forwarder = SignalForwarder()
        try:
            process = join.spawn(target, spec)
            target.close()
            forwarder.attach(process.pid)
            if opts.detach_keys and process.master_fd is not None and opts.interactive:
                return _wait_detachable(process, opts)
            return _wait(process, opts)
        finally:
            forwarder.restore()
    finally:
        target.close()


def _wait_detachable(process, opts):
    """_wait, where the detach keys typed on stdin let the caller go (opts.on_detach) and leave
    the command running, as dockerd leaves an exec: its terminal is kept open (closing the
    master would hang it up) and read until the command ends, its output dropped. The end of
    stdin (the client hung up, or detached by itself as the docker CLI does) is the same, and
    so is a client gone mid-copy: dockerd never closes a terminal's input for its client."""
    import signal
    from ..userns.pty import relay
    services = {}
    if process.listener is not None:
        from .chowns import services as chown_services
        services = chown_services(process)
    kept = os.dup(process.master_fd)
    # the command runs already (its own SIGPIPE is the default): here a client gone is a
    # write that fails, not this process's end (and with it the terminal's)
    old_pipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        try:
            detached = relay(process.master_fd, True, detach_keys=opts.detach_keys,
                             services=services, eof_detaches=True)
        except OSError:  # the client's socket failed (reset, or shut)
            detached = True
        if detached:
            opts.on_detach()
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 1)
            os.close(null)
            relay(kept, False, services=services)
            kept = None
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        signal.signal(signal.SIGPIPE, old_pipe)
        if kept is not None:
            os.close(kept)
    return process.wait(services)
