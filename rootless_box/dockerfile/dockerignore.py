"""The `.dockerignore` pattern language, as Docker, docker/cli and BuildKit apply it.

Owns: reading a `.dockerignore` text into patterns (moby/patternmatcher `ignorefile.ReadAll`),
compiling each pattern into one of moby's four matcher kinds (exact, prefix, suffix, regex), the
ordered last-match-wins decision with ancestors counting (`MatchesOrParentMatches` and its
incremental twin `MatchesUsingParentResults`), fsutil's rule for descending into an excluded
directory, and Go's `filepath.Match` / `filepath.Clean`, which COPY sources use as well.
The rules are written down in ../shared/conformance/dockerignore.md; section numbers below refer
to it.
Must not: touch the filesystem, print, or import anything but the standard library and errors.
Paths are relative to the context root and `/`-separated; Unix rules only (on Windows `\\` is a
separator, here it is an escape).
"""

from __future__ import annotations

import re

from ..errors import BoxError

# Go's unicode.IsSpace, which strings.TrimSpace uses; Python's str.strip() would also trim
# \x1c-\x1f, which Go keeps as part of the pattern.
_GO_SPACE = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
             "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

# Characters moby escapes when translating a pattern to a regex (shouldEscape): literal in
# filepath.Match, special in a regex.
_REGEX_LITERALS = ".+()|{}$"

# fsutil's patternChars on Unix: an exception holding one of these may re-include anything
# anywhere, so an excluded directory must always be descended into (§5).
_WILDCARD_CHARS = "*[]?^\\"

EXACT, PREFIX, SUFFIX, REGEX = "exact", "prefix", "suffix", "regex"


class PatternError(BoxError):
    """A .dockerignore (or --exclude) pattern Docker would refuse; the build fails (exit 1)."""

    exit_code = 1


# --- Go's path/filepath helpers -------------------------------------------------------------

def go_trim(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(_GO_SPACE)


def go_clean(path: str) -> str:
    """filepath.Clean on Unix: collapse `//`, drop `.`, resolve `..` lexically, no trailing `/`.

    Unlike posixpath.normpath, a leading `//` collapses too.
    """
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part != "..":
            parts.append(part)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def go_match(pattern: str, name: str) -> bool:
    """filepath.Match: `*` and `?` never match `/`; `[...]` classes negated by `^`; `\\` escapes.

    Raises PatternError for a malformed pattern. Like Go (since 1.16) the whole pattern is checked
    even once the match has failed, so the answer never depends on the name.
    """
    try:
        return _go_match(pattern, name)
    except PatternError:
        raise _bad_pattern(pattern) from None


def _go_match(pattern, name):
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # A trailing `*` matches the rest of the name unless it has a `/`.
            return "/" not in name
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            rest = _match_after_star(chunk, name, last=not pattern)
            if rest is not None:
                name = rest
                continue
        _check_syntax(pattern)
        return False
    return not name


def has_wildcards(pattern: str) -> bool:
    """Whether filepath.Match gives any character of `pattern` a special meaning (Glob's hasMeta)."""
    return any(c in pattern for c in "*?[\\")


def _match_after_star(chunk, name, last):
    """Try the chunk after skipping 1.. characters of `name` that a `*` may eat (never `/`)."""
    for i, char in enumerate(name):
        if char == "/":
            break
        rest = _match_chunk(chunk, name[i + 1:])
        if rest is not None and not (last and rest):
            return rest
    return None


def _check_syntax(pattern):
    """Raise PatternError if any remaining chunk is malformed."""
    while pattern:
        _, chunk, pattern = _scan_chunk(pattern)
        _match_chunk(chunk, "")


def _scan_chunk(pattern):
    """Split off leading stars and the chunk up to the next star outside a class (scanChunk)."""
    stripped = pattern.lstrip("*")
    star = len(stripped) != len(pattern)
    in_range = False
    i = 0
    while i < len(stripped):
        char = stripped[i]
        if char == "\\":
            i += 1  # the escaped character cannot end the chunk; a trailing `\` is caught later
        elif char == "[":
            in_range = True
        elif char == "]":
            in_range = False
        elif char == "*" and not in_range:
            break
        i += 1
    i = min(i, len(stripped))
    return star, stripped[:i], stripped[i:]


def _match_chunk(chunk, name):
    """matchChunk: the rest of `name` after `chunk` matched its start, or None.

    The chunk is parsed to its end even after a mismatch so that syntax errors always surface.
    """
    failed = False
    i = 0
    while i < len(chunk):
        if not failed and not name:
            failed = True
        char = chunk[i]
        if char == "[":
            current = None if failed else name[0]
            if not failed:
                name = name[1:]
            matched, i = _match_class(chunk, i + 1, current)
            failed = failed or not matched
            continue
        if char == "?":
            if not failed:
                failed = name[0] == "/"
                name = name[1:]
            i += 1
            continue
        if char == "\\":
            i += 1
            if i == len(chunk):
                raise _bad_pattern(chunk)
        if not failed:
            failed = chunk[i] != name[0]
            name = name[1:]
        i += 1
    return None if failed else name


def _match_class(chunk, i, current):
    """Parse a class starting after its `[`; return (whether `current` is in it, index after `]`)."""
    negated = i < len(chunk) and chunk[i] == "^"
    if negated:
        i += 1
    matched = False
    ranges = 0
    while True:
        if i < len(chunk) and chunk[i] == "]" and ranges:
            i += 1
            break
        low, i = _class_char(chunk, i)
        high = low
        if chunk[i] == "-":
            high, i = _class_char(chunk, i + 1)
        if current is not None and low <= current <= high:
            matched = True
        ranges += 1
    return matched != negated, i


def _class_char(chunk, i):
    """getEsc: one possibly escaped class character; something must follow it."""
    if i >= len(chunk) or chunk[i] in "-]":
        raise _bad_pattern(chunk)
    if chunk[i] == "\\":
        i += 1
        if i >= len(chunk):
            raise _bad_pattern(chunk)
    if i + 1 >= len(chunk):
        raise _bad_pattern(chunk)
    return chunk[i], i + 1


def _bad_pattern(pattern):
    # Go's filepath.ErrBadPattern text, naming the pattern (inner helpers pass a fragment; the
    # public entry points raise again with the whole pattern).
    return PatternError(f'syntax error in pattern: "{pattern}"')


# --- reading a .dockerignore file (§1) ------------------------------------------------------

def read_lines(text: str) -> list[str]:
    """The pattern strings of a .dockerignore text, as ignorefile.ReadAll returns them.

    Exceptions keep their `!`; a bare `!` is kept too (the matcher refuses it).
    """
    lines = []
    for number, line in enumerate(text.split("\n")):
        if number == 0 and line.startswith("\ufeff"):
            line = line[1:]
        # `#` only at column 0, checked before trimming (§1.2): "  # x" is a pattern.
        if line.startswith("#"):
            continue
        line = go_trim(line)
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = go_trim(line[1:])
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        lines.append("!" + line if invert else line)
    return lines


def read_patterns(text: str) -> list[Pattern]:
    """Parse a .dockerignore text into compiled patterns (PatternError for a bad one)."""
    return [pattern for pattern in map(compile_pattern, read_lines(text)) if pattern is not None]


# --- one pattern (§2, §3) -------------------------------------------------------------------

def compile_pattern(text: str) -> Pattern | None:
    """NewPatternMatcher's handling of one string; None for an empty one.

    The `!` is taken off after cleaning, as upstream does, so `!./foo` passed here directly stays
    `./foo` (and never matches); read_lines strips `!` first and so avoids that.
    """
    text = go_trim(text)
    if not text:
        return None
    text = go_clean(text)
    exclusion = text.startswith("!")
    if exclusion:
        if len(text) == 1:
            raise PatternError('illegal exclusion pattern: "!"')
        text = text[1:]
    go_match(text, ".")  # only for its syntax check, as upstream does
    return Pattern(text, exclusion)


class Pattern:
    """One cleaned pattern (without its `!`), its matcher kind and, for regex kind, its regex."""

    __slots__ = ("text", "exclusion", "kind", "regex", "_compiled", "_error")

    def __init__(self, text: str, exclusion: bool = False):
        self.text = text
        self.exclusion = exclusion
        self.kind, self.regex = _translate(text)
        self._compiled = None
        self._error = None

    def __repr__(self):
        return f"Pattern({'!' if self.exclusion else ''}{self.text!r}, {self.kind})"

    def __str__(self):
        return ("!" if self.exclusion else "") + self.text

    def match(self, path: str) -> bool:
        """Whether this pattern alone matches `path` itself (no ancestors)."""
        if self.kind == EXACT:
            return path == self.text
        if self.kind == PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        return self._regex().match(path) is not None

    def _regex(self):
        # Compiled on first use, as upstream does: a pattern that passed filepath.Match's check
        # but is no valid regex (`[Local-Only]`) fails every match, not the matcher's creation.
        if self._error is not None:
            raise self._error
        if self._compiled is None:
            try:
                self._compiled = re.compile(_python_regex(self.regex), re.ASCII)
            except (PatternError, re.error):
                self._error = _bad_pattern(self.text)
                raise self._error from None
        return self._compiled


def _translate(pattern):
    """moby's Pattern.compile: the matcher kind and, for the regex kind, the Go regex (§3)."""
    kind = EXACT
    out = ["^"]
    i = 0
    first = True
    while i < len(pattern):
        char = pattern[i]
        i += 1
        if char == "*" and pattern[i:i + 1] == "*":
            i += 1
            if pattern[i:i + 1] == "/":
                i += 1
            if i == len(pattern):
                if kind == EXACT:
                    kind = PREFIX
                else:
                    out.append(".*")
                    kind = REGEX
            else:
                out.append("(.*/)?")
                kind = REGEX
            if first:
                kind = SUFFIX
        elif char == "*":
            out.append("[^/]*")
            kind = REGEX
        elif char == "?":
            out.append("[^/]")
            kind = REGEX
        elif char in _REGEX_LITERALS:
            out.append("\\" + char)
        elif char == "\\":
            if i < len(pattern):
                out.append("\\" + pattern[i])
                i += 1
                kind = REGEX
            else:
                out.append("\\")
        elif char in "[]":
            out.append(char)
            kind = REGEX
        else:
            out.append(char)
        first = False
    if kind != REGEX:
        return kind, None
    return kind, "".join(out) + "$"


# --- Go regex syntax (RE2, Perl flags) to Python's re ---------------------------------------
# The translated pattern is Go regex text, and a user's `[...]` or `\x` reaches Go's regex parser
# as written. Python's `re` reads some of it differently (`$` before a final newline, `[[:alpha:]]`,
# `\z`, nested `[`), so the text is parsed with Go's rules and re-emitted with every literal
# escaped. Unicode groups (`\p{..}`), `\Q..\E` and negated POSIX classes are not supported and
# make the pattern fail as a bad one.

_POSIX_CLASSES = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_CONTROL_ESCAPES = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}
_PERL_CLASSES = "dDsSwW"
_ASSERTIONS = {"b": "\\b", "B": "\\B", "A": "\\A", "z": "\\Z"}


def _python_regex(go_regex):
    out = []
    i = 0
    while i < len(go_regex):
        char = go_regex[i]
        if char == "\\":
            fragment, i = _escape(go_regex, i + 1)
        elif char == "[":
            fragment, i = _char_class(go_regex, i + 1)
        elif char == "$" and i == len(go_regex) - 1:
            fragment, i = "\\Z", i + 1  # Go's `$` never matches before a trailing newline
        else:
            fragment, i = char, i + 1
        out.append(fragment)
    return "".join(out)


def _char_class(text, i):
    """A Go class starting after `[`: the Python class and the index after its `]`."""
    negated = text[i:i + 1] == "^"
    if negated:
        i += 1
    items = []
    first = True
    while i < len(text) and (text[i] != "]" or first):
        first = False
        if text.startswith("[:", i) and text.find(":]", i + 2) >= 0:
            end = text.find(":]", i + 2)
            name = text[i + 2:end]
            if name not in _POSIX_CLASSES:
                raise _bad_pattern(text)
            items.append(_POSIX_CLASSES[name])
            i = end + 2
            continue
        low, i = _class_atom(text, i)
        if text[i:i + 1] == "-" and text[i + 1:i + 2] not in ("", "]") and len(low) == 1:
            high, i = _class_atom(text, i + 1)
            if len(high) != 1 or high < low:
                raise _bad_pattern(text)
            items.append(re.escape(low) + "-" + re.escape(high))
        else:
            items.append(re.escape(low) if len(low) == 1 else low)
    if i >= len(text):
        raise _bad_pattern(text)
    return "[" + ("^" if negated else "") + "".join(items) + "]", i + 1


def _class_atom(text, i):
    """One class member: a literal character (length 1) or a Perl class such as `\\d`."""
    if text[i] != "\\":
        return text[i], i + 1
    if text[i + 1:i + 2] in tuple(_PERL_CLASSES):
        return "\\" + text[i + 1], i + 2
    return _escaped_char(text, i + 1)


def _escape(text, i):
    """A Go escape outside a class, as a Python fragment."""
    char = text[i:i + 1]
    if char and char in _PERL_CLASSES:
        return "\\" + char, i + 1
    if char in _ASSERTIONS:
        return _ASSERTIONS[char], i + 1
    literal, i = _escaped_char(text, i)
    return re.escape(literal), i


def _escaped_char(text, i):
    """The literal character a Go escape (after its `\\`) stands for: punctuation, control
    letters, octal and hex codes. Anything else is an invalid escape in Go."""
    char = text[i:i + 1]
    if char and char.isascii() and not char.isalnum():
        return char, i + 1
    if char in _CONTROL_ESCAPES and char:
        return _CONTROL_ESCAPES[char], i + 1
    if char == "0" or (char and char in "1234567" and text[i + 1:i + 2] in tuple("01234567")):
        digits = re.match("[0-7]{1,3}", text[i:]).group()
        return chr(int(digits, 8)), i + len(digits)
    if char == "x":
        hexa = re.match(r"\{([0-9A-Fa-f]+)\}|[0-9A-Fa-f]{2}", text[i + 1:])
        if hexa:
            value = int(hexa.group(1) or hexa.group(), 16)
            if value <= 0x10FFFF:
                return chr(value), i + 1 + hexa.end()
    raise _bad_pattern(text)


# --- ordered matching (§4) and the walk's descent rule (§5) --------------------------------

class Matcher:
    """An ordered list of patterns; the last pattern that hits a path or an ancestor decides."""

    def __init__(self, patterns=()):
        compiled = (p if isinstance(p, Pattern) else compile_pattern(p) for p in patterns)
        self.patterns: list[Pattern] = [p for p in compiled if p is not None]
        self.exceptions = [p for p in self.patterns if p.exclusion]
        self._prefix_exceptions = [_without_trailing_glob(p.text) + "/" for p in self.exceptions]
        self._wildcard_exceptions = any(
            c in _WILDCARD_CHARS for prefix in self._prefix_exceptions for c in prefix)

    def __bool__(self):
        return bool(self.patterns)

    def matches(self, path: str) -> bool:
        """Whether `path` is excluded (MatchesOrParentMatches). The context root never is."""
        return self.match(path)[0]

    def match(self, path: str, parent=None):
        """(excluded, info) for `path`; `info` is passed back in as `parent` for its children.

        With parent=None the ancestors are checked from the path itself; a walk that hands each
        directory's info to its children gets the same answer without re-matching ancestors
        (MatchesUsingParentResults). Info holds, per pattern, whether it hit the path or an
        ancestor: True, False, or None when the pattern was skipped and never evaluated.
        """
        path = _normalise(path)
        if path in ("", "."):
            return False, [False] * len(self.patterns)
        info = [None] * len(self.patterns)
        excluded = False
        for index, pattern in enumerate(self.patterns):
            known = parent[index] if parent is not None else None
            if known:
                info[index] = True
            elif pattern.exclusion == excluded:
                # Only a pattern that could change the result is evaluated (§4.1).
                info[index] = pattern.match(path) or (
                    known is None and _ancestor_matches(pattern, path))
            if info[index] and pattern.exclusion == excluded:
                excluded = not pattern.exclusion
        return excluded, info

    def may_reinclude_under(self, directory: str) -> bool:
        """Whether an excluded directory must still be walked for an exception inside it (§5)."""
        if not self.exceptions:
            return False
        if self._wildcard_exceptions:
            return True
        prefix = _normalise(directory) + "/"
        return any(p.startswith(prefix) for p in self._prefix_exceptions)


def _normalise(path):
    # Upstream callers may pass `dir/`; the ancestors rule makes that the same as `dir`.
    return path.rstrip("/") or path


def _ancestor_matches(pattern, path):
    parts = path.split("/")[:-1]
    return any(pattern.match("/".join(parts[:n])) for n in range(1, len(parts) + 1))


def _without_trailing_glob(text):
    """fsutil's patternWithoutTrailingGlob: `a/**` and `a/*` name the directory `a`."""
    for suffix in ("/**", "/*"):
        if text.endswith(suffix):
            text = text[:-len(suffix)]
    return text
