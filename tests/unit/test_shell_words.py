"""Shell-word expansion beyond the data files: the facts FORMAT.md transcribes from upstream's
lex_test.go, the backtick escape, the names a word uses, both env forms, and the messages."""

import pytest

from rootless_box.errors import BoxError
from rootless_box.dockerfile.shell import (ExpansionError, expand, expand_word,
                                      expand_word_with_names, expand_words)


# --- lex_test.go facts (FORMAT.md, "Extra facts") --------------------------------------------

@pytest.mark.parametrize("word, env, expected", [
    ("x ${UNUSED}", {"DUMMY": "dummy"}, "x "),
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO:-}", {"FOO": "xxx"}, "xxx"),
    ("${FOO:-}", {}, ""),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${BAR?bbb}", {"FOO": "xxx", "BAR": ""}, ""),
    ("${FOO:?aaa}", {"FOO": "xxx", "BAR": ""}, "xxx"),
    ("${VAR:?message here$ARG}", {"VAR": "plain", "ARG": "x"}, "plain"),
    ("${VAR?message here$ARG}", {"VAR": "plain", "ARG": "x"}, "plain"),
    ("${VAR?message here$ARG}", {"VAR": "", "ARG": "x"}, ""),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO%}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%%$BAR}", {"FOO": "xxyy", "BAR": ""}, "xxyy"),
    ("${FOO%y*}", {"FOO": "xxyy"}, "xxy"),
    ("${FOO%%y*}", {"FOO": "xxyy"}, "xx"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"},
     "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"},
     "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
     {"FOO": "/a/foo/b/c.txt", "NEEDLE": "/?/", "REPLACEMENT": "/"},
     "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO/$NEEDLE/$REPLACEMENT}",
     {"FOO": "http://google.de", "NEEDLE": "http://", "REPLACEMENT": "https://"},
     "https://google.de"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
     "something-v1.2.3.linux-arm-v7.tar.gz"),
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm64", "TARGETVARIANT": ""},
     "something-v1.2.3.linux-arm64.tar.gz"),
    ("something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
     {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm64"},
     "something-v1.2.3.linux-arm64.tar.gz"),
])
def test_upstream_fact(word, env, expected):
    assert expand_word(word, env) == expected


@pytest.mark.parametrize("word, env", [
    ("${BAZ?ccc}", {"FOO": "xxx", "BAR": ""}),
    ("${BAR:?bbb}", {"FOO": "xxx", "BAR": ""}),
    ("${BAZ:?ccc}", {"FOO": "xxx", "BAR": ""}),
    ("${BAZ:?}", {"FOO": "xxx", "BAR": ""}),
    ("${FOO=aaa}", {}),
    ("${FOO=:aaa}", {}),
    ("${FOO=}", {}),
    ("${FOO:#}", {}),
    ("${FOO:##}", {}),
    ("${FOO:%}", {}),
    ("${FOO:%%}", {}),
    ("${FOO//ww}", {"FOO": "xxyy"}),
    ("${FOO//}", {"FOO": "xxyy"}),
    ("${FOO#\\x}", {"FOO": "xxyy"}),
    ("${FOO%x\\}", {"FOO": "xxyy"}),
])
def test_upstream_error(word, env):
    with pytest.raises(ExpansionError):
        expand_word(word, env)


def test_replace_all_follows_go_not_re_sub():
    # Go skips an empty match right after a match; Python's re.sub would give "xx".
    assert expand_word("${FOO//*/x}", {"FOO": "abc"}) == "x"
    # The replace-all replacement is a Go regexp template: $0 is the match, $$ a dollar.
    assert expand_word("${FOO//b/[$X]}", {"FOO": "abc", "X": "$0$$"}) == "a[b$]c"
    # The single replacement is spliced in as written.
    assert expand_word("${FOO/b/[$X]}", {"FOO": "abc", "X": "$0$$"}) == "a[$0$$]c"


def test_glob_star_does_not_cross_newlines_as_in_go():
    assert expand_word("${FOO#*b}", {"FOO": "a\nbc"}) == "a\nbc"


# --- the backtick escape (`# escape=\``) -------------------------------------------------------

@pytest.mark.parametrize("word, expected", [
    ("he`$PWD", "he$PWD"),
    ("C:\\Windows\\$PWD", "C:\\Windows\\/home"),  # the reason for the directive
    ('"a`"b"', 'a"b'),
    ('"a``b"', "a`b"),
    ('"a`b"', "a`b"),
    ("'a`b'", "a`b"),
    ("hello`", "hello"),
    ("`\\x", "\\x"),
])
def test_backtick_escape(word, expected):
    assert expand_word(word, {"PWD": "/home"}, escape="`") == expected


def test_backtick_escape_keeps_whitespace_together():
    assert expand_words("hello` there again", {}, escape="`") == ["hello there", "again"]
    assert expand_words("hello\\ there", {}, escape="`") == ["hello\\", "there"]


def test_backtick_escape_in_patterns_follows_upstream():
    # The glob converter always treats `\` as its escape, whatever the Dockerfile's directive.
    assert expand_word("${FOO%\\*}", {"FOO": "a*"}, escape="`") == "a"


def test_escape_must_be_one_character():
    with pytest.raises(ValueError):
        expand_word("x", {}, escape="")


# --- the names a word uses ---------------------------------------------------------------------

@pytest.mark.parametrize("word, env, used", [
    ("x ${UNUSED}", {"DUMMY": "dummy"}, set()),
    ("$A-${B}", {"A": "1", "B": "2", "C": "3"}, {"A", "B"}),
    ("${NULL:-x}", {"NULL": ""}, {"NULL"}),
    # A default word is expanded even when it is not needed, as upstream does: the cache
    # must still change when BAR changes, because BuildKit keys on it.
    ("${FOO:-$BAR}", {"FOO": "f", "BAR": "b"}, {"FOO", "BAR"}),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, {"FOO", "BAR"}),
    ("${FOO//$N/$R}", {"FOO": "a", "N": "a", "R": "b"}, {"FOO", "N", "R"}),
    ("'$A' \\$B", {"A": "1", "B": "2"}, set()),
    ('"$A"', {"A": "1"}, {"A"}),
])
def test_names_used(word, env, used):
    assert expand_word_with_names(word, env)[1] == used


def test_names_used_with_the_text():
    assert expand_word_with_names("${A}/${B:-b}", {"A": "a"}) == ("a/b", frozenset({"A"}))


def test_unset_names_are_reported_for_warnings():
    result = expand("x ${UNUSED} $1 $A", {"A": "a"})
    assert result.unset == {"UNUSED", "1"}
    assert result.used == {"A"}
    assert result.words == ["x", "a"]


# --- the environment's two forms ---------------------------------------------------------------

@pytest.mark.parametrize("env, expected", [
    ([], ""),
    (["foo"], ""),
    (["foo="], ""),
    (["foo=bar"], "bar"),
    (["car=hat", "foo=a=b", "car=bike"], "a=b"),
    ({"foo": "bar"}, "bar"),
])
def test_env_forms(env, expected):
    assert expand_word("$foo", env) == expected


def test_env_list_last_entry_wins():
    assert expand_word("$car", ["car=hat", "car=bike"]) == "bike"


def test_env_list_entry_without_value_is_set():
    assert expand_word("${foo?}", ["foo"]) == ""
    assert expand_word_with_names("$foo", ("foo",))[1] == {"foo"}


def test_env_as_a_string_is_refused():
    with pytest.raises(TypeError):
        expand_word("$A", "A=1")


def test_env_is_not_the_process_environment(monkeypatch):
    monkeypatch.setenv("RBX_SHELL_TEST", "leak")
    assert expand_word("$RBX_SHELL_TEST", {}) == ""


# --- messages ----------------------------------------------------------------------------------

@pytest.mark.parametrize("word, env, message", [
    ("${A:?}", {}, 'failed to process "${A:?}": A: is not allowed to be unset'),
    ("${A:?}", {"A": ""}, 'failed to process "${A:?}": A: is not allowed to be empty'),
    ("${A?}", {}, 'failed to process "${A?}": A: is not allowed to be unset'),
    ("${VAR:?message here$ARG}", {"ARG": "x"},
     'failed to process "${VAR:?message here$ARG}": VAR: message herex'),
    ("he${PWD:=000}xx", {}, 'failed to process "he${PWD:=000}xx": '
                            'unsupported modifier (:=) in substitution'),
    ("${FOO:#}", {}, 'failed to process "${FOO:#}": unsupported modifier (:#) in substitution'),
    ("${A=b}", {}, 'failed to process "${A=b}": unsupported modifier (=) in substitution'),
    ("${}", {}, 'failed to process "${}": syntax error: bad substitution'),
    ("${A", {}, "failed to process \"${A\": syntax error: missing '}'"),
    ("${A:-b", {}, "failed to process \"${A:-b\": syntax error: missing '}'"),
    ("${A/b}", {}, "failed to process \"${A/b}\": syntax error: missing '/' in ${}"),
    ("'abc", {}, "failed to process \"'abc\": unexpected end of statement while looking for "
                 "matching single-quote"),
    ('"a\\', {}, 'failed to process "\\"a\\\\": unexpected end of statement while looking for '
                 'matching double-quote'),
    ("${A#\\x}", {}, "failed to process \"${A#\\\\x}\": invalid pattern (\\x) in substitution: "
                     "invalid escape '\\x'"),
    ("${A%a\\x}", {}, "failed to process \"${A%a\\\\x}\": invalid pattern (a\\x) in "
                      "substitution: invalid escape '\\x'"),
    ("a\tb${}", {}, 'failed to process "a\\tb${}": syntax error: bad substitution'),
])
def test_error_message(word, env, message):
    with pytest.raises(ExpansionError) as caught:
        expand_word(word, env)
    assert str(caught.value) == message


def test_error_is_a_box_error_exiting_1():
    with pytest.raises(BoxError) as caught:
        expand_words("${A:?}", {})
    assert caught.value.exit_code == 1
    assert caught.value.word == "${A:?}"
    assert caught.value.reason == "A: is not allowed to be unset"
