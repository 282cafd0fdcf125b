"""The owner a file would have in the container when the id map cannot give it: the
`user.rootlesscontainers` xattr (rootlesscontainers.com; the schema is
github.com/rootless-containers/proto, `message Resource { uint32 uid = 1; uint32 gid = 2; }`).

Under a single-id mapping every file on disk belongs to the user (root in the container), so
chown(2) to any other id fails with EINVAL; the owner a layer or a step asked for is kept here
instead, and whoever writes a layer tar reads it back (umoci and Podman use the same attribute).

Owns: the protobuf wire encoding of Resource (by hand: two varint fields), setting, removing
and reading the attribute, and the rule that says which owner a file has in the container.
Must not: decide when to record (unpack, copyin and the seccomp supervisor do), import a
protobuf library, or follow a symlink.

Symlinks cannot carry user.* xattrs on Linux (xattr(7): EPERM), nor can FIFOs or devices;
their owner is not recorded (umoci and Podman skip them too) and they come out owned by root.
"""

import errno
import os

from ..errors import BadArchive

XATTR = "user.rootlesscontainers"
# overlayfs's mark of an opaque directory under userxattr: here, beside the other xattr name
# both layers.unpack and layers.diff use, so that diff (a cached build's import) needs no
# unpack (tarfile, shutil, dataclasses: ~10 ms)
OPAQUE_XATTR = "user.overlay.opaque"
# The proto's comment: (uint32_t) -1 in either field keeps that id unchanged, as in chown(2).
NOOP_ID = 0xFFFFFFFF

_UID_TAG = 1 << 3 | 0  # field 1, wire type 0 (varint)
_GID_TAG = 2 << 3 | 0
# The longest varint protobuf writes (a 64-bit value); a longer one is malformed.
_MAX_VARINT = 10
# setxattr(2) on a symlink, FIFO or device: EPERM (xattr(7)); ENOTSUP on a filesystem without
# user xattrs.
_CANNOT_RECORD = (errno.EPERM, errno.ENOTSUP)
_NO_RECORD = (errno.ENODATA, errno.ENOTSUP, errno.EPERM)


def encode(uid, gid):
    """Resource{uid, gid} on the wire. Zeros are left out, as proto3 writers do; the spec says
    a missing field reads as a literal zero."""
    out = bytearray()
    for tag, value in ((_UID_TAG, uid), (_GID_TAG, gid)):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"id out of uint32 range: {value}")
        if value:
            out.append(tag)
            _put_varint(out, value)
    return bytes(out)


def decode(data):
    """(uid, gid) from a Resource; a field that is absent is 0, NOOP_ID passes through.
    Unknown fields are skipped (protobuf's rule, so a later schema still reads); a repeated
    field keeps its last value. Malformed input raises ValueError."""
    data = bytes(data)
    uid = gid = 0
    pos = 0
    while pos < len(data):
        key, pos = _get_varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("field number 0")
        if wire == 0:
            value, pos = _get_varint(data, pos)
            if field in (1, 2):
                if value > 0xFFFFFFFF:
                    raise ValueError(f"field {field} does not fit uint32: {value}")
                if field == 1:
                    uid = value
                else:
                    gid = value
            continue
        if field in (1, 2):
            raise ValueError(f"field {field} has wire type {wire}, not varint")
        if wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _get_varint(data, pos)
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
    return uid, gid


def _put_varint(out, value):
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)


def _get_varint(data, pos):
    value = shift = 0
    for i in range(_MAX_VARINT):
        if pos + i >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos + i + 1
    raise ValueError("varint longer than 10 bytes")


def record(target, uid, gid, follow_symlinks=False):
    """Make the container see target (a path or an fd) owned by uid:gid. 0:0 removes the
    record (the user is root in the container: nothing to remember). Returns False when the
    file cannot carry the attribute (a symlink, FIFO or device), True otherwise."""
    kwargs = {} if isinstance(target, int) else {"follow_symlinks": follow_symlinks}
    try:
        if uid == 0 and gid == 0:
            try:
                os.removexattr(target, XATTR, **kwargs)
            except OSError as err:
                if err.errno not in _NO_RECORD:
                    raise
            return True
        os.setxattr(target, XATTR, encode(uid, gid), **kwargs)
        return True
    except OSError as err:
        if err.errno in _CANNOT_RECORD:
            return False
        raise


def recorded(target, follow_symlinks=False):
    """The record as written, (uid, gid) with NOOP_ID kept, or None without one."""
    kwargs = {} if isinstance(target, int) else {"follow_symlinks": follow_symlinks}
    try:
        value = os.getxattr(target, XATTR, **kwargs)
    except OSError as err:
        if err.errno in _NO_RECORD:
            return None
        raise
    try:
        return decode(value)
    except ValueError:
        return None


def write_raw(target, uid, gid, follow_symlinks=False):
    """The record as given, NOOP_ID fields included (a file a non-root user chowned under
    the single-id mapping keeps an id to be filled in later: diff.claim_new)."""
    kwargs = {} if isinstance(target, int) else {"follow_symlinks": follow_symlinks}
    os.setxattr(target, XATTR, encode(uid, gid), **kwargs)


def chown(path, uid, gid, follow_symlinks=False, fresh=False):
    """chown(2), or the record where the id map has no such id (EINVAL: a single mapping).
    A real chown drops a stale record (fresh: path was just made, it has none). Returns
    False when neither could be done (a symlink under a single mapping)."""
    try:
        os.chown(path, uid, gid, follow_symlinks=follow_symlinks)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        return record(path, uid, gid, follow_symlinks)
    if not fresh:
        record(path, 0, 0, follow_symlinks)
    return True


def read(target, st, follow_symlinks=False):
    """The owner target (a path or an fd; st its lstat) has in the container. A file that
    belongs to this process's own ids (root in the container under a single mapping, where
    every file does) takes the recorded owner, an absent field or NOOP_ID keeping the stat's;
    files of other ids have their real owners and no record is consulted (only their owner
    could have written one). Ids of this process read as 0: outside the user namespace the
    user's files are root's in the container."""
    own_uid, own_gid = os.geteuid(), os.getegid()
    uid, gid = st.st_uid, st.st_gid
    if uid != own_uid:
        return uid, gid
    uid = 0
    if gid == own_gid:
        gid = 0
    kwargs = {} if isinstance(target, int) else {"follow_symlinks": follow_symlinks}
    try:
        value = os.getxattr(target, XATTR, **kwargs)
    except OSError as err:
        if err.errno in _NO_RECORD:
            return uid, gid
        raise
    try:
        ruid, rgid = decode(value)
    except ValueError as err:
        raise BadArchive(f"malformed {XATTR} xattr: {target}: {err}",
                         f"remove it (setfattr -x {XATTR} PATH) and chown the file "
                         "again") from None
    return (uid if ruid == NOOP_ID else ruid), (gid if rgid == NOOP_ID else rgid)
