"""Detached containers: the monitor that stands in for Docker's daemon, as conmon does for Podman.

Owns: starting a container that outlives the command that asked for it. `launch` forks twice
(a new session, so the user's shell and terminal can go), the grandchild points the container's
stdout/stderr (or its pty) at pipes, starts it, records it running with its own pid as the
keeper, tells the waiting CLI the init pid (or the setup error), and then replaces itself with
the small watcher (ops/watch.py) that logs, waits and records the exit. The watcher comes back
here (`serve_again`, a re-exec of the full tool) only to restart a container or remove one
started with --rm.
Must not: be imported by a foreground `run` (it pays for nothing it does not use), print, or
leave the CLI waiting when the monitor dies (the report pipe closes).
"""

import os
import sys

from .. import errors, fastjson
from ..userns import detach, launcher
from . import containers


def _read_report(fd):
    """The monitor's one line. Not to EOF: the container's middle process, forked while the
    pipe was open, holds the write end for the container's whole life."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.rstrip(b"\n")


def launch(store, idmap, record, spec, published=None):
    """Start record's container under a new monitor; return once it runs (its init's pid)
    or raise the error its setup hit. The monitor is not this process's child: it is
    reparented at once, so the CLI can exit and leave no zombie. published: the host ports
    bound for it (ops/ports.Published), set up by the monitor before the command runs."""
    from . import zygote
    warm = zygote.enabled()
    if warm:
        data = zygote.ask(store, idmap, record["Id"], published)
        if data is not None:
            if published is not None:
                published.close()  # the keeper has them
            return _answer(data)
    # no keep: _serve closes the CLI's fds itself (report_w and published's stay open)
    report_r = detach.spawn(
        lambda report_w: _serve(store, idmap, record["Id"], spec, report_w, published),
        report=True, on_error=_send)
    if published is not None:
        # the monitor has them: a server in the container handed one (userns/portbypass)
        # must share it with nobody else
        published.close()
    try:
        if warm:  # none answered: the next `run -d` finds one (started while this one starts)
            zygote.spawn()
        data = _read_report(report_r)
    finally:
        os.close(report_r)
    return _answer(data)


def _answer(data):
    """The init's pid from the monitor's report, or the error it sent."""
    if data.startswith(b"R"):
        return int(data[1:])
    if data.startswith(b"E"):
        raise errors.from_dict(fastjson.loads(data[1:]))
    raise errors.SetupError("the container's monitor died before the container started")


def _max_fd():
    try:
        return max(os.sysconf("SC_OPEN_MAX"), 256)
    except (ValueError, OSError):
        return 1024


def _send(fd, exc):
    if fd is None or detach.spent(fd):  # after R: the CLI has its answer, the fd is gone
        return
    payload = exc.to_dict() if isinstance(exc, errors.BoxError) else {
        "class": "SetupError", "message": "%s: %s" % (type(exc).__name__, exc),
        "hint": None, "exit_code": 125}
    try:
        os.write(fd, b"E" + fastjson.dumps(payload) + b"\n")
    except OSError:
        pass


def _serve(store, idmap, cid, spec, report_fd, published=None, rebind=False, handoff=None):
    """In the monitor: start the container with its output on pipes, then become the
    watcher. Never returns. rebind: a restart here, where the published ports must be bound
    again (the first start's forwarder ended with the container it served). handoff: a
    socket to the parent, a keeper the zygote forked (ops/zygote.py), which adopts the
    container's init and becomes its watcher: this process hands it the watcher's fds and
    leaves, so the keeper's pages stay the zygote's."""
    keeper = os.getpid() if handoff is None else os.getppid()
    # nothing of the caller's may stay open here (and so in the container's middle process):
    # a caller reading our stdout to its end, or holding another pipe, would wait for ever
    keep = sorted({report_fd if report_fd is not None else -1,
                   handoff if handoff is not None else -1} |
                  set(published.fds() if published is not None else ()))
    low = 3
    for fd in keep:
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, _max_fd())
    if rebind:
        from . import ports
        try:
            published = ports.bind(store, store.read_container(cid) or {"Id": cid},
                                   spec.get("outbound"))
        except errors.BoxError as exc:
            containers.mark_exited(store, cid, 125, exc.message)
            os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    fds = {}
    if not spec.get("tty"):
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        fds = {"stdout": out_r, "stderr": err_r}
        if spec.get("stdin"):
            # -i: the container reads a pipe the watcher feeds from `attach`/`start -ai`
            in_r, in_w = os.pipe()
            os.dup2(in_r, 0)
            os.close(in_r)
            fds["stdin"] = in_w
    else:
        os.dup2(null, 1)
        os.dup2(null, 2)
    # the container's init becomes the keeper's own child: no middle process stays (a
    # zygote's keeper is the subreaper already)
    if handoff is None:
        launcher.adopt_orphans()
    spec = dict(spec, adopt=True)
    try:
        from . import cgroups, runflags
        container = launcher.start(runflags.joined_spec(store, spec), idmap,
                                   cgroups.prestart(spec, published.prestart()
                                                    if published is not None else None),
                                   published.fds() if published is not None else ())
    except errors.BoxError as exc:
        if isinstance(exc, (errors.CommandNotFound, errors.CannotExecute)):
            containers.mark_exited(store, cid, exc.exit_code, exc.message)
        else:
            containers.mark_exited(store, cid, 125, exc.message)
        _send(report_fd, exc)
        os._exit(0)
    # the container holds the pipes' other ends now; the monitor's own stdio goes nowhere
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if container.master_fd is not None:
        fds = {"tty": container.master_fd}
    record = containers.mark_running(store, cid, container.pid, monitor=keeper)
    if record is None:  # removed while it started (rm -f racing start)
        container.kill()
        container.wait()
        os._exit(0)
    if published is not None:
        published.close()  # the forwarder has them: the watcher must not hold the ports
    from . import pause
    cgroup = pause.place(cid, container.pid)
    if cgroup:
        record = containers.update_state(store, cid, CgroupPath=cgroup) or record
    if handoff is None:
        from .runflags import started
        started(store, record, monitor=True)
    with open(os.path.join(store.container_dir(cid), "monitor.pid"), "w") as f:
        f.write("%d\n" % keeper)
    # listening before the CLI hears "running": `start -ai` connects right after
    attach = _listen(attach_socket(cid)) if "tty" in fds or "stdin" in fds else ""
    if report_fd is not None:
        detach.last_word(report_fd, b"R%d\n" % container.pid)
    if handoff is not None:
        from .zygote import hand_over
        hand_over(handoff, store.root, record, container.waiter, fds, attach,
                  container.listener, container.fake_ids)
        os._exit(0)
    _exec_watcher(store, record, container.waiter, fds, attach, container.listener,
                  container.fake_ids)


def _listen(path):
    """The attach socket, as "FD:PATH" for the watcher; "" when it cannot be made (the
    container runs on, without attach)."""
    import socket
    try:
        os.unlink(path)
    except OSError:
        pass
    try:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(4)
    except OSError:
        return ""
    fd = listener.detach()
    os.set_inheritable(fd, True)
    return "%d:%s" % (fd, path)


def _exec_watcher(store, record, middle, fds, attach, listener=None, fake_ids=None):
    for fd in list(fds.values()) + ([listener] if listener is not None else []):
        os.set_inheritable(fd, True)
    os.execv(sys.executable, watcher_argv(
        watcher_args(store.root, record["Id"], middle, fds, attach, listener, fake_ids)))


def watcher_args(root, cid, middle, fds, attach, listener=None, fake_ids=None):
    """ops/watch.main's arguments."""
    args = [root, cid, str(middle), ",".join("%s=%d" % item for item in sorted(fds.items())),
            attach, "" if listener is None else str(listener)]
    if fake_ids:
        uid, gid, groups = fake_ids
        args.append("%d:%d:%s" % (uid, gid, ",".join(str(g) for g in groups)))
    return args


def attach_socket(cid):
    """Where a -t container's watcher listens for `attach` (the runtime dir: a socket path
    must be short, and it is gone after a reboot, as the container is)."""
    from .. import config
    return os.path.join(config.runtime_root(), "attach-%s.sock" % cid)


def watcher_argv(args):
    """How to start the small watcher: the interpreter without site (it needs the standard
    library and this package only) and isolated from the user's PYTHON* variables, which
    would make a resident process heavier (PYTHONPYCACHEPREFIX alone: ~0.65 MiB of heap;
    PYTHONMALLOC, PYTHONTRACEMALLOC, PYTHONDEVMODE more), or a frozen binary's hidden mode."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "__watch"] + args
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    boot = ("import sys; sys.path.insert(0, %r); from rootless_box.ops.watch import main; "
            "main(sys.argv[1:])" % package_parent)
    return [sys.executable, "-I", "-S", "-c", boot] + args


def serve_again(cid, action):
    """`rootless-box __monitor ACTION ID`, exec'd by the watcher: "restart" starts the
    container again in this same process (it stays the keeper), "remove" removes a --rm
    container after its exit."""
    from ..userns import idmap as idmaps
    from .storage import open_store
    idmap = idmaps.plan()
    store = open_store(idmap)
    record = store.read_container(cid)
    if record is None:
        return 0
    if action == "remove":
        discard(store, record)
        return 0
    spec = containers.load_spec(store, record)
    from .run import idmap_of
    _serve(store, idmap_of(spec, idmap), cid, spec, None, rebind=True)
    return 0


def discard(store, record):
    """Remove a container's directory and the anonymous volumes it made."""
    store.remove(store.container_dir(record["Id"]))
    from .events import container as event
    event(store, record, "destroy")
    from .volumes import discard_anonymous
    discard_anonymous(store, record.get("Mounts") or [], record["Id"])
