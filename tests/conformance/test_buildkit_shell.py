"""BuildKit's own shell-lexer test data (envVarTest, wordsTest), read as upstream's lex_test.go
reads it; the rules are in ../shared/conformance/buildkit-shell/FORMAT.md."""

import os

import pytest

import rootless_box
from rootless_box.dockerfile.shell import ExpansionError, expand_word, expand_words

REPO = os.path.dirname(os.path.dirname(os.path.abspath(rootless_box.__file__)))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "conformance", "buildkit-shell")

# The one environment every envVarTest line runs with; NULL is set but empty.
ENV_VAR_TEST_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


def _lines(name):
    """(line number, text) of a data file; bytes decoded as UTF-8 so trailing spaces stay."""
    path = os.path.join(CORPUS, name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return list(enumerate(text.split("\n"), start=1))


def _missing(name):
    return pytest.param(None, None, None, marks=pytest.mark.skip(
        reason="conformance data not found: %s (CI keeps shared/ beside the clone)"
        % os.path.join(CORPUS, name)), id="missing")


def env_var_cases():
    lines = _lines("envVarTest")
    if lines is None:
        return [_missing("envVarTest")]
    cases = []
    for number, line in lines:
        if line.startswith("#"):  # a comment only in column 0, checked before trimming
            continue
        line = line.strip()
        if not line:
            continue
        fields = [field.strip() for field in line.split("|")]
        assert len(fields) == 3, "envVarTest:%d: not platform|input|expected" % number
        platform, word, expected = fields
        assert platform in ("A", "U", "W"), "envVarTest:%d: platform %r" % (number, platform)
        marks = [pytest.mark.skip(reason="Windows-only line")] if platform == "W" else []
        cases.append(pytest.param(word, expected, number, marks=marks,
                                  id="envVarTest:%d" % number))
    return cases


def words_cases():
    lines = _lines("wordsTest")
    if lines is None:
        return [_missing("wordsTest")]
    cases = []
    env = {}
    for number, line in lines:
        if line.startswith("#") or (not line and number == len(lines)):
            continue  # comments, and the empty string after the file's final newline
        if line.startswith("ENV "):
            name, _, value = line[len("ENV "):].lstrip(" ").partition("=")
            env[name] = value  # trailing spaces stay in the value
            continue
        assert line.count("|") == 1, "wordsTest:%d: not input|expected" % number
        word, expected = line.split("|")
        cases.append(pytest.param(word.strip(), expected.lstrip(" ").split(","), dict(env),
                                  id="wordsTest:%d" % number))
    return cases


@pytest.mark.parametrize("word, expected, number", env_var_cases())
def test_env_var_line(word, expected, number):
    if expected == "error":
        with pytest.raises(ExpansionError):
            expand_word(word, ENV_VAR_TEST_ENV)
    else:
        assert expand_word(word, ENV_VAR_TEST_ENV) == expected


@pytest.mark.parametrize("word, expected, env", words_cases())
def test_words_line(word, expected, env):
    if expected == ["error"]:
        with pytest.raises(ExpansionError):
            expand_words(word, env)
    else:
        assert expand_words(word, env) == expected


def test_corpus_is_complete():
    """Guards against a parser that silently drops lines: FORMAT.md counts them."""
    if _lines("envVarTest") is None or _lines("wordsTest") is None:
        pytest.skip("conformance data not found under %s" % CORPUS)
    assert len(env_var_cases()) == 230  # 238 lines minus 6 comments and 2 blank lines
    assert len(words_cases()) == 24  # 30 lines minus 2 comments and 4 ENV lines
