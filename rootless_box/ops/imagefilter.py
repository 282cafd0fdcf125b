"""Docker's image filters, for both front ends (`images --filter`, the Engine API's
GET /images/json): `dangling`, `reference` (Go's path.Match globs against the familiar name),
`before`, `since`, `label`.

Owns: the filters' grammar and errors as moby's daemon gives them. Must not: print or change
the store.
"""

from ..errors import UsageError
from ..oci import reference
from . import images as image_ops

IMAGE_FILTERS = ("dangling", "reference", "before", "since", "label")
_TRUE = {"true": True, "1": True, "false": False, "0": False}


def glob_regex(pattern):
    """Go's path.Match pattern as a regular expression: `*` and `?` stop at `/`, `[...]`
    classes (with `^` negation and ranges), `\\` escapes. A malformed pattern is a UsageError,
    as path.ErrBadPattern is to Docker."""
    import re
    bad = UsageError("invalid filter 'reference=%s': syntax error in pattern" % pattern,
                     "use a glob such as busy* or base:*")
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i >= n:
                raise bad
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            negate = i < n and pattern[i] == "^"
            i += negate
            ranges = []
            while True:
                if i >= n:
                    raise bad
                if pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = _class_char(pattern, i, bad)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1, bad)
                ranges.append((lo, hi))
            parts = "".join(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else "")
                            for lo, hi in ranges if lo <= hi)
            if not parts:  # only empty ranges: Go's class matches nothing (or anything negated)
                out.append("[^/]" if negate else "(?!)")
            else:
                out.append("[%s%s]" % ("^" if negate else "", parts))
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _class_char(pattern, i, bad):
    # path.Match's getEsc: `-` and `]` must be escaped inside a class
    if i >= len(pattern) or pattern[i] in "-]":
        raise bad
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise bad
    return pattern[i], i + 1


def reference_matches(regexes, tag):
    """Docker's reference filter (reference.FamiliarMatch): a pattern matches the familiar
    `name:tag` or the familiar name alone."""
    ref = reference.parse(tag)
    familiar, name = ref.familiar(), ref.familiar_repository()
    return any(rx.match(familiar) or rx.match(name) for rx in regexes)


def image_filter(store, filters):
    """{key: [values]} -> (predicate over an Image and its config, reference regexes).
    before=/since= name images (resolved now: an unknown one is an error); dangling must be
    a boolean; several labels must all match."""
    dangling = None
    for value in filters.get("dangling", []):
        if value.lower() not in _TRUE:
            raise UsageError("invalid filter 'dangling=%s'" % value,
                             "use dangling=true or dangling=false")
        dangling = _TRUE[value.lower()]
    # Docker: the last before= / since= given wins
    bounds = {}
    for key in ("before", "since"):
        for name in filters.get(key, []):
            other = image_ops.resolve(store, name)
            bounds[key] = image_ops.created_seconds(
                image_ops.readable_config(other).get("created") or "")
    labels = filters.get("label", [])
    regexes = [glob_regex(p) for p in filters.get("reference", [])]

    def keep(image, config):
        if dangling is not None and bool(image.tags) == dangling:
            return False
        if bounds:
            created = image_ops.created_seconds(config.get("created") or "")
            if "before" in bounds and not created < bounds["before"]:
                return False
            if "since" in bounds and not created > bounds["since"]:
                return False
        return all(image_ops.label_matches(image_ops.labels_of(config), spec)
                   for spec in labels)
    return keep, regexes
