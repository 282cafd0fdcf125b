"""The on-disk store: blobs, the image index, unpacked layers, container records.

Owns: the layout under the data root, the store lock, temporaries and landing by rename.
Layout:
    blobs/sha256/<hex>        content-addressed bytes (layer tars, configs, manifests)
    layers/<mapping>/<hex>/   a layer unpacked once (per id mapping: owners depend on it),
                              keyed by its diff ID, shared by every image and container
    images.json               {"images": {id: record}, "tags": {reference: id}}
    containers/<id>/          container.json, upper/ work/ merged/ (or rootfs/), etc files
    tmp/<pid>-<random>        temporaries; those of dead processes are removed under the lock
    trash/<pid>-<random>      trees set aside by discard() for ops.storage.empty_trash to
                              delete (after the command's answer); those of dead processes
                              are removed under the lock as temporaries are
Must not: run containers or enter namespaces (removing trees with foreign owners is handed a
callable by ops), print, or exit.
"""

import errno
import fcntl
import os
import stat

from .. import fastjson
from ..errors import StoreError

_TMP_SEP = "-"


class Store:
    def __init__(self, root, layer_key="single"):
        self.root = root
        self.layer_key = layer_key
        self.blobs = os.path.join(root, "blobs", "sha256")
        self.layers = os.path.join(root, "layers")
        self.containers = os.path.join(root, "containers")
        self.volumes = os.path.join(root, "volumes")
        self.tmp = os.path.join(root, "tmp")
        self.trash = os.path.join(root, "trash")
        self.index_path = os.path.join(root, "images.json")
        self._lock_fd = None
        self._lock_depth = 0
        # Set by ops: removes what remove_tree cannot (files owned by subordinate ids).
        self.remove_tree_fallback = None
        # Set by ops: called with tmp/ when ensure() makes it (see ops/storage.open_store).
        self.on_tmp_made = None

    # -- layout -------------------------------------------------------------------------
    def ensure(self):
        try:
            for path in (self.blobs, os.path.join(self.layers, self.layer_key),
                         self.containers):
                os.makedirs(path, mode=0o700, exist_ok=True)
            try:
                os.mkdir(self.tmp, 0o700)
            except FileExistsError:
                pass
            else:
                if self.on_tmp_made is not None:
                    self.on_tmp_made(self.tmp)
        except OSError as exc:
            raise StoreError("cannot create the store: %s: %s" % (self.root, exc.strerror),
                             "check that the directory is writable, or set XDG_DATA_HOME")
        return self

    def blob_path(self, digest):
        from ..oci.digest import split
        return os.path.join(self.blobs, split(digest)[1])

    def layer_path(self, diff_id):
        from ..oci.digest import split
        return os.path.join(self.layers, self.layer_key, split(diff_id)[1])

    def container_dir(self, cid):
        return os.path.join(self.containers, cid)

    # -- locking ------------------------------------------------------------------------
    def lock(self):
        return _LockContext(self)

    def _acquire(self):
        if self._lock_depth == 0:
            self.ensure()
            fd = os.open(os.path.join(self.root, "store.lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
            self._clean_stale_tmp()
        self._lock_depth += 1

    def _release(self):
        self._lock_depth -= 1
        if self._lock_depth == 0:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- temporaries --------------------------------------------------------------------
    def mkdtemp(self, purpose="tmp"):
        self.ensure()
        path = os.path.join(self.tmp, "%d%s%s-%s" % (os.getpid(), _TMP_SEP, purpose,
                                                     os.urandom(6).hex()))
        os.mkdir(path, 0o700)
        return path

    def mktemp_path(self, purpose="tmp"):
        self.ensure()
        return os.path.join(self.tmp, "%d%s%s-%s" % (os.getpid(), _TMP_SEP, purpose,
                                                     os.urandom(6).hex()))

    def clean_if_stale(self):
        """Called when the store is opened: if a killed process left temporaries, remove them
        now (under the lock) rather than at the next change. One listdir when there are none."""
        try:
            names = os.listdir(self.tmp)
        except FileNotFoundError:
            return
        if any(_stale(name) for name in names):
            with self.lock():
                pass  # taking the lock cleans

    def _clean_stale_tmp(self):
        """Temporaries of processes that died (a kill mid-import) are removed here, under the
        lock, so a crash never leaves the store needing manual repair."""
        try:
            names = os.listdir(self.tmp)
        except FileNotFoundError:
            return
        for name in names:
            if _stale(name):
                self.remove(os.path.join(self.tmp, name))
        for name in self.trash_names(stale=True):
            self.remove(os.path.join(self.trash, name))
        for name in os.listdir(self.root):
            # atomic_write's temporaries beside the index (images.json.tmp-<pid>-<rnd>)
            base, sep, rest = name.partition(".tmp-")
            if sep and _stale(rest):
                os.unlink(os.path.join(self.root, name))

    def discard(self, path):
        """Set a tree of the store aside at once (a rename into trash/, named after this
        process as a temporary is), for ops.storage.empty_trash to delete. A build step's
        directory that holds the duplicate of a layer the store has (each step of a
        reproducible --no-cache rebuild) is thousands of files: deleted after the build has
        answered, not before."""
        try:
            os.mkdir(self.trash, 0o700)
        except FileExistsError:
            pass
        os.rename(path, os.path.join(self.trash, "%d%s%s" % (os.getpid(), _TMP_SEP,
                                                             os.urandom(6).hex())))

    def trash_names(self, pid=None, stale=False):
        """Names in trash/ set aside by pid (or, stale, by processes that are gone)."""
        try:
            names = os.listdir(self.trash)
        except FileNotFoundError:
            return []
        if stale:
            return [n for n in names if _stale(n)]
        prefix = "%d%s" % (os.getpid() if pid is None else pid, _TMP_SEP)
        return [n for n in names if n.startswith(prefix)]

    def remove(self, path):
        """Remove a tree of the store, whoever in the user namespace owns its files."""
        if not remove_tree(path) and self.remove_tree_fallback:
            self.remove_tree_fallback(path)

    # -- image index --------------------------------------------------------------------
    def read_index(self):
        try:
            with open(self.index_path, "rb") as f:
                data = fastjson.loads(f.read())
        except FileNotFoundError:
            return {"images": {}, "tags": {}}
        except ValueError as exc:
            raise StoreError("image index is damaged: %s: %s" % (self.index_path, exc),
                             "restore it from a backup or remove it to start afresh")
        data.setdefault("images", {})
        data.setdefault("tags", {})
        return data

    def write_index(self, index):
        assert self._lock_depth, "write_index needs the store lock"
        atomic_write(self.index_path, fastjson.dumps(index))

    # -- blobs --------------------------------------------------------------------------
    def has_blob(self, digest):
        return os.path.exists(self.blob_path(digest))

    def put_blob_bytes(self, data):
        from ..oci.digest import sha256_bytes
        digest = sha256_bytes(data)
        path = self.blob_path(digest)
        if not os.path.exists(path):
            atomic_write(path, data)
        return digest

    def land_blob_file(self, tmp_path, digest):
        """Move a verified temporary into place (the caller computed digest while writing)."""
        path = self.blob_path(digest)
        if os.path.exists(path):
            os.unlink(tmp_path)
        else:
            os.rename(tmp_path, path)
        return path

    def read_blob(self, digest):
        from ..oci.digest import sha256_bytes
        try:
            with open(self.blob_path(digest), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise StoreError("blob missing from the store: %s" % digest,
                             "remove the image and import or pull it again") from None
        if sha256_bytes(data) != digest:
            # nothing may depend on it: drop it, so the next import or pull brings it back
            with self.lock():
                _unlink_quietly(self.blob_path(digest))
            raise StoreError("blob is corrupt and was removed from the store: %s" % digest,
                             "remove the image (rmi -f) and import, load or pull it again")
        return data

    # -- container records --------------------------------------------------------------
    def container_ids(self):
        try:
            return sorted(os.listdir(self.containers))
        except FileNotFoundError:
            return []

    def read_container(self, cid):
        try:
            with open(os.path.join(self.containers, cid, "container.json"), "rb") as f:
                return fastjson.loads(f.read())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def write_container(self, record):
        atomic_write(os.path.join(self.containers, record["Id"], "container.json"),
                     fastjson.dumps(record))


class _LockContext:
    def __init__(self, store):
        self.store = store

    def __enter__(self):
        self.store._acquire()
        return self.store

    def __exit__(self, *exc):
        self.store._release()
        return False


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _stale(tmp_name):
    pid = tmp_name.partition(_TMP_SEP)[0]
    return pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid))


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write(path, data, mode=0o600):
    tmp = "%s.tmp-%d-%s" % (path, os.getpid(), os.urandom(4).hex())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_tree(path):
    """Remove a tree the user owns, making its directories writable on the way (overlay's
    work/work is created mode 000). Returns False when something is left: files with foreign
    owners (subuids), which only a user namespace can remove. (Not shutil.rmtree: importing
    shutil loads bz2 and lzma, and this runs at the end of every `run --rm`.)"""
    try:
        _remove(path, os.getuid())
    except FileNotFoundError:
        return not os.path.lexists(path)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOTEMPTY):
            return False
        raise
    return True


def _remove(path, uid):
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    if st.st_uid == uid and st.st_mode & 0o700 != 0o700:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
    with os.scandir(path) as entries:
        children = [(entry.path, entry.is_dir(follow_symlinks=False)) for entry in entries]
    for child, is_dir in children:
        if is_dir:
            _remove(child, uid)
        else:
            os.unlink(child)
    os.rmdir(path)
