"""Dockerfile parser: BuildKit's grammar, as a pure function from text to a parse tree.

Owns: physical and logical lines (escape-character continuations, comments, blank lines inside
a continuation), the leading parser directives (`# escape=`, `# syntax=`, `# check=`), the
keyword / `--flag` / argument split, each instruction's argument rules (BuildKit's dispatch
table: JSON or shell form, ENV/LABEL/ARG words, HEALTHCHECK, ONBUILD), heredocs (RUN, COPY and
ADD), 1-based line numbers, and `dump`, the s-expression text of upstream's `Node.Dump` that the
conformance corpus (../shared/conformance/buildkit-parser/, see its FORMAT.md) is written in.

Must not: expand variables or remove quotes (that is shell-word expansion, at build time),
decide what an instruction means (multi-stage, ARG scoping, the image config), touch the file
system, or print. It returns values or raises DockerfileError, one line naming file and line.
"""

import json
import re

from rootless_box.errors import BoxError


class DockerfileError(BoxError):
    """A Dockerfile that cannot be parsed: `Dockerfile:2: unknown instruction: FROBNICATE`."""

    # Docker's build exits 1 on a bad Dockerfile, not 125.
    exit_code = 1

    def __init__(self, reason, filename="Dockerfile", line=None, hint=None):
        where = filename if line is None else "%s:%d" % (filename, line)
        super().__init__("%s: %s" % (where, reason), hint)
        self.reason = reason
        self.filename = filename
        self.line = line


class _LineError(Exception):
    """A syntax error found inside one logical line; parse() adds the file and line number."""


class _Record:
    """Fields by name, compared and shown by value. (Not dataclasses: it imports inspect,
    ~5 ms of every build's start, the API's cached build included.)"""

    __slots__ = ()

    def __eq__(self, other):
        return type(other) is type(self) and all(
            getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (n, getattr(self, n)) for n in self.__slots__))

    __hash__ = None


class Heredoc(_Record):
    """One `<<NAME` body. `content` keeps its newlines and, even with `<<-` (chomp), its
    leading tabs: BuildKit strips them when the body is used, not when it is read."""

    __slots__ = ("name", "content", "expand", "chomp", "fd")

    def __init__(self, name, content, expand=True, chomp=False, fd=0):
        self.name, self.content, self.expand, self.chomp, self.fd = \
            name, content, expand, chomp, fd


class Instruction(_Record):
    """One instruction. `args` holds strings, except for ONBUILD, whose single argument is the
    nested trigger Instruction. `json` is True for the exec (JSON array) form."""

    __slots__ = ("cmd", "original", "flags", "args", "json", "heredocs", "start_line",
                 "end_line")

    def __init__(self, cmd, original, flags=None, args=None, json=False, heredocs=None,
                 start_line=0, end_line=0):
        self.cmd, self.original, self.json = cmd, original, json
        self.flags = [] if flags is None else flags
        self.args = [] if args is None else args
        self.heredocs = [] if heredocs is None else heredocs
        self.start_line, self.end_line = start_line, end_line

    @property
    def trigger(self):
        """The nested instruction of an ONBUILD, else None."""
        if self.cmd == "onbuild" and self.args:
            return self.args[0]
        return None


class Dockerfile(_Record):
    __slots__ = ("directives", "escape", "instructions", "start_line", "end_line")

    def __init__(self, directives, escape, instructions, start_line, end_line):
        self.directives, self.escape, self.instructions = directives, escape, instructions
        self.start_line, self.end_line = start_line, end_line


# Go's unicode.IsSpace. Python's str.isspace() also counts U+001C..U+001F, so spell it out.
GO_SPACES = ("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
             "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
# The keyword and whitespace-split lists (FROM, EXPOSE, COPY...) use only these ASCII blanks.
_BLANKS = re.compile(r"[\t\v\f\r ]+")
# Go's regexp `\s` is ASCII [\t\n\f\r ] (no \v), unlike Python's Unicode-aware `\s`.
_DIRECTIVE = re.compile(r"#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*"
                        r"(.+?)[\t\n\f\r ]*")
_HEREDOC_MARKER = re.compile(r"(\d*)<<(-?)([^<]*)")
_DETACHED_MARKER = re.compile(r"\d*<<-?")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_COMMANDS = ("run", "copy", "add")
# bufio.Scanner's limit in upstream: 64 KiB less one byte for the newline.
MAX_LINE_BYTES = 65535
_BOM = "\ufeff"


# --- physical lines -----------------------------------------------------------------------

def _physical_lines(text):
    """Split after each `\\n`, keeping it (heredoc bodies keep their exact bytes)."""
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _strip_newline(line):
    return line.rstrip("\r\n")


def _is_comment(raw):
    return _strip_newline(raw).lstrip(GO_SPACES).startswith("#")


class _Reader:
    """Hands out physical lines and knows the 1-based number of the last one read."""

    def __init__(self, text, filename):
        self.lines = _physical_lines(text)
        self.filename = filename
        self.lineno = 0

    def more(self):
        return self.lineno < len(self.lines)

    def next(self):
        raw = self.lines[self.lineno]
        self.lineno += 1
        # Only long lines can exceed the byte limit, so encode only those.
        if len(raw) > MAX_LINE_BYTES // 4 and len(
                _strip_newline(raw).encode("utf-8", "surrogateescape")) > MAX_LINE_BYTES:
            raise DockerfileError("dockerfile line greater than max allowed size of %d"
                                  % MAX_LINE_BYTES, self.filename, self.lineno)
        return raw


# --- directives ---------------------------------------------------------------------------

class _Directives:
    """`# key=value` lines at the very top; the first line that is not one ends them for good
    (so `# escape=` after an ordinary comment is only a comment)."""

    def __init__(self):
        self.values = {}
        self.escape = "\\"
        self.done = False

    def observe(self, line):
        """`line` has its leading whitespace removed. Raises _LineError for a bad directive."""
        if self.done:
            return
        match = _DIRECTIVE.fullmatch(line)
        key = match.group(1).lower() if match else None
        if key not in _KNOWN_DIRECTIVES:
            self.done = True
            return
        if key in self.values:
            raise _LineError("only one %s parser directive can be used" % key)
        value = match.group(2)
        if key == "escape":
            if value not in ("`", "\\"):
                raise _LineError("invalid escape token '%s' does not match ` or \\" % value)
            self.escape = value
        self.values[key] = value


# --- logical lines ------------------------------------------------------------------------

def _trim_continuation(line, escape):
    """-> (text, continues). A line continues when it ends with the escape character plus
    blanks, unless that escape is itself escaped (`foo\\\\` ends the instruction)."""
    stripped = line.rstrip(" \t")
    if not stripped.endswith(escape):
        return line, False
    body = stripped[:-1]
    if body.endswith(escape):
        return line, False
    return body, True


def _continue_line(reader, line, escape):
    """Append continuation lines. They keep their leading whitespace; comment lines and blank
    lines inside a continuation are skipped (BuildKit only warns about the blank ones)."""
    continues = True
    while continues and reader.more():
        raw = reader.next()
        if _is_comment(raw):
            continue
        body = _strip_newline(raw)
        if not body.lstrip(GO_SPACES):
            continue
        piece, continues = _trim_continuation(body, escape)
        line += piece
    return line


# --- keyword and flags --------------------------------------------------------------------

def _go_space_byte(byte):
    """Upstream scans flags and the HEALTHCHECK type byte by byte, so a byte is a Latin-1
    rune there: 0x85 and 0xA0 count as whitespace (a quirk, kept for fidelity)."""
    return chr(byte) in GO_SPACES


def _extract_flags(text):
    """-> (flags, rest). Words starting with `--` are flags; quotes group and are removed and
    a backslash (always `\\`, whatever the escape directive) takes the next byte literally.
    A bare `--` ends the flags; so does the first word not starting with `--`."""
    data = text.encode("utf-8", "surrogateescape")
    flags, word, quote = [], [], None
    in_word = blank_ok = False
    pos, end = 0, len(data)
    while pos < end:
        byte = data[pos]
        if not in_word:
            if _go_space_byte(byte):
                pos += 1
                continue
            if not data.startswith(b"--", pos):
                return flags, _decode(data[pos:])
            in_word = True
        if quote is None and _go_space_byte(byte):
            if word == ["-", "-"]:
                return flags, _decode(data[pos:])
            if word or blank_ok:
                flags.append("".join(word))
            word, in_word, blank_ok = [], False, False
        elif quote is not None and byte == quote:
            quote = None
        elif quote is None and byte in b"'\"":
            quote, blank_ok = byte, True
        elif byte == 0x5C:  # backslash
            if pos + 1 < end:
                pos += 1
                word.append(chr(data[pos]))
            else:
                quote = None
        else:
            word.append(chr(byte))
        pos += 1
    if in_word and word != ["-", "-"] and (word or blank_ok):
        flags.append("".join(word))
    return flags, ""


def _decode(data):
    return data.decode("utf-8", "surrogateescape")


def _split_command(line):
    """-> (keyword as written, flags, argument text)."""
    parts = _BLANKS.split(line.strip(GO_SPACES), 1)
    if len(parts) < 2:
        return parts[0], [], ""
    flags, rest = _extract_flags(parts[1])
    return parts[0], flags, rest.strip(GO_SPACES)


# --- argument rules -----------------------------------------------------------------------

def _reject_constant(name):
    # Go's encoding/json has no NaN or Infinity; such text is simply not JSON.
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _no_surrogates(value):
    # Go turns invalid UTF-8 and lone surrogate escapes in JSON strings into U+FFFD.
    return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in value)


def _json_array(text):
    """The strings of a JSON array, or None when the text is not JSON (then the shell form
    applies). Like Go's json.Decoder, only the first value is read: trailing text is ignored.
    Valid JSON whose elements are not all strings is an error, not a fallback."""
    text = text.lstrip(GO_SPACES)
    if not text.startswith("["):
        return None
    try:
        value, _ = _JSON.raw_decode(text)
    except ValueError:
        return None
    if not all(isinstance(item, str) for item in value):
        raise _LineError("when using JSON array syntax, arrays must be comprised of strings only")
    return [_no_surrogates(item) for item in value]


def _parse_maybe_json(rest, escape):
    """RUN, CMD, ENTRYPOINT, SHELL: a JSON array, else the whole text as one string."""
    if not rest:
        return [], False
    array = _json_array(rest)
    if array is not None:
        return array, True
    return [rest], False


def _parse_maybe_json_list(rest, escape):
    """ADD, COPY, VOLUME: a JSON array, else blank-separated words, quotes left alone."""
    array = _json_array(rest)
    if array is not None:
        return array, True
    return _parse_blank_separated(rest, escape)


def _parse_blank_separated(rest, escape):
    """FROM, EXPOSE: split on ASCII blanks; JSON is never tried."""
    return (_BLANKS.split(rest) if rest else []), False


def _parse_string(rest, escape):
    """MAINTAINER, STOPSIGNAL, USER, WORKDIR: the whole text."""
    return ([rest] if rest else []), False


def _words(text, escape):
    """BuildKit's word rules for ARG/ENV/LABEL: whitespace separates words; quotes and escapes
    stay in the word and only decide where it ends. Never an error: an unterminated quote
    just ends with the text."""
    words, word = [], []
    quote = None
    in_word = blank_ok = False
    chars = [("\ufffd" if "\udc80" <= ch <= "\udcff" else ch) for ch in text]
    pos, end = 0, len(chars)
    while pos < end:
        ch = chars[pos]
        if not in_word and ch in GO_SPACES:
            pos += 1
            continue
        in_word = True
        if quote is None:
            if ch in GO_SPACES:
                if word or blank_ok:
                    words.append("".join(word))
                word, in_word, blank_ok = [], False, False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok = ch, True
        elif ch == quote:
            quote = None
        if ch == escape and (quote is None or quote == '"'):
            if pos + 1 == end:
                break  # an escape at the very end is dropped
            word.append(ch)
            pos += 1
            ch = chars[pos]
        word.append(ch)
        pos += 1
    if in_word and (word or blank_ok):
        words.append("".join(word))
    return words


def _parse_arg(rest, escape):
    """ARG: each word, quotes and escapes kept."""
    return _words(rest, escape), False


def _name_value_parser(keyword):
    """ENV and LABEL: (key, value, separator) triples; `""` marks the legacy `KEY value` form,
    whose value is the rest of the line verbatim, and `"="` the `key=value` form."""

    def parse_name_value(rest, escape):
        words = _words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:
            parts = _BLANKS.split(rest, 1)
            if len(parts) < 2:
                raise _LineError("%s must have two arguments" % keyword)
            return [parts[0], parts[1], ""], False
        args = []
        for word in words:
            if "=" not in word:
                raise _LineError("Syntax error - can't find = in %s. Must be of the form: "
                                 "name=value" % go_quote(word))
            key, value = word.split("=", 1)
            args += [key, value, "="]
        return args, False

    return parse_name_value


def _parse_healthcheck(rest, escape):
    """HEALTHCHECK: the type (`CMD`, `NONE`, as written), then the command like CMD's."""
    data = rest.encode("utf-8", "surrogateescape")
    sep = 0
    while sep < len(data) and not _go_space_byte(data[sep]):
        sep += 1
    if sep == 0:
        return [], False
    start = sep
    while start < len(data) and _go_space_byte(data[start]):
        start += 1
    command, is_json = _parse_maybe_json(_decode(data[start:]), escape)
    return [_decode(data[:sep])] + command, is_json


def _parse_onbuild(rest, escape):
    """ONBUILD: the rest is a whole instruction line, kept as one nested argument."""
    if not rest:
        return [], False
    trigger = _instruction_from_line(rest, escape)
    if trigger.cmd in ("onbuild", "from", "maintainer"):
        raise _LineError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
                         if trigger.cmd == "onbuild"
                         else "%s isn't allowed as an ONBUILD trigger" % trigger.cmd.upper())
    return [trigger], False


_DISPATCH = {
    "add": _parse_maybe_json_list,
    "arg": _parse_arg,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_list,
    "entrypoint": _parse_maybe_json,
    "env": _name_value_parser("ENV"),
    "expose": _parse_blank_separated,
    "from": _parse_blank_separated,
    "healthcheck": _parse_healthcheck,
    "label": _name_value_parser("LABEL"),
    "maintainer": _parse_string,
    "onbuild": _parse_onbuild,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_list,
    "workdir": _parse_string,
}


def _instruction_from_line(line, escape):
    keyword, flags, rest = _split_command(line)
    cmd = keyword.lower()
    rule = _DISPATCH.get(cmd)
    if rule is None:
        # Upstream's parser keeps unknown keywords and its instruction layer rejects them;
        # the upper-case spelling is what `docker build` prints.
        raise _LineError("unknown instruction: %s" % keyword.upper())
    args, is_json = rule(rest, escape)
    return Instruction(cmd=cmd, original=line, flags=flags, args=args, json=is_json)


# --- heredocs -----------------------------------------------------------------------------

def _shell_words_raw(line):
    """Split a line into shell words, quotes and backslash escapes kept (the escape directive
    does not apply: BuildKit's heredoc lexer always uses `\\`). None for an unterminated
    quote: upstream's lexer gives up on such a line, so it has no heredocs."""
    words, word = [], []
    quote = None
    pos, end = 0, len(line)
    while pos < end:
        ch = line[pos]
        if quote is None and ch in GO_SPACES:
            if word:
                words.append("".join(word))
            word = []
        elif quote is None and ch in "'\"":
            quote = ch
            word.append(ch)
        elif ch == quote:
            quote = None
            word.append(ch)
        elif ch == "\\" and quote != "'" and pos + 1 < end:
            word.append(line[pos:pos + 2])
            pos += 1
        else:
            word.append(ch)
        pos += 1
    if quote is not None:
        return None
    if word:
        words.append("".join(word))
    return words


def _unquote(word):
    """Shell quote removal of a delimiter word -> (name, quoted), or None when the word is
    really several words. `quoted` is True when any part was quoted (`'EOF'`, `eo"f"`): then
    the body is not expanded. An escaped quote (`eo\\'f`) does not count as quoting."""
    name, quote, quoted = [], None, False
    pos = 0
    while pos < len(word):
        ch = word[pos]
        if quote is None and ch in GO_SPACES:
            return None
        if quote is None and ch in "'\"":
            quote, quoted = ch, True
        elif ch == quote:
            quote = None
        elif ch == "\\" and quote != "'" and pos + 1 < len(word):
            pos += 1
            following = word[pos]
            # Inside double quotes a backslash escapes only these characters, as in sh.
            if quote == '"' and following not in '"\\$`':
                name.append(ch)
            name.append(following)
        else:
            name.append(ch)
        pos += 1
    return "".join(name), quoted


def _join_detached_markers(words):
    """`<<  EOF` is the marker `<<EOF`: glue a bare `<<`/`<<-` to the word after it."""
    joined = []
    for word in words:
        if joined and _DETACHED_MARKER.fullmatch(joined[-1]):
            joined[-1] += word
        else:
            joined.append(word)
    return joined


def _heredoc_markers(line):
    """The heredocs a RUN/COPY/ADD line announces, in order, bodies still empty."""
    words = _shell_words_raw(line)
    heredocs = []
    for word in _join_detached_markers(words or []):
        match = _HEREDOC_MARKER.fullmatch(word)
        if not match or not match.group(3):
            continue
        unquoted = _unquote(match.group(3))
        if unquoted is None or not unquoted[0]:
            continue
        name, quoted = unquoted
        heredocs.append(Heredoc(name=name, content="", expand=not quoted,
                                chomp=match.group(2) == "-", fd=int(match.group(1) or 0)))
    return heredocs


def _can_contain_heredoc(instruction):
    target = instruction.trigger or instruction
    return target.cmd in _HEREDOC_COMMANDS and not target.json and "<<" in instruction.original


def _read_heredoc_bodies(reader, heredocs):
    """Fill each body with the raw lines up to its terminator line. Bodies are not Dockerfile
    syntax: no comments, no continuations. Raises _LineError when a terminator is missing."""
    for heredoc in heredocs:
        body = []
        while True:
            if not reader.more():
                raise _LineError("unterminated heredoc")
            raw = reader.next()
            candidate = _strip_newline(raw)
            if heredoc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == heredoc.name:
                break
            body.append(raw)
        heredoc.content = "".join(body)


# --- the driver ---------------------------------------------------------------------------

def _decode_input(text):
    if isinstance(text, (bytes, bytearray)):
        # Invalid UTF-8 survives as surrogate escapes and is dumped back as \xNN, like Go.
        return bytes(text).decode("utf-8", "surrogateescape")
    return text


def _first_line(reader, directives):
    """The first physical line of an instruction: leading whitespace removed, a comment
    counting as empty. Directives are recognised here only."""
    body = _strip_newline(reader.next()).lstrip(GO_SPACES)
    directives.observe(body)
    return "" if body.startswith("#") else body


def _next_instruction(reader, directives):
    """Read one instruction (with its heredoc bodies), or None at the end of the file."""
    while reader.more():
        start = reader.lineno + 1
        try:
            line, continues = _trim_continuation(_first_line(reader, directives),
                                                 directives.escape)
        except _LineError as exc:
            raise DockerfileError(str(exc), reader.filename, start)
        if not continues and not line:
            continue
        if continues:
            line = _continue_line(reader, line, directives.escape)
        try:
            instruction = _instruction_from_line(line, directives.escape)
            if _can_contain_heredoc(instruction):
                instruction.heredocs = _heredoc_markers(line)
                _read_heredoc_bodies(reader, instruction.heredocs)
        except _LineError as exc:
            raise DockerfileError(str(exc), reader.filename, start)
        _set_lines(instruction, start, reader.lineno)
        return instruction
    return None


def _set_lines(instruction, start, end):
    instruction.start_line, instruction.end_line = start, end
    if instruction.trigger is not None:
        _set_lines(instruction.trigger, start, end)


def parse(text, filename="Dockerfile"):
    """Parse Dockerfile text (str, or bytes decoded as UTF-8) -> Dockerfile.

    Raises DockerfileError for every syntax error, naming `filename` and the 1-based line."""
    text = _decode_input(text)
    if text.startswith(_BOM):
        text = text[len(_BOM):]
    reader = _Reader(text, filename)
    directives = _Directives()
    instructions = []
    while True:
        instruction = _next_instruction(reader, directives)
        if instruction is None:
            break
        instructions.append(instruction)
    if not instructions:
        raise DockerfileError("file with no instructions", filename, max(reader.lineno, 1))
    return Dockerfile(directives=dict(directives.values), escape=directives.escape,
                      instructions=instructions, start_line=instructions[0].start_line,
                      end_line=instructions[-1].end_line)


# --- dump ---------------------------------------------------------------------------------

_SHORT_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                  "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def _quote_char(ch):
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return "\\x%02x" % (code - 0xDC00)  # a surrogate-escaped invalid byte
    if code < 0x20 or code == 0x7F:
        return "\\x%02x" % code
    if code <= 0xFFFF:
        return "\\u%04x" % code
    return "\\U%08x" % code


def go_quote(value):
    """Go's strconv.Quote: printable characters literal, others escaped (see FORMAT.md)."""
    return '"' + "".join(_quote_char(ch) for ch in value) + '"'


def dump_instruction(instruction):
    """One instruction as upstream's Node.Dump prints it, without the outer parentheses."""
    parts = [instruction.cmd]
    if instruction.flags:
        parts.append("[" + " ".join(go_quote(flag) for flag in instruction.flags) + "]")
    for arg in instruction.args:
        if isinstance(arg, Instruction):
            parts.append("(" + dump_instruction(arg) + ")")
        else:
            parts.append(go_quote(arg))
    return " ".join(parts)


def dump(dockerfile):
    """The conformance corpus's `result` text, without its final newline."""
    return "\n".join("(" + dump_instruction(i) + ")" for i in dockerfile.instructions)
