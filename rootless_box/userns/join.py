"""Entering a running container: its namespaces, its root, its confinement.

Owns: holding a container process open (/proc/PID/ns/* and /proc/PID/root opened before
anything is joined, so a pid reused meanwhile cannot send us elsewhere), joining those
namespaces in the order the kernel needs (the user namespace first: it grants the
capabilities the others ask for, setns(2)), entering the container's root as `nsenter --root`
does, reading the confinement the container has (bounding set, no_new_privs, whether
setgroups is denied), and the process tree of `exec`: a joiner outside, the command inside
the pid namespace, whose parent (outside it) waits for it, also when detached.
Must not: know about container records, images or the store (the caller passes the pid and a
check that it is still the container's), or decide a confinement of its own: an exec'd
process gets exactly what the container's init has.
"""

import os
import _signal as signal

from . import launcher, libc
from .detach import keep_only

# (name in /proc/PID/ns, setns type); the user namespace first, see above. The mount
# namespace comes last but one: joining it resets root and cwd, which fchdir+chroot redo.
NAMESPACES = (("user", libc.CLONE_NEWUSER), ("ipc", libc.CLONE_NEWIPC),
              ("uts", libc.CLONE_NEWUTS), ("net", libc.CLONE_NEWNET),
              ("pid", libc.CLONE_NEWPID), ("cgroup", libc.CLONE_NEWCGROUP),
              ("mnt", libc.CLONE_NEWNS))


def _same_file(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _read(path):
    with open(path, encoding="ascii", errors="replace") as f:
        return f.read()


class Target:
    """A container process held open: fds of the namespaces that differ from ours, of its
    root directory, and what confines it. Close it when done (the fds are close-on-exec)."""

    def __init__(self, pid):
        self.pid = pid
        self.ns_fds = []  # (setns type, fd), in joining order
        self.root_fd = None
        self.bounding = 0
        self.no_new_privs = False
        self.idmap_mode = "subuid"

    @property
    def caps(self):
        """The container's bounding set as names (what caps.restrict keeps)."""
        from .caps import NAMES
        return [name for i, name in enumerate(NAMES) if self.bounding & (1 << i)]

    def close(self):
        for _kind, fd in self.ns_fds:
            os.close(fd)
        self.ns_fds = []
        if self.root_fd is not None:
            os.close(self.root_fd)
            self.root_fd = None


def open_target(pid, still_same=None):
    """Open the namespaces and root of host process pid. still_same(): called once they are
    open, true when pid is still the process the caller meant (its start time), so the fds
    cannot belong to a process that took a recycled pid. Returns None when the process is
    gone; raises OSError when it exists but cannot be opened."""
    target = Target(pid)
    base = "/proc/%d" % pid
    try:
        for name, kind in NAMESPACES:
            path = "%s/ns/%s" % (base, name)
            if not os.path.exists(path) or _same_file(path, "/proc/self/ns/" + name):
                # a namespace the container shares with us (host network, cgroup): setns
                # into it would need privileges over the host's, and changes nothing
                continue
            target.ns_fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        target.root_fd = os.open(base + "/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        status = dict(line.split(":", 1) for line in _read(base + "/status").splitlines()
                      if ":" in line)
        target.bounding = int(status["CapBnd"].strip(), 16)
        target.no_new_privs = status.get("NoNewPrivs", "0").strip() == "1"
        # a single-id mapping denies setgroups (user_namespaces(7)); newgidmap leaves it
        if _read(base + "/setgroups").strip() == "deny":
            target.idmap_mode = "single"
    except (FileNotFoundError, ProcessLookupError):
        target.close()
        return None
    except BaseException:
        target.close()
        raise
    if still_same is not None and not still_same():
        target.close()
        return None
    return target


def enter(target):
    """In a single-threaded child (setns refuses a user namespace to a threaded process):
    join the target's namespaces and make its root ours. Children forked afterwards are in
    its pid namespace; this process is not (pid_namespaces(7))."""
    for kind, fd in target.ns_fds:
        libc.setns(fd, kind)
    os.fchdir(target.root_fd)
    os.chroot(".")
    os.chdir("/")
    target.close()


def run_in_target(target, func, *args):
    """Run func(*args) in a child that joined target (see enter); returns its JSON-able
    result or raises the BoxError it raised. For work on a running container's files with
    the container's owners (cp): the child is root of the container's user namespace, with
    every capability there, and sees the container's mounts."""
    def before():
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        enter(target)
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)  # setns(user) cleared it
    return launcher.fork_call(func, args, before,
                              "the process that entered the container").finish()


def spawn(target, spec, detach=False):
    """Start spec's command in the container target holds (the exec spec: argv, env, cwd,
    user, tty, stdin, winsize; see launcher.become). Returns a launcher.Container (the
    command's host pid, the joiner that waits for it and leaves with its status, the pty
    master) once the command has been exec'd, or None when detached: the command then runs
    on, stdio on /dev/null, its joiner waiting for it apart from the caller. Raises the BoxError its setup
    hit (127/126 for a command that cannot be run)."""
    spec = dict(spec, caps=target.caps, no_new_privs=target.no_new_privs,
                idmap_mode=target.idmap_mode, create_cwd=False)
    if detach:
        # nobody stays to answer its chowns: they are faked, the owner lost
        spec.update(tty=False, stdin=False, chown_notify=False)
    supervised = bool(spec.get("seccomp") and spec.get("chown_notify"))
    launcher._flush_stdio()
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    sock_parent = sock_child = None
    if spec.get("tty") or supervised:
        import socket
        from . import pty  # noqa: F401  (the command's side needs it after chroot)
        sock_parent, sock_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if spec.get("seccomp") or spec.get("seccomp_bpf"):
        from . import seccomp  # noqa: F401  (the command's side installs it after chroot)
    if spec.get("ulimits"):
        import resource  # noqa: F401  (the command's side sets them after chroot)
    if supervised:
        from . import notify  # noqa: F401  (the command's side sends the fake ids with it)
    joiner = os.fork()
    if joiner == 0:
        try:
            os.close(pid_r)
            os.close(err_r)
            if sock_parent:
                sock_parent.close()
            _joiner(target, spec, detach, pid_w, err_w, sock_child)
        except BaseException as exc:
            launcher._report(err_w, exc)
    os.close(pid_w)
    os.close(err_w)
    if sock_child:
        sock_child.close()
    master = listener = fake_ids = None
    try:
        text = launcher._read_all(pid_r)
        pid = int(text) if text.strip().isdigit() else None
        if sock_parent is not None and pid:
            from .pty import receive_fd
            if spec.get("tty"):
                master = receive_fd(sock_parent)
            if supervised:
                listener = receive_fd(sock_parent)
                if listener is not None:
                    from .notify import receive_ids
                    fake_ids = receive_ids(sock_parent)
        err = launcher._read_all(err_r)
    except BaseException:
        os.waitpid(joiner, 0)
        raise
    finally:
        os.close(pid_r)
        os.close(err_r)
        if sock_parent is not None:
            sock_parent.close()
    if err or not pid:
        for fd in (master, listener):
            if fd is not None:
                os.close(fd)
        os.waitpid(joiner, 0)
        if err:
            launcher._raise_reported(err)
        from ..errors import SetupError
        raise SetupError("the process that entered the container died unexpectedly")
    if detach:
        os.waitpid(joiner, 0)
        return None
    return launcher.Container(pid, joiner, master, listener, fake_ids)


def _joiner(target, spec, detach, pid_w, err_w, sock):
    """Outside the container's pid namespace (setns cannot move this process into it):
    join, fork the command's process, report its pid, wait for it. Detached, it leaves the
    caller first (a double fork: `exec -d` returns at once) and stays as the command's
    parent, reaping it as Docker's shim does: an init that does not reap (`sleep` as pid 1)
    would keep it a zombie."""
    if not detach:
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        # it stays for the command's life
        keep_only({pid_w, err_w, target.root_fd} |
                           {fd for _kind, fd in target.ns_fds} |
                           ({sock.fileno()} if sock is not None else set()))
    enter(target)
    if not detach:
        # a killed `exec` takes its command with it, as a killed `run` takes its container;
        # set after setns(user), whose change of credentials clears it
        libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    inner = os.fork()
    if inner == 0:
        os.close(pid_w)
        _command(spec, detach, err_w, sock)
    os.write(pid_w, b"%d\n" % inner)
    # only the command may hold these now: the caller reads them until EOF
    os.close(pid_w)
    os.close(err_w)
    if sock:
        sock.close()
    launcher._keep(inner)


def _command(spec, detach, err_w, sock):
    """Inside the pid namespace: become spec's process and exec. Never returns."""
    try:
        # its own session: a ^C on the caller's terminal reaches it once, forwarded
        os.setsid()
        if detach:
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            if null > 2:
                os.close(null)
        argv, env, path_var = launcher.become(spec, sock)
        if not detach:
            # the switch of user in become() cleared it
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
        launcher.execve(argv, env, path_var)
    except BaseException as exc:
        launcher._report(err_w, exc)
