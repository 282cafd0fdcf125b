"""`completion bash|zsh|fish`: a shell completion script, and the names it calls back for.

Owns: writing each shell's script from the command table cli.py hands over (`parsed.table`):
verbs, group subcommands, every command's flags from its own option table (which flags take a
value), and what each positional names, read from the command's usage line (IMAGE, CONTAINER,
NAME|ID, PATH ...; containers "running" or "stopped" when the summary says so). Also `names`,
the hidden `__complete images|containers [running|stopped]` mode the scripts call: names only,
read straight from the store's files, so a TAB costs one small start-up.
Must not: keep its own list of flags or commands (they come from the tables), import cli.py
(it is the level above), or take the store lock: a TAB must never wait for a pull.
"""

import sys

from ..cliparse import FLAG, Command, Opt, VALUE
from ..errors import UsageError

SHELLS = ("bash", "zsh", "fish")
GLOBAL_FLAGS = ("-D", "--debug", "-v", "--version", "-h", "--help")


def command(verb, summary):
    return Command(verb, "completion bash|zsh|fish", summary, (
        Opt("--name", VALUE, "Command name the script completes (default \"rootless-box\")",
            default="rootless-box"),
    ), min_args=1, max_args=1)


# -- the hidden callback -------------------------------------------------------------------

def names(argv):
    """`__complete images` / `__complete containers [running|stopped|all]`: one name a line.
    Damaged or half-written records are skipped: completion never reports errors."""
    from .. import config
    from ..store import Store
    store = Store(config.data_root())
    what = argv[0] if argv else ""
    out = []
    if what == "images":
        from ..oci import reference
        try:
            tags = store.read_index()["tags"]
        except Exception:
            tags = {}
        for name in sorted(tags):
            try:
                out.append(reference.parse(name).familiar())
            except Exception:
                out.append(name)
    elif what == "containers":
        state = argv[1] if len(argv) > 1 else "all"
        for cid in store.container_ids():
            record = store.read_container(cid)
            if not record or not record.get("Name"):
                continue
            # the record's status, not a liveness probe: a stale "running" costs one
            # wrong candidate, a probe per container costs every TAB
            live = (record.get("State") or {}).get("Status") in ("running", "paused",
                                                                 "restarting")
            if state == "all" or (state == "running") == live:
                out.append(record["Name"])
    else:
        return 2
    sys.stdout.write("".join(n + "\n" for n in out))
    return 0


# -- what the table says -------------------------------------------------------------------

def _kind(token):
    """What a usage-line word names: images, containers, any (NAME|ID), cpath (cp's
    CONTAINER:PATH), files, or "" (anything: a command, a new name ...)."""
    word = token.strip("[]").rstrip(".").strip("[]")
    if "CONTAINER:" in word:
        return "cpath"
    if "CONTAINER" in word:
        return "containers"
    if "IMAGE" in word or word.startswith("NAME[:TAG") or word.startswith("REPOSITORY"):
        return "images"
    if word == "NAME|ID":
        return "any"
    if "PATH" in word or word.startswith("file"):
        return "files"
    return ""


def positionals(cmd):
    """-> (kinds by position, whether the last repeats, container state wanted)."""
    merged = []
    repeat = False
    for line in cmd.usage.split("\n"):
        words = line.replace("rootless-box", "").split()
        words = [w for w in words[len(cmd.name.split()):]
                 if w != "[OPTIONS]" and any(c.isalpha() for c in w)]
        kinds = [_kind(w) for w in words]
        repeat = repeat or bool(words and "..." in words[-1])
        for i, kind in enumerate(kinds):
            if i >= len(merged):
                merged.append(kind)
            elif kind == "cpath" or not merged[i]:
                merged[i] = kind
    summary = cmd.summary.lower()
    state = "running" if " running" in summary else "stopped" if " stopped" in summary \
        else "all"
    return merged, repeat, state


def collect(table):
    """-> (entries by key, top-level (word, summary) with the groups last, groups). An entry:
    Command, positionals."""
    entries, top, groups, group_help = {}, [], {}, {}
    for words, key, module_name, summary in table():
        if key is None:
            group_help[words[0]] = summary
            continue
        if key not in entries:
            module = __import__("rootless_box.commands." + module_name, fromlist=["command"])
            cmd = module.command(key, summary)
            entries[key] = (cmd, positionals(cmd))
        if len(words) == 1:
            top.append((words[0], summary))
        else:
            groups.setdefault(words[0], []).append((words[1], key, summary))
    top += [(group, group_help.get(group, "")) for group in groups]
    return entries, top, groups


def _flags(cmd):
    names, valued = [], []
    for opt in cmd.opts:
        if not opt.help and opt.names != ("--help",):
            continue  # hidden (accepted for Docker's sake, not offered)
        names += opt.names
        if opt.kind != FLAG:
            valued += opt.names
    return names, valued


# -- bash ----------------------------------------------------------------------------------

_BASH_MAIN = r'''
# Words split at COMP_WORDBREAKS (: and =) are joined again, so `alpine:3.19` and
# `--name=x` are one word each, as the command will see them.
_%(fn)s_words() {
    local i w glue=0 breaks
    words=() cword=0
    for ((i = 0; i < ${#COMP_WORDS[@]}; i++)); do
        w=${COMP_WORDS[i]}
        breaks=${w//[^:=]/}
        if ((i > 0)) && [[ -n $w && $w == "$breaks" && $COMP_WORDBREAKS == *"${w:0:1}"* ]]; then
            words[${#words[@]}-1]+=$w
            glue=1
        elif ((glue)); then
            words[${#words[@]}-1]+=$w
            glue=0
        else
            words+=("$w")
        fi
        ((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
    done
}

_%(fn)s_reply() {  # candidates for the whole word, minus the part readline keeps
    local cur=$1 cand=$2 prefix="" i
    COMPREPLY=($(compgen -W "$cand" -- "$cur"))
    if [[ $cur == *[:=]* ]]; then
        prefix=${cur%%"${cur##*[:=]}"}
        for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]#"$prefix"}; done
    fi
}

_%(fn)s_names() {
    "${COMP_WORDS[0]}" __complete "$@" 2>/dev/null
}

_%(fn)s_positional() {  # $1 kind, $2 container state, $3 group
    local kind=$1 cand=""
    [[ $kind == any ]] && case $3 in image) kind=images ;; container) kind=containers ;; esac
    case $kind in
        images) cand=$(_%(fn)s_names images) ;;
        containers) cand=$(_%(fn)s_names containers "$2") ;;
        any) cand="$(_%(fn)s_names images) $(_%(fn)s_names containers all)" ;;
        cpath)
            if [[ $cur != *:* ]]; then
                cand=$(_%(fn)s_names containers all | sed 's/$/:/')
                _%(fn)s_reply "$cur" "$cand"
                COMPREPLY+=($(compgen -f -- "$cur"))
                compopt -o nospace 2>/dev/null
            fi
            return ;;
        files) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        *) return ;;
    esac
    _%(fn)s_reply "$cur" "$cand"
}

_%(fn)s() {
    local words cword cur i=1 w group="" key flags valued kinds repeat state inter npos=0 dd=0
    _%(fn)s_words
    cur=${words[cword]}
    COMPREPLY=()
    while ((i < cword)) && [[ ${words[i]} == -* ]]; do ((i++)); done
    if ((i == cword)); then
        if [[ $cur == -* ]]; then _%(fn)s_reply "$cur" "%(globals)s"
        else _%(fn)s_reply "$cur" "%(top)s"; fi
        return
    fi
    key=${words[i]}
    ((i++))
    case $key in
%(groups)s
    esac
    _%(fn)s_spec "$key" || return
    while ((i < cword)); do
        w=${words[i]}
        ((i++))
        if ((dd)) || { ((!inter)) && ((npos > 0)); }; then ((npos++)); continue; fi
        case $w in
            --) dd=1 ;;
            --*=*) ;;
            --*) [[ " $valued " == *" $w "* ]] && ((i++)) ;;
            -?*) [[ " $valued " == *" -${w: -1} "* && ${#w} -ge 2 ]] && ((i++)) ;;
            *) ((npos++)) ;;
        esac
    done
    # the word after a flag that takes a value is that value: files, as good a guess as any
    w=${words[cword-1]}
    if ((cword - 1 >= 0)) && ((!dd)) && { ((inter)) || ((npos == 0)); } &&
        [[ $w == -* && $w != *=* && " $valued " == *" $w "* ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    if [[ $cur == -* ]] && ((!dd)) && { ((inter)) || ((npos == 0)); }; then
        _%(fn)s_reply "$cur" "$flags"
        return
    fi
    kinds=($kinds)
    if ((npos < ${#kinds[@]})); then
        _%(fn)s_positional "${kinds[npos]}" "$state" "$group"
    elif ((repeat)) && ((${#kinds[@]})); then
        _%(fn)s_positional "${kinds[${#kinds[@]}-1]}" "$state" "$group"
    fi
}

complete -o default -F _%(fn)s %(name)s
'''


def _bash_name(name):
    return "".join(c if c.isalnum() else "_" for c in name)


def bash(entries, top, groups, name):
    fn = _bash_name(name)
    group_cases = []
    for group, subs in groups.items():
        group_cases.append(
            "        %s)\n"
            "            group=%s\n"
            "            if ((i == cword)); then _%s_reply \"$cur\" \"%s\"; return; fi\n"
            "            case ${words[i]} in\n%s\n                *) return ;;\n"
            "            esac\n            ((i++)) ;;"
            % (group, group, fn, " ".join(s for s, _k, _s in subs),
               "\n".join("                %s) key=%s ;;" % (sub, _bash_quote(key))
                         for sub, key, _s in subs)))
    specs = []
    for key, (cmd, (kinds, repeat, state)) in entries.items():
        flags, valued = _flags(cmd)
        specs.append('        %s) flags="%s" valued="%s" kinds="%s" repeat=%d state=%s '
                     'inter=%d ;;' % (_bash_quote(key), " ".join(flags), " ".join(valued),
                                      " ".join(k or "-" for k in kinds), repeat, state,
                                      cmd.interspersed))
    spec = ("_%s_spec() {\n    case $1 in\n%s\n        *) return 1 ;;\n    esac\n}\n"
            % (fn, "\n".join(specs)))
    top_words = [w for w, _s in top]
    return ("# bash completion for %s (generated by `%s completion bash`; do not edit)\n"
            % (name, name) + spec + _BASH_MAIN % {
                "fn": fn, "name": name, "globals": " ".join(GLOBAL_FLAGS),
                "top": " ".join(top_words), "groups": "\n".join(group_cases)})


def _bash_quote(word):
    return "'%s'" % word if " " in word else word


# -- zsh -----------------------------------------------------------------------------------

def _zq(text):
    """Inside single quotes, and in _arguments' [help] / _describe's name:help syntax."""
    return (text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            .replace(":", "\\:").replace("'", "'\\''"))


def _zsh_arguments(cmd, kinds, repeat, state, group):
    specs = ["-s", "-S"] if cmd.interspersed else ["-s", "-S", "-A", "'-*'"]
    for opt in cmd.opts:
        if not opt.help:
            continue
        value = ":%s:_files" % opt.metavar if opt.kind != FLAG else ""
        # a repeatable flag is offered again; the others exclude their own spellings
        lead = "*" if opt.kind == "list" else "(%s)" % " ".join(opt.names)
        if len(opt.names) == 1:
            lead = "*" if opt.kind == "list" else ""
            specs.append("'%s%s[%s]%s'" % (lead, opt.names[0], _zq(opt.help), value))
        else:
            specs.append("'%s'{%s}'[%s]%s'" % (lead, ",".join(opt.names), _zq(opt.help),
                                               value))
    actions = {"images": "_%s_names images", "containers": "_%s_names containers " + state,
               "any": "_%s_names any", "cpath": "_%s_names cpath", "files": "_files",
               "": "_files"}
    if group == "image" and "any" in kinds:
        actions["any"] = "_%s_names images"
    if group == "container" and "any" in kinds:
        actions["any"] = "_%s_names containers all"
    for i, kind in enumerate(kinds):
        last = i == len(kinds) - 1
        action = actions[kind].replace("%s", "rootless_box")
        if last and repeat:
            specs.append("'*:%s:%s'" % (kind or "arg", action))
        elif last and not cmd.interspersed:
            specs.append("'%d:%s:%s'" % (i + 1, kind or "arg", action))
            specs.append("'*::arg:_normal'")
        else:
            specs.append("'%d:%s:%s'" % (i + 1, kind or "arg", action))
    return "_arguments " + " ".join(specs)


def zsh(entries, top, groups, name):
    lines = ["#compdef %s" % name,
             "# zsh completion for %s (generated by `%s completion zsh`; do not edit)" %
             (name, name),
             "",
             "_rootless_box_names() {",
             "    local -a n",
             "    case $1 in",
             "        any) n=(${(f)\"$(_call_program names $_rbx_prog __complete images "
             "2>/dev/null)\"} ${(f)\"$(_call_program names $_rbx_prog __complete "
             "containers all 2>/dev/null)\"}) ;;",
             "        cpath) n=(${(f)\"$(_call_program names $_rbx_prog __complete "
             "containers all 2>/dev/null)\"}); compadd -S : -a n; _files; return ;;",
             "        *) n=(${(f)\"$(_call_program names $_rbx_prog __complete \"$@\" "
             "2>/dev/null)\"}) ;;",
             "    esac",
             "    compadd -a n",
             "}",
             "",
             "_rootless_box_command() {  # $1 key, $2 group",
             "    case $1 in"]
    for key, (cmd, (kinds, repeat, state)) in entries.items():
        group = key.split()[0] if " " in key else ""
        lines.append("        %s) %s ;;" % (_bash_quote(key),
                                            _zsh_arguments(cmd, kinds, repeat, state, group)))
    lines += ["    esac", "}", "",
              "_rootless_box() {",
              "    local -a cmds subs",
              "    local key group _rbx_prog=$words[1]",
              "    cmds=(%s)" % " ".join("'%s:%s'" % (_zq(w), _zq(s)) for w, s in top),
              "    if (( CURRENT == 2 )); then",
              "        if [[ $PREFIX == -* ]]; then compadd -- %s; else"
              % " ".join(GLOBAL_FLAGS),
              "        _describe -t commands 'rootless-box command' cmds; fi",
              "        return",
              "    fi",
              "    key=$words[2]",
              "    case $key in"]
    for group, subs in groups.items():
        lines += ["        %s)" % group,
                  "            group=%s" % group,
                  "            subs=(%s)" % " ".join("'%s:%s'" % (_zq(s), _zq(summary))
                                                     for s, _k, summary in subs),
                  "            if (( CURRENT == 3 )); then _describe -t commands "
                  "'%s command' subs; return; fi" % group,
                  "            case $words[3] in"]
        lines += ["                %s) key=%s ;;" % (sub, _bash_quote(k)) for sub, k, _s in subs]
        lines += ["                *) return ;;", "            esac",
                  "            shift words; (( CURRENT-- )) ;;"]
    lines += ["    esac",
              "    shift words; (( CURRENT-- ))",
              "    _rootless_box_command \"$key\" \"$group\"",
              "}",
              "",
              "compdef _rootless_box %s" % name, ""]
    return "\n".join(lines)


# -- fish ----------------------------------------------------------------------------------

def _fq(text):
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")


def fish(entries, top, groups, name):
    c = "complete -c %s" % name
    out = ["# fish completion for %s (generated by `%s completion fish`; do not edit)" %
           (name, name),
           "function __rootless_box_cmd --description 'the verb (with its group) typed so far'",
           "    set -l words (commandline -opc)",
           "    set -e words[1]",
           "    while set -q words[1]; and string match -q -- '-*' $words[1]",
           "        set -e words[1]",
           "    end",
           "    switch \"$words[1]\"",
           "        case %s" % " ".join(groups),
           "            set -q words[2]; and echo \"$words[1] $words[2]\"; or echo $words[1]",
           "        case '*'",
           "            echo $words[1]",
           "    end",
           "end",
           "function __rootless_box_none",
           "    set -l cmd (__rootless_box_cmd)",
           "    test -z \"$cmd\"",
           "end",
           "function __rootless_box_is --argument-names want",
           "    test (__rootless_box_cmd) = \"$want\"",
           "end",
           "function __rootless_box_names",
           "    set -l prog (commandline -opc)[1]",
           "    command -q $prog; or return",
           "    $prog __complete $argv 2>/dev/null",
           "end",
           "%s -f" % c,
           "%s -n __rootless_box_none -s D -l debug -d 'Enable debug mode'" % c,
           "%s -n __rootless_box_none -s v -l version "
           "-d 'Print version information and quit'" % c]
    for word, summary in top:
        out.append("%s -n __rootless_box_none -a %s -d %s" % (c, word, _fq(summary)))
    for group, subs in groups.items():
        for sub, _key, summary in subs:
            out.append("%s -n '__rootless_box_is %s' -a %s -d %s"
                       % (c, group, sub, _fq(summary)))
    for key, (cmd, (kinds, _repeat, state)) in entries.items():
        typed = [key] + ["%s %s" % (g, s) for g, subs in groups.items()
                         for s, k, _sum in subs if k == key]
        for words in typed:
            cond = "-n %s" % _fq("__rootless_box_is %s" % _fq(words))
            for opt in cmd.opts:
                if not opt.help:
                    continue
                parts = []
                for n in opt.names:
                    if n.startswith("--"):
                        parts.append("-l %s" % n[2:])
                    else:
                        parts.append("-s %s" % n[1:])
                req = " -r -F" if opt.kind != FLAG else ""
                out.append("%s %s %s%s -d %s" % (c, cond, " ".join(parts), req,
                                                 _fq(opt.help)))
            kind = kinds[0] if kinds else ""
            if kind == "any":
                kind = {"image": "images", "container": "containers"}.get(words.split()[0],
                                                                         "any")
            if kind in ("images", "any"):
                out.append("%s %s -a '(__rootless_box_names images)'" % (c, cond))
            if kind in ("containers", "any", "cpath"):
                out.append("%s %s -a '(__rootless_box_names containers %s)'"
                           % (c, cond, state if kind == "containers" else "all"))
            if kind in ("files", "cpath") or "files" in kinds:
                out.append("%s %s -F" % (c, cond))
    return "\n".join(out) + "\n"


def script(shell, table, name="rootless-box"):
    entries, top, groups = collect(table)
    return {"bash": bash, "zsh": zsh, "fish": fish}[shell](entries, top, groups, name)


def main(parsed):
    shell = parsed.args[0]
    if shell not in SHELLS:
        raise UsageError('unsupported shell "%s"' % shell, "use one of: %s" % ", ".join(SHELLS))
    sys.stdout.write(script(shell, parsed.table, parsed.name))
    return 0
