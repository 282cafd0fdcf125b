"""Reaching a stopped container's files, and a helper process beside such work (cp).

Owns: running a function as root of a fresh user + mount namespace chrooted into a
container's root filesystem that is not running (its overlay mounted there, read-only with
the upper dir as the topmost lower, or writable through its own upper and work dirs; a copy
driver's rootfs entered as it is), so that the function sees the same tree, with the same
owners, as the container would; and `start_peer`, a plain forked process that streams data
to or from such a function through a pipe while the caller waits for it.
Must not: know about container records or the store (the caller passes the directories), or
write into a lower layer directory (they are shared by every container of the image: writes
go through an overlay whose upper dir is the container's own).
"""

import os

from . import launcher
from .mounts import mount_overlay


def run_in_rootfs(func, idmap, rootfs, *args):
    """func(*args) inside the root that rootfs describes: {"driver", "lower": [layer dirs,
    topmost first], "upper", "work", "merged" (the copy driver's rootfs), "mountpoint" (an
    empty directory for the overlay), "writable"}. Returns func's JSON-able result or raises
    the BoxError it raised. Everything func uses must be imported before: after chroot the
    package's files are out of reach."""
    return launcher.run_in_userns(_inside, idmap, rootfs, func, args)


def _inside(rootfs, func, args):
    if rootfs["driver"] == "copy":
        root = rootfs["merged"]
    else:
        root = rootfs["mountpoint"]
        if rootfs.get("writable"):
            # the container is stopped: its upper and work dirs are free for this mount, and
            # copy-up and whiteouts land in the upper dir as they would while it runs
            mount_overlay(root, rootfs["lower"], rootfs["upper"], rootfs["work"])
        else:
            # as export does: the upper dir as the topmost lower applies its whiteouts
            # without taking the work dir
            mount_overlay(root, [rootfs["upper"]] + list(rootfs["lower"]))
    # chroot, as `nsenter --root` does for a running container (join.enter): every symlink
    # met later, absolute or relative, ends inside this root
    os.chdir(root)
    os.chroot(".")
    os.chdir("/")
    return func(*args)


class Peer:
    """A forked helper running beside the caller (see start_peer)."""

    def __init__(self, pid, res_r, err_r):
        self.pid = pid
        self._res_r = res_r
        self._err_r = err_r

    def finish(self):
        """Wait for it; its JSON-able result, or the BoxError it raised."""
        from .. import errors, fastjson
        try:
            result = launcher._read_all(self._res_r)
            err = launcher._read_all(self._err_r)
        finally:
            self._close()
            os.waitpid(self.pid, 0)
        if err:
            launcher._raise_reported(err)
        if not result.startswith(b"R"):
            raise errors.SetupError("the copying helper died without an answer")
        return fastjson.loads(result[1:])

    def abandon(self):
        """End it (the other side of its pipe failed) and wait for it."""
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


def start_peer(func, *args, close=()):
    """Fork a helper that runs func(*args) as the user, in the caller's namespaces (the
    host side of a copy: reading the host's source files, or writing the host's
    destination). close: fds the helper must not hold (the pipe end it does not use, so
    that its partner sees EOF)."""
    from .. import fastjson
    launcher._flush_stdio()
    res_r, res_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(res_r)
            os.close(err_r)
            for fd in close:
                os.close(fd)
            os.write(res_w, b"R" + fastjson.dumps(func(*args)))
            os._exit(0)
        except BaseException as exc:
            launcher._report(err_w, exc)
    os.close(res_w)
    os.close(err_w)
    return Peer(pid, res_r, err_r)
