"""The container's mount plan, in order, against a recording fake of the syscall layer."""

import os

import pytest

from rootless_box.userns import libc, mounts


def spec(tmp_path, **kw):
    root = tmp_path / "merged"
    root.mkdir(exist_ok=True)
    for name in ("hosts", "hostname", "resolv.conf"):
        (tmp_path / name).write_text(name)
    base = {"rootfs": {"driver": "overlay", "merged": str(root), "lower": ["/l2", "/l1"],
                       "upper": "/u", "work": "/w"},
            "network": "host", "mounts": [], "read_only": False, "tty_gid_mapped": True,
            "etc_files": {"/etc/" + name: str(tmp_path / name)
                          for name in ("hosts", "hostname", "resolv.conf")}}
    base.update(kw)
    return base


class Recorder:
    """Records calls; the filesystem part (lstat, makedirs, touch, symlink) is real, inside
    the test's temporary root, so path resolution is exercised for real."""

    def __init__(self):
        self.calls = []

    def mount(self, source, target, fstype, flags, data):
        self.calls.append(("mount", source, target, fstype, flags, data))

    def umount2(self, target, flags):
        self.calls.append(("umount2", target, flags))

    def pivot_root(self, new, old):
        self.calls.append(("pivot_root", new, old))

    def chdir(self, path):
        self.calls.append(("chdir", path))

    def make_readonly(self, path, recursive):
        self.calls.append(("readonly", path, recursive))

    symlink = staticmethod(os.symlink)
    makedirs = staticmethod(lambda p: os.makedirs(p, exist_ok=True))

    @staticmethod
    def touch(path):
        open(path, "a").close()

    @staticmethod
    def lstat(path):
        try:
            return os.lstat(path)
        except FileNotFoundError:
            return None

    def run_helper(self, argv):
        self.calls.append(("helper", argv))
        return 0

    def copy_up(self, image_dir, volume_dir):
        self.calls.append(("copy_up", image_dir, volume_dir))

    def move_tree(self, fd, target):
        self.calls.append(("move_tree", fd, target))


def execute(s):
    rec = Recorder()
    mounts.Executor(s, sys=rec).run(mounts.build_plan(s))
    return rec.calls


def targets(calls, root):
    return [c[2].replace(root, "") or "/" for c in calls if c[0] == "mount"]


def test_order_rootfs_then_kernel_fs_then_dev_then_user_mounts_then_pivot(tmp_path):
    s = spec(tmp_path, mounts=[{"type": "tmpfs", "destination": "/a/b", "options": []},
                               {"type": "bind", "source": str(tmp_path), "destination": "/a",
                                "readonly": True}])
    root = s["rootfs"]["merged"]
    os.makedirs(os.path.join(root, "proc"))
    open(os.path.join(root, "proc", "kcore"), "w").close()
    calls = execute(s)
    assert calls[0] == ("mount", None, "/", None, libc.MS_REC | libc.MS_PRIVATE, None)
    assert calls[1][3] == "overlay"
    assert calls[1][5] == "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr"
    order = targets(calls[1:], root)
    assert order[:3] == ["/", "/proc", "/dev"]
    assert order.index("/dev/pts") < order.index("/dev/shm") < order.index("/sys")
    # parents before children among user mounts, then the /etc files, then masks
    assert order.index("/sys") < order.index("/a") < order.index("/a/b")
    assert order.index("/a/b") < order.index("/etc/hostname")
    assert order.index("/etc/resolv.conf") < order.index("/proc/kcore")
    assert ("readonly", root + "/a", True) in calls
    assert calls[-4:] == [("chdir", root), ("pivot_root", ".", "."),
                          ("umount2", ".", libc.MNT_DETACH), ("chdir", "/")]


def test_a_volatile_rootfs_is_mounted_volatile_and_others_synced(tmp_path):
    """`run --rm` (issue 19): its upper dir goes when it ends, so the unmount need not sync
    the upper file system; every other container's mount stays synced."""
    s = spec(tmp_path)
    s["rootfs"]["volatile"] = True
    assert execute(s)[1][5] == "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr,volatile"
    assert not execute(spec(tmp_path))[1][5].endswith("volatile")


class OldKernel(Recorder):
    def mount(self, source, target, fstype, flags, data):
        if data and data.endswith(",volatile"):
            raise OSError(22, "Invalid argument")
        super().mount(source, target, fstype, flags, data)


def test_a_kernel_without_volatile_mounts_the_same_rootfs_synced(tmp_path):
    s = spec(tmp_path)
    s["rootfs"]["volatile"] = True
    rec = OldKernel()
    mounts.Executor(s, sys=rec).run(mounts.build_plan(s))
    assert rec.calls[1][5] == "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,userxattr"


def test_a_synced_mount_clears_the_mark_a_volatile_one_left(tmp_path):
    """A `run --rm` whose CLI was killed before the removal leaves work/work/incompat/volatile,
    with which overlayfs refuses the work dir: its `start` clears it first."""
    work = tmp_path / "work"
    (work / "work" / "incompat" / "volatile").mkdir(parents=True)
    s = spec(tmp_path)
    s["rootfs"]["work"] = str(work)
    execute(s)
    assert os.listdir(work / "work") == []


def test_a_joined_ipc_namespace_gets_the_donors_shm_mount_not_a_new_one(tmp_path):
    s = spec(tmp_path, ipc_mode="container", shm_tree=7)
    root = s["rootfs"]["merged"]
    calls = execute(s)
    assert ("move_tree", 7, root + "/dev/shm") in calls
    assert "/dev/shm" not in targets(calls, root)
    # in the joined IPC namespace, a fresh mqueue mount shows the donor's queues
    assert "/dev/mqueue" in targets(calls, root)


def test_dev_nodes_devpts_and_links(tmp_path):
    s = spec(tmp_path)
    calls = execute(s)
    root = s["rootfs"]["merged"]
    binds = {c[2].replace(root, ""): c[1] for c in calls if c[0] == "mount" and c[1] and
             c[1].startswith("/dev/")}
    for node in mounts.DEV_NODES:
        assert binds["/dev/" + node] == "/dev/" + node
        assert os.path.isfile(os.path.join(root, "dev", node))
    devpts = [c for c in calls if c[0] == "mount" and c[3] == "devpts"][0]
    assert "newinstance" in devpts[5] and "gid=5" in devpts[5]
    assert os.readlink(os.path.join(root, "dev/ptmx")) == "pts/ptmx"
    assert os.readlink(os.path.join(root, "dev/fd")) == "/proc/self/fd"


def test_devpts_without_gid_when_tty_group_is_unmapped(tmp_path):
    calls = execute(spec(tmp_path, tty_gid_mapped=False))
    devpts = [c for c in calls if c[0] == "mount" and c[3] == "devpts"][0]
    assert "gid=" not in devpts[5]


def test_host_network_binds_sys_read_only_private_network_mounts_sysfs(tmp_path):
    host = execute(spec(tmp_path))
    root = str(tmp_path / "merged")
    assert ("mount", "/sys", root + "/sys", None, libc.MS_BIND | libc.MS_REC, None) in host
    assert ("readonly", root + "/sys", True) in host
    private = execute(spec(tmp_path, network="none"))
    sysfs = [c for c in private if c[0] == "mount" and c[3] == "sysfs"][0]
    assert sysfs[4] & libc.MS_RDONLY


def test_read_only_root_is_the_last_step_before_pivot(tmp_path):
    calls = execute(spec(tmp_path, read_only=True))
    root = str(tmp_path / "merged")
    assert calls[-5] == ("readonly", root, False)


def test_masks_only_existing_paths(tmp_path):
    s = spec(tmp_path)
    root = s["rootfs"]["merged"]
    os.makedirs(os.path.join(root, "proc/acpi"))
    open(os.path.join(root, "proc/kcore"), "w").close()
    calls = execute(s)
    assert ("mount", "tmpfs", root + "/proc/acpi", "tmpfs", libc.MS_RDONLY, "size=0") in calls
    assert ("mount", "/dev/null", root + "/proc/kcore", None, libc.MS_BIND, None) in calls
    assert not any(c[0] == "mount" and c[2] == root + "/proc/keys" for c in calls)


def test_symlink_in_image_cannot_redirect_a_mount_to_the_host(tmp_path):
    s = spec(tmp_path, mounts=[{"type": "tmpfs", "destination": "/data/x", "options": []}])
    root = s["rootfs"]["merged"]
    os.symlink("/", os.path.join(root, "data"))
    calls = execute(s)
    tmpfs = [c for c in calls if c[0] == "mount" and c[3] == "tmpfs" and c[2].endswith("/x")]
    assert tmpfs[0][2] == root + "/x"


def test_copy_driver_binds_the_prepared_copy_onto_itself(tmp_path):
    s = spec(tmp_path)
    root = str(tmp_path / "merged")
    s["rootfs"] = {"driver": "copy", "merged": root, "lower": ["/l"]}
    calls = execute(s)
    assert calls[1] == ("mount", root, root, None, libc.MS_BIND, None)


@pytest.mark.parametrize("options,flags,data", [
    ([], libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC, None),
    (["exec", "size=1m"], libc.MS_NOSUID | libc.MS_NODEV, "size=1m"),
    (["ro", "mode=1777"], libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC | libc.MS_RDONLY,
     "mode=1777")])
def test_tmpfs_options(options, flags, data):
    assert mounts.tmpfs_options(options) == (flags, data)


def test_long_layer_lists_are_named_relative_to_their_parent():
    layers = ["/home/someone/.local/share/rootless-box/layers/subuid-1x2_1x2/%064x" % i
              for i in range(40)]
    cwd, data = mounts.overlay_data(layers, "/u", "/w")
    assert cwd == os.path.dirname(layers[0])
    assert data.startswith("lowerdir=%064x:%064x" % (0, 1)) and len(data) < 4000
    short_cwd, short = mounts.overlay_data(layers[:2], "/u", "/w")
    assert short_cwd is None and short.startswith("lowerdir=" + layers[0])


def test_another_roots_view_then_a_path_inside_it_resolved_there(tmp_path):
    """RUN --mount from=: the other stage's overlay at a staging directory, then a bind of a
    path inside it; a symlink there is resolved inside that root, never on the host."""
    staging = tmp_path / "staging"
    (staging / "real").mkdir(parents=True)
    os.symlink("/real", staging / "link")
    s = spec(tmp_path, mounts=[{"type": "overlay", "source": str(staging),
                                "lower": ["/a", "/b"], "destination": "/base",
                                "readonly": True, "subpath": "/link"}])
    calls = execute(s)
    root = s["rootfs"]["merged"]
    view = calls.index(("mount", "overlay", str(staging), "overlay", libc.MS_RDONLY,
                        "lowerdir=/a:/b,userxattr"))
    bind = calls[view + 1]
    assert bind == ("mount", str(staging / "real"), root + "/base", None,
                    libc.MS_BIND | libc.MS_REC, None)
    assert calls[view + 2] == ("readonly", root + "/base", True)


def test_a_new_volume_is_filled_before_it_is_bound_where_the_image_has_a_directory(tmp_path):
    vol, other = tmp_path / "vol", tmp_path / "other"
    vol.mkdir()
    other.mkdir()
    s = spec(tmp_path, mounts=[
        {"type": "volume", "source": str(vol), "destination": "/data", "copy": True},
        {"type": "volume", "source": str(other), "destination": "/none", "copy": True},
        {"type": "bind", "source": str(other), "destination": "/flat", "recursive": False}])
    root = s["rootfs"]["merged"]
    os.makedirs(os.path.join(root, "data"))
    calls = execute(s)
    copies = [c for c in calls if c[0] == "copy_up"]
    # only where the image has a directory; /none is made empty by the bind that follows
    assert copies == [("copy_up", root + "/data", str(vol))]
    assert calls.index(copies[0]) < calls.index(
        ("mount", str(vol), root + "/data", None, libc.MS_BIND | libc.MS_REC, None))
    assert ("mount", str(other), root + "/flat", None, libc.MS_BIND, None) in calls


def test_copy_up_keeps_the_tree_and_fills_only_an_empty_volume(tmp_path):
    from rootless_box.userns import copyup
    image = tmp_path / "image"
    (image / "sub").mkdir(parents=True)
    (image / "sub" / "f").write_text("x")
    os.link(image / "sub" / "f", image / "hard")
    os.symlink("sub/f", image / "link")
    os.chmod(image / "sub", 0o751)
    vol = tmp_path / "vol"
    vol.mkdir()
    assert copyup.fill(str(image), str(vol)) is True
    assert (vol / "sub" / "f").read_text() == "x" and os.readlink(vol / "link") == "sub/f"
    assert os.stat(vol / "hard").st_ino == os.stat(vol / "sub" / "f").st_ino
    assert oct(os.stat(vol / "sub").st_mode & 0o777) == "0o751"
    (image / "new").write_text("y")
    assert copyup.fill(str(image), str(vol)) is False and not (vol / "new").exists()


def test_read_only_bind_that_leaves_the_mounts_below_writable(tmp_path):
    s = spec(tmp_path, mounts=[{"type": "bind", "source": str(tmp_path), "destination": "/w",
                                "readonly": "top"},
                               {"type": "bind", "source": str(tmp_path), "destination": "/r",
                                "readonly": True}])
    root = s["rootfs"]["merged"]
    calls = execute(s)
    assert ("readonly", root + "/w", False) in calls
    assert ("readonly", root + "/r", True) in calls


def test_a_failed_copy_up_leaves_the_volume_empty(tmp_path):
    from rootless_box.userns import copyup
    image = tmp_path / "image"
    (image / "a").mkdir(parents=True)
    (image / "a" / "z").write_text("unreadable")  # vol/a is made before this fails
    os.chmod(image / "a" / "z", 0)
    vol = tmp_path / "vol"
    vol.mkdir()
    if os.access(image / "a" / "z", os.R_OK):
        pytest.skip("running with a capability that reads any file")
    with pytest.raises(PermissionError):
        copyup.fill(str(image), str(vol))
    assert os.listdir(vol) == []
