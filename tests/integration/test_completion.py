"""`completion bash|zsh|fish` in real shells: the bash script registered and its function
called as bash calls it (COMP_WORDS/COMP_CWORD set, COMPREPLY read back) for commands, group
subcommands, run's flags and image and container names from a real store; the zsh and fish
scripts parsed by their shells when those are installed."""

import os
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import REPO, needs_userns

BASH = shutil.which("bash")


@pytest.fixture(scope="module")
def program(cli, tmp_path_factory):
    """`rootless-box` as the scripts call it back: COMP_WORDS[0], an executable on this
    store."""
    path = str(tmp_path_factory.mktemp("bin") / "rootless-box")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nXDG_DATA_HOME='%s' PYTHONPATH='%s' exec '%s' -m rootless_box "
                "\"$@\"\n" % (cli.data_home, REPO, sys.executable))
    os.chmod(path, stat.S_IRWXU)
    return path


def script(cli, shell):
    return cli.ok("completion", shell).out


def complete(cli, program, *lines):
    """Each line (a list of words, the last being completed) -> COMPREPLY as a list."""
    calls = "".join(
        "COMP_WORDS=(%s); COMP_CWORD=%d; COMPREPLY=(); _rootless_box; "
        "printf '%%s\\n' \"${COMPREPLY[@]}\"; echo '<end>'\n"
        % (" ".join("'%s'" % w for w in [program] + list(words)), len(words))
        for words in lines)
    code = script(cli, "bash") + "complete -p rootless-box >&2\n" + calls
    proc = subprocess.run([BASH, "--norc", "--noprofile"], input=code, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "complete -o default -F _rootless_box rootless-box" in proc.stderr
    replies = proc.stdout.split("<end>\n")[:-1]
    return [sorted(w for w in r.split("\n") if w) for r in replies]


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_commands_groups_and_flags(cli, program):
    verbs, groups, subs, run_flags, after_image, tag_cmd, globals_ = complete(
        cli, program, ["r"], ["con"], ["image", "l"], ["run", "--r"],
        ["run", "-it", "img", "--r"], ["container", "run", "--pul"], ["-"])
    assert verbs == ["rename", "restart", "rm", "rmi", "run"]
    assert groups == ["container"]
    assert subs == ["list", "load", "ls"]
    # --runtime is Docker's and listed: given, it is refused with its reason
    assert run_flags == ["--read-only", "--restart", "--rm", "--runtime"]
    # run's flags end at the image: what follows belongs to the container's command
    assert after_image == []
    assert tag_cmd == ["--pull"]
    assert "--debug" in globals_ and "--version" in globals_


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_flags_come_from_every_option_table(cli, program):
    import importlib
    from rootless_box import cli as cli_module
    lines, expected = [], []
    for words, key, module_name, summary in cli_module.table():
        if key is None:  # a group alone: its subcommands are tested above
            continue
        module = importlib.import_module("rootless_box.commands." + module_name)
        cmd = module.command(key, summary)
        lines.append(list(words) + ["-"])
        expected.append(sorted(n for o in cmd.opts if o.help for n in o.names))
    assert complete(cli, program, *lines) == expected


@needs_userns
@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_image_and_container_names(cli, image, program):
    cli.ok("tag", image, "compl/other:v1")
    cli.ok("create", "--name", "compl-stopped", image, "true")
    cli.ok("run", "-d", "--name", "compl-running", image, "sleep", "60")
    try:
        run, rmi, tag_colon, stop, start, rm, logs, inspect, cp, value = complete(
            cli, program, ["run", "--rm", "compl"], ["rmi", "compl/o"],
            ["tag", "compl/other", ":", "v"], ["stop", "compl-"], ["start", "compl-"],
            ["rm", "-f", "compl-stopped", "compl-"], ["container", "logs", "compl-r"],
            ["image", "inspect", "compl"], ["cp", "compl-r"], ["run", "--name", "compl"])
        assert run == ["compl/other:v1"]
        assert rmi == ["compl/other:v1"]
        # `compl/other:v<TAB>`: bash replaces only the part after the colon
        assert tag_colon == ["v1"]
        assert stop == ["compl-running"]
        assert start == ["compl-stopped"]
        assert rm == ["compl-running", "compl-stopped"]
        assert logs == ["compl-running"]
        assert inspect == ["compl/other:v1"]
        assert cp == ["compl-running:"]
        assert "compl/other:v1" not in value  # a flag's value is not the image
        names = cli.ok("__complete", "containers", "running").out.split()
        assert names == ["compl-running"]
        assert "compl/other:v1" in cli.ok("__complete", "images").out.split()
    finally:
        cli("rm", "-f", "compl-running", "compl-stopped")


def test_hidden_callback_costs_no_heavy_imports(cli):
    code = ("import sys; from rootless_box import cli; cli.main(['__complete', 'images']); "
            "cli.main(['__complete', 'containers', 'running']); "
            "print(' '.join(sorted(sys.modules)), file=sys.stderr)")
    # -S: what our code imports, not what the machine's site-packages .pth files import
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          env=dict(cli.env), check=True)
    loaded = set(proc.stderr.split())
    assert not loaded & {"json", "re", "subprocess", "rich", "hashlib", "shutil"}


@pytest.mark.parametrize("shell,check", [("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])])
def test_zsh_and_fish_scripts_parse(cli, tmp_path, shell, check):
    text = script(cli, shell)
    assert "__complete" in text and "read-only" in text
    if shutil.which(check[0]) is None:
        pytest.skip("%s is not installed: its script was generated but not parsed" % shell)
    path = tmp_path / ("rbx." + shell)
    path.write_text(text)
    proc = subprocess.run(check + [str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if shell == "fish":  # fish can also answer a completion without a terminal
        proc = subprocess.run(
            ["fish", "--no-config", "-c", "source %s; complete -C 'rootless-box run --re'; "
             "complete -C 'rootless-box image l'" % path],
            capture_output=True, text=True, timeout=60)
        offered = sorted(line.split("\t")[0] for line in proc.stdout.splitlines())
        assert offered == ["--read-only", "--restart", "list", "load", "ls"], proc.stderr


def test_unknown_shell_is_a_usage_error(cli):
    proc = cli("completion", "tcsh")
    assert proc.returncode == 1 and 'unsupported shell "tcsh"' in proc.err
