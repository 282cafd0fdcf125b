"""Resolve untrusted container paths inside a host directory that stands for the container's root.

Owns: the lexical cleaning of archive member names and the walk, component by component, that
keeps `..` and symlinks (absolute or relative) from leading out of the root, as runc's
filepath-securejoin does.
`open_in_root` walks the same way with O_PATH file descriptors, for a root that a hostile
process may change while the walk goes on (the chown supervisor's): every component is opened
relative to the one before with O_NOFOLLOW, so no swap of a directory for a symlink can send it
elsewhere.
Must not: create, change or remove anything (it only reads links and opens O_PATH fds), nor
import anything but the standard library and errors. Callers that then act on a path result
must not follow a symlink that appears at the returned path later (open with O_NOFOLLOW, act on
the link itself).
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import BadArchive

# Linux's own limit on symlinks followed in one lookup (MAXSYMLINKS, path_resolution(7)).
MAX_SYMLINKS = 40

# readlink(2) answers these for a component that exists but is no link, or does not exist: either
# way the component is taken literally and the walk goes on.
_NOT_A_LINK = (errno.EINVAL, errno.ENOENT, errno.ENOTDIR)


def resolve_in_root(root: str, path: str, *, follow_final: bool = True) -> str:
    """Return the host path under `root` that the container path `path` names.

    `..` stops at the root; a symlink met on the way is read and its target resolved inside the
    root (an absolute target starts again at the root). Components that do not exist are appended
    as they are, so the result may not exist. With follow_final=False a symlink in the last
    component is left as is: the result names the link itself.
    """
    root = os.path.abspath(root)
    pending = _components_reversed(path)
    resolved = []
    links = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        resolved.append(part)
        if not pending and not follow_final:
            break
        target = _read_link(os.path.join(root, *resolved))
        if target is None:
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise BadArchive(f"cannot resolve path: {path!r}: more than {MAX_SYMLINKS} symlinks "
                             "(a symlink loop?)")
        resolved.pop()
        if target.startswith("/"):
            resolved.clear()
        pending.extend(_components_reversed(target))
    return os.path.join(root, *resolved)


def open_in_root(root_fd: int, path: str, *, start_fd: int | None = None,
                 follow_final: bool = True) -> int:
    """An O_PATH fd of what `path` names inside the directory root_fd stands for, relative to
    start_fd (a directory under it) when the path is relative; the caller closes it.

    As resolve_in_root, but on descriptors: a symlink is read (never followed by the kernel)
    and its target walked again, an absolute one from root_fd; `..` goes back along this walk,
    and from start_fd's own directory it opens ".." only below the root (the root's `..` is
    the root). With follow_final=False a final symlink is returned itself. OSError (ENOENT,
    ENOTDIR, ELOOP...) when the walk cannot finish.
    """
    root_st = os.fstat(root_fd)
    root_id = (root_st.st_dev, root_st.st_ino)
    flags = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
    base = root_fd if path.startswith("/") or start_fd is None else start_fd
    cur = os.dup(base)
    stack = []  # the directories this walk went down through, for `..`
    pending = _components_reversed(path)
    links = 0
    try:
        while pending:
            part = pending.pop()
            if part == "..":
                if stack:
                    os.close(cur)
                    cur = stack.pop()
                    continue
                st = os.fstat(cur)
                if (st.st_dev, st.st_ino) == root_id:
                    continue
                parent = os.open("..", flags | os.O_DIRECTORY, dir_fd=cur)
                os.close(cur)
                cur = parent
                continue
            nxt = os.open(part, flags, dir_fd=cur)
            if stat.S_ISLNK(os.fstat(nxt).st_mode) and (pending or follow_final):
                try:
                    target = os.readlink("", dir_fd=nxt)
                finally:
                    os.close(nxt)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                if target.startswith("/"):
                    for fd in stack:
                        os.close(fd)
                    stack = []
                    os.close(cur)
                    cur = os.dup(root_fd)
                pending.extend(_components_reversed(target))
                continue
            stack.append(cur)
            cur = nxt
    except BaseException:
        os.close(cur)
        raise
    finally:
        for fd in stack:
            os.close(fd)
    return cur


def clean_member_name(name: str) -> str | None:
    """Normalise a tar member name to a relative path, or None for the root itself.

    A leading `/` and `.` components are dropped and `//` collapses; `..` is applied lexically
    (as Go's filepath.Clean does for Docker) and must never climb above the root.
    """
    if "\0" in name:
        raise BadArchive(f"unsafe archive entry: {name!r}: the name holds a NUL byte")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts:
            parts.pop()
        else:
            raise BadArchive(f"unsafe archive entry: {name!r}: '..' climbs out of the root")
    return "/".join(parts) or None


def _components_reversed(path):
    """The path's meaningful components as a stack: the first component is popped first."""
    return [part for part in reversed(path.split("/")) if part not in ("", ".")]


def _read_link(host_path):
    """The symlink's target, or None when the path is no symlink or does not exist."""
    try:
        return os.readlink(host_path)
    except OSError as err:
        if err.errno in _NOT_A_LINK:
            return None
        raise
