"""--format templates print what Docker's Go templates print."""

import pytest

from rootless_box.commands._common import human_duration
from rootless_box.commands._template import compile_template, render
from rootless_box.errors import UsageError

OBJ = {"Id": "sha256:abc", "Config": {"Env": ["A=1", "B=2"], "Cmd": None,
                                      "Labels": {"b": "2", "a": "1"}, "Tty": False},
       "State": {"ExitCode": 3, "Running": True}, "Mounts": [{"Source": "/s1"},
                                                             {"Source": "/s2"}]}


@pytest.mark.parametrize("template,expected", [
    ("{{.Id}}", "sha256:abc"),
    ("id={{ .Id }} code={{.State.ExitCode}}", "id=sha256:abc code=3"),
    ("{{.Config.Env}}", "[A=1 B=2]"),
    ("{{.Config.Labels}}", "map[a:1 b:2]"),
    ("{{.Config.Cmd}}", "<nil>"),
    ("{{.Nope}}", "<no value>"),
    ("{{.Config.Tty}} {{.State.Running}}", "false true"),
    ('{{json .Config.Labels}}', '{"b":"2","a":"1"}'),
    ('{{index .Config.Labels "a"}}', "1"),
    ("{{index .Config.Env 1}}", "B=2"),
    ("{{len .Mounts}}", "2"),
    ('{{join .Config.Env ","}}', "A=1,B=2"),
    ("{{range .Mounts}}{{.Source}};{{end}}", "/s1;/s2;"),
    ("{{range .Config.Cmd}}x{{else}}empty{{end}}", "empty"),
    ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
    ("{{if .Config.Tty}}tty{{end}}.", "."),
    ("{{upper .Id}}", "SHA256:ABC"),
])
def test_templates(template, expected):
    assert render(compile_template(template), OBJ) == expected


@pytest.mark.parametrize("bad", ["{{.Id", "{{range .Mounts}}x", "{{end}}", "{{nosuch .Id}}",
                                 '{{index .X "unterminated}}'])
def test_bad_templates_are_usage_errors(bad):
    with pytest.raises(UsageError, match="template"):
        render(compile_template(bad), OBJ)


def test_human_duration_words_like_docker():
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(1.2) == "1 second"
    assert human_duration(30) == "30 seconds"
    assert human_duration(90) == "About a minute"
    assert human_duration(3 * 3600) == "3 hours"

