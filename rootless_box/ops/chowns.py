"""The chown supervisor's policy: what a container's chown under the single-id mapping's fake
root means for its files (issue 8).

Owns: turning a chown the seccomp filter sent to the keeper (userns/notify.py finds the file
inside the container's root) into the `user.rootlesscontainers` record (layers/owners.py),
merging an id left unchanged (-1) with the current record, the set-id bits a chown clears, and the keepers' service table
(`services`: the foreground run, a build's RUN step, a detached container's watcher, exec).
Must not: import more than os/stat and the small modules notify and owners need: the
detached container's watcher imports this for the container's whole life. Nor fail: a file
that cannot take the record (a symlink, a FIFO, a read-only mount) keeps no owner, and the
chown still succeeds, as the fake root's did.
"""

import errno
import os
import stat

from ..layers import owners
from ..userns import notify


def record(path, uid, gid, as_user=False):
    """path: a /proc/self/fd link to the chowned file (a symlink is the link itself).
    as_user: the caller is a non-root user under the single-id mapping (its ids faked),
    which Docker would not let chown to root: a 0 is what stat showed it (the one id on
    disk, passed back as `chgrp` and `chown USER` do) and means "unchanged". An id left
    unchanged then stays NOOP_ID in the record unless the record had one, so a file the
    step created still becomes its user's (layers/diff.claim_new)."""
    st = os.stat(path)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return  # xattr(7): user.* only on files and directories; the owner is not kept
    if as_user:
        uid = notify.NOOP_ID if uid == 0 else uid
        gid = notify.NOOP_ID if gid == 0 else gid
        current = owners.recorded(path, follow_symlinks=True) or (notify.NOOP_ID,
                                                                   notify.NOOP_ID)
        uid = current[0] if uid == notify.NOOP_ID else uid
        gid = current[1] if gid == notify.NOOP_ID else gid
    elif notify.NOOP_ID in (uid, gid):
        current = owners.read(path, st, follow_symlinks=True)
        uid = current[0] if uid == notify.NOOP_ID else uid
        gid = current[1] if gid == notify.NOOP_ID else gid
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        # chown(2) clears set-user-ID, and set-group-ID on a group-executable file, for root
        # too (since Linux 2.2.13): so does the real chown under a subuid mapping
        kept = mode & ~stat.S_ISUID & ~(stat.S_ISGID if mode & stat.S_IXGRP else 0)
        if kept != mode:
            os.chmod(path, kept)
            mode = kept
    write = owners.write_raw if notify.NOOP_ID in (uid, gid) else owners.record
    try:
        write(path, uid, gid, follow_symlinks=True)
    except PermissionError as exc:
        # user.* xattrs need write permission, which root in the container has through
        # CAP_DAC_OVERRIDE and the keeper, outside, has not: a mode without u+w is opened
        # for the record and given back
        if exc.errno != errno.EACCES or st.st_mode & stat.S_IWUSR or st.st_uid != os.geteuid():
            raise
        os.chmod(path, mode | stat.S_IWUSR)
        try:
            write(path, uid, gid, follow_symlinks=True)
        finally:
            os.chmod(path, mode)


def serve(listener, ids=None):
    """Answer one notification on listener; False once the container is gone. ids: the
    container user's (uid, gid, groups) when it runs as a non-root user under the single-id
    mapping (get*id answer with them)."""
    if ids is None:
        return notify.serve(listener, record)
    return notify.serve(listener, _record_as_user, ids)


def _record_as_user(path, uid, gid):
    record(path, uid, gid, as_user=True)


def services(container):
    """The keeper's {fd: call} for launcher.Container.wait and pty.relay (empty without a
    listener)."""
    if container.listener is None:
        return {}
    listener, ids = container.listener, container.fake_ids
    return {listener: lambda: serve(listener, ids)}
