"""The container's mount plan and its executor.

Owns: the list of mount operations that turns an image rootfs into a container root (rootfs,
/proc, /dev, devpts, /dev/shm, /sys, volumes, tmpfs, /etc files, masked and read-only paths,
pivot_root), computed beforehand as plain data (`build_plan`), then carried out by `execute`
through a small syscall interface (`RealSys` here, a recording fake in the tests).
Paths inside the container are resolved with securepath at execution time, inside the new root,
so a symlink in the image can never redirect a mount onto the host.
Defaults follow Docker's (moby oci/defaults.go: masked and read-only paths, /dev nodes).
Must not: fork, exec, or know about images and the store.
"""

import errno
import os
import stat

from ..securepath import resolve_in_root
from . import copyup, libc

NOSUID, NODEV, NOEXEC, RDONLY = libc.MS_NOSUID, libc.MS_NODEV, libc.MS_NOEXEC, libc.MS_RDONLY

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
             ("/proc/kcore", "/dev/core"), ("pts/ptmx", "/dev/ptmx"))
MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

TMPFS_FLAGS = {"ro": (RDONLY, 0), "rw": (0, RDONLY), "nosuid": (NOSUID, 0),
               "suid": (0, NOSUID), "nodev": (NODEV, 0), "dev": (0, NODEV),
               "noexec": (NOEXEC, 0), "exec": (0, NOEXEC)}


def tmpfs_options(options):
    """--tmpfs options -> (flags, data). Docker's default is rw,noexec,nosuid,nodev."""
    flags = NOSUID | NODEV | NOEXEC
    data = []
    for opt in options:
        if opt in TMPFS_FLAGS:
            add, clear = TMPFS_FLAGS[opt]
            flags = (flags | add) & ~clear
        else:
            data.append(opt)
    return flags, ",".join(data) or None


def build_plan(spec):
    """spec: the run spec dict (see ops/run.py). Returns a list of operation tuples."""
    rootfs = spec["rootfs"]
    root = rootfs["merged"]
    plan = [("make_private",)]
    if rootfs["driver"] == "overlay":
        plan.append(("mount_overlay", root, rootfs["lower"], rootfs["upper"], rootfs["work"])
                    + ((True,) if rootfs.get("volatile") else ()))
    elif rootfs["driver"] == "fuse-overlayfs":
        plan.append(("mount_fuse", root, rootfs["lower"], rootfs["upper"], rootfs["work"]))
    else:
        # the copy driver's rootfs was filled beforehand (layers/apply.py); pivot_root needs
        # it to be a mount point
        plan.append(("bind", root, None, False, False))
    if spec.get("pid_mode") == "host":
        # a fresh proc needs the pid namespace's owner: the host's is bound, as rootless
        # Podman does (masked paths still go over it)
        plan.append(("bind", "/proc", "/proc", False, True))
    else:
        plan.append(("mount", "proc", "/proc", "proc", NOSUID | NODEV | NOEXEC, None))
    plan.append(("mount", "tmpfs", "/dev", "tmpfs", NOSUID, "mode=755,size=65536k"))
    for name in DEV_NODES:
        plan.append(("bind", "/dev/" + name, "/dev/" + name, False, False))
    for dev in spec.get("devices") or ():
        # host devices (--device, --privileged): the node itself, its owner and mode
        plan.append(("bind", dev["source"], dev["destination"], False, False))
    devpts = "newinstance,ptmxmode=0666,mode=0620"
    if spec.get("tty_gid_mapped"):
        devpts += ",gid=5"
    plan.append(("mount", "devpts", "/dev/pts", "devpts", NOSUID | NOEXEC, devpts))
    if spec.get("ipc_mode") == "host":
        plan.append(("bind", "/dev/shm", "/dev/shm", False, False))
    elif spec.get("shm_tree") is not None:
        # --ipc container:NAME: NAME's own /dev/shm mount (launcher._clone_shm), attached
        plan.append(("move_tree", spec["shm_tree"], "/dev/shm"))
    elif spec.get("ipc_mode") != "none":
        plan.append(("mount", "shm", "/dev/shm", "tmpfs", NOSUID | NODEV | NOEXEC,
                     "mode=1777,size=%d" % (spec.get("shm_size") or 64 << 20)))
    plan.append(("mount_optional", "mqueue", "/dev/mqueue", "mqueue", NOSUID | NODEV | NOEXEC,
                 None))
    for target, link in DEV_LINKS:
        plan.append(("symlink", target, link))
    if spec["network"] == "host":
        # sysfs can only be mounted afresh by the owner of the network namespace.
        plan.append(("bind", "/sys", "/sys", True, True))
    else:
        plan.append(("mount", "sysfs", "/sys", "sysfs", NOSUID | NODEV | NOEXEC | RDONLY,
                     None))
    user_targets = set()
    for m in sorted(spec["mounts"], key=lambda m: _depth(m["destination"])):
        user_targets.add(os.path.normpath(m["destination"]))
        if m["type"] == "tmpfs":
            flags, data = tmpfs_options(m.get("options", []))
            plan.append(("mount", "tmpfs", m["destination"], "tmpfs", flags, data))
            continue
        if m["type"] == "overlay":
            # another image's root (RUN --mount from=), seen at a host staging directory
            plan.append(("mount_view", m["source"], m["lower"], m.get("upper"), m.get("work")))
        if m.get("copy"):
            # a new volume gets the image's content at its place (Docker's copy-up)
            plan.append(("copy_up", m["source"], m["destination"]))
        op = ("bind", m["source"], m["destination"], m.get("readonly", False),
              m.get("recursive", True))
        if m.get("subpath"):
            op += (m["subpath"],)  # a path inside that root, resolved inside it
        plan.append(op)
    for target, source in sorted(spec["etc_files"].items()):
        if target not in user_targets:
            plan.append(("bind", source, target, False, False))
    for key, value in sorted((spec.get("sysctls") or {}).items()):
        plan.append(("sysctl", key, value))  # before /proc/sys turns read-only
    if not spec.get("unmask"):
        for path in MASKED_PATHS:
            plan.append(("mask", path))
        for path in READONLY_PATHS:
            plan.append(("readonly", path))
    if spec.get("read_only"):
        plan.append(("readonly_root",))
    plan.append(("pivot_root",))
    return plan


def _depth(path):
    return len([p for p in path.split("/") if p])


# mount(2) copies at most one page of options: long layer paths must be shortened
_MAX_MOUNT_DATA = 4000


def overlay_data(lower, upper=None, work=None):
    """-> (directory to chdir to first or None, overlay mount options). Past a page of
    options, the lower dirs are named relative to their common parent (the store's layers
    directory), as containers/storage does with its short links."""
    def build(names):
        data = "lowerdir=" + ":".join(_overlay_path(p) for p in names)
        if upper:
            data += ",upperdir=%s,workdir=%s" % (_overlay_path(upper), _overlay_path(work))
        return data + ",userxattr"

    data = build(lower)
    parents = {os.path.dirname(p) for p in lower}
    if len(data) <= _MAX_MOUNT_DATA or len(parents) != 1:
        return None, data
    return parents.pop(), build([os.path.basename(p) for p in lower])


def _clear_volatile(work):
    """A volatile mount leaves work/work/incompat/volatile behind, and overlayfs refuses
    that work dir from then on; a `run --rm` whose CLI was killed before the removal is
    such a container, and `start` mounts it again (without `volatile`: synced)."""
    marker = os.path.join(work, "work", "incompat", "volatile")
    for path in (marker, os.path.dirname(marker)):
        try:
            os.rmdir(path)
        except OSError:
            return


def mount_overlay(target, lower, upper=None, work=None):
    """Mount an overlay at target (in the caller's user and mount namespace). Without upper,
    a read-only view: the top layer given first (lowerdir order)."""
    if not upper and len(lower) == 1:
        # overlayfs wants two lowers when it has no upper: one directory is a bind mount
        libc.mount(lower[0], target, None, libc.MS_BIND | libc.MS_REC, None)
        RealSys.make_readonly(target, True)
        return
    cwd, data = overlay_data(lower, upper, work)
    if cwd:
        os.chdir(cwd)
    libc.mount("overlay", target, "overlay", 0 if upper else RDONLY, data)


def unmount(target):
    libc.umount2(target, libc.MNT_DETACH)


class RealSys:
    """The syscalls the executor needs, for real."""

    mount = staticmethod(libc.mount)
    umount2 = staticmethod(libc.umount2)
    pivot_root = staticmethod(libc.pivot_root)
    chdir = staticmethod(os.chdir)
    symlink = staticmethod(os.symlink)

    @staticmethod
    def make_readonly(path, recursive):
        try:
            if recursive:
                libc.make_readonly_recursive(path)
                return
        except OSError as exc:
            if exc.errno not in (38, 22):  # ENOSYS, EINVAL: kernel older than 5.12
                raise
        flags = libc.MS_BIND | libc.MS_REMOUNT | RDONLY | _locked_flags(path)
        libc.mount(None, path, None, flags, None)

    move_tree = staticmethod(libc.move_tree)

    @staticmethod
    def lstat(path):
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None

    @staticmethod
    def makedirs(path):
        os.makedirs(path, 0o755, exist_ok=True)

    @staticmethod
    def touch(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644))

    copy_up = staticmethod(copyup.fill)

    @staticmethod
    def write_file(path, text):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    @staticmethod
    def run_helper(argv):
        pid = os.posix_spawn(argv[0], argv, os.environ)
        _pid, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)



def _locked_flags(path):
    """Flags the kernel locks on a bind mount made in a user namespace: a remount must repeat
    them or fail with EPERM (mount(2), 'locked mount flags')."""
    f_flag = os.statvfs(path).f_flag
    flags = 0
    for st_bit, ms_bit in ((os.ST_NOSUID, NOSUID), (os.ST_NODEV, NODEV),
                           (os.ST_NOEXEC, NOEXEC), (os.ST_NOATIME, libc.MS_NOATIME),
                           (os.ST_RELATIME, 1 << 21), (os.ST_NODIRATIME, 2048)):
        if f_flag & st_bit:
            flags |= ms_bit
    return flags


class MountError(Exception):
    """A mount operation failed; carries what was being done for the user's message."""

    def __init__(self, what, exc):
        super().__init__("%s: %s" % (what, exc.strerror or exc))
        self.errno = exc.errno


def _overlay_path(path):
    # overlayfs splits lowerdir on ':' and options on ','; escape per Documentation/
    # filesystems/overlayfs.rst.
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


class Executor:
    def __init__(self, spec, sys=RealSys):
        self.sys = sys
        self.root = spec["rootfs"]["merged"]

    def run(self, plan):
        for op in plan:
            handler = getattr(self, "op_" + op[0])
            try:
                handler(*op[1:])
            except OSError as exc:
                raise MountError("%s %s" % (op[0], _describe(op)), exc) from exc

    def resolve(self, cpath, follow_final=True):
        return resolve_in_root(self.root, cpath, follow_final=follow_final)

    def _target(self, cpath, as_file=False):
        """Resolve a container path and create it (a directory, or an empty file for binding
        a file) when missing."""
        path = self.resolve(cpath)
        st = self.sys.lstat(path)
        if st is None:
            if as_file:
                self.sys.makedirs(os.path.dirname(path))
                self.sys.touch(path)
            else:
                self.sys.makedirs(path)
        return path

    def op_make_private(self):
        self.sys.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE, None)

    def op_mount_overlay(self, root, lower, upper, work, volatile=False):
        cwd, data = overlay_data(lower, upper, work)
        if cwd:
            self.sys.chdir(cwd)
        if volatile:
            # rootfs["volatile"], a `run --rm`'s rootfs, mounted once and then deleted: no
            # sync of the whole upper file system when the last process leaves and the
            # mount goes (on a busy disk, several ms of every such run: issue 19)
            try:
                self.sys.mount("overlay", root, "overlay", 0, data + ",volatile")
                return
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise  # EINVAL: a kernel before 5.10; the same mount without it
        elif upper:
            _clear_volatile(work)
        self.sys.mount("overlay", root, "overlay", 0, data)

    def op_mount_fuse(self, root, lower, upper, work):
        data = "lowerdir=%s,upperdir=%s,workdir=%s" % (
            ":".join(_overlay_path(p) for p in lower), upper, work)
        from .idmap import find_helper
        helper = find_helper("fuse-overlayfs")
        if not helper or self.sys.run_helper([helper, "-o", data, root]) != 0:
            raise OSError(5, "fuse-overlayfs could not mount the rootfs")

    def op_mount(self, source, cpath, fstype, flags, data):
        self.sys.mount(source, self._target(cpath), fstype, flags, data)

    def op_mount_optional(self, source, cpath, fstype, flags, data):
        try:
            self.op_mount(source, cpath, fstype, flags, data)
        except OSError:
            pass

    def op_mount_view(self, target, lower, upper, work):
        if not upper and len(lower) == 1:
            # overlayfs wants two lowers when it has no upper: one directory is a bind mount
            self.sys.mount(lower[0], target, None, libc.MS_BIND | libc.MS_REC, None)
            return
        cwd, data = overlay_data(lower, upper, work)
        if cwd:
            self.sys.chdir(cwd)
        self.sys.mount("overlay", target, "overlay", 0 if upper else RDONLY, data)

    def op_bind(self, source, cpath, readonly, recursive, subpath=None):
        if subpath is not None:
            # symlinks in the other root are followed inside it, never to the host
            source = resolve_in_root(source, subpath)
        if cpath is None:
            target = source
        else:
            st = os.stat(source)
            target = self._target(cpath, as_file=not stat.S_ISDIR(st.st_mode))
        flags = libc.MS_BIND | (libc.MS_REC if recursive else 0)
        self.sys.mount(source, target, None, flags, None)
        if readonly:
            # "top": --mount bind-recursive=writable, the mounts below stay writable
            self.sys.make_readonly(target, recursive and readonly != "top")

    def op_move_tree(self, fd, cpath):
        self.sys.move_tree(fd, self._target(cpath))

    def op_copy_up(self, source, cpath):
        path = self.resolve(cpath)
        st = self.sys.lstat(path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            self.sys.copy_up(path, source)

    def op_symlink(self, target, cpath):
        path = self.resolve(cpath, follow_final=False)
        if self.sys.lstat(path) is None:
            self.sys.symlink(target, path)

    def op_mask(self, cpath):
        path = self.resolve(cpath)
        st = self.sys.lstat(path)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            self.sys.mount("tmpfs", path, "tmpfs", RDONLY, "size=0")
        else:
            self.sys.mount("/dev/null", path, None, libc.MS_BIND, None)

    def op_readonly(self, cpath):
        path = self.resolve(cpath)
        if self.sys.lstat(path) is None:
            return
        self.sys.mount(path, path, None, libc.MS_BIND | libc.MS_REC, None)
        self.sys.make_readonly(path, True)

    def op_sysctl(self, key, value):
        path = self.resolve("/proc/sys/" + key.replace(".", "/"))
        self.sys.write_file(path, value)

    def op_readonly_root(self):
        self.sys.make_readonly(self.root, False)

    def op_pivot_root(self):
        # pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
        # no path back to the host (pivot_root(2), NOTES).
        self.sys.chdir(self.root)
        self.sys.pivot_root(".", ".")
        self.sys.umount2(".", libc.MNT_DETACH)
        self.sys.chdir("/")


def _describe(op):
    return " ".join(str(x) for x in op[1:3] if isinstance(x, str))
