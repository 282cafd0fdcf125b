"""Build contexts that arrived as a tar (the Engine API's `POST /build`), kept unpacked by the
tar's digest, so the same context sent again is not unpacked again.

Owns: `buildcache-contexts/` in the store: one directory per kept context, named by the
sha256 of the tar's bytes as the client sent them, made by renaming a completely unpacked
temporary into place (so a name that exists is a whole context); in use, a directory holds a
shared flock on itself and its mtime says when it was last used; at most KEEP of them stay,
the least recently used and unused ones removed first (`builder prune` removes every unused
one, and counts the bytes it freed; `system df` lists them, as BuildKit's `source.local`
records, with usage()). The docker CLI sends the same bytes for an unchanged directory (same
names, order, modes, owners, mtimes), so an unchanged context is found here; any change in
it, an mtime included, is another digest and a fresh unpack, and the build's cache keys are
always computed from the directory (dockerfile/context.content_key, as for the CLI's build),
so a kept context can only save the unpack, never change a key.
Must not: hand out a directory another process may still be filling or removing, or remove
one a build holds.
"""

import fcntl
import os

DIRNAME = "buildcache-contexts"
KEEP = 4
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Held:
    """A kept context in use: its path, and the shared lock that keeps it from removal."""

    def __init__(self, path, fd):
        self.path = path
        self._fd = fd

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _root(store):
    return os.path.join(store.root, DIRNAME)


def _hold(path):
    """A shared lock on the directory at path, or None when it is gone or being removed."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        # removed between our open and our lock: the name is gone or is another directory
        now, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
        if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino) or held.st_nlink == 0:
            raise OSError("gone")
    except OSError:
        os.close(fd)
        return None
    return Held(path, fd)


def find(store, digest):
    """The kept context of a tar digest (hex), held; None when there is none."""
    held = _hold(os.path.join(_root(store), digest))
    if held is not None:
        try:
            os.utime(held.path)
        except OSError:
            pass
    return held


def keep(store, unpacked, digest):
    """Move a fully unpacked context (a store temporary) to the kept place of its digest and
    hold it; None when it cannot be kept (another build kept the same one first: the caller
    builds from its temporary and removes it)."""
    root = _root(store)
    os.makedirs(root, 0o700, exist_ok=True)
    path = os.path.join(root, digest)
    # held before it has its name, so no eviction can take it between the two
    fd = os.open(unpacked, _DIR_FLAGS)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        os.rename(unpacked, path)
    except OSError:
        os.close(fd)
        return None
    _evict(store, root, KEEP, keep_name=digest)
    return Held(path, fd)


def _evict(store, root, keep_count, keep_name=None, measure=False):
    """Remove kept contexts beyond the keep_count most recently used; one in use stays.
    -> [(name, bytes freed)] of those removed (0 unless measure: a build evicting one does
    not walk it)."""
    removed = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return removed
    aged = []
    for name in names:
        try:
            aged.append((os.stat(os.path.join(root, name), follow_symlinks=False).st_mtime_ns,
                         name))
        except OSError:
            continue
    aged.sort(reverse=True)
    for _mtime, name in aged[keep_count:]:
        if name == keep_name:
            continue
        path = os.path.join(root, name)
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a build reads it now
            # renamed away first, so no build finds a half-removed directory by its name
            doomed = store.mktemp_path("old-context")
            try:
                os.rename(path, doomed)
            except OSError:
                continue
            size = 0
            if measure:  # no build writes a kept context: measured as it goes
                from .prune import tree_size
                size = tree_size(doomed)
            store.remove(doomed)
            # a remove that stopped half way leaves the rest in the store's tmp/ (swept
            # there), not under a context's name; only bytes really freed are counted
            removed.append((name, 0 if os.path.lexists(doomed) else size))
        finally:
            os.close(fd)
    return removed


def prune(store):
    """`builder prune`: every kept context no build holds. -> [(name, bytes freed)]."""
    return _evict(store, _root(store), 0, measure=True)


def usage(store):
    """The kept contexts as `system df` lists them: [{"name", "path", "created",
    "last_used" (epoch seconds; the directory's mtime, set at each use), "in_use"}]. In use
    is a shared lock some build holds, seen by failing to take an exclusive one without
    waiting (released at once; a build that looks for the context in that instant unpacks
    its tar again)."""
    root = _root(store)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = os.path.join(root, name)
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError:
            continue  # removed meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                in_use = False
            except BlockingIOError:
                in_use = True
            last_used = os.fstat(fd).st_mtime
            found.append({"name": name, "path": path, "in_use": in_use,
                          "last_used": last_used, "created": _unpacked_at(path, last_used)})
        finally:
            os.close(fd)
    return found


def _unpacked_at(path, default):
    """When a kept context was unpacked: the ctime of an entry in it (set by the unpack and
    left alone since: a use touches the directory's times only)."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                return entry.stat(follow_symlinks=False).st_ctime
    except OSError:
        pass
    return default
