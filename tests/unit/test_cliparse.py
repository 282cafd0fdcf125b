"""Docker's CLI grammar: clusters, attached values, booleans, options stopping at the image."""

import pytest

from rootless_box import cliparse
from rootless_box.cliparse import FLAG, LIST, VALUE, Command, Opt
from rootless_box.commands import run as run_cmd
from rootless_box.errors import UsageError


def run_command():
    return run_cmd.command("run", "Run")


def test_run_options_stop_at_the_image():
    res = cliparse.parse(run_command(), ["--rm", "-it", "img", "sh", "-c", "echo -e x", "--rm"])
    assert res.rm and res.interactive and res.tty
    assert res.args == ["img", "sh", "-c", "echo -e x", "--rm"]


def test_attached_and_separate_values_and_repeats():
    res = cliparse.parse(run_command(), ["-eA=1", "--env=B=2", "-e", "C=3", "-w/x", "--name",
                                         "n", "-v", "/a:/b:ro", "img"])
    assert res.env == ["A=1", "B=2", "C=3"]
    assert res.workdir == "/x" and res.name == "n" and res.volume == ["/a:/b:ro"]


def test_cluster_ending_in_a_value_option_takes_the_next_word():
    res = cliparse.parse(run_command(), ["-ite", "K=V", "img"])
    assert res.interactive and res.tty and res.env == ["K=V"]


def test_boolean_flags_accept_explicit_values():
    res = cliparse.parse(run_command(), ["--rm=false", "--read-only=true", "img"])
    assert res.rm is False and res.read_only is True
    with pytest.raises(UsageError, match="must be true or false"):
        cliparse.parse(run_command(), ["--rm=maybe", "img"])


def test_double_dash_ends_options():
    cmd = Command("x", "x", "x", [Opt("-f", FLAG, "f")])
    res = cliparse.parse(cmd, ["--", "-f"])
    assert res.f is False and res.args == ["-f"]


def test_interspersed_commands_take_flags_after_positionals():
    cmd = Command("rm", "rm", "rm", [Opt("-f,--force", FLAG, "force")], min_args=1)
    res = cliparse.parse(cmd, ["a", "-f", "b"])
    assert res.force and res.args == ["a", "b"]


@pytest.mark.parametrize("argv,message", [
    (["--nope", "img"], "unknown flag: --nope"),
    (["-Z", "img"], "unknown flag: -Z"),
    (["--name"], "flag needs an argument: --name"),
    (["-e"], "flag needs an argument"),
])
def test_bad_flags_are_usage_errors(argv, message):
    with pytest.raises(UsageError, match=message):
        cliparse.parse(run_command(), argv)


def test_arity():
    cmd = Command("tag", "tag SRC DST", "t", [], min_args=2, max_args=2)
    with pytest.raises(UsageError, match="requires exactly 2 arguments"):
        cliparse.check_arity(cmd, cliparse.parse(cmd, ["a"]))
    cliparse.check_arity(cmd, cliparse.parse(cmd, ["a", "b"]))


def test_help_lists_every_option_with_its_wording():
    text = run_command().help_text()
    assert "Usage:  rootless-box run [OPTIONS] IMAGE [COMMAND] [ARG...]" in text
    for flag in ("--rm", "-e, --env", "-v, --volume", "-u, --user", "--read-only", "--init",
                 "-t, --tty", "-i, --interactive", "--network", "--tmpfs", "--entrypoint"):
        assert flag in text


def test_list_and_value_defaults_are_fresh_per_parse():
    cmd = Command("x", "x", "x", [Opt("-e", LIST, "e"), Opt("-n", VALUE, "n")])
    first = cliparse.parse(cmd, ["-e", "a"])
    second = cliparse.parse(cmd, [])
    assert first.e == ["a"] and second.e == [] and second.n is None
