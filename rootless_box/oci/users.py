"""Resolving `-u/--user` against an image's /etc/passwd and /etc/group.

Owns: the user spec grammar `user|uid[:group|gid]` and the lookup rules runc/Docker follow
(moby/sys user.GetExecUser): names must exist, numeric ids need not; the primary group comes
from passwd unless given; supplementary groups are those listing the user in /etc/group; HOME
from passwd, else "/". Must not: read files (callers pass the texts in).
"""

from ..errors import UsageError


class ExecUser:
    __slots__ = ("uid", "gid", "groups", "home", "name")

    def __init__(self, uid, gid, groups, home, name):
        self.uid, self.gid, self.groups, self.home, self.name = uid, gid, groups, home, name

    def __repr__(self):
        return "ExecUser(%d, %d, %r, %r)" % (self.uid, self.gid, self.groups, self.home)


def _rows(text, fields):
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            yield parts


def _id(text):
    return int(text) if text.isdigit() else None


def resolve(spec, passwd_text, group_text):
    spec = (spec or "").strip() or "0"
    user_part, _, group_part = spec.partition(":")
    if not user_part:
        raise UsageError("invalid user: %r" % spec, "use NAME, UID, NAME:GROUP or UID:GID")
    uid = _id(user_part)
    entry = None
    for parts in _rows(passwd_text, 7):
        if (uid is None and parts[0] == user_part) or (uid is not None and
                                                       _id(parts[2]) == uid):
            entry = parts
            break
    if entry is None and uid is None:
        raise UsageError("unable to find user %s: no matching entries in passwd file"
                         % user_part, "use a numeric uid, or a user the image defines")
    if uid is None:
        uid = _id(entry[2])
        if uid is None:
            raise UsageError("invalid uid in the image's passwd file for %s" % user_part)
    name = entry[0] if entry else None
    home = entry[5] if entry and entry[5] else "/"
    gid = _id(entry[3]) if entry and _id(entry[3]) is not None else 0
    groups = []
    if group_part:
        gid = _group_id(group_part, group_text)
    elif name:
        for parts in _rows(group_text, 4):
            members = [m for m in parts[3].split(",") if m]
            gid_value = _id(parts[2])
            if name in members and gid_value is not None and gid_value not in groups:
                groups.append(gid_value)
    return ExecUser(uid, gid, groups, home, name)


def group_ids(names, group_text):
    """--group-add values (names or gids) -> gids, names looked up in the image's
    /etc/group as runc does; UsageError for a name it does not define."""
    out = []
    for name in names:
        gid = _group_id(name, group_text)
        if gid not in out:
            out.append(gid)
    return out


def _group_id(name, group_text):
    """A gid, or a group name looked up in group_text; UsageError when it names none."""
    gid = _id(name)
    if gid is None:
        for parts in _rows(group_text, 4):
            if parts[0] == name:
                gid = _id(parts[2])
                break
    if gid is None:
        raise UsageError("unable to find group %s: no matching entries in group file"
                         % name, "use a numeric gid, or a group the image defines")
    return gid
