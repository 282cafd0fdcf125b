"""Starting processes in new namespaces: the container launcher and `run_in_userns`.

Owns: the parent / child / init sequence of DESIGN.md (fork before any thread, unshare, id maps
written by the parent, setresuid(0), fork into the new pid namespace, mount plan, pivot_root,
credentials, exec), the sync pipes between them, and carrying a failure before exec back to the
parent as {class, message, hint, exit_code} (EOF on the close-on-exec pipe means exec happened),
and the prestart hold before the command runs.
Must not: know about images or the store; the caller passes a complete run spec.
"""

import errno
import os
import stat
import _signal as signal  # the signal module imports enum: ~10 ms

from .. import errors, fastjson
from ..oci.users import group_ids, resolve as resolve_user
from . import caps, idmap as idmaps, libc
from .elf import host_machine, inspect as inspect_elf
from .mounts import Executor, MountError, build_plan

# Everything init uses must be imported before it forks: after pivot_root the package's files
# are out of reach (and so would be a frozen binary's archive).

_BASE_FLAGS = (libc.CLONE_NEWUSER | libc.CLONE_NEWNS | libc.CLONE_NEWPID | libc.CLONE_NEWUTS |
               libc.CLONE_NEWIPC)
_SIG_EXIT = 125


def _pipe():
    return os.pipe2(os.O_CLOEXEC)


def _report(fd, exc):
    """In a child: send the failure to the parent and leave without Python's cleanup."""
    if isinstance(exc, errors.BoxError):
        data = exc.to_dict()
    elif isinstance(exc, OSError):
        data = {"class": "SetupError", "message": str(exc.strerror or exc), "hint": None,
                "exit_code": 125, "errno": exc.errno}
    else:
        data = {"class": "SetupError", "message": "%s: %s" % (type(exc).__name__, exc),
                "hint": None, "exit_code": 125}
    try:
        os.write(fd, fastjson.dumps(data))
    except OSError:
        pass
    os._exit(data.get("exit_code") or 125)


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _raise_reported(data):
    try:
        payload = fastjson.loads(data)
    except ValueError:
        raise errors.SetupError("container setup failed: %r" % data[:200])
    raise errors.from_dict(payload)


class _Sync:
    """The pipes of one launch: child->parent, parent->child, and the error channel."""

    def __init__(self):
        self.c2p_r, self.c2p_w = _pipe()
        self.p2c_r, self.p2c_w = _pipe()
        self.err_r, self.err_w = _pipe()

    def child_side(self):
        for fd in (self.c2p_r, self.p2c_w, self.err_r):
            os.close(fd)

    def parent_side(self):
        for fd in (self.c2p_w, self.p2c_r, self.err_w):
            os.close(fd)

    def close_parent(self):
        for fd in (self.c2p_r, self.p2c_w, self.err_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _enter(flags, idmap, sync, join=None, nest=None):
    """Child side: new namespaces, id maps (written by the parent for subuid ranges), and
    become root of the new user namespace. join: {"user": fd, and "net", "pid", "ipc", "uts"
    fds} of other containers (one user namespace): that user namespace is entered instead of
    making one (only its owner may enter the namespaces it owns), the namespaces in `flags`
    are new, and the others joined."""
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if nest is not None:
        # a user network: the user namespace nested in the holder's (userns/netholder.py)
        from .netholder import nest as nested
        nested(nest[0], nest[1], flags, idmap, nest[2])
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)  # setns(user) cleared it
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if idmap.mode != "single":
            os.setgroups([])
        return
    if join is not None:
        try:
            libc.setns(join["user"], libc.CLONE_NEWUSER)
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)  # setns(user) cleared it
            libc.unshare(flags & ~libc.CLONE_NEWUSER)
            for name, fd in join.items():
                if name != "user":
                    libc.setns(fd, _NS_FLAGS[name])
        except OSError as exc:
            raise errors.SetupError("cannot join the other container's namespaces: %s"
                                    % exc.strerror)
        for fd in join.values():
            os.close(fd)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if idmap.mode != "single":
            os.setgroups([])
        return
    try:
        libc.unshare(flags)
    except OSError as exc:
        raise errors.SetupError(
            "cannot create a user namespace: %s" % exc.strerror,
            "unprivileged user namespaces may be disabled: check sysctl "
            "kernel.unprivileged_userns_clone and user.max_user_namespaces, and AppArmor's "
            "kernel.apparmor_restrict_unprivileged_userns (run 'rootless-box info')")
    if idmap.mode == "single":
        idmaps.apply_single_self(idmap)
    else:
        os.write(sync.c2p_w, b"U")
        if os.read(sync.p2c_r, 1) != b"M":
            os._exit(_SIG_EXIT)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    if idmap.mode != "single":
        os.setgroups([])


def _parent_maps(pid, idmap, sync, joined=False):
    """Parent side of _enter: wait for the unshare, write the maps, release the child.
    Returns False when the child failed before asking (its error is on the error pipe).
    joined: the child entered a user namespace that has its maps already."""
    if idmap.mode == "single" or joined:
        return True
    if os.read(sync.c2p_r, 1) != b"U":
        return False
    idmaps.apply_from_parent(idmap, pid)
    os.write(sync.p2c_w, b"M")
    return True


_NS_FLAGS = {"net": libc.CLONE_NEWNET, "pid": libc.CLONE_NEWPID, "ipc": libc.CLONE_NEWIPC,
             "uts": libc.CLONE_NEWUTS}
_NS_WORDS = {"net": "network", "pid": "PID", "ipc": "IPC", "uts": "UTS"}


def _open_joined(pids):
    """{"user": fd, name: fd} for pids ({"net"|"pid"|"ipc"|"uts": host pid of the container
    whose namespace is joined}): opened before the fork, so a container gone in between is
    one clear error here. They must share one user namespace, which is entered."""
    fds = {}
    try:
        for name, pid in sorted(pids.items()):
            what = _NS_WORDS[name]
            user = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
            if "user" not in fds:
                fds["user"] = user
            else:
                same = os.fstat(user).st_ino == os.fstat(fds["user"]).st_ino
                os.close(user)
                if not same:
                    raise errors.SetupError(
                        "cannot join the %s namespace of container process %d: it is in "
                        "another user namespace than the other namespaces joined (one of "
                        "those containers was restarted)" % (what, pid),
                        "restart the joining container's targets together, or join one "
                        "container's namespaces only")
            fds[name] = os.open("/proc/%d/ns/%s" % (pid, name), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        for fd in fds.values():
            os.close(fd)
        raise errors.SetupError("cannot join the %s namespace of container process %d: it "
                                "is not running" % (what, pid)) from None
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _clone_shm(pid):
    """A detached copy of the /dev/shm mount of the container whose init is host pid `pid`
    (`--ipc container:NAME` shares it, as Docker binds the donor's shm): taken by a helper
    that enters that container's user and mount namespaces, sent back as an fd that init
    attaches in its own mount namespace (a bind mount cannot cross mount namespaces)."""
    import socket
    from .pty import receive_fd, send_fd
    try:
        held = [os.open("/proc/%d/%s" % (pid, name), os.O_RDONLY | os.O_CLOEXEC)
                for name in ("ns/user", "ns/mnt", "root")]
    except OSError:
        raise errors.SetupError("cannot join the IPC namespace of container process %d: it "
                                "is not running" % pid) from None
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    _flush_stdio()
    helper = os.fork()
    if helper == 0:
        try:
            mine.close()
            libc.setns(held[0], libc.CLONE_NEWUSER)
            libc.setns(held[1], libc.CLONE_NEWNS)
            send_fd(theirs, libc.clone_tree("dev/shm", held[2]))
            os._exit(0)
        except BaseException:
            os._exit(1)
    theirs.close()
    for fd in held:
        os.close(fd)
    try:
        tree = receive_fd(mine)
    finally:
        mine.close()
        os.waitpid(helper, 0)
    if tree is None:
        raise errors.SetupError("cannot share the /dev/shm of container process %d" % pid,
                                "it needs Linux 5.2 or later (open_tree)")
    os.set_inheritable(tree, False)
    return tree


def _flush_stdio():
    import sys
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _start_helper(func, idmap, args, others=()):
    """Fork a helper that runs func(*args) as root of a fresh user + mount namespace, and
    write its id maps; its work then goes on while the caller does something else."""
    _flush_stdio()
    sync = _Sync()
    pid = os.fork()
    if pid == 0:
        try:
            for other in others:
                # other helpers' pipes: holding them would hide their EOFs
                other.close_parent()
            sync.child_side()
            _enter(libc.CLONE_NEWUSER | libc.CLONE_NEWNS, idmap, sync)
            result = func(*args)
            os.write(sync.c2p_w, b"R" + fastjson.dumps(result))
            os._exit(0)
        except BaseException as exc:
            _report(sync.err_w, exc)
    sync.parent_side()
    try:
        ok = _parent_maps(pid, idmap, sync)
    except BaseException:
        sync.close_parent()
        os.waitpid(pid, 0)
        raise
    return pid, sync, ok


def _finish_helper(pid, sync, ok):
    try:
        result = _read_all(sync.c2p_r) if ok else b""
        err = _read_all(sync.err_r)
    finally:
        # Close first: a child still waiting for its maps reads EOF and leaves.
        sync.close_parent()
        os.waitpid(pid, 0)
    if err:
        _raise_reported(err)
    if not result.startswith(b"R"):
        raise errors.SetupError("helper in the user namespace died without an answer")
    return fastjson.loads(result[1:])


class Forked:
    """A forked child computing a JSON-able result (see fork_call)."""

    def __init__(self, pid, res_r, err_r, what):
        self.pid, self._res_r, self._err_r, self._what = pid, res_r, err_r, what

    def finish(self):
        """Wait for it; its result, or the BoxError it raised."""
        try:
            result = _read_all(self._res_r)
            err = _read_all(self._err_r)
        finally:
            self._close()
            os.waitpid(self.pid, 0)
        if err:
            _raise_reported(err)
        if not result.startswith(b"R"):
            raise errors.SetupError("%s died without an answer" % self._what)
        return fastjson.loads(result[1:])

    def abandon(self):
        """End it (the other side of its work failed) and wait for it."""
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass
        self._close()
        os.waitpid(self.pid, 0)

    def _close(self):
        for fd in (self._res_r, self._err_r):
            try:
                os.close(fd)
            except OSError:
                pass


def fork_call(func, args, before=None, what="the helper process"):
    """Fork a child that runs before() (entering namespaces, closing fds it must not hold),
    then func(*args), and sends back its JSON-able result or its failure; -> Forked."""
    _flush_stdio()
    res_r, res_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(res_r)
            os.close(err_r)
            if before is not None:
                before()
            os.write(res_w, b"R" + fastjson.dumps(func(*args)))
            os._exit(0)
        except BaseException as exc:
            _report(err_w, exc)
    os.close(res_w)
    os.close(err_w)
    return Forked(pid, res_r, err_r, what)


def run_in_userns(func, idmap, *args):
    """Run func(*args) as root of a fresh user + mount namespace and return its JSON-able
    result. Used to unpack layers with their owners and to remove trees with subuid owners."""
    return _finish_helper(*_start_helper(func, idmap, args))


def run_in_userns_many(func, idmap, arglists, jobs=None):
    """run_in_userns for each argument tuple, up to `jobs` at once (default: the CPUs), as
    enroot unpacks layers in parallel. Returns the results in order; the first failure is
    raised once every helper has ended."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    results = [None] * len(arglists)
    running, failure = [], None

    def finish(entry):
        nonlocal failure
        index, helper = entry
        try:
            results[index] = _finish_helper(*helper)
        except BaseException as exc:  # keep going: no helper may be left unwaited
            failure = failure or exc

    for index, args in enumerate(arglists):
        if len(running) >= jobs:
            finish(running.pop(0))
        try:
            running.append((index, _start_helper(func, idmap, args,
                                                 [h[1] for _i, h in running])))
        except BaseException as exc:
            failure = failure or exc
            break
    for entry in running:
        finish(entry)
    if failure is not None:
        raise failure
    return results


def _with_sender(func, msg_w, index, args):
    def send(obj):
        # one write under PIPE_BUF is atomic: lines of several helpers never interleave
        os.write(msg_w, fastjson.dumps([index, obj]) + b"\n")
    return func(send, *args)


def run_in_userns_pool(func, idmap, arglists, jobs, on_message):
    """run_in_userns_many for work that reports as it goes (a download's progress): each
    helper runs func(send, *args), and every send(obj) reaches on_message(index, obj) in the
    caller while the helpers run. No thread is started (DESIGN.md: fork before any thread):
    the caller's loop select()s over the helpers' pipes. Returns the results in order; the
    first failure is raised once every started helper has ended, and no new one starts
    after it."""
    import select
    results = [None] * len(arglists)
    pending = list(enumerate(arglists))
    running = {}
    failure = None
    msg_r, msg_w = _pipe()
    buffered = b""

    def deliver(data):
        nonlocal buffered
        buffered += data
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            index, obj = fastjson.loads(line)
            on_message(index, obj)

    try:
        while pending or running:
            while pending and failure is None and len(running) < max(1, jobs):
                index, args = pending.pop(0)
                try:
                    helper = _start_helper(_with_sender, idmap, (func, msg_w, index, args),
                                           [h[1] for _i, h in running.values()])
                except BaseException as exc:
                    failure = exc
                    break
                running[helper[1].c2p_r] = (index, helper)
            if not running:
                break
            ready, _w, _x = select.select([msg_r] + list(running), [], [])
            if msg_r in ready:
                deliver(os.read(msg_r, 65536))
            for fd in ready:
                if fd == msg_r:
                    continue
                index, helper = running.pop(fd)
                try:
                    results[index] = _finish_helper(*helper)
                except BaseException as exc:  # keep going: no helper may be left unwaited
                    failure = failure or exc
        # what the last helpers said before they ended
        os.set_blocking(msg_r, False)
        try:
            while True:
                data = os.read(msg_r, 65536)
                if not data:
                    break
                deliver(data)
        except BlockingIOError:
            pass
    finally:
        os.close(msg_r)
        os.close(msg_w)
    if failure is not None:
        raise failure
    return results


class Container:
    """A started container: its init's host pid (what signals go to), the process that waits
    for it (the middle, whose exit status is the container's), with a tty the pty master,
    and, when its chowns are supervised (spec["chown_notify"]), the seccomp listener its
    keeper must serve while it waits (wait(services))."""

    def __init__(self, pid, waiter, master_fd, listener=None, fake_ids=None):
        self.pid = pid
        self.waiter = waiter
        self.master_fd = master_fd
        self.listener = listener
        # (uid, gid, groups) the keeper answers get*id with: a non-root user under the
        # single-id mapping (become); None otherwise
        self.fake_ids = fake_ids
        self._status = None

    def kill(self, signum=9):
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def close_listener(self):
        if self.listener is not None:
            os.close(self.listener)
            self.listener = None

    def wait(self, services=None):
        """Wait for the container and return Docker's exit status (128+N for signal N).
        services: {fd: call} served meanwhile (call() when fd is readable, dropped once it
        returns False): the seccomp listener, whose calls would wait for ever otherwise."""
        if services:
            self._serve(dict(services))
        self.close_listener()
        status = self._status
        if status is None:
            try:
                _pid, status = os.waitpid(self.waiter, 0)
            except ChildProcessError:
                return 125
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)
        return os.WEXITSTATUS(status)

    def _serve(self, services):
        import select
        try:
            pidfd = os.pidfd_open(self.waiter)
        except (AttributeError, OSError):
            pidfd = None  # no pidfds (Linux < 5.3): the exit is polled for
        try:
            while services:
                watched = list(services) + ([pidfd] if pidfd is not None else [])
                ready, _w, _x = select.select(watched, [], [],
                                              None if pidfd is not None else 0.1)
                if pidfd is not None and pidfd in ready:
                    return
                if pidfd is None:
                    try:
                        pid, status = os.waitpid(self.waiter, os.WNOHANG)
                    except ChildProcessError:
                        return
                    if pid:
                        self._status = status
                        return
                for fd in ready:
                    if fd in services and not services[fd]():
                        del services[fd]
        finally:
            if pidfd is not None:
                os.close(pidfd)


def _keep(init):
    """The middle process, once init runs: wait for it and leave with its status. Both carry a
    parent-death signal, so a killed `rootless-box` (run, build) takes its container with it
    instead of leaving an orphan nobody watches."""
    while True:
        try:
            _pid, status = os.waitpid(init, 0)
            break
        except ChildProcessError:
            os._exit(125)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def start(spec, idmap, prestart=None, private_fds=()):
    """Start the container described by spec (see ops/run.py); returns a Container once the
    command has been exec'd, or raises the BoxError the setup hit. spec["join_pid"]: the
    host pid of a container whose user and network namespaces this one enters
    (`--network container:NAME`); spec["join_pids"]: {"pid"|"ipc"|"uts": host pid} likewise
    (`--pid/--ipc/--uts container:NAME`), all in one user namespace. prestart(init pid,
    bind listener): called once the container's namespaces exist and before its command
    runs (init waits for it): the published ports' forwarder and the outbound network are
    set up there, so the command finds them ready; if it raises, the container is killed
    and the error raised. With spec["port_bypass"], init first installs the filter that
    sends the container's bind(), connect() and shutdown() calls to a supervisor
    (seccomp.bypass_program) and its listener is prestart's second argument (None where
    the kernel has none), for the forwarder to serve. private_fds: the
    caller's fds no process of the container may hold (the published ports' sockets: a
    server that is handed one must be its only user besides the forwarder)."""
    _flush_stdio()
    flags = _BASE_FLAGS | (libc.CLONE_NEWNET if spec["network"] != "host" else 0)
    for key, flag in (("pid_mode", libc.CLONE_NEWPID), ("ipc_mode", libc.CLONE_NEWIPC),
                      ("uts_mode", libc.CLONE_NEWUTS)):
        if spec.get(key) == "host":
            flags &= ~flag  # --pid/--ipc/--uts host: the host's namespace, shared
    pids = dict(spec.get("join_pids") or {})
    if spec.get("join_pid"):
        pids["net"] = spec["join_pid"]
    for name in pids:
        flags &= ~_NS_FLAGS[name]  # joined, not made
    join = _open_joined(pids) if pids else None
    nest = None
    try:
        if spec.get("links"):
            from .netholder import open_holder
            nest = open_holder(spec["holder_pid"]) + [spec["links"]]
        if "ipc" in pids:
            spec = dict(spec, shm_tree=_clone_shm(pids["ipc"]))
        return _start(spec, idmap, flags, join, prestart, private_fds, nest)
    finally:
        for fd in list((join or {}).values()) + (nest or [])[:2]:
            os.close(fd)
        if spec.get("shm_tree") is not None:
            os.close(spec["shm_tree"])


def _start(spec, idmap, flags, join, prestart, private_fds, nest=None):
    sync = _Sync()
    go_r, go_w = _pipe() if prestart is not None else (None, None)
    sock_parent = sock_child = None
    supervised = bool(spec.get("seccomp") and spec.get("chown_notify"))
    bypass = bool(spec.get("port_bypass")) and prestart is not None
    if spec.get("tty") or supervised or bypass:
        import socket
        from . import pty  # noqa: F401  (loaded for init, see above)
        sock_parent, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if spec["network"] != "host":
        from . import net  # noqa: F401
    if spec.get("ulimits"):
        import resource  # noqa: F401  (loaded for init, see above)
    if spec.get("seccomp") or spec.get("seccomp_bpf") or bypass:
        from . import seccomp  # loaded for init, see above
        if spec.get("seccomp"):
            seccomp.table()  # an architecture without a table fails here, before any fork
    if supervised:
        from . import notify  # noqa: F401  (init sends the fake ids with it)
    # adopt: init becomes the caller's child once the middle leaves; it waits for the caller's
    # word that the middle is reaped (re-parenting done) before arming its parent-death
    # signal, which the re-parenting itself would otherwise fire
    adopt_r, adopt_w = _pipe() if spec.get("adopt") else (None, None)
    middle = os.fork()
    if middle == 0:
        try:
            sync.child_side()
            for fd in private_fds:
                os.close(fd)
            if sock_parent:
                sock_parent.close()
            if adopt_w is not None:
                os.close(adopt_w)
            if go_w is not None:
                os.close(go_w)
            _enter(flags, idmap, sync, join, nest)
            init = os.fork()
            if init == 0:
                if adopt_r is None:
                    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
                _init(spec, sync, sock_child, adopt_r, go_r, bypass)
            if go_r is not None:
                os.close(go_r)
            if spec.get("shm_tree") is not None:
                os.close(spec["shm_tree"])  # init's to attach
            os.write(sync.c2p_w, b"%d\n" % init)
            # only init may hold these now: the parent reads them until EOF
            for fd in (sync.c2p_w, sync.err_w, sync.p2c_r):
                os.close(fd)
            if sock_child:
                sock_child.close()
            if adopt_r is not None:
                os._exit(0)  # init is re-parented to the caller, which waits for it
            _keep(init)
        except BaseException as exc:
            _report(sync.err_w, exc)
    sync.parent_side()
    if sock_child:
        sock_child.close()
    if adopt_r is not None:
        os.close(adopt_r)
    if go_r is not None:
        os.close(go_r)
    init_pid = None
    reaped = False
    try:
        if _parent_maps(middle, idmap, sync, join is not None or nest is not None):
            text = _read_all(sync.c2p_r)
            init_pid = int(text) if text.strip().isdigit() else None
        if adopt_w is not None:
            os.waitpid(middle, 0)
            reaped = True
            if init_pid:
                os.write(adopt_w, b"A")
            os.close(adopt_w)
            adopt_w = None
        if go_w is not None:
            if init_pid:
                bind_listener = None
                if bypass:
                    from .pty import receive_fd
                    bind_listener = receive_fd(sock_parent)
                    if bind_listener is not None:
                        # SCM_RIGHTS fds come inheritable: no helper the forwarder execs
                        # (pasta, slirp4netns) may answer the container's calls
                        os.set_inheritable(bind_listener, False)
                try:
                    prestart(init_pid, bind_listener)
                finally:
                    if bind_listener is not None:
                        os.close(bind_listener)  # the forwarder's alone now
                os.write(go_w, b"G")
            os.close(go_w)
            go_w = None
        master = listener = fake_ids = None
        if sock_parent is not None and init_pid:
            from .pty import receive_fd
            if spec.get("tty"):
                master = receive_fd(sock_parent)
            if supervised:
                listener = receive_fd(sock_parent)
                if listener is not None:
                    from .notify import receive_ids
                    fake_ids = receive_ids(sock_parent)  # sent right after it (become)
        err = _read_all(sync.err_r)
    except BaseException:
        # nobody would keep a container whose start failed here (a prestart that raised,
        # the pty that never came): it is ended, not left running
        reported = b""
        if init_pid:
            _kill(init_pid)
            try:
                # init's own setup error, when it failed meanwhile, is the cause (a
                # prestart then only finds it gone)
                reported = _read_all(sync.err_r)
            except OSError:
                pass
        sync.close_parent()
        for fd in (adopt_w, go_w):
            if fd is not None:
                os.close(fd)
        if reaped and init_pid:
            _reap_adopted(init_pid)
        if not reaped:
            os.waitpid(middle, 0)
        if reported:
            _raise_reported(reported)
        raise
    finally:
        if sock_parent is not None:
            sock_parent.close()
    # Close first: a middle still waiting for its maps reads EOF and leaves.
    sync.close_parent()
    if err or not init_pid:
        for fd in (master, listener):
            if fd is not None:
                os.close(fd)
        if reaped and init_pid:
            _reap_adopted(init_pid)  # adopted: it leaves after reporting
        elif not reaped:
            os.waitpid(middle, 0)  # it leaves once init has exited
        if err:
            _raise_reported(err)
        raise errors.SetupError("the container's setup process died unexpectedly")
    if reaped:
        return Container(init_pid, init_pid, master, listener, fake_ids)
    return Container(init_pid, middle, master, listener, fake_ids)



def _reap_adopted(pid):
    """An adopted init that failed: reaped here, unless it went to another subreaper (the
    zygote's keeper, whose child starts the container: ops/zygote.py)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def adopt_orphans(on=True):
    """Make this process a child subreaper, so that a container's init started with
    spec["adopt"] becomes its child when the middle process leaves (a detached container's
    monitor: one process per container instead of two, as conmon with runc). Kept across
    execve. on=False for a moment: a process it starts apart (the health checker) must not
    come back to it as an orphan, a zombie nobody would reap."""
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1 if on else 0)


# -- inside the container ---------------------------------------------------------------------

def _init(spec, sync, sock, adopt_r=None, go_r=None, bypass=False):
    """pid 1 of the new pid namespace: mounts, pivot_root, credentials, exec. Never returns.
    adopt_r: wait for the caller's word that it adopted this process (see start); go_r: wait
    for the caller's prestart before running the command; bypass: send it the listener of a
    filter on bind() first (see start)."""
    try:
        os.close(sync.c2p_w)
        os.close(sync.p2c_r)
        if adopt_r is not None:
            word = os.read(adopt_r, 1)
            os.close(adopt_r)
            if word != b"A":
                os._exit(_SIG_EXIT)  # the caller died: nobody would watch this container
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        init_fd = _open_init(spec) if spec.get("init") else None
        os.setsid()
        # runc's default: what the command creates must not depend on the caller's umask
        os.umask(0o022)
        try:
            Executor(spec).run(build_plan(spec))
        except MountError as exc:
            raise errors.SetupError("cannot set up the container's filesystem: %s" % exc,
                                    "run 'rootless-box info' to check what this machine "
                                    "supports")
        if spec["network"] not in ("host", "container"):
            from .net import loopback_up
            loopback_up()  # a joined namespace is its owner's to set up
        if spec.get("uts_mode") not in ("host", "container"):  # a joined one is its owner's
            libc.sethostname(spec["hostname"])
            if spec.get("domainname"):
                libc.setdomainname(spec["domainname"])
        if bypass:
            _send_bind_listener(sock)
        if go_r is not None:
            word = os.read(go_r, 1)
            os.close(go_r)
            if word != b"G":
                os._exit(_SIG_EXIT)  # the caller's prestart failed: it reports why
        _exec_command(spec, sock, init_fd)
    except BaseException as exc:
        _report(sync.err_w, exc)


def _send_bind_listener(sock):
    """Install the bypass filter (while this process is still root in its namespace, which
    seccomp needs without no_new_privs) and send its listener to the keeper, or a byte
    without one where the kernel cannot: binds then run as they would."""
    from .seccomp import install_bind_notify
    listener = install_bind_notify()
    if listener is None:
        sock.send(b"n")
        return
    from .pty import send_fd
    send_fd(sock, listener)
    os.close(listener)  # the command must not answer its own calls


def _read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _resolve_user(spec):
    return resolve_user(spec.get("user") or "0", _read_text("/etc/passwd"),
                        _read_text("/etc/group"))


def _lookup(argv0, path_var):
    if "/" in argv0:
        return argv0
    for directory in (path_var or "").split(":"):
        candidate = os.path.join(directory or ".", argv0)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise errors.CommandNotFound('exec: "%s": executable file not found in $PATH' % argv0,
                                 "check the command and the image's PATH")


def _exec_command(spec, sock, init_fd=None):
    argv, env, path_var = become(spec, sock)
    if init_fd is not None:
        _exec_init(init_fd, spec["init_path"], argv, env, path_var)
    execve(argv, env, path_var)


def _open_init(spec):
    """--init's program (spec["init_path"], chosen on the host by ops/runflags.init_binary),
    opened while the host's files are still reachable: pid 1 execs it by this fd once it is
    the command's process (_exec_init), so nothing of it is put into the container's tree.
    Close-on-exec: neither it nor the command keeps it."""
    path = spec.get("init_path")
    if not path:
        raise errors.SetupError("--init: no init program was chosen for this start",
                                "this is a bug in rootless-box; run without --init")
    try:
        return os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise errors.SetupError("--init: cannot open the init program %s: %s"
                                % (path, exc.strerror), "install catatonit or tini-static, "
                                "or set RBX_INIT_PATH to a statically linked init")


def _make_cwd(cwd):
    """A missing working directory and its missing parents, 0755 whatever the umask and
    owned by root in the container, whoever the user is (moby's SetupWorkingDirectory:
    MkdirAllAndChownNew(path, 0755, the remapped root)); existing ones are left alone."""
    path = ""
    for part in cwd.split("/"):
        if not part:
            continue
        path += "/" + part
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue
        os.chmod(path, 0o755)


def become(spec, sock):
    """Inside the container's root: turn this process into the one spec describes (user,
    HOME, working directory, terminal or stdin, capabilities, no_new_privs, the seccomp
    filter spec["seccomp"] names, the profile spec["seccomp_bpf"] holds) and return (argv,
    env, PATH) for execve. Shared by init and by `exec` (userns/join.py); spec keys
    beyond the run spec's: create_cwd (default true: run makes a missing working directory,
    exec fails as runc's exec does), no_new_privs (default true) and chown_notify (the
    filter's chowns go to a supervisor: its listener is sent over sock after the pty
    master, followed by the ids get*id must answer with (notify.send_ids: a user other than
    root under the single-id mapping, which runs as 0), and the keeper must serve it). sock
    is closed here."""
    user = _resolve_user(spec)
    env = list(spec["env"])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + user.home)
    cwd = spec.get("cwd") or "/"
    if spec.get("create_cwd", True):
        try:
            _make_cwd(cwd)
        except OSError as exc:
            raise errors.SetupError("cannot create the working directory %s: %s"
                                    % (cwd, exc.strerror))
    if spec.get("tty"):
        from .pty import setup_container_tty
        setup_container_tty(sock, spec.get("winsize"))
    elif not spec.get("stdin"):
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    if spec.get("unattached") and not spec.get("tty"):
        # run -a: the streams not attached go nowhere, as Docker discards them
        null = os.open("/dev/null", os.O_WRONLY)
        for fd in spec["unattached"]:
            os.dup2(null, fd)
        os.close(null)
    _process_settings(spec)
    caps.restrict(spec["caps"])
    if spec.get("no_new_privs", True):
        caps.no_new_privs()
    # --group-add: names from the image's /etc/group, beside the user's own groups
    groups = list(user.groups)
    if spec.get("group_add"):
        extra = group_ids(spec["group_add"], _read_text("/etc/group"))
        groups += [g for g in extra if g not in groups]
    # Under the single-id mapping only 0 exists: a non-root user stays uid 0 (with the
    # namespace's capabilities) and the fake-root filter's keeper answers get*id with the
    # user's ids instead (fake_ids); the files it creates become the user's when its
    # changes are written as a layer (layers/diff.claim_new)
    fake_ids = None
    if spec["idmap_mode"] == "single":
        if user.uid or user.gid:
            fake_ids = (user.uid, user.gid, groups)
            if spec.get("seccomp") and sock is None:
                raise errors.SetupError(
                    "user %s needs a uid/gid the single-id mapping does not have (only 0 is "
                    "mapped), and a detached exec leaves no process to answer for them"
                    % spec.get("user"), "exec without -d, or as root (-u 0)")
            if not spec.get("seccomp"):
                raise errors.SetupError(
                    "user %s needs a uid/gid the single-id mapping does not have (only 0 is "
                    "mapped) and, with seccomp=unconfined, nothing can stand in for them"
                    % spec.get("user"), "drop --security-opt seccomp=unconfined, or ask an "
                    "administrator for a subordinate id range: run 'rootless-box info'")
        user = type(user)(0, 0, [], user.home, user.name)
    else:
        os.setgroups(groups)
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as exc:
        raise errors.SetupError("cannot switch to user %s: %s" % (spec.get("user"),
                                                                 exc.strerror),
                                "the id is outside this user's subordinate range")
    caps.finish(spec["caps"], user.uid)
    # a change of credentials clears the parent-death signal (prctl(2)): armed again, so a
    # container run as another user still goes with the process that keeps it
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        os.chdir(cwd)
    except OSError as exc:
        if not spec.get("create_cwd", True):
            # runc's words; Docker reports a process that could not start as 126
            raise errors.CannotExecute('chdir to cwd ("%s") set in config.json failed: %s'
                                       % (cwd, (exc.strerror or "").lower()))
        raise errors.SetupError("cannot enter the working directory %s: %s"
                                % (cwd, exc.strerror))
    if spec.get("seccomp"):
        # last, after no_new_privs (an unprivileged filter needs it) and after this
        # process's own credential calls, which must really happen; before the command's
        # first instruction, and kept across execve
        from .seccomp import install
        listener = install(spec["seccomp"], supervised=bool(spec.get("chown_notify")
                                                            and sock is not None),
                           fake_ids=fake_ids is not None, caps=spec["caps"])
        if listener is not None:
            # to the keeper, which answers the chowns (and get*id); the command must not
            # hold it
            from .notify import send_ids
            from .pty import send_fd
            send_fd(sock, listener)
            send_ids(sock, fake_ids or (0, 0, []))
            os.close(listener)
    if spec.get("seccomp_bpf"):
        # the container's profile (Docker's default unless unconfined), last: see
        # seccomp.install_profile on how it stacks with the filters before it
        from .seccomp import install_profile
        install_profile(bytes.fromhex(spec["seccomp_bpf"]))
    if sock is not None:
        sock.close()
    path_var = next((e[5:] for e in reversed(env) if e.startswith("PATH=")), "")
    return spec["argv"], env, path_var


def _process_settings(spec):
    """--ulimit and --oom-score-adj, while this process is still root in its namespace: both
    are inherited by the command and its children."""
    if spec.get("ulimits"):
        import resource
        for entry in spec["ulimits"]:
            soft, hard = (resource.RLIM_INFINITY if v == -1 else v
                          for v in (entry["Soft"], entry["Hard"]))
            try:
                resource.setrlimit(RLIMITS[entry["Name"]], (soft, hard))
            except (OSError, ValueError) as exc:
                raise errors.SetupError(
                    "cannot set ulimit %s=%d:%d: %s" % (entry["Name"], entry["Soft"],
                                                        entry["Hard"],
                                                        getattr(exc, "strerror", exc)),
                    "a user namespace cannot raise a hard limit above the one this user "
                    "has (see 'ulimit -H -a')")
    if spec.get("oom_score_adj") is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("%d" % spec["oom_score_adj"])
        except OSError as exc:
            raise errors.SetupError("cannot set --oom-score-adj %d: %s"
                                    % (spec["oom_score_adj"], exc.strerror))


# setrlimit(2)'s resource numbers by Docker's names (asm-generic/resource.h)
RLIMITS = {"core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8,
           "msgqueue": 12, "nice": 13, "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14,
           "rttime": 15, "sigpending": 11, "stack": 3}


def execve(argv, env, path_var):
    """execve argv[0] found in path_var (the container's PATH), or raise the BoxError that
    says why not (127 not found, 126 cannot execute, explained from the ELF header)."""
    exe = _lookup(argv[0], path_var)
    env_map = _exec_env(env)
    try:
        os.execve(exe, argv, env_map)
    except OSError as exc:
        raise _exec_error(exe, exc)


def _exec_env(env):
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        # Python ignores these; an ignored signal survives exec (signal(7)).
        signal.signal(sig, signal.SIG_DFL)
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in env)


def _exec_init(fd, path, argv, env, path_var):
    """--init: this process, the command's already (user, capabilities, filters, environment,
    working directory), becomes the init program (catatonit or tini: `NAME -- CMD ARGS`),
    which runs the command as its child, forwards signals to it, reaps zombies and exits
    with its status (128+N for a signal), as Docker's docker-init and Podman's catatonit.
    pid 1 is so an exec'd program that holds nothing of this process's memory (a fork of the
    CLI or the zygote carried the host's environment and everything they read), dumpable as
    any program its user execs. The command is looked up first: a missing or forbidden one
    gets the same message and status (127, 126) as without --init, not the init's own."""
    exe = _lookup(argv[0], path_var)
    _check_executable(exe)
    if "/" not in argv[0] and not path_var:
        # the init's execvp would search a default PATH of its own
        argv = [exe] + list(argv[1:])
    env_map = _exec_env(env)
    init_argv = [os.path.basename(path), "--"] + list(argv)
    try:
        os.execve(fd, init_argv, env_map)  # fexecve: execveat(fd, "", AT_EMPTY_PATH)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOSYS):
            raise errors.SetupError("--init: cannot run the init program %s: %s"
                                    % (path, exc.strerror))
    try:
        # a seccomp profile that refuses execveat: execve of the fd's /proc link
        os.execve("/proc/self/fd/%d" % fd, init_argv, env_map)
    except OSError as exc:
        raise errors.SetupError("--init: cannot run the init program %s: %s"
                                % (path, exc.strerror),
                                "the container's seccomp profile must allow execveat or "
                                "execve, and /proc must be mounted")


def _check_executable(exe):
    """Raise what execve(exe) would fail with for want of the file, its permission or its
    loader (the script's interpreter): under --init the init program execs the command, and
    its own words and status would stand for these. Its format is left to that exec, as
    binfmt_misc may run what the headers say cannot: the init program reports that one
    (Docker's --init alike)."""
    try:
        st = os.stat(exe)
    except OSError as exc:
        raise _exec_error(exe, exc)
    if not stat.S_ISREG(st.st_mode) or not os.access(exe, os.X_OK):
        raise _exec_error(exe, OSError(errno.EACCES, "Permission denied"))
    try:
        with open(exe, "rb") as f:
            head = f.read(256)
    except OSError:
        return  # execute-only: the exec alone can tell
    interp = None
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        interp = words[0].decode(errors="surrogateescape") if words else None
    elif head.startswith(b"\x7fELF"):
        interp = inspect_elf(exe)[1]
    if interp and not os.path.exists(interp):
        raise _exec_error(exe, OSError(errno.ENOENT, "No such file or directory"))


def _exec_error(exe, exc):
    if exc.errno == errno.ENOENT and os.path.lexists(exe):
        _machine, interp = inspect_elf(exe)
        if interp and not os.path.exists(interp):
            return errors.CommandNotFound(
                "exec %s: its dynamic loader %s is missing from the image" % (exe, interp),
                "the binary was built for another system; rebuild it static or add its "
                "libraries to the image")
    if exc.errno == errno.ENOEXEC:
        machine, _interp = inspect_elf(exe)
        if machine and machine != host_machine():
            return errors.CannotExecute(
                "exec %s: exec format error: the binary is for %s, this machine runs %s"
                % (exe, machine, host_machine()),
                "use an image built for %s" % host_machine())
        return errors.CannotExecute("exec %s: exec format error" % exe)
    if exc.errno == errno.ENOENT:
        return errors.CommandNotFound("exec %s: no such file or directory" % exe)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EISDIR):
        return errors.CannotExecute("exec %s: permission denied" % exe)
    return errors.CannotExecute("exec %s: %s" % (exe, exc.strerror))
