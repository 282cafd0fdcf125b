"""The build context as a build sees it: its ignore file, its walk, COPY/ADD sources, content keys.

Owns: choosing the ignore file (`<Dockerfile>.dockerignore` beside the Dockerfile, else
`<context>/.dockerignore`, BuildKit's rule), walking the context the way BuildKit's fsutil sends
it (excluded entries left out, excluded parents of re-included entries kept, unreadable excluded
directories ignored), expanding COPY/ADD sources (Go's filepath.Match per path component), and the
content key of a COPY's sources for the build cache.
Must not: write anything, print, or follow a symlink out of the context. The context is hostile:
directories are opened one component at a time relative to their parent with O_NOFOLLOW, so a
symlink (planted or swapped in) is never traversed by the walk; COPY sources resolve symlinks in
their parent components inside the context (securepath.resolve_in_root); a source that is itself
a symlink is followed inside the context too (follow_link), never out of it.
"""

from __future__ import annotations

import hashlib
import os
import stat

from ..errors import BadArchive, BoxError
from ..securepath import MAX_SYMLINKS, clean_member_name, resolve_in_root
from .dockerignore import Matcher, PatternError, go_match, has_wildcards, read_patterns

# Files are hashed in chunks this large: big enough for few syscalls, small enough for memory.
CHUNK_SIZE = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted in the context must not hang the build when opened.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

IGNORE_FILE = ".dockerignore"
ROOT = "."


class ContextError(BoxError):
    """The build context cannot give what the build asks for (Docker's build exit status 1)."""

    exit_code = 1


class SourceNotFound(ContextError):
    """A COPY/ADD source that names nothing in the context."""


# --- the ignore file --------------------------------------------------------------------------

def load_ignore(context_dir: str, dockerfile_path: str | None = None) -> Matcher:
    """The matcher of the ignore file that applies; an empty matcher when there is none.

    `<Dockerfile>.dockerignore` beside the Dockerfile wins over `<context>/.dockerignore`
    (BuildKit's dockerui). Pass dockerfile_path=None for a Dockerfile read from stdin.
    """
    candidates = []
    if dockerfile_path:
        candidates.append((os.path.dirname(os.path.abspath(dockerfile_path)),
                           os.path.basename(dockerfile_path) + IGNORE_FILE))
    candidates.append((context_dir, IGNORE_FILE))
    for directory, name in candidates:
        try:
            path = resolve_in_root(directory, name)
        except BadArchive:
            raise ContextError(f"cannot read {name}: too many levels of symbolic links") from None
        data = _read_small_file(path, name)
        if data is None:
            continue
        try:
            return Matcher(read_patterns(data.decode("utf-8", "surrogateescape")))
        except PatternError as err:
            raise PatternError(f"{name}: {err}") from None
    return Matcher()


def _read_small_file(path, label):
    """The bytes of a regular file, None when it is absent; any other kind is refused."""
    try:
        fd = os.open(path, _FILE_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ContextError(f"cannot read {label}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ContextError(f"cannot read {label}: not a regular file")
        return handle.read()


# --- the walk -----------------------------------------------------------------------------------

def walk(context_dir: str, matcher: Matcher | None = None, under: str = ROOT):
    """Yield (relpath, lstat) for every entry the context holds, below `under` (not itself).

    Depth first, each directory's entries sorted by name (Go's WalkDir order); symlinks are
    yielded as themselves and never followed. An excluded directory is skipped unless an exception
    may re-include something in it (Matcher.may_reinclude_under); it is yielded just before the
    first entry of it that is included, as fsutil sends it.
    """
    for relpath, st, _dir_fd, _name in _walk_entries(context_dir, matcher or Matcher(), under):
        yield relpath, st


def _walk_entries(context_dir, matcher, under):
    """walk(), also giving each entry's open parent directory fd and name (valid until the next
    item) so a caller can open the entry itself without a path lookup."""
    under = _internal(under)
    top = _open_dir_or_fail(context_dir, under)
    try:
        yield from _walk_dir(top, under, matcher.match(under or ROOT)[1], matcher, pending=[])
    except PermissionError:
        raise _unreadable(under or ROOT) from None
    finally:
        os.close(top)


def _walk_dir(dir_fd, prefix, info, matcher, pending):
    for name, st in _list_dir(dir_fd):
        relpath = f"{prefix}/{name}" if prefix else name
        excluded, child_info = matcher.match(relpath, info)
        if not excluded:
            # Excluded parents that were walked for an exception are sent after all (fsutil).
            yield from pending
            pending.clear()
            yield relpath, st, dir_fd, name
        if stat.S_ISDIR(st.st_mode) and (not excluded or matcher.may_reinclude_under(relpath)):
            yield from _descend(dir_fd, name, relpath, st, child_info, matcher, pending, excluded)


def _descend(dir_fd, name, relpath, st, info, matcher, pending, excluded):
    try:
        child_fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return  # removed while walking: as fsutil, treat it as never there
    except PermissionError:
        if excluded:
            return  # fsutil ignores an unreadable directory that is excluded anyway (§5)
        raise _unreadable(relpath) from None
    entry = (relpath, st, dir_fd, name)
    if excluded:
        pending.append(entry)
    try:
        yield from _walk_dir(child_fd, relpath, info, matcher, pending)
    except PermissionError:
        if not excluded:
            raise _unreadable(relpath) from None
    finally:
        os.close(child_fd)
        if pending and pending[-1] is entry:
            pending.pop()


def _list_dir(dir_fd):
    """(name, lstat) of a directory's entries, sorted by their bytes as Go sorts names."""
    entries = []
    for name in sorted(os.listdir(dir_fd), key=os.fsencode):
        try:
            entries.append((name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False)))
        except FileNotFoundError:
            continue
    return entries


def _open_dir(context_dir, relpath):
    """An fd of the directory `relpath` inside the context, opened one component at a time with
    O_NOFOLLOW so that no symlink is crossed."""
    # The context directory itself is the user's choice and may be reached through a symlink.
    fd = os.open(context_dir, _DIR_FLAGS & ~os.O_NOFOLLOW)
    for part in relpath.split("/") if relpath else ():
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _open_dir_or_fail(context_dir, relpath):
    try:
        return _open_dir(context_dir, relpath)
    except OSError as err:
        raise ContextError(f"cannot read build context: {relpath or ROOT}: "
                           f"{err.strerror.lower()}") from None


def _unreadable(relpath):
    return ContextError(f"cannot read build context: {relpath}: permission denied")


# --- COPY / ADD sources -------------------------------------------------------------------------

def resolve_source(context_dir: str, pattern: str, matcher: Matcher | None = None) -> list[str]:
    """The context entries a COPY/ADD source names, as relpaths ("." for the context itself).

    An absolute source is relative to the context; `..` may not climb above it. Each component
    may hold filepath.Match wildcards. Symlinks in the parent components are resolved inside the
    context; the last component is never followed (a symlink is copied as a symlink). With a
    matcher, entries the .dockerignore excludes do not exist, as they are never sent to BuildKit.
    """
    cleaned = _clean_source(pattern)
    found = [""]
    parts = cleaned.split("/") if cleaned else []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**" and not last:
            # zero or more directories (BuildKit's patterns; Go's Match alone has no `**`)
            found = [d for base in found for d in _directories_below(context_dir, base)]
            continue
        found = [relpath for base in found for relpath in _expand(context_dir, base, part, last)]
    if matcher:
        found = [relpath for relpath in found if _present(context_dir, relpath, matcher)]
    if not found:
        raise SourceNotFound(f'failed to compute cache key: "/{cleaned}": not found')
    return [relpath or ROOT for relpath in dict.fromkeys(found)]


def resolve_copy_sources(context_dir: str, pattern: str, matcher: Matcher | None = None,
                         image_root: bool = False) -> list[tuple[str, str]]:
    """The entries a COPY/ADD source names, as (name, real) relpath pairs.

    name is the entry as matched (it names the destination); real is what is copied: the entry
    itself, or, when it is a symlink, what the link points to, resolved inside the root
    (BuildKit follows the links a source names; links inside a copied directory stay links).
    image_root: the root is an image's (COPY --from), where `/..` is `/` as in any root
    filesystem; in a build context a link climbing out of it is an error instead.
    """
    return [(name, follow_link(context_dir, name, matcher, image_root))
            for name in resolve_source(context_dir, pattern, matcher)]


def follow_link(context_dir: str, relpath: str, matcher: Matcher | None = None,
                image_root: bool = False) -> str:
    """relpath with its last component followed while it is a symlink, inside the root.

    An absolute target starts again at the root (the context, or the --from stage's root, is
    the link's `/`); a target whose `..` climbs above the root is refused (stays at the root
    with image_root), as is a target that is missing or left out by the ignore file.
    """
    current = _internal(relpath)
    for _hop in range(MAX_SYMLINKS + 1):
        parent, _, name = current.rpartition("/")
        st = _lstat(context_dir, current)
        if st is None:
            raise ContextError(f'failed to compute cache key: "/{relpath}": not found '
                               f'(a symlink to "/{current}")')
        if not stat.S_ISLNK(st.st_mode):
            if matcher and current != _internal(relpath) and \
                    not _present(context_dir, current, matcher):
                raise ContextError(f'failed to compute cache key: "/{relpath}": not found '
                                   f'("/{current}" is excluded by .dockerignore)')
            return current or ROOT
        fd = _open_dir(context_dir, parent)
        try:
            target = os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)
        joined = target if target.startswith("/") else f"{parent}/{target}"
        try:
            cleaned = _clean_clamped(joined) if image_root else clean_member_name(joined) or ""
        except BadArchive:
            raise ContextError(f"COPY failed: symlink /{relpath} points outside the build "
                               f"context: {target}") from None
        head, _, tail = cleaned.rpartition("/")
        # the directories on the way may be links too: resolved inside the root
        base = _resolve(context_dir, head) if head else ""
        current = f"{base}/{tail}" if base else tail
    raise ContextError(f"cannot resolve /{relpath} in the build context: "
                       "too many levels of symbolic links")


def mount_source(context_dir: str, source: str, matcher: Matcher | None = None) -> str:
    """RUN --mount's source in the context: a path (no wildcards), its symlinks followed inside
    the context; missing or excluded by the ignore file is an error."""
    cleaned = _clean_source(source)
    head, _, tail = cleaned.rpartition("/")
    base = _resolve(context_dir, head) if head else ""
    rel = f"{base}/{tail}" if base and tail else (tail or base)
    if matcher and rel and not _present(context_dir, rel, matcher):
        raise ContextError(f'failed to compute cache key: "/{cleaned}": not found')
    return follow_link(context_dir, rel or ROOT, matcher)


def _clean_clamped(path):
    """A path cleaned lexically, `..` at the root staying there (as the kernel does at /)."""
    parts = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _clean_source(pattern):
    """The source as a relpath ("" for the context root); `..` above the root is refused."""
    if "\0" in pattern:
        raise ContextError(f"COPY failed: invalid path: {pattern!r}")
    try:
        return clean_member_name(pattern) or ""
    except BadArchive:
        raise ContextError(
            f"COPY failed: forbidden path outside the build context: {pattern}") from None


def _expand(context_dir, base, part, last):
    """The relpaths under directory `base` that one source component names."""
    if has_wildcards(part):
        names = [name for name in _names_in(context_dir, base) if go_match(part, name)]
    else:
        names = [part]
    for name in names:
        relpath = f"{base}/{name}" if base else name
        if not last:
            relpath = _resolve(context_dir, relpath)
        st = _lstat(context_dir, relpath)
        if st is not None and (last or stat.S_ISDIR(st.st_mode)):
            yield relpath


def _directories_below(context_dir, base):
    """base and every directory under it, never through a symlink."""
    result, stack = [], [base]
    while stack:
        current = stack.pop()
        result.append(current)
        for name in sorted(_names_in(context_dir, current), reverse=True):
            relpath = f"{current}/{name}" if current else name
            st = _lstat(context_dir, relpath)
            if st is not None and stat.S_ISDIR(st.st_mode):
                stack.append(relpath)
    return result


def _names_in(context_dir, relpath):
    try:
        fd = _open_dir(context_dir, relpath)
    except OSError:
        return []
    try:
        return sorted(os.listdir(fd), key=os.fsencode)
    finally:
        os.close(fd)


def _resolve(context_dir, relpath):
    """relpath with every symlink in it resolved inside the context ("" for the root)."""
    try:
        real = resolve_in_root(context_dir, relpath)
    except BadArchive:
        raise ContextError(f"cannot resolve path in build context: {relpath}: "
                           "too many levels of symbolic links") from None
    real = os.path.relpath(real, os.path.abspath(context_dir))
    return "" if real == "." else real


def _lstat(context_dir, relpath):
    """lstat of an entry of the context (its parents opened without following symlinks)."""
    parent, _, name = relpath.rpartition("/")
    if not name:
        return os.stat(context_dir)
    try:
        fd = _open_dir(context_dir, parent)
    except OSError:
        return None
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(fd)


def _present(context_dir, relpath, matcher):
    """Whether an entry reaches the build: not excluded, or a directory with something included
    inside it (fsutil then sends the directory too)."""
    if not matcher.matches(relpath or ROOT):
        return True
    st = _lstat(context_dir, relpath)
    if st is None or not stat.S_ISDIR(st.st_mode) or not matcher.may_reinclude_under(relpath):
        return False
    return next(walk(context_dir, matcher, relpath), None) is not None


# --- content keys -------------------------------------------------------------------------------

def content_key(context_dir: str, relpaths, matcher: Matcher | None = None,
                known: dict | None = None) -> str:
    """sha256 over the names, mode bits and contents of the sources and everything under them.

    Never mtimes, owners or inode numbers, so a fresh clone of the same tree gets the same key.
    Excluded entries are left out; a symlink contributes its target text, not what it points to.
    known: {relpath: [size, mtime_ns, ctime_ns, inode, digest]} from an earlier build of this
    context, updated in place: a file whose stat is unchanged is not read again (as git's index
    does). The stat only decides whether to read; the key is always made of content digests.
    """
    matcher = matcher or Matcher()
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_SIZE)
    buffer_known = (buffer, known)
    for relpath in relpaths:
        relpath = _internal(relpath)
        parent, _, name = relpath.rpartition("/")
        parent_fd = _open_dir_or_fail(context_dir, parent)
        try:
            st = _lstat_in(parent_fd, name, relpath) if name else os.stat(context_dir)
            _add_entry(digest, buffer_known, parent_fd, name, relpath or ROOT, st)
        finally:
            os.close(parent_fd)
        if stat.S_ISDIR(st.st_mode):
            for child, child_st, dir_fd, child_name in _walk_entries(context_dir, matcher,
                                                                    relpath):
                _add_entry(digest, buffer_known, dir_fd, child_name, child, child_st)
    return "sha256:" + digest.hexdigest()


def _lstat_in(dir_fd, name, relpath):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise ContextError(f'failed to compute cache key: "/{relpath}": not found') from None


def _add_entry(digest, buffer_known, dir_fd, name, relpath, st):
    """One record: type and permission bits, NUL, the name, NUL, the content's digest, NUL.
    Names hold no NUL, so the records cannot run into each other."""
    kind = stat.S_IFMT(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        buffer, known = buffer_known
        signature = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entry = known.get(relpath) if known is not None else None
        if entry is not None and entry[:4] == signature:
            body = entry[4]
        else:
            body = _file_digest(dir_fd, name, relpath, st, buffer)
            if known is not None:
                known[relpath] = signature + [body]
    elif stat.S_ISLNK(st.st_mode):
        body = hashlib.sha256(os.readlink(os.fsencode(name), dir_fd=dir_fd)).hexdigest()
    else:
        body = ""
    digest.update(b"%o %o\0%s\0%s\0" % (kind, stat.S_IMODE(st.st_mode), os.fsencode(relpath),
                                        body.encode()))


def _file_digest(dir_fd, name, relpath, st, buffer):
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as err:
        raise ContextError(f"cannot read build context: {relpath}: "
                           f"{err.strerror.lower()}") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            raise ContextError(f"cannot read build context: {relpath}: changed while reading")
        file_hash = hashlib.sha256()
        view = memoryview(buffer)
        while True:
            count = os.readv(fd, [buffer])
            if not count:
                break
            file_hash.update(view[:count])
        return file_hash.hexdigest()
    finally:
        os.close(fd)


def _internal(relpath):
    """The internal spelling of a relpath: "" for the context root, no leading `./`."""
    relpath = relpath.strip("/")
    while relpath.startswith("./"):
        relpath = relpath[2:]
    return "" if relpath == ROOT else relpath
