"""Reaching a stopped container's files, and a helper process beside such work (cp).

Owns: running a function as root of a fresh user + mount namespace chrooted into a
container's root filesystem that is not running (its overlay mounted there, read-only with
the upper dir as the topmost lower, or writable through its own upper and work dirs; a copy
driver's rootfs entered as it is) with its volumes and bind mounts bound where the container
has them (as Docker mounts them for `cp`), so that the function sees the same tree, with the
same owners, as the container would; and `start_peer`, a plain forked process that streams data
to or from such a function through a pipe while the caller waits for it.
Must not: know about container records or the store (the caller passes the directories), or
write into a lower layer directory (they are shared by every container of the image: writes
go through an overlay whose upper dir is the container's own).
"""

import os

from .. import errors
from . import launcher
from .mounts import Executor, MountError, mount_overlay


def run_in_rootfs(func, idmap, rootfs, *args):
    """func(*args) inside the root that rootfs describes: {"driver", "lower": [layer dirs,
    topmost first], "upper", "work", "merged" (the copy driver's rootfs), "mountpoint" (an
    empty directory for the overlay), "writable"}. Returns func's JSON-able result or raises
    the BoxError it raised. Everything func uses must be imported before: after chroot the
    package's files are out of reach. rootfs["binds"]: [(host source, container path,
    readonly)] of the container's volumes and bind mounts."""
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
    _bind_mounts(root, rootfs.get("binds") or (), rootfs.get("writable"))
    # chroot, as `nsenter --root` does for a running container (join.enter): every symlink
    # met later, absolute or relative, ends inside this root
    os.chdir(root)
    os.chroot(".")
    os.chdir("/")
    return func(*args)


def _bind_mounts(root, binds, writable):
    """The container's volumes and bind mounts at their places in root, parents first,
    their paths resolved inside root (as init does). A mount point missing from a tree
    opened read-only is left out (nothing was ever copied there); a writable tree gets it
    made, in the container's upper dir, as its start would."""
    executor = Executor({"rootfs": {"merged": root}})
    for source, destination, readonly in sorted(binds, key=lambda b: b[1].rstrip("/").count("/")):
        try:
            executor.run([("bind", source, destination, readonly or not writable, True)])
        except MountError as exc:
            if writable:
                raise errors.SetupError("cannot mount the container's %s: %s"
                                        % (destination, exc)) from None


def start_peer(func, *args, close=()):
    """Fork a helper that runs func(*args) as the user, in the caller's namespaces (the
    host side of a copy: reading the host's source files, or writing the host's
    destination). close: fds the helper must not hold (the pipe end it does not use, so
    that its partner sees EOF). -> launcher.Forked (finish, abandon)."""
    def before():
        for fd in close:
            os.close(fd)
    return launcher.fork_call(func, args, before, "the copying helper")
