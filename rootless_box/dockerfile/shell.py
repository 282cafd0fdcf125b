"""Shell-word expansion for Dockerfile instructions: BuildKit's lexer, reproduced.

Owns: expanding one Dockerfile word against an environment the way BuildKit's
`frontend/dockerfile/shell/lex.go` does (quotes, the escape character, `$NAME`, `${NAME}` and the
`${NAME<modifier>word}` forms with their glob patterns), splitting it into words after expansion,
and reporting which variable names the word looked up (the build cache keys a step on the build
args it uses). Conformance data: ../shared/conformance/buildkit-shell/ (see its FORMAT.md).

Must not: run anything, read the process environment, touch files, or know about instructions or
ARG scoping. It is not a shell: no command substitution, no arithmetic, no assignment (`${V:=w}`
is an error, as in BuildKit). Pure functions of (word, env, escape) only.
"""

import collections
import collections.abc
import re

from rootless_box.errors import BoxError


class ExpansionError(BoxError):
    """A word that cannot be expanded: bad `${...}` syntax, an unterminated quote, `${V?msg}`."""

    exit_code = 1  # Docker exits 1 for every failed build, whatever the reason.

    def __init__(self, word, reason):
        # Worded as BuildKit wraps its lexer errors: `failed to process "<word>": <reason>`.
        super().__init__("failed to process %s: %s" % (_go_quote(word), reason))
        self.word = word
        self.reason = reason


Expansion = collections.namedtuple("Expansion", "text words used unset")
Expansion.__doc__ = """The result of expanding one word.

text: the expanded word, quotes and escapes removed, whitespace kept (BuildKit's ProcessWord).
words: the same text split on unquoted, unescaped whitespace, empty words dropped (ProcessWords).
used: names looked up and found in the environment (BuildKit's "matched").
unset: names looked up and not found (BuildKit's "unmatched": undefined-variable warnings).
"""


def expand(word, env, escape="\\", raw_escapes=False):
    """Expand `word` against `env` (a mapping, or a list of "K=V" / "K" strings) -> Expansion.
    raw_escapes keeps the escape characters in the text (for a word that is then a pattern)."""
    if len(escape) != 1:
        raise ValueError("the escape character must be one character, not %r" % (escape,))
    lexer = _Lexer(word, _environment(env), escape)
    try:
        text, words = lexer.until(None, raw=raw_escapes)
    except _Failure as failure:
        raise ExpansionError(word, str(failure)) from None
    return Expansion(text, words, frozenset(lexer.used), frozenset(lexer.unset))


def expand_word(word, env, escape="\\"):
    """The expanded word as one string, no splitting (for ENV values, WORKDIR, COPY paths...)."""
    return expand(word, env, escape).text


def expand_pattern(word, env, escape="\\"):
    """A COPY/ADD source: expanded, its backslash escapes kept for the glob matcher, so that
    `n\\?pe` names the literal `n?pe` (as BuildKit's COPY does) and not `nope` as well."""
    return expand(word, env, escape, raw_escapes=escape == "\\").text


def expand_words(word, env, escape="\\"):
    """The expanded word split into words after expansion (for shell-form argument lists)."""
    return expand(word, env, escape).words


def expand_word_with_names(word, env, escape="\\"):
    """(expanded word, frozenset of the variable names it used): what the build cache keys on."""
    result = expand(word, env, escape)
    return result.text, result.used


# --- the environment -------------------------------------------------------------------------

def _environment(env):
    """A dict from a mapping or from BuildKit's list form (BuildEnvs): "K" alone means set to
    empty, and for a repeated name the last entry wins."""
    if isinstance(env, collections.abc.Mapping):
        return dict(env)
    if isinstance(env, (str, bytes)):
        raise TypeError("env must be a mapping or a list of 'K=V' strings, not a string")
    result = {}
    for entry in env:
        name, _, value = entry.partition("=")
        result[name] = value
    return result


# --- character classes (Go's unicode package, which BuildKit uses) -----------------------------

# Go's unicode.IsSpace is the Unicode White_Space property; Python's isspace() also counts the
# ASCII information separators U+001C..U+001F, which must not split words here.
_NOT_GO_SPACE = frozenset("\x1c\x1d\x1e\x1f")

# POSIX special parameters (XCU 2.5.2): always unset in a Dockerfile, but they are names, so
# `$@@@` expands to `@@` rather than staying literal.
_SPECIAL_PARAMETERS = frozenset("@*#?-$!0")


def _is_space(ch):
    return ch.isspace() and ch not in _NOT_GO_SPACE


def _is_digit(ch):
    return ch.isdecimal()  # Unicode category Nd, as Go's unicode.IsDigit


def _is_name_char(ch):
    return ch.isalpha() or ch.isdecimal() or ch == "_"  # Go: IsLetter || IsDigit || '_'


# --- the lexer -------------------------------------------------------------------------------

class _Failure(Exception):
    """An expansion failure before it is wrapped with the whole word (ExpansionError)."""


_MISSING_BRACE = "syntax error: missing '}'"
_MISSING_SLASH = "syntax error: missing '/' in ${}"
_BAD_SUBSTITUTION = "syntax error: bad substitution"
_PLAIN_MODIFIERS = "+-?#%"


class _Words:
    """Word splitting as BuildKit's wordsStruct: unquoted whitespace ends a word, quoted or
    escaped text never does, and empty words are dropped."""

    def __init__(self):
        self.words = []
        self.word = ""

    def add_split(self, text):
        """Text that is split on whitespace: plain characters and expanded variables."""
        for ch in text:
            if not _is_space(ch):
                self.word += ch
            elif self.word:
                self.words.append(self.word)
                self.word = ""

    def add_raw(self, text):
        """Text that is never split: quoted strings and escaped characters."""
        self.word += text

    def finish(self):
        if self.word:
            self.words.append(self.word)
            self.word = ""
        return self.words


class _Lexer:
    """One pass over one word; the method names follow lex.go so the two can be read together."""

    def __init__(self, word, env, escape):
        # Go's text/scanner skips a byte-order mark at the very start of its input.
        self.text = word[1:] if word.startswith("\ufeff") else word
        self.pos = 0
        self.env = env
        self.escape = escape
        self.used = set()
        self.unset = set()

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else None

    def next(self):
        ch = self.peek()
        if ch is not None:
            self.pos += 1
        return ch

    def lookup(self, name):
        if name in self.env:
            self.used.add(name)
            return self.env[name], True
        self.unset.add(name)
        return "", False

    def until(self, stop, raw):
        """Process up to `stop` (consumed) or to the end when `stop` is None -> (text, words).

        `raw` keeps escape characters in the text: BuildKit does so for the pattern and
        replacement of `#`, `%` and `/`, where the glob converter gives `\\*` its meaning.
        """
        text = []
        words = _Words()
        while self.peek() is not None:
            ch = self.peek()
            if ch == stop:
                self.next()
                return "".join(text), words.finish()
            if ch == "$":
                piece = self.dollar()
                words.add_split(piece)  # a variable's value is split like typed text
            elif ch in "'\"":
                piece = self.single_quoted() if ch == "'" else self.double_quoted(raw)
                words.add_raw(piece)
            else:
                piece = self.plain(raw, words)
            text.append(piece)
        if stop is not None:
            raise _Failure("unexpected end of statement while looking for matching %s" % stop)
        return "".join(text), words.finish()

    def plain(self, raw, words):
        """One unquoted character, or an escape and the character it escapes."""
        ch = self.next()
        if ch != self.escape:
            words.add_split(ch)
            return ch
        escaped = self.next() or ""  # a lone escape at the end of the word is dropped
        piece = (ch if raw else "") + escaped
        if piece:
            words.add_raw(piece)
        return piece

    def single_quoted(self):
        # sh(1): single quotes keep every character literal, and a `'` cannot be escaped.
        self.next()
        text = []
        while True:
            ch = self.next()
            if ch is None:
                raise _Failure(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(text)
            text.append(ch)

    def double_quoted(self, raw):
        # sh(1): inside double quotes `$` still expands and the escape character quotes only
        # `"`, `$` and itself; before anything else it stays literal.
        self.next()
        text = []
        while True:
            ch = self.peek()
            if ch is None:
                raise _Failure(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(text)
            if ch == "$":
                text.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                if raw:
                    text.append(ch)
                following = self.peek()
                if following is None:
                    continue  # dropped; the loop then reports the missing quote
                if following in ('"', "$", self.escape):
                    ch = self.next()
            # In raw mode an escape before an ordinary character is written twice, as
            # upstream does: the glob converter then reads `\\` as a literal backslash.
            text.append(ch)

    def name(self):
        """A variable name after `$`: letters, digits and `_`; or all the digits of a positional
        parameter; or one special parameter character. Empty when none starts here."""
        start = self.pos
        ch = self.peek()
        if ch is None:
            return ""
        if _is_digit(ch):
            while self.peek() is not None and _is_digit(self.peek()):
                self.next()
        elif ch in _SPECIAL_PARAMETERS:
            self.next()
        else:
            while self.peek() is not None and _is_name_char(self.peek()):
                self.next()
        return self.text[start:self.pos]

    def dollar(self):
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.lookup(name)[0] if name else "$"  # `$` before a non-name is literal
        self.next()
        ch = self.peek()
        if ch is None:
            raise _Failure(_MISSING_BRACE)
        if ch in "{}:":
            raise _Failure(_BAD_SUBSTITUTION)  # ${}, ${{x}, ${:x}
        name = self.name()
        op = self.next()
        if op is None:
            raise _Failure(_MISSING_BRACE)
        if op == "}":
            return self.lookup(name)[0]
        if op == "/":
            return self.substitute(name)
        return self.modify(name, op)

    def braced(self, stop, raw, missing):
        """The word of a `${...}` form up to `stop`; running off the end reports `missing`."""
        try:
            return self.until(stop, raw)[0]
        except _Failure:
            if self.peek() is None:
                raise _Failure(missing) from None
            raise

    def modify(self, name, op):
        """${V-w} ${V+w} ${V?w} ${V#p} ${V%p} and their `:` forms, which treat empty as unset."""
        spelled = op
        null_is_unset = op == ":"
        if null_is_unset:
            op = self.next()
            if op is None:
                raise _Failure(_MISSING_BRACE)
            spelled += op
        if op not in _PLAIN_MODIFIERS or (null_is_unset and op in "#%"):
            raise _Failure("unsupported modifier (%s) in substitution" % spelled)
        word = self.braced("}", op in "#%", _MISSING_BRACE)
        value, is_set = self.lookup(name)
        missing = not is_set or (null_is_unset and value == "")
        if op == "-":
            return word if missing else value
        if op == "+":
            return "" if missing else word
        if op == "?":
            if missing:
                default = "is not allowed to be unset" if not is_set else \
                    "is not allowed to be empty"
                raise _Failure("%s: %s" % (name, word or default))
            return value
        # `#`/`%` remove the shortest matching prefix/suffix, `##`/`%%` the longest.
        greedy = word.startswith(op)
        pattern = word[1:] if greedy else word
        if op == "#":
            return _trim_prefix(pattern, value, greedy)
        return _trim_suffix(pattern, value, greedy)

    def substitute(self, name):
        """${V/pattern/replacement} (first match) and ${V//pattern/replacement} (every match)."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        pattern = self.braced("/", True, _MISSING_SLASH)
        replacement = self.braced("}", True, _MISSING_BRACE)
        value = self.lookup(name)[0]
        regex = _glob_regex(pattern, greedy=True)
        if replace_all:
            return _replace_all(regex, value, replacement)
        found = regex.search(value)
        if found is None:
            return value
        # Upstream splices the replacement in literally here, but expands it as a regexp
        # template in the replace-all case (Go's ReplaceAllString); both are reproduced.
        return value[:found.start()] + replacement + value[found.end():]


# --- glob patterns (BuildKit's convertShellPatternToRegex: POSIX XCU 2.13 without brackets) ---

def _glob_regex(pattern, greedy, shown=None):
    """`*` any run of characters (shortest first unless greedy), `?` one character, everything
    else literal. The backslash (always `\\`, whatever the Dockerfile's escape character, as
    upstream) may quote `*`, `?` or itself; before `}` or `/` it only kept the form open.
    `shown` is the pattern as written, for the message, when `pattern` was reversed."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch != "\\":
            out.append(re.escape(ch))
        elif i < len(pattern) and pattern[i] in "}/":
            continue
        elif i < len(pattern) and pattern[i] in "*?\\":
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            quoted = pattern[i] if i < len(pattern) else ""
            raise _Failure("invalid pattern (%s) in substitution: invalid escape '\\%s'"
                           % (shown or pattern, quoted))
    # Go's `.` does not match a newline either, so no DOTALL.
    return re.compile("".join(out))


def _trim_prefix(pattern, value, greedy, shown=None):
    found = _glob_regex(pattern, greedy, shown).match(value)
    return value[found.end():] if found else value


def _trim_suffix(pattern, value, greedy):
    # A regexp finds leftmost matches, not the shortest rightmost one: reverse the pattern
    # (keeping each escape before the character it quotes) and the value, and trim a prefix.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy, pattern)[::-1]


def _reverse_pattern(pattern):
    tokens = []
    i = 0
    while i < len(pattern):
        width = 2 if pattern[i] == "\\" and i + 1 < len(pattern) else 1
        tokens.append(pattern[i:i + width])
        i += width
    return "".join(reversed(tokens))


def _replace_all(regex, value, replacement):
    """Go's Regexp.ReplaceAllString: unlike re.sub, an empty match right after another match is
    not replaced, and the replacement is a template ($0 is the match)."""
    out = []
    last_end = 0
    pos = 0
    while pos <= len(value):
        found = regex.search(value, pos)
        if found is None:
            break
        out.append(value[last_end:found.start()])
        if found.end() > last_end or found.start() == 0:
            out.append(_go_expand_template(replacement, found.group(0)))
        last_end = found.end()
        pos = max(pos + 1, found.end())  # always advance, at least one character
    out.append(value[last_end:])
    return "".join(out)


def _go_expand_template(template, match):
    """Go's Regexp.Expand for a regexp without groups: `$$` is `$`, `$0`/`${0}` the match, any
    other `$name`/`${name}` empty, and a `$` that starts no name is literal."""
    out = []
    i = 0
    while True:
        dollar = template.find("$", i)
        if dollar < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:dollar])
        if template.startswith("$", dollar + 1):
            out.append("$")
            i = dollar + 2
            continue
        name, end = _template_name(template, dollar + 1)
        if name is None:
            out.append("$")
            i = dollar + 1
            continue
        if name == "0":
            out.append(match)
        i = end


def _template_name(template, start):
    """(name, end) of a `name` or `{name}` at `start` of a Go template, else (None, start)."""
    braced = template.startswith("{", start)
    i = start + 1 if braced else start
    begin = i
    while i < len(template) and _is_name_char(template[i]):
        i += 1
    if i == begin:
        return None, start
    name = template[begin:i]
    if braced:
        if not template.startswith("}", i):
            return None, start
        i += 1
    return name, i


# --- messages ----------------------------------------------------------------------------------

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def _go_quote(text):
    """Go's %q (strconv.Quote), so messages read exactly as Docker's do."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        elif ord(ch) < 0x10000:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append("\\U%08x" % ord(ch))
    return '"%s"' % "".join(out)
