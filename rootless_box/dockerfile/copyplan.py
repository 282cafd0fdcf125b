"""COPY and ADD: from the instruction to a plan of what to write where, and its cache key.

Owns: Docker's source and destination rules (several sources or a trailing `/` make the
destination a directory; a directory's contents are copied, not the directory; a relative
destination is relative to WORKDIR), `--from` (a stage, a stage index or a local image),
`--chown` (numbers, or names from the image's own /etc/passwd and /etc/group), `--chmod`,
heredoc sources (`COPY <<EOF /path`), ADD's extraction of local tar archives, and the content
key (names, modes and bytes of what is copied: never mtimes).
Must not: write anything (ops/buildsteps.py does, inside the user namespace).
"""

import os

from .. import errors
from ..layers.diff import LowerView
from ..oci.users import resolve as resolve_user
from . import context as ctx
from .dockerignore import go_clean, has_wildcards
from .shell import expand_pattern, expand_word


def plan(builder, state, ins, env, what):
    """-> (plan items for ops.buildsteps.copy_step, content key, lowers of --from or None)."""
    # flag values are expanded like the arguments (BuildKit: --chown=$UID, --from=$STAGE)
    flags = dict((f[2:].partition("=")[0], expand_word(f[2:].partition("=")[2], env,
                                                       builder.escape)) for f in ins.flags)
    for flag in flags:
        if flag in ("keep-git-dir", "unpack"):
            # accepting and ignoring these would copy what the Dockerfile asked to leave out
            raise errors.UsageError("%s --%s is not supported yet" % (what, flag),
                                    "copy without it, or filter with .dockerignore")
        if flag not in ("from", "chown", "chmod", "link", "checksum", "parents", "exclude"):
            raise errors.UsageError("unknown flag for %s: --%s" % (what, flag))
    if len(ins.args) < 2:
        raise errors.UsageError("%s requires at least two arguments" % what)
    sources = [_expand_source(a, env, builder.escape) for a in ins.args[:-1]]
    dest = expand_word(ins.args[-1], env, builder.escape)
    workdir = state.runtime.get("WorkingDir") or "/"
    # `COPY f .` and `COPY f dir/.` name a directory, like a trailing slash (Docker)
    dest_is_dir = dest.endswith("/") or len(sources) > 1 or \
        os.path.basename(dest) in (".", "..")
    if not dest.startswith("/"):
        dest = os.path.join(workdir, dest)
    dest = os.path.normpath(dest) if dest not in ("/", "") else "/"
    uid, gid = owner(builder, state, flags.get("chown"))
    mode = _mode(flags.get("chmod"))
    heredocs = {h.name: h for h in ins.heredocs}
    items, key_parts = [], [dest, str(dest_is_dir), str(uid), str(gid), str(mode)]
    for source in [s for s in sources if s.startswith("<<")]:
        doc = heredocs.get(source.lstrip("<-").strip("\"'"))
        if doc is None:
            raise errors.UsageError("no heredoc body for %s" % source)
        text = expand_word(doc.content, env, builder.escape) if doc.expand else doc.content
        target = os.path.join(dest, doc.name) if dest_is_dir else dest
        items.append({"kind": "file", "dest": target, "name": doc.name, "data": text,
                      "uid": uid, "gid": gid, "mode": mode})
        key_parts.append("file:%s:%s" % (target, text))
    patterns = [s for s in sources if not s.startswith("<<")]
    if not patterns:
        return items, _digest(key_parts), None
    excludes = [f.partition("=")[2] for f in ins.flags if f.startswith("--exclude=")]
    parents = "parents" in flags and flags["parents"] != "false"
    if flags.get("from"):
        other, other_id = other_root(builder, flags["from"])
        items.append({"kind": "copy", "from_other": True, "patterns": patterns,
                      "excludes": excludes, "parents": parents,
                      "dest": dest, "dest_is_dir": dest_is_dir or parents, "uid": uid,
                      "gid": gid, "mode": mode})
        key_parts += ["from:" + other_id] + patterns + ["exclude:" + e for e in excludes] + \
            (["parents"] if parents else [])
        return items, _digest(key_parts), other
    urls = [p for p in patterns if "://" in p]
    if urls:
        if what != "ADD" or len(patterns) != 1:
            raise errors.UsageError("%s cannot take a URL here: %s" % (what, urls[0]),
                                    "ADD takes one URL at a time; COPY takes none")
        tmp, name, digest = builder.fetch(urls[0], flags.get("checksum"))
        items.append({"kind": "copy", "from_other": False, "root": tmp,
                      "sources": [(name, False, name)], "walk": {}, "dest": dest,
                      "dest_is_dir": dest_is_dir, "uid": uid, "gid": gid, "mode": mode})
        key_parts += [urls[0], digest]
        return items, _digest(key_parts), None
    if flags.get("checksum"):
        raise errors.UsageError("ADD --checksum is only for URLs")
    matcher = builder.context_matcher()
    excluded = _exclusions(excludes)
    resolved, names = [], {}  # resolved: (name as matched, what is copied)
    unmatched = None
    for pattern in patterns:
        try:
            pairs = ctx.resolve_copy_sources(builder.opts.context, pattern, matcher)
        except ctx.SourceNotFound as exc:
            # a wildcard that matches nothing is fine when another source names something
            # (BuildKit); a plain name that is missing never is
            if not has_wildcards(pattern):
                raise
            unmatched = unmatched or exc
            continue
        for name, rel in pairs:
            if not excluded(name):
                resolved.append((name, rel))
                names[rel] = _parents_name(pattern, name)
    if not resolved and unmatched and not items:
        raise unmatched
    if not resolved and not items:
        raise errors.NotFound("%s: every source is excluded" % what)
    if len(resolved) > 1 or parents:
        dest_is_dir = True
    found = []
    walk = {}
    for name, rel in resolved:
        full = os.path.join(builder.opts.context, rel)
        is_dir = os.path.isdir(full) and not os.path.islink(full)
        if what == "ADD" and not is_dir and _is_archive(full):
            items.append({"kind": "extract", "path": full, "dest": dest, "uid": uid,
                          "gid": gid, "chown": "chown" in flags})
            continue
        found.append((rel, is_dir, name))
        if is_dir:
            prefix = "" if rel in (".", "") else rel + "/"
            walk[rel] = [p[len(prefix):] for p, _st in ctx.walk(builder.opts.context, matcher,
                                                                rel)
                         if not excluded(p) and not excluded(p[len(prefix):])]
    items.append({"kind": "copy", "from_other": False, "root": builder.opts.context,
                  "sources": found, "walk": walk, "dest": dest, "dest_is_dir": dest_is_dir,
                  "uid": uid, "gid": gid, "mode": mode,
                  "names": names if parents else None})
    # the expanded sources and the names they land under belong to the key too: the same
    # files copied by another pattern (a --parents pivot) make another layout
    key_parts += patterns + ["%s=%s" % item for item in sorted(names.items())
                             if parents]
    # a followed link names the destination entry while the content key covers its target
    key_parts += ["%s->%s" % pair for pair in resolved if pair[0] != pair[1]]
    key_parts.append(ctx.content_key(builder.opts.context, [rel for _name, rel in resolved],
                                     matcher, builder.known_files()))
    return items, _digest(key_parts), None


def _expand_source(word, env, escape):
    """A source as the glob matcher takes it (escapes kept); heredocs and URLs as written."""
    if word.startswith("<<"):
        return word
    plain = expand_word(word, env, escape)
    return plain if "://" in plain else expand_pattern(word, env, escape)


def resolve_in(root, item):
    """COPY --from sources inside another image's mounted root, resolved like context
    sources (never climbing out of it), with --exclude and --parents applied. Runs inside the
    user namespace. -> {"sources": [(relpath, is_dir, name)], "walk": {relpath: [sub paths]},
    "names": {relpath: name under dest} or None}."""
    excluded = _exclusions(item.get("excludes") or [])
    sources, walk, names = [], {}, {}
    unmatched = None
    for pattern in item["patterns"]:
        try:
            pairs = ctx.resolve_copy_sources(root, pattern, image_root=True)
        except ctx.SourceNotFound as exc:
            if not has_wildcards(pattern):
                raise
            unmatched = unmatched or exc
            continue
        for name, rel in pairs:
            if excluded(name):
                continue
            full = os.path.join(root, rel)
            is_dir = os.path.isdir(full) and not os.path.islink(full)
            prefix = "" if rel in (".", "") else rel + "/"
            walk[rel] = [p[len(prefix):] for p, _st in ctx.walk(root, None, rel)
                         if not excluded(p) and not excluded(p[len(prefix):])] \
                if is_dir else []
            sources.append((rel, is_dir, name))
            names[rel] = _parents_name(pattern, name)
    if not sources and unmatched:
        raise unmatched
    return {"sources": sources, "walk": walk,
            "names": names if item.get("parents") else None}


def _exclusions(patterns):
    """COPY --exclude: a path is left out when a pattern matches it (.dockerignore rules)."""
    if not patterns:
        return lambda _path: False
    from .dockerignore import Matcher
    matcher = Matcher(patterns)
    return lambda path: path not in (".", "") and matcher.matches(path)


def _parents_name(pattern, rel):
    """COPY --parents keeps a source's path under the destination; a `/./` in the pattern
    marks where that kept path starts (BuildKit's pivot)."""
    head, pivot, _tail = pattern.lstrip("/").partition("/./")
    if pivot:
        prefix = go_clean(head)
        if rel.startswith(prefix + "/"):
            return rel[len(prefix) + 1:]
        if rel == prefix:
            return "."  # `x/./`: the directory's contents land right under the destination
    return rel


def _digest(parts):
    import hashlib
    return "sha256:" + hashlib.sha256("\0".join(parts).encode("utf-8",
                                                            "surrogateescape")).hexdigest()


def _is_archive(path):
    """ADD extracts a regular file whose (decompressed) start is a tar header; anything else,
    a plain .gz of a text included, is copied as it is. Never follows a symlink or opens a
    fifo."""
    import stat
    import tarfile
    from ..layers.compression import open_stream
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as raw:
        try:
            stream, _kind = open_stream(raw)
            head = stream.read(512)
        except (errors.BoxError, OSError, EOFError):
            return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return False
    return True


def _mode(text):
    if not text:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        raise errors.UsageError("invalid --chmod %r: give an octal mode such as 0644" % text) \
            from None
    if not 0 <= mode <= 0o7777:
        raise errors.UsageError("invalid --chmod %r: out of range" % text)
    return mode


def other_root(builder, ref, what="COPY --from"):
    """COPY --from, RUN --mount from=: a --build-context of that name, a stage built earlier
    (by name or index), else a local image -> (its layer directories, its ID)."""
    from ..ops import images as images_ops
    named = builder.named_context(ref)
    if named is not None and named["kind"] == "dir":
        return [named["path"]], named["key"]
    if named is not None:
        images_ops.ensure_unpacked(builder.store, builder.idmap, named["image"])
        return named["image"].layer_dirs(), named["image"].id
    names = {s["name"]: i for i, s in enumerate(builder.stages) if s["name"]}
    index = names.get(ref.lower())
    if index is None and ref.isdigit():
        index = int(ref)
    if index is not None:
        state = builder.stage_results.get(index)
        if state is None:
            raise errors.UsageError("%s=%s: the stage is not built before this one"
                                    % (what, ref))
        return builder._layer_dirs(state), state.image_id or state.key
    from ..ops import images
    try:
        image = builder.resolve_image(ref)
    except errors.BoxError:
        raise errors.NotFound("%s=%s: no such stage or image" % (what, ref),
                              "name a stage of this Dockerfile or a local image") from None
    images.ensure_unpacked(builder.store, builder.idmap, image)
    return image.layer_dirs(), image.id


def owner(builder, state, spec):
    """(uid, gid) of a --chown or USER value, names looked up in the image's own files."""
    if not spec:
        return 0, 0
    user, _, group = spec.partition(":")
    if user.isdigit() and (not group or group.isdigit()):
        return int(user), int(group) if group else int(user)
    view = LowerView(builder._layer_dirs(state))
    resolved = resolve_user(spec, view.read_text("etc/passwd"), view.read_text("etc/group"))
    return resolved.uid, resolved.gid
