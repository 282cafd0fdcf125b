"""Every command the table registers documents itself: a Command with a summary and a usage
line, help text for each flag it shows, `--help` that exits 0 through the CLI; the top-level
and group help are made from the tables; `version` has Docker's document shape."""

import json

import pytest

from rootless_box import cli
from rootless_box.commands import completion, version


def _commands():
    seen = {}
    for words, key, module_name, summary in cli.table():
        if key is None:  # a group alone
            continue
        module = __import__("rootless_box.commands." + module_name, fromlist=["command"])
        seen.setdefault(key, (words, module.command(key, summary)))
    return seen


def test_every_command_documents_itself():
    bad = []
    for key, (_words, cmd) in _commands().items():
        if not cmd.summary or not cmd.usage.startswith(key):
            bad.append("%s: summary %r, usage %r" % (key, cmd.summary, cmd.usage))
        text = cmd.help_text()
        for opt in cmd.opts:
            if opt.help:
                if opt.help != opt.help.strip() or any(n not in text for n in opt.names):
                    bad.append("%s: %s" % (key, opt.names))
            elif "--disable-content-trust" not in opt.names:
                # a flag without help is hidden: only Docker's no-op content trust is
                bad.append("%s: %s has no help" % (key, opt.names))
    assert bad == []


def test_help_of_every_command_line_through_the_cli(capsys):
    lines = [list(words) for words, *_rest in cli.table()]
    assert all([g] in lines for g in cli.GROUPS)
    for words in lines:
        assert cli.main(words + ["--help"]) == 0, words
        out = capsys.readouterr().out
        assert out.startswith("\nUsage:  rootless-box "), words
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    for name in list(cli.COMMANDS) + list(cli.GROUPS):
        assert "\n  %s " % name in top
    for group, subs in cli.GROUPS.items():
        cli.main([group, "--help"])
        text = capsys.readouterr().out
        assert all("\n  %s " % sub in text for sub in subs)


def test_help_shows_defaults_as_docker_does(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert 'Pull image before running ("always", "missing", "never") (default "missing")' \
        in out
    assert "  -t, --tty " in out and "      --network, --net network " in out


def test_version_document_has_dockers_shape(capsys):
    doc = version.document()
    for key in ("Version", "PythonVersion", "GitCommit", "Os", "Arch", "BuildTime"):
        assert key in doc["Client"] and key in doc["Server"]
    assert doc["Client"]["Os"] == "linux" and doc["Server"]["KernelVersion"]
    assert cli.main(["version", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["Client"]["Version"] == doc["Client"]["Version"]
    assert cli.main(["version", "-f", "{{.Client.Version}}"]) == 0
    assert capsys.readouterr().out == doc["Client"]["Version"] + "\n"
    assert cli.main(["version"]) == 0
    out = capsys.readouterr().out
    assert " Python version:" in out and " Kernel:" in out and " Git commit:" in out


@pytest.mark.parametrize("key,kinds,repeat,state", [
    ("run", ["images", "", ""], True, "all"),
    ("exec", ["containers", "", ""], True, "running"),
    ("start", ["containers", "containers"], True, "stopped"),
    ("tag", ["images", "images"], False, "all"),
    ("inspect", ["any", "any"], True, "all"),
    ("cp", ["cpath", "cpath"], False, "all"),
    ("rmi", ["images", "images"], True, "all"),
    ("logs", ["containers"], False, "all"),
])
def test_positionals_come_from_usage_lines(key, kinds, repeat, state):
    _words, cmd = _commands()[key]
    assert completion.positionals(cmd) == (kinds, repeat, state)
