"""The zygote: a warm process that forks detached containers' keepers, so they share its pages.

Owns: the zygote itself (`main`: one per user, runtime dir and installed tool, started apart by
a `run -d` that found none, gone after a quiet spell), asking it for a keeper (`ask`, from the
CLI's `monitor.launch`) and the keeper's life (`_keeper`: the CLI's environment, its relative
paths made absolute from the CLI's working directory, which it leaves, and umask taken over;
a starter child runs the monitor's own `_serve`, which starts the container, reports to the
CLI and hands the watcher's fds back; the keeper, the container's init now its child, runs
the watcher in place instead of exec'ing a fresh interpreter). A fresh interpreter alone
weighs ~2.45 MiB PSS; a keeper forked from a process that imported what it runs shares those
pages with the zygote and its siblings (ARCHITECTURE, "The keeper's memory").
Must not: be a process whose death takes anything with it: a keeper is an independent process
once forked (its own session; the zygote ignores SIGCHLD, so nobody waits for it), a dead or
stuck zygote only means the next `run -d` takes the monitor's own path and starts a new one.
Nothing is sent before the keeper answers (one byte), so a CLI that gives up waiting never
starts a container twice.
"""

import os
import sys

from .. import config, fastjson

# how long a CLI waits for a forked keeper's first byte before it starts the container itself
_ANSWER_TIMEOUT = 2.0
# the zygote leaves after this long without a request once none of its keepers is alive, and
# after _QUIET in any case (its keepers stay, and keep sharing their pages among themselves)
_TICK = 30.0
_QUIET = 600.0


def enabled():
    """RBX_ZYGOTE=0: every keeper the monitor's own way. The one-file binary keeps that way
    too: its bootloader re-executes itself with an environment of its own, which a keeper
    taking over the CLI's would have to undo (tests/binary checks its watcher)."""
    return config.zygote() and not getattr(sys, "frozen", False)


# what a process inherits from its parent that /proc/self/status shows and a keeper (and so
# its container) must get from the CLI, as the monitor's own way gives it
_STATUS_KEYS = (b"NoNewPrivs", b"Seccomp", b"Seccomp_filters", b"SigBlk", b"SigIgn", b"CapInh",
                b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb", b"Cpus_allowed_list",
                b"Mems_allowed_list")


def _inherited():
    """What a keeper would inherit from whoever started its zygote, as this process has it:
    namespaces, cgroup, no_new_privs and seccomp, ignored and blocked signals, capabilities,
    CPU affinity, resource limits, OOM score and nice value. A CLI under other ones (in a
    systemd unit, under `unshare`, `prlimit`, `setpriv --no-new-privs`...) gets a zygote of
    its own, or it would start containers with the first caller's."""
    parts = [os.readlink("/proc/self/ns/" + ns) for ns in
             ("user", "mnt", "net", "pid", "ipc", "uts", "cgroup")
             if os.path.exists("/proc/self/ns/" + ns)]
    parts = [p.encode() for p in parts] + [b"%d" % os.nice(0)]
    for name in ("cgroup", "limits", "oom_score_adj", "status"):
        try:
            with open("/proc/self/" + name, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        if name == "status":
            data = b"\n".join(line for line in data.splitlines()
                              if line.partition(b":")[0] in _STATUS_KEYS)
        parts.append(data)
    return b"\0".join(parts)


def socket_path():
    """One zygote per runtime dir, interpreter, copy of the package (two installs must not
    start each other's code) and inherited state (_inherited); a CRC-32 of those names it
    (binascii is built in; no hashlib on this path)."""
    import binascii
    key = ("%s\0%s\0" % (sys.executable, os.path.dirname(os.path.abspath(__file__)))).encode(
        errors="surrogateescape") + _inherited()
    return os.path.join(config.runtime_root(), "zygote-%08x.sock" % binascii.crc32(key))


# -- in the CLI -------------------------------------------------------------------------------

def ask(store, idmap, cid, published=None):
    """Have the zygote fork cid's keeper, which starts the container as monitor._serve does.
    -> its report line (monitor.launch reads it), or None when no zygote answered in time:
    then nothing was sent and the caller starts the container itself."""
    import _socket
    from ..errors import BoxError
    try:
        path = socket_path()
    except BoxError:  # no private runtime dir: the monitor's own way still works
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(_ANSWER_TIMEOUT)
        try:
            sock.connect(path)
            if sock.recv(1) != b"A":
                return None
        except OSError:  # none listening (ENOENT, ECONNREFUSED), gone, or too slow
            return None
        sock.settimeout(None)
        listeners = published.listeners if published is not None else []
        umask = os.umask(0o022)
        os.umask(umask)
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = "/"
        request = {"root": store.root, "cid": cid, "env": dict(os.environ), "cwd": cwd,
                   "umask": umask, "idmap": [idmap.mode, idmap.uid_map, idmap.gid_map],
                   "published": None if published is None else {
                       "listeners": [[proto, port] for _s, proto, port in listeners],
                       "ports": published.ports, "outbound": published.outbound}}
        data = fastjson.dumps(request)
        fds = [s.fileno() for s, _proto, _port in listeners]
        _send_with_fds(sock, data, fds)
        sock.shutdown(_socket.SHUT_WR)
        from .monitor import _read_report
        return _read_report(sock.fileno())
    finally:
        sock.close()


def _send_with_fds(sock, data, fds):
    """All of data on a _socket.socket, fds (SCM_RIGHTS) with its first bytes."""
    import _socket
    ancillary = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(
        fd.to_bytes(4, sys.byteorder, signed=True) for fd in fds))] if fds else []
    sent = sock.sendmsg([data], ancillary)
    sock.sendall(data[sent:])


def spawn():
    """Start a zygote apart (userns/detach: nobody's child, a session of its own). It gets
    none of the caller's fds nor its environment (a resident process must not carry a
    caller's secrets, and tests find a caller's processes by its variables). Best effort:
    without one, the next `run -d` takes the monitor's own way again."""
    from ..errors import BoxError
    from ..userns import detach
    try:
        path = socket_path()
    except BoxError:
        return
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    argv = zygote_argv(path)
    try:
        detach.spawn(lambda: os.execve(sys.executable, argv, env), keep=())
    except OSError:
        pass  # no fork now


def zygote_argv(path):
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    boot = ("import sys; sys.path.insert(0, %r); from rootless_box.ops.zygote import main; "
            "sys.exit(main(sys.argv[1:]))" % package_parent)
    return [sys.executable, "-I", "-S", "-c", boot, path]


# -- the zygote -------------------------------------------------------------------------------

def _warm():
    """Import what a keeper runs (the monitor's start of a container, the watcher), so that
    its pages are the zygote's, shared, not each keeper's own. Not `socket` (its enums: ~0.5
    MiB that every keeper would map): _socket does here; the starter imports it when it binds
    an attach socket."""
    from . import cgroups, containers, events, health, logwriter, monitor  # noqa: F401
    from . import pause, ports, runflags, storage, watch  # noqa: F401
    from ..oci import image  # noqa: F401  (the watcher's exit time)
    from ..userns import idmap, launcher  # noqa: F401


def _code_stamp():
    """(path, mtime, size) of every module of this package loaded here: a keeper runs the
    zygote's copy of the code, so one that changed on disk (an upgrade, a developer's edit)
    makes this zygote stale."""
    stamp = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and name.partition(".")[0] == __name__.partition(".")[0]:
            try:
                st = os.stat(path)
            except OSError:
                st = None
            stamp.append((path, st and (st.st_mtime_ns, st.st_size)))
    return sorted(stamp)


def _children():
    """Whether any keeper forked here still runs (None: the kernel cannot tell)."""
    try:
        with open("/proc/self/task/%d/children" % os.getpid()) as f:
            return bool(f.read().strip())
    except OSError:
        return None


def main(argv):
    """`python -I -S -c ... zygote.main PATH`: serve on PATH until quiet. The lock beside it
    makes one zygote per path; a second one leaves."""
    import _socket
    import fcntl
    import gc
    import select
    import signal
    import time
    path = argv[0]
    os.chdir("/")  # no directory of the caller's kept busy (nor do its keepers)
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0
    _warm()
    try:
        os.unlink(path)  # a dead zygote's
    except OSError:
        pass
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    # keepers are nobody's children to wait for: the kernel reaps them
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    # the objects imported above stay untouched by collections, here and in every keeper;
    # what the imports freed goes back (~1.9 MiB of heap, which every keeper would map)
    gc.collect()
    gc.freeze()
    from ..userns.libc import trim_heap
    trim_heap()
    last = time.monotonic()
    uid = os.getuid()
    code = _code_stamp()
    while True:
        ready, _w, _x = select.select([listener], [], [], _TICK)
        if not ready:
            quiet = time.monotonic() - last
            if quiet >= _QUIET or (quiet >= _TICK and _children() is False):
                break
            continue
        try:
            conn = _socket.socket(fileno=listener._accept()[0])
        except OSError:
            continue
        last = time.monotonic()
        creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        if int.from_bytes(creds[4:8], sys.byteorder) != uid:
            conn.close()
            continue
        if _code_stamp() != code:
            # the CLI hears no answer and starts the container itself; the next `run -d`
            # finds no zygote here and starts one with the code as it is now
            conn.close()
            break
        try:
            pid = os.fork()
        except OSError:
            conn.close()  # the CLI hears nothing and starts the container itself
            continue
        if pid == 0:
            try:
                _keeper(conn, listener, lock)
            finally:
                os._exit(125)
        conn.close()
    try:
        os.unlink(path)  # still ours: the lock is held
    except OSError:
        pass
    return 0


def _receive(conn):
    """The request to its end, and the fds that came with it: close-on-exec, as the CLI's
    own were (a helper the forwarder execs, pasta, must not hold a published port)."""
    import _socket
    chunks, fds = [], []
    while True:
        data, ancillary, _flags, _addr = conn.recvmsg(65536, _socket.CMSG_SPACE(64 * 4),
                                                      _socket.MSG_CMSG_CLOEXEC)
        for level, kind, payload in ancillary:
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                fds += [int.from_bytes(payload[i:i + 4], sys.byteorder)
                        for i in range(0, len(payload) - len(payload) % 4, 4)]
        if not data:
            return b"".join(chunks), fds
        chunks.append(data)


def _keeper(conn, listener, lock):
    """In the forked keeper: take the CLI's request, have a child start the container (the
    start touches much: in a child that leaves, it dirties none of this process's pages),
    adopt the container's init, and become its watcher. Never returns."""
    import _socket
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # it waits for the container's init
    listener.close()
    os.close(lock)
    os.setsid()
    conn.settimeout(10.0)
    try:
        conn.sendall(b"A")
        data, fds = _receive(conn)
    except OSError:
        os._exit(0)
    if not data:
        os._exit(0)  # the CLI gave up before asking: it starts the container itself
    report = conn.detach()
    os.set_blocking(report, True)
    from . import monitor
    try:
        request = fastjson.loads(data)
        os.environ.clear()
        os.environ.update(request["env"])
        from ..userns.detach import leave_cwd
        leave_cwd(request["cwd"])  # the zygote's "/" stays: nothing of the caller's held
        os.umask(request["umask"])
        from ..userns.launcher import adopt_orphans
        adopt_orphans()  # the container's init comes to this process when its parent leaves
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
        starter = os.fork()
    except BaseException as exc:
        monitor._send(report, exc)
        os._exit(125)
    if starter == 0:
        ours.close()
        _start(request, fds, report, theirs.detach())
    theirs.close()
    os.close(report)
    for fd in fds:
        os.close(fd)
    del request, data
    try:
        handed, fds = _receive(ours)
    except OSError:
        handed = b""
    ours.close()
    os.waitpid(starter, 0)
    if not handed:
        os._exit(0)  # the start failed; the starter told the CLI
    _watch(fastjson.loads(handed), fds)


def _start(request, fds, report, handoff):
    """In the keeper's child: the monitor's start of the container (monitor._serve), which
    tells the CLI and hands the watcher's part to the keeper. Never returns."""
    import _socket
    from . import monitor
    try:
        from ..userns.idmap import IdMap
        from .storage import open_store
        from . import containers
        mode, uid_map, gid_map = request["idmap"]
        idmap = IdMap(mode, [tuple(m) for m in uid_map], [tuple(m) for m in gid_map])
        store = open_store(idmap)
        if store.root != request["root"]:
            raise RuntimeError("the zygote's keeper found store %s, not %s"
                               % (store.root, request["root"]))
        cid = request["cid"]
        published = None
        if request["published"] is not None:
            from .ports import Published
            pub = request["published"]
            listeners = [(_socket.socket(fileno=fd), proto, port)
                         for fd, (proto, port) in zip(fds, pub["listeners"])]
            published = Published(store, cid, listeners, pub["ports"], pub["outbound"])
        record = store.read_container(cid)
        if record is None:
            raise RuntimeError("container %s is gone" % cid)
        spec = containers.load_spec(store, record)
        monitor._serve(store, idmap, cid, spec, report, published, handoff=handoff)
    except BaseException as exc:  # the CLI must hear it, as from monitor.launch's child
        monitor._send(report, exc)
    os._exit(125)


def hand_over(handoff, root, record, middle, fds, attach, listener, fake_ids):
    """In the starter, the container running: the watcher's fds and arguments to the keeper
    (monitor._serve's end, instead of exec'ing the watcher)."""
    import _socket
    from .health import active
    names = sorted(fds)
    path = attach.partition(":")[2] if attach else ""
    passed = [fds[n] for n in names] + ([int(attach.partition(":")[0])] if attach else []) + \
        ([listener] if listener is not None else [])
    message = {"root": root, "cid": record["Id"], "middle": middle, "names": names,
               "attach": path, "listener": listener is not None,
               "fake_ids": list(fake_ids) if fake_ids else None,
               "health": active((record.get("Config") or {}).get("Healthcheck"))}
    sock = _socket.socket(fileno=handoff)
    _send_with_fds(sock, fastjson.dumps(message), passed)
    sock.close()


def _watch(message, fds):
    """In the keeper, the container's init its child now: become the watcher. Never
    returns."""
    from . import monitor
    from .watch import main
    names = message["names"]
    mine = dict(zip(names, fds))
    rest = fds[len(names):]
    attach = ""
    if message["attach"]:
        attach = "%d:%s" % (rest.pop(0), message["attach"])
    listener = rest.pop(0) if message["listener"] else None
    if message["health"]:
        from ..store import Store
        from .health import spawn
        spawn(Store(message["root"]), message["cid"], subreaper=True)
    args = monitor.watcher_args(message["root"], message["cid"], message["middle"], mine,
                                attach, listener, message["fake_ids"])
    del message, fds, mine, rest
    _settle()
    os._exit(main(args) or 0)


def _settle():
    """Before a keeper idles for the container's life: what it allocated goes back to the
    kernel, and what stays is kept out of later collections (which would write to every
    object they visit, the zygote's shared pages among them)."""
    import gc
    gc.collect()
    gc.freeze()
    from ..userns.libc import trim_heap
    trim_heap()
