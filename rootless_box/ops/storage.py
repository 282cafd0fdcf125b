"""Storage policy: which rootfs driver this machine allows, unpacking layers with their owners,
and removing trees whose files belong to subordinate ids.

Owns: the driver probe (kernel overlayfs with `userxattr` inside a user namespace, else
fuse-overlayfs when installed and /dev/fuse is usable, else a copy), cached per kernel release
under the store; layer landing (unpack into a temporary, rename to layers/<diff ID>); the
store's tmp/ spread over the disk (chattr +T) when made; its trash emptied, apart or here.
Must not: print, or know about the CLI.
"""

import os
import stat

from .. import config, fastjson
from ..errors import BoxError, StoreError
from ..store import Store, atomic_write
from ..userns import idmap as idmaps

DRIVERS = ("overlay", "fuse-overlayfs", "copy")
_PROBE_VERSION = 1


def open_store(idmap=None):
    """The user's store; trees it cannot remove as the user (files owned by subordinate ids)
    are removed from inside a user namespace, as root there: the only place the user may."""
    idmap = idmap or idmaps.plan()
    store = Store(config.data_root(), idmap.key)
    store.on_tmp_made = spread_subdirs
    store.ensure()
    store.remove_tree_fallback = lambda path: run_in_userns(_rmtree_inside, idmap, path)
    store.clean_if_stale()
    return store


def spread_subdirs(tmp):
    """Mark the store's tmp/ as the top of directory hierarchies (chattr +T) where the file
    system takes the hint (ext4; elsewhere nothing happens): each directory made in it (a
    build step's, a layer being unpacked) goes to a block group of its own choosing by
    ext4's Orlov allocator, instead of the parent's group, where everything else goes.
    Why: on ext4 without a journal (this project's bench machines) creating a file passes
    over every inode freed in its group in the last minutes (ext4's recently_deleted
    check), which was most of a cold build's CPU time; spread, a step's files often land
    in a group nobody just emptied, and never all in the one where every temporary of the
    store was made and deleted (docs/ARCHITECTURE.md, "Where a build's time goes")."""
    from ..userns.fsflags import set_topdir
    set_topdir(tmp)


def empty_trash(store, detach=False):
    """Delete what this process set aside with store.discard. detach: by a process of its
    own, so that the command answers now (a build's duplicate layer trees: 6,000 files take
    0.3-2 s to delete on a disk that discards freed blocks); this returns once that process
    has taken the trees over (renamed after it: no other command's sweep of a dead process's
    trash races it). Falls back to deleting here when threads run (no fork then)."""
    import sys
    names = store.trash_names()
    if not names:
        return
    threading = sys.modules.get("threading")
    if detach and (threading is None or threading.active_count() == 1):
        from ..userns.detach import spawn
        # nothing of the command's kept (its output pipes, which a caller reads to their
        # end; its lock), and after the user's next command, not before it
        ready_r = spawn(lambda ready_w: _delete_detached(store, names, ready_w),
                        report=True, keep=(), nice=10)
        try:
            os.read(ready_r, 1)  # EOF once the trees are the deleter's
        finally:
            os.close(ready_r)
        return
    for name in names:
        store.remove(os.path.join(store.trash, name))


def _delete_detached(store, names, ready_w):
    """In the detached deleter: the trees renamed after this process, then deleted."""
    mine = []
    for name in names:
        claimed = os.path.join(store.trash, "%d-%s" % (os.getpid(), name.partition("-")[2]))
        try:
            os.rename(os.path.join(store.trash, name), claimed)
        except OSError:
            continue
        mine.append(claimed)
    os.close(ready_w)
    for path in mine:
        try:
            store.remove(path)
        except (OSError, BoxError):
            pass  # left for the sweep of a dead process's trash (store._clean_stale_tmp)


def run_in_userns(func, idmap, *args):
    # imported when used: the launcher pulls in ctypes and the mount code (~10 ms), which a
    # listing (`ps`, `images`) that opens the store never needs
    from ..userns.launcher import run_in_userns as run
    return run(func, idmap, *args)


def _rmtree_inside(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


# -- driver probe -------------------------------------------------------------------------------

def _probe_overlay(base):
    """Inside the user namespace: can overlayfs be mounted with userxattr, and does deleting a
    lower file leave a 0/0 whiteout in the upper dir?"""
    from ..userns.mounts import mount_overlay, unmount
    dirs = {name: os.path.join(base, name) for name in ("lower", "upper", "work", "merged")}
    for path in dirs.values():
        os.mkdir(path)
    with open(os.path.join(dirs["lower"], "f"), "w") as f:
        f.write("x")
    try:
        mount_overlay(dirs["merged"], [dirs["lower"]], dirs["upper"], dirs["work"])
    except OSError as exc:
        return "kernel overlayfs refused: %s" % exc.strerror
    try:
        os.unlink(os.path.join(dirs["merged"], "f"))
        st = os.lstat(os.path.join(dirs["upper"], "f"))
        if not stat.S_ISCHR(st.st_mode) or st.st_rdev != 0:
            return "kernel overlayfs wrote no whiteout"
    finally:
        unmount(dirs["merged"])
    return ""


def probe_driver(store, idmap):
    """-> {"driver": name, "reasons": {driver: why it was not chosen}}; cached per kernel."""
    cache_path = os.path.join(store.root, "driver.json")
    release = os.uname().release
    try:
        with open(cache_path) as f:
            cached = fastjson.loads(f.read())
        if cached.get("kernel") == release and cached.get("version") == _PROBE_VERSION and \
                cached.get("mode") == idmap.mode:
            return cached
    except (OSError, ValueError):
        pass
    reasons = {}
    base = store.mkdtemp("probe")
    try:
        reason = run_in_userns(_probe_overlay, idmap, base)
    except BoxError as exc:
        reason = exc.message
    finally:
        store.remove(base)
    if not reason:
        chosen = "overlay"
    else:
        reasons["overlay"] = reason
        fuse = idmaps.find_helper("fuse-overlayfs")
        if fuse and os.access("/dev/fuse", os.R_OK | os.W_OK):
            chosen = "fuse-overlayfs"
        else:
            reasons["fuse-overlayfs"] = ("not installed" if not fuse else
                                         "/dev/fuse is not usable by this user")
            chosen = "copy"
    result = {"kernel": release, "version": _PROBE_VERSION, "mode": idmap.mode,
              "driver": chosen, "reasons": reasons}
    try:
        atomic_write(cache_path, fastjson.dumps(result))
    except OSError:
        pass
    return result


def choose_driver(store, idmap):
    wanted = config.storage_driver()
    if wanted != "auto":
        return wanted
    return probe_driver(store, idmap)["driver"]


# -- layers -------------------------------------------------------------------------------------

def unpack_stream(raw, dest, keep_owners):
    """Inside a user-namespace helper: unpack the layer blob read from raw into dest while
    hashing its uncompressed bytes. -> the unpack report (diff_id, size, skipped_devices,
    unmapped_owners). Owners are kept (subuid) or recorded in an xattr (single)."""
    from ..layers.compression import HashingReader, open_stream
    from ..layers.unpack import unpack
    stream, _compression = open_stream(raw)
    hashing = HashingReader(stream)
    stats = unpack(hashing, dest, keep_owners=keep_owners, whiteouts=True,
                   record_owners=not keep_owners)
    hashing.drain()
    return {"diff_id": hashing.digest(), "size": hashing.size,
            "skipped_devices": stats.skipped_devices, "unmapped_owners": stats.unmapped_owners}


def unpack_file(blob_path, dest, keep_owners):
    """unpack_stream for a blob file of the store."""
    with open(blob_path, "rb") as raw:
        return unpack_stream(raw, dest, keep_owners)


def unpack_layer(store, idmap, blob_path, expected_diff_id=None):
    """Unpack a layer blob into layers/<diff ID> (once: an existing one is reused).
    Returns the unpack report (diff_id, size, skipped_devices, unmapped_owners)."""
    return unpack_layers(store, idmap, [(blob_path, expected_diff_id)])[0]


def unpack_layers(store, idmap, blobs):
    """unpack_layer for [(blob path, expected diff ID or None)], the layers in parallel (each
    in its own user namespace: decompression, hashing and file creation spread over the
    CPUs). Returns the reports in order."""
    from ..userns.launcher import run_in_userns_many
    reports = [None] * len(blobs)
    work = []
    for i, (blob_path, expected) in enumerate(blobs):
        if expected and os.path.isdir(store.layer_path(expected)):
            reports[i] = {"diff_id": expected, "size": os.path.getsize(blob_path),
                          "skipped_devices": 0, "unmapped_owners": 0, "reused": True}
        else:
            work.append((i, blob_path, expected))
    tmps = [store.mkdtemp("layer") for _ in work]
    try:
        done = run_in_userns_many(unpack_file, idmap, [
            (blob_path, tmp, idmap.mode != "single")
            for (_i, blob_path, _e), tmp in zip(work, tmps)])
        for (i, _blob, expected), report in zip(work, done):
            if expected and report["diff_id"] != expected:
                raise StoreError("layer content does not match its diff ID: got %s, expected %s"
                                 % (report["diff_id"], expected))
        with store.lock():
            for n, ((i, _blob, _expected), report) in enumerate(zip(work, done)):
                dest = store.layer_path(report["diff_id"])
                if not os.path.isdir(dest):
                    os.rename(tmps[n], dest)
                    tmps[n] = None
                reports[i] = report
    finally:
        for tmp in tmps:
            if tmp:
                store.remove(tmp)
    return reports
