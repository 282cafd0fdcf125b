"""Docker's command-line grammar: option tables, parsing and --help text.

Owns: turning argv into option values and positionals the way Docker's CLI (cobra/pflag) does:
short clusters (`-it`), attached values (`-eA=B`, `--env=A=B`), booleans that accept `=true|false`,
repeated options, `--`, and for commands like `run` options that stop at the first positional
(`run IMAGE sh -c x` leaves `-c` to the container). Must not: import argparse (it costs ~10 ms
of the start-up `run` is judged on) or know what any command does.
"""

from .errors import UsageError

FLAG, VALUE, LIST = "flag", "value", "list"


class Opt:
    __slots__ = ("names", "dest", "kind", "default", "help", "metavar")

    def __init__(self, names, kind=FLAG, help="", dest=None, default=None, metavar=None):
        self.names = tuple(names.split(",")) if isinstance(names, str) else tuple(names)
        self.kind = kind
        self.help = help
        self.metavar = metavar or ("string" if kind != FLAG else "")
        long_names = [n for n in self.names if n.startswith("--")]
        self.dest = dest or (long_names[0] if long_names else self.names[0]).lstrip(
            "-").replace("-", "_")
        if default is None:
            default = False if kind == FLAG else ([] if kind == LIST else None)
        self.default = default


class Command:
    """One verb: its usage line, summary, options and how many positionals it takes."""

    __slots__ = ("name", "usage", "summary", "opts", "min_args", "max_args", "interspersed",
                 "handler", "aliases", "_index")

    def __init__(self, name, usage, summary, opts=(), min_args=0, max_args=None,
                 interspersed=True, handler=None, aliases=()):
        self.name = name
        self.usage = usage
        self.summary = summary
        self.opts = list(opts) + [Opt("--help", help="Print usage")]
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed
        self.handler = handler
        self.aliases = tuple(aliases)
        self._index = {n: o for o in self.opts for n in o.names}

    def help_text(self, prog="rootless-box"):
        lines = ["", "Usage:  %s %s" % (prog, self.usage), "", self.summary, ""]
        shown = [o for o in self.opts if o.help]
        if shown:
            lines.append("Options:")
            rows = []
            for o in shown:
                shorts = [n for n in o.names if not n.startswith("--")]
                longs = [n for n in o.names if n.startswith("--")]
                left = ("%s, " % shorts[0] if shorts else "    ") + ", ".join(longs or shorts)
                if o.kind != FLAG:
                    left += " " + (o.metavar if o.kind == VALUE else o.metavar)
                text = o.help
                # pflag's rendering of a non-zero default, as Docker's help shows it
                if o.kind == VALUE and isinstance(o.default, str) and o.default and \
                        "(default" not in text:
                    text += ' (default "%s")' % o.default
                rows.append((left, text))
            width = max(len(r[0]) for r in rows) + 3
            lines += ["  %s%s" % (left.ljust(width), h) for left, h in rows]
        return "\n".join(lines) + "\n"


class Parsed:
    """Option values as attributes, plus `args` (the positionals)."""

    def __init__(self, command):
        self.command = command
        self.args = []
        self.given = set()
        for o in command.opts:
            setattr(self, o.dest, list(o.default) if o.kind == LIST else o.default)

    def __repr__(self):
        return "Parsed(%r)" % self.__dict__


_TRUE = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


def _bool(opt_name, text):
    try:
        return _TRUE[text.lower()]
    except KeyError:
        raise UsageError('invalid argument "%s" for "%s" flag: must be true or false'
                         % (text, opt_name)) from None


def _store(res, opt, name, value):
    res.given.add(opt.dest)
    if opt.kind == FLAG:
        setattr(res, opt.dest, True if value is None else _bool(name, value))
    elif opt.kind == LIST:
        getattr(res, opt.dest).append(value)
    else:
        setattr(res, opt.dest, value)


def _unknown(command, name):
    return UsageError("unknown flag: %s" % name,
                      "see 'rootless-box %s --help'" % command.name)


def parse(command, argv):
    """Parse argv (the words after the verb) against command's option table."""
    res = Parsed(command)
    i, n = 0, len(argv)
    while i < n:
        word = argv[i]
        i += 1
        if word == "--":
            res.args.extend(argv[i:])
            break
        if word.startswith("--") and len(word) > 2:
            name, eq, value = word.partition("=")
            opt = command._index.get(name)
            if opt is None:
                raise _unknown(command, name)
            if opt.kind != FLAG and not eq:
                if i >= n:
                    raise UsageError("flag needs an argument: %s" % name)
                value, i = argv[i], i + 1
            _store(res, opt, name, value if (eq or opt.kind != FLAG) else None)
        elif word.startswith("-") and len(word) > 1:
            j = 1
            while j < len(word):
                name = "-" + word[j]
                opt = command._index.get(name)
                if opt is None:
                    raise _unknown(command, name)
                rest = word[j + 1:]
                if opt.kind == FLAG:
                    if rest.startswith("="):
                        _store(res, opt, name, rest[1:])
                        break
                    _store(res, opt, name, None)
                    j += 1
                    continue
                if rest:
                    value = rest[1:] if rest.startswith("=") else rest
                elif i < n:
                    value, i = argv[i], i + 1
                else:
                    raise UsageError("flag needs an argument: '%s' in %s" % (word[j], name))
                _store(res, opt, name, value)
                break
        else:
            res.args.append(word)
            if not command.interspersed:
                res.args.extend(argv[i:])
                break
    return res


def check_arity(command, res):
    count = len(res.args)
    if count < command.min_args or (command.max_args is not None and count > command.max_args):
        if command.min_args == command.max_args:
            need = "exactly %d argument%s" % (command.min_args, "" if command.min_args == 1
                                              else "s")
        elif command.max_args is None:
            need = "at least %d argument%s" % (command.min_args, "" if command.min_args == 1
                                               else "s")
        else:
            need = "at most %d argument%s" % (command.max_args, "" if command.max_args == 1
                                              else "s")
        raise UsageError('"rootless-box %s" requires %s' % (command.name, need),
                         "usage: rootless-box %s" % command.usage)
