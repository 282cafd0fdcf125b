"""Compose's variable interpolation and `.env` files, as compose-go does them.

Owns: `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`, `${VAR:+r}`,
`${VAR+r}`, nesting and `$$` (compose-go template/template.go, same pattern and the same
first-closing-brace rule); interpolating every value (never a key) of a loaded file, with the
casts compose-go applies afterwards at typed paths (loader/interpolate.go); the dotenv syntax
(compose-go dotenv/parser.go: `export`, `KEY=` and `KEY:`, quotes, escapes in double quotes,
` #` comments, a bare KEY inherited from the environment, expansion from the environment
first, then the file's earlier keys). Errors are worded as compose-go words them.
Must not: read files other than the one it is given, print (warnings are returned).
"""

import re

from ..errors import BoxError
from .yamlread import Override, Reset

_PATTERN = re.compile(
    r"\$(?i:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|"
    r"{(?:(?P<braced>[_a-z][_a-z0-9]*(?::?[-+?](.*))?)}|(?P<invalid>)))", re.S)
_OPERATORS = (":?", "?", ":-", "-", ":+", "+")


class InvalidTemplate(Exception):
    def __init__(self, template=""):
        super().__init__(template)
        self.template = template


class MissingRequired(Exception):
    def __init__(self, variable, reason):
        self.variable, self.reason = variable, reason
        super().__init__("required variable %s is missing a value%s"
                         % (variable, ": " + reason if reason else ""))


def _first_closing_brace(s):
    depth, i = 0, 0
    while i < len(s):
        if s[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        if s[i] == "{":
            depth += 1
            i += 1
        i += 1
    return -1


def _operator(body):
    """The operator that appears first in the braced text (compose-go's sort by index)."""
    found = [(body.find(op), n, op) for n, op in enumerate(_OPERATORS) if op in body]
    return min(found)[2] if found else None


def substitute(template, lookup, warnings=None):
    """-> template with its variables replaced; lookup(name) -> value or None."""
    error = []

    def replace(match):
        try:
            return _replace(match.group(0), lookup, warnings)
        except (InvalidTemplate, MissingRequired) as exc:
            if isinstance(exc, InvalidTemplate) and not exc.template:
                exc.template = template
            if not error:
                error.append(exc)
            return ""
    result = _PATTERN.sub(replace, template)
    if error:
        raise error[0]
    return result


def _replace(substring, lookup, warnings):
    closing = _first_closing_brace(substring)
    rest = ""
    if closing > -1:
        rest, substring = substring[closing + 1:], substring[:closing + 1]
    match = _PATTERN.match(substring)
    if match is None:
        raise InvalidTemplate()
    if match.group("escaped"):
        return "$"
    name, braced = match.group("named"), False
    if not name:
        name, braced = match.group("braced"), True
    if not name:
        raise InvalidTemplate()
    if braced:
        op = _operator(name)
        if op is not None:
            var, _sep, arg = name.partition(op)
            value = lookup(var)
            if op in (":?", "?"):
                if value is None or (op == ":?" and value == ""):
                    raise MissingRequired(var, substitute(arg, lookup, warnings))
            elif op in (":-", "-"):
                if value is None or (op == ":-" and value == ""):
                    value = substitute(arg, lookup, warnings)
            elif value is not None and (op == "+" or value != ""):
                value = substitute(arg, lookup, warnings)
            return (value or "") + substitute(rest, lookup, warnings)
    value = lookup(name)
    if value is None:
        if warnings is not None:
            warnings.append('The "%s" variable is not set. Defaulting to a blank string.'
                            % name)
        return ""
    return value


# compose-go loader/interpolate.go: values cast after interpolation, by path ("*" any key)
def _int(v):
    try:
        return int(v)
    except ValueError:
        raise ValueError('strconv.Atoi: parsing "%s": invalid syntax' % v) from None


def _float(v):
    try:
        return float(v)
    except ValueError:
        raise ValueError('strconv.ParseFloat: parsing "%s": invalid syntax' % v) from None


def _bool(v):
    low = v.lower()
    if low in ("y", "yes", "true", "on"):
        return True
    if low in ("n", "no", "false", "off"):
        return False
    raise ValueError("invalid boolean: %s" % v)


_CASTS = {}
for _path, _cast in (
        ("cpu_count", _int), ("cpu_percent", _float), ("cpu_period", _int), ("cpu_quota", _int),
        ("cpu_rt_period", _int), ("cpu_rt_runtime", _int), ("cpus", _float),
        ("cpu_shares", _int), ("init", _bool), ("depends_on.*.required", _bool),
        ("depends_on.*.restart", _bool), ("deploy.replicas", _int),
        ("deploy.update_config.parallelism", _int),
        ("deploy.update_config.max_failure_ratio", _float),
        ("deploy.rollback_config.parallelism", _int),
        ("deploy.rollback_config.max_failure_ratio", _float),
        ("deploy.restart_policy.max_attempts", _int),
        ("deploy.placement.max_replicas_per_node", _int), ("healthcheck.retries", _int),
        ("healthcheck.disable", _bool), ("oom_kill_disable", _bool), ("oom_score_adj", _int),
        ("pids_limit", _int), ("ports.[].target", _int), ("privileged", _bool),
        ("read_only", _bool), ("scale", _int), ("stdin_open", _bool), ("tty", _bool),
        ("ulimits.*", _int), ("ulimits.*.hard", _int), ("ulimits.*.soft", _int),
        ("volumes.[].read_only", _bool), ("volumes.[].volume.nocopy", _bool)):
    _CASTS[("services", "*") + tuple(_path.split("."))] = _cast
for _kind in ("networks", "volumes", "secrets", "configs"):
    _CASTS[(_kind, "*", "external")] = _bool
for _key in ("internal", "attachable", "enable_ipv4", "enable_ipv6"):
    _CASTS[("networks", "*", _key)] = _bool


def _cast_for(path):
    for pattern, cast in _CASTS.items():
        if len(pattern) == len(path) and all(
                p == "*" or p == k or (p == "[]" and isinstance(k, int))
                for p, k in zip(pattern, path)):
            if pattern[-1] == "*" and isinstance(path[-1], int):
                continue
            return cast
    return None


def dotted(path):
    return ".".join(str(p) for p in path)


def interpolate(value, lookup, warnings, path=()):
    """-> a copy of a loaded file's data with every string value interpolated and cast."""
    if isinstance(value, dict):
        return {k: interpolate(v, lookup, warnings, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, lookup, warnings, path + (i,)) for i, v in enumerate(value)]
    if isinstance(value, (Reset, Override)):
        return type(value)(interpolate(value.value, lookup, warnings, path))
    if not isinstance(value, str):
        return value
    try:
        text = substitute(value, lookup, warnings)
    except InvalidTemplate as exc:
        # compose-go's three lines, as one: the path, then the template
        raise BoxError("invalid interpolation format for %s: %s" % (dotted(path),
                                                                     exc.template),
                       "you may need to escape any $ with another $", exit_code=1) from None
    except MissingRequired as exc:
        raise BoxError("error while interpolating %s: %s" % (dotted(path), exc),
                       "set %s in the environment or in .env" % exc.variable,
                       exit_code=1) from None
    cast = _cast_for(path)
    if cast is None:
        return text
    try:
        return cast(text)
    except ValueError as exc:
        raise BoxError("error while interpolating %s: failed to cast to expected type: %s"
                       % (dotted(path), exc), exit_code=1) from None


# -- .env files ----------------------------------------------------------------------------

_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0\d{0,3})')
_SIMPLE = {"a": "\a", "b": "\b", "c": "\\c", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
           "v": "\v", '"': '"', "\\": "\\"}
_SPACE = "\t\v\f\r \x85\xa0"


def _expand_escapes(text):
    def one(match):
        m = match.group(0)
        if m == "\\$":
            return "$$"
        if m.startswith("\\0"):
            digits = m[2:]
            try:
                return chr(int(digits or "0", 8)) if len(digits) <= 2 or int(digits, 8) < 256 \
                    else m
            except ValueError:
                return m
        return _SIMPLE.get(m[1], m)
    return _ESCAPE.sub(one, text)


def parse_dotenv(text, filename, lookup=lambda _k: None):
    """-> {key: value} from a .env file's text; lookup(name) gives the environment, which
    expansion consults before the file's own earlier keys (compose-go's order)."""
    if text.startswith("\ufeff"):
        text = text[1:]
    out = {}
    line = [1]

    def expand(value):
        try:
            return substitute(value, lambda k: lookup(k) if lookup(k) is not None
                              else out.get(k))
        except (InvalidTemplate, MissingRequired) as exc:
            raise BoxError("failed to read %s: %s" % (filename, exc), exit_code=1) from None

    def fail(message):
        raise BoxError("failed to read %s: line %d: %s" % (filename, line[0], message),
                       exit_code=1)

    src = text
    while True:
        # the start of the next statement: skip spaces and comment lines
        while True:
            stripped = src.lstrip()
            line[0] += src[:len(src) - len(stripped)].count("\n")
            src = stripped
            if not src.startswith("#"):
                break
            nl = src.find("\n")
            if nl == -1:
                src = ""
                break
            src = src[nl:]
        if not src:
            return out
        if re.match(r"export\s+", src):
            src = src[len("export"):].lstrip(_SPACE)
        key, offset, inherited = None, 0, False
        for i, ch in enumerate(src):
            if ch in _SPACE:
                continue
            if ch in "=:\n":
                key, offset, inherited = src[:i], i + 1, ch == "\n"
                break
            if ch in "_.-[]" or ch.isalnum():
                continue
            fail('unexpected character "%s" in variable name "%s"' % (ch, src.split("\n")[0]))
        if key is None:  # the last line, with no = and no newline: an inherited key
            key, offset, inherited = src, len(src), True
        if inherited and " " not in key:
            line[0] += 1
        key = key.rstrip()
        src = src[offset:].lstrip(_SPACE)
        if " " in key:
            fail("key cannot contain a space")
        if inherited:
            value = lookup(key)
            if value is not None:
                out[key] = value
            continue
        if not src or src[0] not in "'\"":
            value, _nl, src = src.partition("\n")
            line[0] += 1
            value = value.split(" #", 1)[0].rstrip()
            out[key] = expand(value)
            continue
        quote, chars, escaped = src[0], [], False
        for i in range(1, len(src)):
            ch = src[i]
            if ch == "\n":
                line[0] += 1
            if ch != quote:
                if not escaped and ch == "\\":
                    escaped = True
                    continue
                if escaped:
                    escaped = False
                    chars.append("\\")
                chars.append(ch)
                continue
            if escaped:
                escaped = False
                chars.append(ch)
                continue
            value = "".join(chars)
            if quote == '"':
                value = expand(_expand_escapes(value))
            out[key] = value
            src = src[i + 1:]
            break
        else:
            fail("unterminated quoted value %s" % src.split("\n")[0])
