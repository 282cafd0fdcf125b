"""The Dockerfile parser (pure): heredocs, directives, the escape character, ONBUILD, JSON and
shell forms, line numbers and the errors a user sees."""

import pytest

from rootless_box.dockerfile.parser import (DockerfileError, Heredoc, Instruction, dump, go_quote,
                                       parse)
from rootless_box.errors import BoxError


def only(text):
    """The single instruction after a `FROM a` line."""
    instructions = parse("FROM a\n" + text).instructions
    assert len(instructions) == 2
    return instructions[1]


def error_of(text, filename="Dockerfile"):
    with pytest.raises(DockerfileError) as info:
        parse(text, filename)
    return info.value


# --- heredocs -----------------------------------------------------------------------------

def test_heredoc_body_is_read_and_dumped_as_the_line_only():
    dockerfile = parse("FROM a\nRUN <<EOF\necho hi\n# not a comment \\\nEOF\nRUN next\n")
    run = dockerfile.instructions[1]
    assert run.heredocs == [Heredoc("EOF", "echo hi\n# not a comment \\\n", True, False)]
    assert (run.start_line, run.end_line) == (2, 5)
    assert dump(dockerfile) == '(from "a")\n(run "<<EOF")\n(run "next")'


def test_several_heredocs_on_one_line_are_read_in_order():
    copy = only("COPY <<X <<Y /dest\nY\nX\nX\nY\n")
    assert [(h.name, h.content) for h in copy.heredocs] == [("X", "Y\n"), ("Y", "X\n")]
    assert copy.args == ["<<X", "<<Y", "/dest"]
    assert copy.end_line == 6


def test_chomp_strips_tabs_from_the_terminator_but_keeps_them_in_the_body():
    run = only("RUN <<-EOF\n\tbody\n\tEOF\n")
    assert run.heredocs == [Heredoc("EOF", "\tbody\n", True, True)]


@pytest.mark.parametrize("marker, name, expand", [
    ("<<'EOF'", "EOF", False),
    ('<<"EOF"', "EOF", False),
    ("<<-'EOF'", "EOF", False),
    ("<<E'O'F", "EOF", False),
    ("<<EOF", "EOF", True),
    ("<<  EOF", "EOF", True),
    ("<<eo\\'f", "eo'f", True),
])
def test_quoted_delimiter_disables_expansion(marker, name, expand):
    run = only("RUN cat %s\n$X\n%s\n" % (marker, name))
    assert [(h.name, h.content, h.expand) for h in run.heredocs] == [(name, "$X\n", expand)]


def test_file_descriptor_and_flags_with_heredoc():
    dockerfile = parse("FROM a\nRUN --mount=type=cache,target=/foo 3<<MOUNT\nx\nMOUNT\n")
    run = dockerfile.instructions[1]
    assert run.heredocs[0].fd == 3
    assert dump(dockerfile).splitlines()[1] == \
        '(run ["--mount=type=cache,target=/foo"] "3<<MOUNT")'


@pytest.mark.parametrize("line", ['RUN ["<<EOF"]', 'RUN "<<EOF"', "RUN '<<EOF'",
                                  "USER <<EOF", "RUN echo <<'EOF"])
def test_not_heredocs(line):
    assert only(line + "\n").heredocs == []


def test_heredoc_in_onbuild_trigger():
    onbuild = only("ONBUILD RUN <<EOF\nhi\nEOF\n")
    assert onbuild.heredocs == [Heredoc("EOF", "hi\n", True, False)]
    assert onbuild.end_line == 4


def test_missing_terminator_is_an_error_at_the_instruction():
    error = error_of("FROM a\nRUN <<EOF\necho hi\nEO\n")
    assert str(error) == "Dockerfile:2: unterminated heredoc"


# --- directives and the escape character --------------------------------------------------

def test_directives_are_read_case_insensitively_at_the_top():
    dockerfile = parse("# syntax=docker/dockerfile:1\n# ESCAPE = `\n# check=skip=all\n"
                       "FROM a\n")
    assert dockerfile.directives == {"syntax": "docker/dockerfile:1", "escape": "`",
                                     "check": "skip=all"}
    assert dockerfile.escape == "`"


def test_directive_after_a_comment_is_only_a_comment():
    dockerfile = parse("# hello\n# escape=`\nFROM a\n")
    assert dockerfile.directives == {}
    assert dockerfile.escape == "\\"


def test_backtick_escape_continues_lines_and_keeps_backslashes():
    dockerfile = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\nENV P=c:\\x` y\n")
    run, env = dockerfile.instructions[1:]
    assert run.args == ["dir c:\\   /w"]
    assert (run.start_line, run.end_line) == (3, 4)
    assert env.args == ["P", "c:\\x` y", "="]


@pytest.mark.parametrize("text, reason, line", [
    ("# escape=x\nFROM a\n", "invalid escape token 'x' does not match ` or \\", 1),
    ("# escape=`\n# escape=\\\nFROM a\n", "only one escape parser directive can be used", 2),
])
def test_bad_directives(text, reason, line):
    error = error_of(text)
    assert (error.reason, error.line) == (reason, line)


# --- continuations ------------------------------------------------------------------------

def test_continuation_skips_comments_and_blank_lines_and_keeps_indent():
    dockerfile = parse("FROM a\nRUN a \\\n# c \\\n\n   b\\\n\\\nc\n")
    run = dockerfile.instructions[1]
    assert run.args == ["a    bc"]
    assert (run.start_line, run.end_line) == (2, 7)


def test_escaped_escape_ends_the_line_and_eof_ends_a_continuation():
    dockerfile = parse("FROM a\nENV C x\\\\\nRUN y \\")
    assert [i.args for i in dockerfile.instructions[1:]] == [["C", "x\\\\", ""], ["y"]]


def test_hash_inside_an_instruction_is_not_a_comment():
    assert only("RUN echo # hi\n").args == ["echo # hi"]


# --- forms and instruction rules ----------------------------------------------------------

@pytest.mark.parametrize("line, args, is_json", [
    ('CMD ["a", "b c"]', ["a", "b c"], True),
    ("CMD a  b", ["a  b"], False),
    ("CMD []", [], True),
    ("CMD ['a']", ["['a']"], False),
    ("CMD [NaN]", ["[NaN]"], False),
    ('ENTRYPOINT ["x"', ['["x"'], False),
    ('COPY "a b" c', ['"a', 'b"', "c"], False),
    ('VOLUME ["/v"]', ["/v"], True),
    ("EXPOSE 80\t443/udp", ["80", "443/udp"], False),
    ("WORKDIR /a b", ["/a b"], False),
    ('ARG a="1 2" b', ['a="1 2"', "b"], False),
    ("LABEL k v w", ["k", "v w", ""], False),
    ('ENV a=1 b="2 3"', ["a", "1", "=", "b", '"2 3"', "="], False),
    ("HEALTHCHECK NONE", ["NONE"], False),
    ('HEALTHCHECK CMD ["c"]', ["CMD", "c"], True),
])
def test_argument_rules(line, args, is_json):
    instruction = only(line + "\n")
    assert (instruction.args, instruction.json) == (args, is_json)


def test_flags_are_split_for_every_instruction():
    instruction = only('COPY --chown="a b" --from=x -- --not-a-flag /d\n')
    assert instruction.flags == ["--chown=a b", "--from=x"]
    assert instruction.args == ["--not-a-flag", "/d"]
    assert parse("FROM --platform=$P img AS b\n").instructions[0].flags == ["--platform=$P"]


def test_onbuild_holds_the_trigger_as_a_nested_instruction():
    dockerfile = parse("FROM a\nOnBuild COPY --from=x a b\n")
    onbuild = dockerfile.instructions[1]
    assert onbuild.cmd == "onbuild"
    assert isinstance(onbuild.trigger, Instruction)
    assert (onbuild.trigger.cmd, onbuild.trigger.flags, onbuild.trigger.args) == (
        "copy", ["--from=x"], ["a", "b"])
    assert onbuild.trigger.start_line == 2
    assert dump(dockerfile).splitlines()[1] == '(onbuild (copy ["--from=x"] "a" "b"))'


def test_original_text_and_lower_case_keyword():
    run = only("  Run  echo hi \\\n  there\n")
    assert run.cmd == "run"
    assert run.original == "Run  echo hi   there"


# --- line numbers -------------------------------------------------------------------------

def test_line_numbers_are_physical_and_one_based():
    dockerfile = parse("\n# comment\nFROM a\n\nRUN a \\\n\n  b\n\n\n")
    assert [(i.start_line, i.end_line) for i in dockerfile.instructions] == [(3, 3), (5, 7)]
    assert (dockerfile.start_line, dockerfile.end_line) == (3, 7)


def test_byte_order_mark_is_ignored():
    assert parse(b"\xef\xbb\xbfFROM a\n").instructions[0].args == ["a"]


# --- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("FROM a\nFROBNICATE x\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
    ("FROM a\nonbuild frobnicate\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
    ("FROM a\n\nENV PATH\n", "Dockerfile:3: ENV must have two arguments"),
    ("FROM a\nLABEL a=b c\n",
     'Dockerfile:2: Syntax error - can\'t find = in "c". Must be of the form: name=value'),
    ('FROM a\nCMD ["a", ["b"]]\n', "Dockerfile:2: when using JSON array syntax, arrays must "
                                   "be comprised of strings only"),
    ("", "Dockerfile:1: file with no instructions"),
    ("# just\n\n# comments\n", "Dockerfile:3: file with no instructions"),
    ("FROM a\nONBUILD ONBUILD RUN x\n",
     "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM a\nRUN " + "x" * 65536 + "\n",
     "Dockerfile:2: dockerfile line greater than max allowed size of 65535"),
])
def test_errors_name_the_file_and_line(text, message):
    error = error_of(text)
    assert str(error) == message
    assert isinstance(error, BoxError) and error.exit_code == 1


def test_error_uses_the_given_file_name():
    assert str(error_of("FROM a\nBAD\n", "sub/Containerfile")) == \
        "sub/Containerfile:2: unknown instruction: BAD"


# --- dump quoting -------------------------------------------------------------------------

@pytest.mark.parametrize("value, quoted", [
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("\x00\x07\t\x7f", '"\\x00\\a\\t\\x7f"'),
    ("é♥\u00a0\u200b\U000e0001", '"é♥\\u00a0\\u200b\\U000e0001"'),
    (b"\xff".decode("utf-8", "surrogateescape"), '"\\xff"'),
])
def test_go_quote(value, quoted):
    assert go_quote(value) == quoted
