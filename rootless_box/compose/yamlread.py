"""Compose files read as Compose (go-yaml) reads them, on PyYAML with a resolver of our own.

Owns: the scalar typing go-yaml gives (`no`/`yes`/`on`/`off` and timestamps stay strings,
`0440` is octal, only `true/false` in three spellings are booleans), duplicate keys refused
with file:line:column, the `!reset` and `!override` tags (kept as marker objects for
merge.py), several documents in one file, and `<<` merge keys.
Must not: know anything about Compose's keys.

PyYAML's safe_load is YAML 1.1 (`restart: no` becomes False, `22:22` base 60); ruamel is 1.2
(`0440` decimal). Neither is go-yaml; see ../shared/research/compose-networks.md section 5.
"""

import re

import yaml

from ..errors import BoxError


class Reset:
    """A value tagged `!reset`: the merge drops what earlier files said for this key."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Reset) and other.value == self.value

    def __repr__(self):
        return "Reset(%r)" % (self.value,)


class Override:
    """A value tagged `!override`: the merge replaces instead of merging."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Override) and other.value == self.value

    def __repr__(self):
        return "Override(%r)" % (self.value,)


class _Resolver(yaml.resolver.BaseResolver):
    """go-yaml's implicit types (yaml.v3 resolve.go): no timestamps, no base 60, no yes/no."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))
_Resolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])


class _Constructor(yaml.constructor.SafeConstructor):
    def construct_yaml_int(self, node):
        text = self.construct_scalar(node).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith("0b"):
            return sign * int(text[2:], 2)
        if text.startswith("0x"):
            return sign * int(text[2:], 16)
        if text.startswith("0o"):
            return sign * int(text[2:], 8)
        if len(text) > 1 and text.startswith("0"):  # go-yaml keeps YAML 1.1's 0777 octal
            return sign * int(text, 8)
        return sign * int(text)

    def construct_yaml_bool(self, node):
        return self.construct_scalar(node).lower() == "true"

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "found unhashable key", key_node.start_mark) from None
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping key \"%s\" already defined at line %d"
                    % (key, seen[key].line + 1), mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def _tagged(self, node, cls):
        if isinstance(node, yaml.MappingNode):
            value = self.construct_mapping(node, deep=True)
        elif isinstance(node, yaml.SequenceNode):
            value = self.construct_sequence(node, deep=True)
        else:
            # the tagged scalar is typed as if untagged (`!reset 8080` is still an int)
            tag = self.resolve(yaml.ScalarNode, node.value, (True, False))
            value = self.yaml_constructors[tag](self, yaml.ScalarNode(tag, node.value,
                                                                      node.start_mark,
                                                                      node.end_mark))
        return cls(value)


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)
_Constructor.add_constructor("tag:yaml.org,2002:bool", _Constructor.construct_yaml_bool)
# a timestamp-looking scalar has no implicit tag here, and an explicit !!timestamp stays text
_Constructor.add_constructor("tag:yaml.org,2002:timestamp",
                             yaml.constructor.SafeConstructor.construct_yaml_str)
_Constructor.add_constructor("!reset", lambda c, n: c._tagged(n, Reset))
_Constructor.add_constructor("!override", lambda c, n: c._tagged(n, Override))

_Parser = getattr(yaml, "CParser", None) or yaml.parser.Parser


class _Loader(_Parser, _Constructor, _Resolver):
    def __init__(self, stream):
        _Parser.__init__(self, stream)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


if _Parser is yaml.parser.Parser:  # no libyaml: the pure-Python reader, scanner, composer
    class _Loader(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser,  # noqa: F811
                  yaml.composer.Composer, _Constructor, _Resolver):
        def __init__(self, stream):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


def load_all(text, filename):
    """-> the documents of a file (a list; an empty file is [])."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = filename if mark is None else "%s:%d:%d" % (filename, mark.line + 1,
                                                           mark.column + 1)
        raise BoxError("failed to parse %s: %s" % (where, problem),
                       "fix the YAML at that line", exit_code=1) from None

