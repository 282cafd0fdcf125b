"""A base image made from host binaries, with no download.

Owns: turning a list of host ELF binaries into an uncompressed rootfs tar holding those binaries,
every shared object they load (found the way ld.so(8) finds them), the host's symlinks along the
way, busybox applet links, and a minimal filesystem skeleton (/etc/passwd, /etc/group, /tmp, ...).
Must not: print, exit, touch the image store, or import pyelftools at module import time (it is
imported inside write_rootfs_tar so that `run` never pays for it). The tar is written to a stream;
storing it as an image is the caller's business.
"""

import glob
import io
import os
import stat
import struct
import subprocess
import tarfile

from ..errors import BadArchive, BoxError, NotFound

# Host top-level entries that merged-/usr systems make symlinks (Debian 12: /bin -> usr/bin).
# They are recorded as symlinks whenever the host has them so, so that paths inside the image
# resolve the same way as on the host.
_TOP_LEVEL_LINKS = ("/bin", "/sbin", "/lib", "/lib64")

# ld.so gives up on symlink chains longer than the kernel does (path_resolution(7): 40).
_MAX_LINKS = 40

# ELF e_machine numbers (elf.h) to Debian multiarch tuples, keyed with the ELF class so that x32
# and i386 libraries are never picked for an x86-64 binary. Candidates are checked against the
# binary's class and machine anyway, so an extra tuple here costs a stat, not a wrong library.
_MULTIARCH = {
    (62, 64): ("x86_64-linux-gnu",),
    (62, 32): ("x86_64-linux-gnux32",),
    (3, 32): ("i386-linux-gnu",),
    (183, 64): ("aarch64-linux-gnu",),
    (40, 32): ("arm-linux-gnueabihf", "arm-linux-gnueabi"),
    (21, 64): ("powerpc64le-linux-gnu", "powerpc64-linux-gnu"),
    (20, 32): ("powerpc-linux-gnu",),
    (22, 64): ("s390x-linux-gnu",),
    (243, 64): ("riscv64-linux-gnu",),
    (8, 64): ("mips64el-linux-gnuabi64", "mips64-linux-gnuabi64"),
    (8, 32): ("mipsel-linux-gnu", "mips-linux-gnu"),
    (258, 64): ("loongarch64-linux-gnu",),
}

# $PLATFORM in DT_RPATH/DT_RUNPATH (ld.so(8), "Dynamic string tokens").
_PLATFORM = {62: "x86_64", 3: "i686", 183: "aarch64", 40: "v7l", 21: "power8", 22: "z900",
             243: "riscv64"}

_PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
           b"app:x:1000:1000:app:/home/app:/bin/sh\n"
           b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
_GROUP = b"root:x:0:\ntty:x:5:\napp:x:1000:\nnogroup:x:65534:\n"
# glibc falls back to "dns files" for hosts without this file; files first matches Docker images.
_NSSWITCH = b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"

# (path, mode, uid, gid): the skeleton every image gets. /bin and /sbin are skipped when the
# image already has them as symlinks (merged /usr).
_SKELETON = (
    ("/bin", 0o755, 0, 0), ("/sbin", 0o755, 0, 0),
    ("/dev", 0o755, 0, 0), ("/etc", 0o755, 0, 0), ("/home", 0o755, 0, 0),
    ("/home/app", 0o755, 1000, 1000), ("/proc", 0o555, 0, 0), ("/root", 0o700, 0, 0),
    ("/run", 0o755, 0, 0), ("/sys", 0o555, 0, 0), ("/tmp", 0o1777, 0, 0),
    ("/usr", 0o755, 0, 0), ("/usr/bin", 0o755, 0, 0), ("/usr/sbin", 0o755, 0, 0),
    ("/var", 0o755, 0, 0), ("/var/tmp", 0o1777, 0, 0),
)


def write_rootfs_tar(paths, out):
    """Write an uncompressed rootfs tar for the host binaries `paths` to the binary stream `out`.

    Returns the container paths written, absolute, in tar order. Raises NotFound for a path or a
    needed shared library that does not exist, BadArchive for a path that is not an ELF file.
    """
    if not paths:
        raise BoxError("no host binaries given", "name at least one, e.g. /bin/busybox")
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise BoxError("pyelftools is not installed; it is needed to read host binaries",
                       "pip install pyelftools") from None
    tree = _Tree()
    for top in _TOP_LEVEL_LINKS:
        if os.path.islink(top):
            tree.add_host_path(top)
    for path, mode, uid, gid in _SKELETON:
        if tree.resolve(path) == path:
            tree.add_dir(path, mode, uid, gid, override=True)
    tree.add_data("/etc/passwd", _PASSWD, 0o644)
    tree.add_data("/etc/group", _GROUP, 0o644)
    tree.add_data("/etc/nsswitch.conf", _NSSWITCH, 0o644)

    resolver = _Resolver(tree, ELFFile, ELFError)
    busyboxes = []
    for path in paths:
        path = os.path.abspath(path)
        if not os.path.lexists(path):
            raise NotFound("no such host file: %s" % path)
        real = tree.add_host_path(path, require_file=True)
        resolver.add_binary(real, given=path)
        if _is_busybox(path, real):
            busyboxes.append((path, real))
    resolver.run()
    for given, real in busyboxes:
        for applet in _busybox_applets(given):
            tree.add_applet_link(applet, real)
    return tree.write(out)


class _Tree:
    """The image's file tree: container path -> entry; container paths equal host paths."""

    def __init__(self):
        self.entries = {}

    # -- building -----------------------------------------------------------------------------

    def add_dir(self, path, mode, uid=0, gid=0, override=False):
        old = self.entries.get(path)
        if old is not None and (old[0] != "dir" or not override):
            return
        self.entries[path] = ("dir", stat.S_IMODE(mode), uid, gid)

    def add_data(self, path, data, mode):
        self._ensure_parents(path)
        self.entries[path] = ("data", data, mode)

    def add_host_path(self, path, require_file=False):
        """Record host `path` at the same place, walking it component by component so that each
        symlink on the way is kept as a symlink (like realpath(3), but remembering the links).
        Returns the host path of the final object, free of symlinks."""
        hops = 0
        pending = [c for c in path.split("/") if c]
        cur = "/"
        while pending:
            name = pending.pop(0)
            if name == ".":
                continue
            if name == "..":
                # cur never contains a symlink, so its parent is the real parent.
                cur = os.path.dirname(cur)
                continue
            nxt = os.path.join(cur, name)
            try:
                st = os.lstat(nxt)
            except FileNotFoundError:
                raise NotFound("no such host file: %s" % path) from None
            except OSError as e:
                raise BoxError("cannot read host file: %s: %s" % (nxt, e.strerror)) from None
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > _MAX_LINKS:
                    raise BadArchive("too many levels of symbolic links: %s" % path)
                target = os.readlink(nxt)
                if nxt not in self.entries:
                    self._ensure_parents(nxt)
                    self.entries[nxt] = ("symlink", target, st.st_mtime)
                if target.startswith("/"):
                    cur = "/"
                pending[:0] = [c for c in target.split("/") if c]
                continue
            if pending:
                if not stat.S_ISDIR(st.st_mode):
                    raise NotFound("no such host file: %s (%s is not a directory)" % (path, nxt))
                self.add_dir(nxt, st.st_mode)
            elif stat.S_ISDIR(st.st_mode):
                if require_file:
                    raise BadArchive("not an ELF binary: %s: is a directory" % path)
                self.add_dir(nxt, st.st_mode)
            elif stat.S_ISREG(st.st_mode):
                if nxt not in self.entries:
                    self.entries[nxt] = ("file", nxt, st.st_mode, st.st_mtime)
            else:
                raise BadArchive("not a regular file: %s" % path)
            cur = nxt
        return cur

    def _ensure_parents(self, path):
        parent = os.path.dirname(path)
        if parent != "/" and parent not in self.entries:
            self._ensure_parents(parent)
            self.entries[parent] = ("dir", 0o755, 0, 0)

    def resolve(self, path):
        """Resolve `path` through the symlinks already in the image (not the host's)."""
        pending = [c for c in path.split("/") if c]
        cur = "/"
        hops = 0
        while pending:
            name = pending.pop(0)
            if name in (".", ""):
                continue
            if name == "..":
                cur = os.path.dirname(cur)
                continue
            nxt = os.path.join(cur, name)
            entry = self.entries.get(nxt)
            if entry is not None and entry[0] == "symlink" and hops < _MAX_LINKS:
                hops += 1
                target = entry[1]
                if target.startswith("/"):
                    cur = "/"
                pending[:0] = [c for c in target.split("/") if c]
                continue
            cur = nxt
        return cur

    def add_applet_link(self, applet, binary_real):
        """A busybox applet link at `applet` (e.g. "usr/bin/env"), unless the path is taken."""
        literal = "/" + applet.strip("/")
        if literal in self.entries:
            return
        where = self.resolve(literal)
        if where in self.entries or where == binary_real:
            return
        parent = os.path.dirname(where)
        self._ensure_parents(where)
        # Relative, so the link also resolves when the tree is inspected from the host side.
        self.entries[where] = ("symlink", os.path.relpath(binary_real, parent), None)

    # -- writing ------------------------------------------------------------------------------

    def write(self, out):
        """Stream the tree as a tar to `out`; parents sort before their children."""
        written = []
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries, key=lambda p: p.split("/")):
                entry = self.entries[path]
                info = tarfile.TarInfo(path.lstrip("/"))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = epoch
                kind = entry[0]
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    info.mode = entry[1]
                    info.uid, info.gid = entry[2], entry[3]
                    if info.uid == 1000:
                        info.uname = info.gname = "app"
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry[1]
                    info.mode = 0o777
                    if entry[2] is not None:
                        info.mtime = int(entry[2])
                    tar.addfile(info)
                elif kind == "data":
                    info.mode = entry[2]
                    info.size = len(entry[1])
                    tar.addfile(info, io.BytesIO(entry[1]))
                else:
                    host = entry[1]
                    info.mode = stat.S_IMODE(entry[2])
                    info.mtime = int(entry[3])
                    try:
                        with open(host, "rb") as f:
                            info.size = os.fstat(f.fileno()).st_size
                            tar.addfile(info, f)
                    except OSError as e:
                        raise BoxError("cannot read host file: %s: %s"
                                       % (host, e.strerror)) from None
                written.append(path)
        return written


class _Resolver:
    """Finds the shared objects a set of ELF files loads, as ld.so(8) would, recursively."""

    def __init__(self, tree, elffile_cls, elf_error):
        self.tree = tree
        self.ELFFile = elffile_cls
        self.ELFError = elf_error
        self.queue = []
        self.seen = set()
        self._conf_dirs = None

    def add_binary(self, real, given):
        try:
            with open(real, "rb") as f:
                head = f.read(20)
        except OSError as e:
            raise BoxError("cannot read host file: %s: %s" % (given, e.strerror)) from None
        if head[:4] != b"\x7fELF":
            raise BadArchive("not an ELF binary: %s" % given)
        self.queue.append((real, given, ()))

    def run(self):
        while self.queue:
            real, shown, rpath_chain = self.queue.pop(0)
            if real in self.seen:
                continue
            self.seen.add(real)
            self._visit(real, shown, rpath_chain)

    def _visit(self, real, shown, rpath_chain):
        try:
            with open(real, "rb") as f:
                elf = self.ELFFile(f)
                machine = _machine_number(elf)
                ident = (elf.elfclass, machine, elf.little_endian)
                interp = None
                needed, rpath, runpath = [], [], []
                for seg in elf.iter_segments():
                    if seg["p_type"] == "PT_INTERP":
                        interp = seg.get_interp_name()
                    elif seg["p_type"] == "PT_DYNAMIC":
                        for tag in seg.iter_tags():
                            if tag.entry.d_tag == "DT_NEEDED":
                                needed.append(tag.needed)
                            elif tag.entry.d_tag == "DT_RPATH":
                                rpath.extend(tag.rpath.split(":"))
                            elif tag.entry.d_tag == "DT_RUNPATH":
                                runpath.extend(tag.runpath.split(":"))
        except (self.ELFError, struct.error, ValueError) as e:
            raise BadArchive("unreadable ELF file: %s: %s" % (shown, e)) from None
        except OSError as e:
            raise BoxError("cannot read host file: %s: %s" % (shown, e.strerror)) from None

        elfclass = elf.elfclass
        origin = os.path.dirname(real)
        if interp:
            interp_real = self.tree.add_host_path(interp, require_file=True)
            self.queue.append((interp_real, interp, ()))
        # ld.so(8): DT_RPATH is used only when there is no DT_RUNPATH, and then the RPATHs of the
        # loading objects up to the executable apply as well; DT_RUNPATH covers direct deps only.
        own_rpath = tuple(_expand(d, origin, elfclass, machine) for d in rpath if d)
        own_runpath = tuple(_expand(d, origin, elfclass, machine) for d in runpath if d)
        # An object with DT_RUNPATH has its DT_RPATH ignored but does not cut the chain.
        chain = (() if own_runpath else own_rpath) + tuple(rpath_chain)
        dirs = own_runpath or chain
        search = list(dirs) + self._default_dirs(elfclass, machine)
        for name in needed:
            found = self._find(name, search, ident)
            if found is None:
                raise NotFound("shared library %s needed by %s not found on this host"
                               % (name, shown),
                               "install the package that provides it, or pick other binaries")
            lib_real = self.tree.add_host_path(found, require_file=True)
            self.queue.append((lib_real, found, chain))

    def _find(self, name, search, ident):
        if "/" in name:
            candidates = [name if name.startswith("/") else os.path.join("/", name)]
        else:
            candidates = [os.path.join(d, name) for d in search if d.startswith("/")]
        for cand in candidates:
            # Not normpath'd: ".." after a symlink must climb from the link's target, and
            # add_host_path resolves it that way.
            if _elf_matches(cand, ident):
                return cand
        return None

    def _default_dirs(self, elfclass, machine):
        if self._conf_dirs is None:
            self._conf_dirs = _ld_so_conf_dirs("/etc/ld.so.conf", set())
        dirs = list(self._conf_dirs)
        for tup in _MULTIARCH.get((machine, elfclass), ()):
            dirs += ["/lib/" + tup, "/usr/lib/" + tup]
        if elfclass == 64:
            dirs += ["/lib64", "/usr/lib64"]
        elif machine == 62:
            dirs += ["/libx32", "/usr/libx32"]
        else:
            dirs += ["/lib32", "/usr/lib32"]
        dirs += ["/lib", "/usr/lib"]
        seen, ordered = set(), []
        for d in dirs:
            if d not in seen:
                seen.add(d)
                ordered.append(d)
        return ordered


def _machine_number(elf):
    """e_machine as a number (pyelftools gives a name like 'EM_X86_64' for known ones)."""
    return struct.unpack(("<" if elf.little_endian else ">") + "H",
                         _read_at(elf.stream, 18, 2))[0]


def _read_at(stream, offset, size):
    here = stream.tell()
    stream.seek(offset)
    data = stream.read(size)
    stream.seek(here)
    return data


def _elf_matches(path, ident):
    """True when `path` is an ELF file of the same class, machine and byte order (ld.so skips
    libraries of another ABI found earlier on the path, e.g. an i386 libc in /usr/lib)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return False
    elfclass = {1: 32, 2: 64}.get(head[4])
    little = head[5] == 1
    machine = struct.unpack("<H" if little else ">H", head[18:20])[0]
    return (elfclass, machine, little) == ident


def _expand(directory, origin, elfclass, machine):
    """Dynamic string tokens in DT_RPATH/DT_RUNPATH (ld.so(8)): $ORIGIN, $LIB, $PLATFORM."""
    lib = "lib64" if elfclass == 64 else "lib"
    platform = _PLATFORM.get(machine, "")
    for token, value in (("ORIGIN", origin), ("LIB", lib), ("PLATFORM", platform)):
        directory = directory.replace("${%s}" % token, value).replace("$" + token, value)
    return directory


def _ld_so_conf_dirs(path, visited):
    """Directories listed in ld.so.conf and its `include`d files (ldconfig(8))."""
    if path in visited:
        return []
    visited.add(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    dirs = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "include":
            for pattern in words[1:]:
                if not pattern.startswith("/"):
                    pattern = os.path.join(os.path.dirname(path), pattern)
                for inc in sorted(glob.glob(pattern)):
                    dirs += _ld_so_conf_dirs(inc, visited)
        elif words[0] == "hwcap":
            continue
        else:
            for word in line.replace(",", " ").replace(":", " ").split():
                # Old ldconfig syntax "dir=TYPE" names a library type; the directory is the left.
                word = word.split("=", 1)[0]
                if word.startswith("/"):
                    dirs.append(word.rstrip("/") or "/")
    return dirs


def _is_busybox(given, real):
    if os.path.basename(given) == "busybox" or os.path.basename(real) == "busybox":
        return True
    # Running arbitrary host binaries with --list could do anything (or wait on a terminal), so
    # only a file that carries busybox's banner is asked.
    banner = b"BusyBox v"
    tail = b""
    try:
        with open(real, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    return False
                if banner in tail + chunk:
                    return True
                tail = chunk[-len(banner):]
    except OSError:
        return False


def _busybox_applets(binary):
    """The applet paths a busybox binary installs, like "bin/sh" or "usr/bin/env"."""
    for args, prefix in (("--list-full", ""), ("--list", "bin/")):
        try:
            proc = subprocess.run([binary, args], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  timeout=20, env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired):
            return []
        if proc.returncode == 0 and proc.stdout.strip():
            names = []
            for line in proc.stdout.decode("utf-8", "replace").splitlines():
                line = line.strip()
                # An applet name never contains "..": refuse anything that could climb out.
                if line and ".." not in line.split("/"):
                    names.append(prefix + line.lstrip("/"))
            return names
    return []
