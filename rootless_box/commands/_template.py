"""Docker's `--format` templates: the subset of Go's text/template that people type.

Owns: `{{.Field.Sub}}`, `{{json .X}}`, `{{index .X "key"}}`, `{{len .X}}`, `{{join .X ","}}`,
`{{upper .X}}`, `{{lower .X}}`, `{{println .X}}`, `{{range .X}}...{{end}}`, methods that take
arguments when the field holds a callable (`{{.Label "key"}}`),
`{{if .X}}...{{else}}...{{end}}`, and printing values the way Go's fmt does (`[a b]`,
`map[k:v]`, `<no value>`). Must not: evaluate anything else; unknown functions are errors.
"""

from ..errors import UsageError

_MISSING = object()


def _json_text(value):
    import json  # only a template that asks for it pays for json (and re, enum)
    return json.dumps(None if value is _MISSING else value, separators=(",", ":"))


def _error(message):
    return UsageError("template: %s" % message,
                      "use Go template syntax, e.g. --format '{{.Id}}' or '{{json .Config}}'")


def _tokens(text):
    """-> list of ('text', s) and ('action', s)."""
    out, pos = [], 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            if pos < len(text):
                out.append(("text", text[pos:]))
            return out
        if start > pos:
            out.append(("text", text[pos:start]))
        end = text.find("}}", start)
        if end < 0:
            raise _error("unclosed action")
        out.append(("action", text[start + 2:end].strip().strip("-").strip()))
        pos = end + 2


def _words(action):
    words, i = [], 0
    while i < len(action):
        ch = action[i]
        if ch.isspace():
            i += 1
        elif ch == '"':
            end = action.find('"', i + 1)
            if end < 0:
                raise _error("unterminated string in %r" % action)
            words.append(("str", action[i + 1:end]))
            i = end + 1
        else:
            end = i
            while end < len(action) and not action[end].isspace():
                end += 1
            words.append(("word", action[i:end]))
            i = end
    return words


def _parse(tokens, i, stop):
    """-> (nodes, index after, the keyword that stopped it)."""
    nodes = []
    while i < len(tokens):
        kind, value = tokens[i]
        i += 1
        if kind == "text":
            nodes.append(("text", value))
            continue
        head = value.split(None, 1)[0] if value else ""
        if head in stop:
            return nodes, i, head
        if head in ("range", "if"):
            body, i, ended = _parse(tokens, i, ("end", "else"))
            alternative = []
            if ended == "else":
                alternative, i, ended = _parse(tokens, i, ("end",))
            if ended != "end":
                raise _error("missing {{end}}")
            nodes.append((head, value[len(head):].strip(), body, alternative))
        elif head in ("end", "else"):
            raise _error("unexpected {{%s}}" % head)
        else:
            nodes.append(("expr", value))
    if stop:
        raise _error("missing {{end}}")
    return nodes, i, None


def _field(value, path):
    for name in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(name, _MISSING)
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _operand(word, dot):
    kind, text = word
    if kind == "str":
        return text
    if text.startswith("."):
        return _field(dot, text)
    if text.lstrip("-").isdigit():
        return int(text)
    raise _error("unknown value %r" % text)


def _index(value, *keys):
    for key in keys:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return value


_FUNCS = {
    "json": _json_text,
    "len": lambda v: len(v) if v not in (_MISSING, None) else 0,
    "upper": lambda v: format_value(v).upper(),
    "lower": lambda v: format_value(v).lower(),
    "join": lambda v, sep: sep.join(format_value(x) for x in (v or [])),
    "index": _index,
    "println": lambda *v: " ".join(format_value(x) for x in v) + "\n",
    "print": lambda *v: "".join(format_value(x) for x in v),
}


def _evaluate(action, dot):
    words = _words(action)
    if not words:
        raise _error("empty action")
    kind, head = words[0]
    if kind == "word" and head in _FUNCS:
        args = [_operand(w, dot) for w in words[1:]]
        try:
            return _FUNCS[head](*args)
        except TypeError:
            raise _error("wrong arguments to %s" % head) from None
    if kind == "word" and head.startswith(".") and len(words) > 1:
        # a method with arguments, as Docker's `{{.Label "com.example.key"}}`: the field
        # holds a callable
        method = _operand(words[0], dot)
        if callable(method):
            return method(*[_operand(w, dot) for w in words[1:]])
    if len(words) != 1:
        raise _error("unknown function %r" % head)
    return _operand(words[0], dot)


def format_value(value):
    """A value as Go's fmt prints it in a template."""
    if value is _MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return "%d" % value
    if isinstance(value, list):
        return "[" + " ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join("%s:%s" % (k, format_value(value[k]))
                                 for k in sorted(value)) + "]"
    return str(value)


def _truthy(value):
    return value not in (_MISSING, None, False, 0, "", [], {})


def _render(nodes, dot, out):
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "expr":
            out.append(format_value(_evaluate(node[1], dot)))
        elif node[0] == "if":
            _render(node[2] if _truthy(_evaluate(node[1], dot)) else node[3], dot, out)
        else:  # range
            items = _evaluate(node[1], dot)
            if isinstance(items, dict):
                items = [items[k] for k in sorted(items)]
            if _truthy(items):
                for item in items:
                    _render(node[2], item, out)
            else:
                _render(node[3], dot, out)


def compile_template(text):
    nodes, _i, _stop = _parse(_tokens(text), 0, ())
    return nodes


def render(nodes, obj):
    out = []
    _render(nodes, obj, out)
    return "".join(out)
