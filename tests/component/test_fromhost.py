"""Component tests of rootless_box.ops.fromhost: rootfs tars made from this host's binaries.

Owns: checking the tar's contents against the host (ELF headers, symlinks, skeleton) and that the
result really runs, by extracting it and chrooting into it inside `unshare -r`.
Must not: need root, the network, or anything from the image store.
"""

import io
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from rootless_box.errors import BadArchive, NotFound
from rootless_box.ops import fromhost

elftools = pytest.importorskip("elftools", reason="pyelftools is not installed")
from elftools.elf.elffile import ELFFile  # noqa: E402


def _make(paths):
    buf = io.BytesIO()
    written = fromhost.write_rootfs_tar(paths, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    return written, members, buf.getvalue()


def _resolve(members, path):
    """Resolve `path` through the symlinks in the tar, as the kernel would inside the image."""
    parts = [p for p in path.split("/") if p]
    cur = []
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == ".":
            continue
        if name == "..":
            cur = cur[:-1]
            continue
        m = members.get("/".join(cur + [name]))
        if m is not None and m.issym():
            hops += 1
            assert hops < 40, "symlink loop at %s" % path
            if m.linkname.startswith("/"):
                cur = []
            parts[:0] = [p for p in m.linkname.split("/") if p]
            continue
        cur.append(name)
    return "/".join(cur)


def _elf_info(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        interp, needed = None, []
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_INTERP":
                interp = seg.get_interp_name()
            elif seg["p_type"] == "PT_DYNAMIC":
                needed += [t.needed for t in seg.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        return interp, needed


def _chroot_cmd():
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    unshare = shutil.which("unshare") or "/usr/bin/unshare"
    if not (os.access(chroot, os.X_OK) and os.access(unshare, os.X_OK)):
        pytest.skip("unshare or chroot is not installed")
    probe = subprocess.run([unshare, "-r", chroot, "/", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("unshare -r chroot is not permitted here: %s" % probe.stderr.strip())
    return [unshare, "-r", chroot]


def _extract(data, dest):
    # GNU tar, not tarfile: an independent reader checks that the archive is well formed.
    os.makedirs(dest)
    tar_path = os.path.join(os.path.dirname(str(dest)), "rootfs.tar")
    with open(tar_path, "wb") as f:
        f.write(data)
    subprocess.run(["tar", "-C", str(dest), "-xf", tar_path], check=True)


def _static_busybox():
    path = "/bin/busybox"
    if not os.path.isfile(path):
        pytest.skip("/bin/busybox is not installed (Debian: busybox-static)")
    if _elf_info(path)[0] is not None:
        pytest.skip("/bin/busybox is dynamically linked here (Debian: busybox-static)")
    return path


def test_static_busybox_gets_its_applets_and_nothing_else(tmp_path):
    busybox = _static_busybox()
    written, members, data = _make([busybox])
    real = _resolve(members, "bin/busybox")
    assert members[real].isreg()
    assert "/" + real in written
    listed = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert "bin/sh" in listed
    for applet in listed:
        where = _resolve(members, applet)
        assert where == real, "%s resolves to %s, not busybox" % (applet, where)
    # Statically linked: no loader, no libc.
    assert not any(n.endswith((".so", ".so.6", ".so.2")) for n in members)

    passwd = _read(data, "etc/passwd").decode()
    assert "root:x:0:0:root:/root:/bin/sh\n" in passwd
    assert "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" in passwd
    assert "app:x:1000:1000:app:/home/app:/bin/sh\n" in passwd
    group = _read(data, "etc/group").decode().splitlines()
    for line in ("root:x:0:", "app:x:1000:", "nogroup:x:65534:", "tty:x:5:"):
        assert line in group
    assert stat.S_IMODE(members["tmp"].mode) == 0o1777
    assert stat.S_IMODE(members["root"].mode) == 0o700
    for name in ("proc", "sys", "dev", "etc", "var", "home"):
        assert members[name].isdir(), name
    app = members["home/app"]
    assert (app.uid, app.gid) == (1000, 1000)
    for name, m in members.items():
        if name != "home/app":
            assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "root", "root"), name

    root = tmp_path / "root"
    _extract(data, root)
    cmd = _chroot_cmd()
    out = subprocess.run(cmd + [str(root), "/bin/sh", "-c", "echo hi; id -u; ls /"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[:2] == ["hi", "0"]
    assert "etc" in lines and "tmp" in lines


def test_host_top_level_symlinks_are_kept():
    busybox = _static_busybox()
    _, members, _ = _make([busybox])
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        name = top.lstrip("/")
        if os.path.islink(top):
            assert members[name].issym(), top
            assert members[name].linkname == os.readlink(top)
            assert members[_resolve(members, name)].isdir(), top
        elif name in members:
            assert members[name].isdir()


def test_dynamic_ls_brings_loader_and_libraries(tmp_path):
    ls = "/bin/ls"
    if not os.path.isfile(ls):
        pytest.skip("/bin/ls is not installed")
    interp, needed = _elf_info(os.path.realpath(ls))
    if interp is None:
        pytest.skip("/bin/ls is statically linked here")
    written, members, data = _make([ls])
    assert members[_resolve(members, "bin/ls")].isreg()
    assert members[_resolve(members, interp)].isreg(), interp
    # Every DT_NEEDED must be somewhere the loader looks: a lib directory of the image.
    lib_dirs = {os.path.dirname(_resolve(members, n)) for n in members
                if ".so" in os.path.basename(n)}
    basenames = {}
    for name in members:
        basenames.setdefault(os.path.basename(name), []).append(name)
    for lib in needed:
        assert lib in basenames, "%s (DT_NEEDED of ls) is missing" % lib
        assert any(members[_resolve(members, n)].isreg() for n in basenames[lib])
    assert "libc.so.6" in needed and "libc.so.6" in basenames
    assert lib_dirs
    # The loader's link chain keeps the host's shape: PT_INTERP resolves inside the image to the
    # file it resolves to on the host (e.g. /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-...).
    assert "/" + _resolve(members, interp) == os.path.realpath(interp)
    assert "/" + _resolve(members, "bin/ls") == os.path.realpath(ls)

    root = tmp_path / "root"
    _extract(data, root)
    cmd = _chroot_cmd()
    out = subprocess.run(cmd + [str(root), "/bin/ls", "/"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    listing = out.stdout.split()
    for name in ("etc", "tmp", "usr", "proc"):
        assert name in listing


def test_several_dynamic_binaries_run_together(tmp_path):
    wanted = [p for p in ("/bin/sh", "/bin/cat", "/usr/bin/id", "/usr/bin/env")
              if os.path.isfile(p)]
    if len(wanted) < 4:
        pytest.skip("coreutils/dash are not all installed")
    if _elf_info(os.path.realpath("/usr/bin/id"))[0] is None:
        pytest.skip("/usr/bin/id is statically linked here")
    _, members, data = _make(wanted)
    root = tmp_path / "root"
    _extract(data, root)
    cmd = _chroot_cmd()
    out = subprocess.run(cmd + [str(root), "/usr/bin/env", "-i", "/bin/sh", "-c",
                                "id; cat /etc/group"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "uid=0(root) gid=0(root)" in out.stdout
    assert "app:x:1000:" in out.stdout


def test_given_binaries_win_over_busybox_applets():
    busybox = _static_busybox()
    if not os.path.isfile("/bin/ls"):
        pytest.skip("/bin/ls is not installed")
    _, members, _ = _make([busybox, "/bin/ls"])
    ls = _resolve(members, "bin/ls")
    assert members[ls].isreg() and "/" + ls == os.path.realpath("/bin/ls")
    assert _resolve(members, "bin/cat") == _resolve(members, "bin/busybox")


def test_tar_streams_to_a_pipe():
    busybox = _static_busybox()
    proc = subprocess.Popen(["tar", "-tf", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    written = fromhost.write_rootfs_tar([busybox], proc.stdin)
    proc.stdin.close()
    listed = proc.stdout.read().decode().split()
    assert proc.wait() == 0
    assert [n.rstrip("/") for n in listed] == [p.lstrip("/") for p in written]


def test_missing_path_is_not_found():
    with pytest.raises(NotFound) as err:
        fromhost.write_rootfs_tar(["/no/such/binary-rbx"], io.BytesIO())
    assert "/no/such/binary-rbx" in str(err.value)
    assert "\n" not in str(err.value)


def test_non_elf_file_is_bad_archive(tmp_path):
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\necho not elf\n")
    with pytest.raises(BadArchive) as err:
        fromhost.write_rootfs_tar([str(text)], io.BytesIO())
    assert "not an ELF" in str(err.value)
    with pytest.raises(BadArchive):
        fromhost.write_rootfs_tar([str(tmp_path)], io.BytesIO())


def test_ld_so_conf_includes_are_followed(tmp_path):
    conf_d = tmp_path / "ld.so.conf.d"
    conf_d.mkdir()
    (conf_d / "a.conf").write_text("# comment\n/opt/a/lib\n/opt/b/lib:/opt/c/lib\n")
    (conf_d / "b.conf").write_text("include %s\n/opt/d\n" % (tmp_path / "ld.so.conf"))
    main = tmp_path / "ld.so.conf"
    main.write_text("include ld.so.conf.d/*.conf\nhwcap 0 nosegneg\n/usr/local/lib/\n")
    dirs = fromhost._ld_so_conf_dirs(str(main), set())
    assert dirs == ["/opt/a/lib", "/opt/b/lib", "/opt/c/lib", "/opt/d", "/usr/local/lib"]


def test_dynamic_string_tokens_are_expanded():
    assert fromhost._expand("$ORIGIN/../lib", "/opt/app/bin", 64, 62) == "/opt/app/bin/../lib"
    assert fromhost._expand("${ORIGIN}/x:$LIB", "/o", 64, 62) == "/o/x:lib64"
    assert fromhost._expand("/p/$PLATFORM", "/o", 64, 62) == "/p/x86_64"


def _read(data, name):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile(name).read()
