"""User-namespace id maps: which mapping a user can have, and writing it.

Owns: reading /etc/subuid and /etc/subgid (subuid(5)), choosing between a subordinate-range
mapping (newuidmap/newgidmap, as rootless Podman: container 0 is the user, 1..N the range) and a
single-id mapping (`0 <uid> 1`, setgroups denied: user_namespaces(7)), and applying either.
Must not: know about containers or images.
"""

import os
import pwd

from .. import config
from ..errors import SetupError

HELPERS = ("newuidmap", "newgidmap")
_HELPER_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin")


class IdMap:
    """uid_map/gid_map as lists of (inside, outside, count)."""

    __slots__ = ("mode", "uid_map", "gid_map", "warning", "reason")

    def __init__(self, mode, uid_map, gid_map, warning=None, reason=None):
        self.mode, self.uid_map, self.gid_map = mode, uid_map, gid_map
        self.warning, self.reason = warning, reason

    @property
    def key(self):
        """Names the mapping in the store: a layer unpacked under one mapping has host owners
        that mean other ids under another, so each mapping gets its own layer directories."""
        if self.mode == "single":
            return "single"
        return "subuid-" + "_".join("%dx%d" % (outside, count) for mapping in
                                    (self.uid_map[1:], self.gid_map[1:])
                                    for _inside, outside, count in mapping)

    def max_uid(self):
        return sum(count for _inside, _outside, count in self.uid_map) - 1

    def to_host_uid(self, uid):
        for inside, outside, count in self.uid_map:
            if inside <= uid < inside + count:
                return outside + uid - inside
        return None

    def to_host_gid(self, gid):
        for inside, outside, count in self.gid_map:
            if inside <= gid < inside + count:
                return outside + gid - inside
        return None

    def __repr__(self):
        return "IdMap(%s, %r, %r)" % (self.mode, self.uid_map, self.gid_map)


def read_ranges(path, user, uid):
    """The (start, count) ranges of `user` (name or numeric uid) in a subuid/subgid file."""
    ranges = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return ranges
    keys = {user, str(uid)}
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in keys:
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0 and start >= 0:
            ranges.append((start, count))
    return ranges


def _chain(own_id, ranges):
    mapping = [(0, own_id, 1)]
    inside = 1
    for start, count in ranges:
        mapping.append((inside, start, count))
        inside += count
    return mapping


def find_helper(name):
    for directory in _HELPER_DIRS:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def admin_fix(user):
    return ("an administrator can add one with: usermod --add-subuids 100000-165535 "
            "--add-subgids 100000-165535 %s (and install the uidmap package)" % user)


def plan(mode=None, uid=None, gid=None):
    """Choose the mapping for this user. mode: auto|subuid|single (default: RBX_USERNS)."""
    mode = mode or config.idmap_mode()
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    single = IdMap("single", [(0, uid, 1)], [(0, gid, 1)])
    if mode == "single":
        single.reason = "chosen with RBX_USERNS=single"
        return single
    user = user_name(uid)
    subuid_file, subgid_file = config.subid_files()
    uranges = read_ranges(subuid_file, user, uid)
    granges = read_ranges(subgid_file, user, uid)
    missing = []
    if not uranges:
        missing.append("no range for %s in %s" % (user, subuid_file))
    if not granges:
        missing.append("no range for %s in %s" % (user, subgid_file))
    for helper in HELPERS:
        if not find_helper(helper):
            missing.append("%s is not installed" % helper)
    if not missing:
        return IdMap("subuid", _chain(uid, uranges), _chain(gid, granges),
                     reason="subordinate ranges of %s" % user)
    if mode == "subuid":
        raise SetupError("cannot use a subordinate id mapping: " + "; ".join(missing),
                         admin_fix(user))
    single.reason = "; ".join(missing)
    single.warning = ("single-id mapping (%s): the container has only uid/gid 0, so another "
                      "user (-u, USER) runs as 0 with its ids faked, and chown and privilege "
                      "drops are faked (owners kept in an xattr; see 'rootless-box info'); %s"
                      % (single.reason, admin_fix(user)))
    return single


def _spawn_helper(helper, pid, mapping):
    """Start a setuid map helper with its stderr on a pipe; -> (name, child pid, pipe)."""
    path = find_helper(helper)
    args = [helper, str(pid)] + [str(x) for triple in mapping for x in triple]
    rfd, wfd = os.pipe2(os.O_CLOEXEC)
    try:
        child = os.posix_spawn(path, args, config.host_env_for_helpers(),
                               file_actions=[(os.POSIX_SPAWN_DUP2, wfd, 2)])
    except OSError as exc:
        os.close(rfd)
        raise SetupError("cannot run %s: %s" % (helper, exc.strerror))
    finally:
        os.close(wfd)
    return helper, child, rfd


def _finish_helper(helper, child, rfd):
    with os.fdopen(rfd, "rb") as f:
        err = f.read().decode(errors="replace").strip()
    _pid, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SetupError("%s failed: %s" % (helper, err.splitlines()[-1] if err else status),
                         "check the ranges in /etc/subuid and /etc/subgid, or set "
                         "RBX_USERNS=single")


def apply_from_parent(idmap, pid):
    """Write a subordinate-range mapping for process pid with the setuid helpers (both at
    once: each is an exec of a setuid binary, a few ms)."""
    running = [_spawn_helper("newuidmap", pid, idmap.uid_map),
               _spawn_helper("newgidmap", pid, idmap.gid_map)]
    for item in running:
        _finish_helper(*item)


def apply_single_self(idmap):
    """Write a single-id mapping from inside the new namespace (no helper needed)."""
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    _write_map("/proc/self/uid_map", idmap.uid_map)
    _write_map("/proc/self/gid_map", idmap.gid_map)


def _write_map(path, mapping):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, "".join("%d %d %d\n" % t for t in mapping).encode())
    finally:
        os.close(fd)
