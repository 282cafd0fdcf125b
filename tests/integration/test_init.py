"""`--init`: pid 1 is a real init program (catatonit, or a static tini) exec'd in the
container as the command's own process, under both id mappings, from a foreground `run`, a
zygote's keeper and the monitor's own way (RBX_ZYGOTE=0).

What a user relies on: nothing of the host-side environment of the CLI that started the
container can be read from pid 1's memory by the container's processes (pid 1 was a fork of
the CLI, or of the zygote, whose heap held it); the command's exit status (128+N for a signal);
`stop` reaching the command; orphans reaped; exec, also as another user, and `top` into a
container whose pid 1 runs as another user; 127/126 and their messages for a command that
cannot run, as without --init; a clear error where the init program is unusable.
"""

import os
import secrets

import pytest

from conftest import Cli, assert_one_error, needs_userns, run_in_pty, wait_for
from test_keeper_zygote import ready_zygote

pytestmark = needs_userns

TAG = secrets.token_hex(6)
# long, so that a copy freed by Python goes to malloc and stays readable, as a token or key would
SECRET = "q" * 3000 + "rbxhost-" + TAG + "q" * 3000
# Dumps every readable mapping of pid 1 and counts the secret and a marker known to be in pid
# 1's memory (the container's environment: proof the dump worked). The patterns are built
# from pieces, as this script is in pid 1's memory too (its argv: `catatonit -- sh -c ...`).
READER = ("a=rbxhost; b=%s; while read range perms rest; do "
          "case $perms in r*) ;; *) continue;; esac; "
          "case $rest in *vsyscall*) continue;; esac; "
          "start=$((0x${range%%-*})); end=$((0x${range#*-})); "
          "dd if=/proc/1/mem bs=4096 skip=$((start/4096)) count=$(((end-start)/4096)) "
          "2>/dev/null; done < /proc/1/maps > /tmp/mem; "
          "echo secret=$(grep -c \"$a-$b\" /tmp/mem) marker=$(grep -c \"visible-$b\" /tmp/mem)"
          % TAG)


@pytest.fixture(scope="module", params=["subuid", "single"])
def user(request, tmp_path_factory, rootfs_tar):
    env = {"RBX_USERNS": "single"} if request.param == "single" else {}
    cli = Cli(str(tmp_path_factory.mktemp("data")), env=env)
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return cli


def _counts(text):
    fields = dict(word.split("=", 1) for word in text.split() if "=" in word)
    return int(fields["secret"]), int(fields["marker"])


@pytest.mark.parametrize("as_user", ["0", "1000"])
@pytest.mark.parametrize("way", ["foreground", "zygote", "monitor"])
def test_pid1_memory_holds_nothing_of_the_host_environment(user, tmp_path, as_user, way):
    env = {"REV_SECRET_TOKEN": SECRET, "RBX_ZYGOTE": "0" if way == "monitor" else "1"}
    args = ("--init", "-u", as_user, "-e", "RBX_MARK=visible-" + TAG, "base", "sh", "-c",
            READER)
    if way == "foreground":
        out = user.ok("run", "--rm", *args, env=env, timeout=120).out
    else:
        if way == "zygote":
            ready_zygote(user)
        name = "mem-%s-%s" % (way, as_user)
        user.ok("run", "-d", "--name", name, *args, env=env)
        try:
            out = wait_for(lambda: "secret=" in user.ok("logs", name).out and
                           user.ok("logs", name).out, timeout=120, what="the reader's counts")
        finally:
            user("rm", "-f", name)
    secret, marker = _counts(out)
    assert marker >= 1, out  # pid 1's memory was read
    assert secret == 0, out


def test_exit_status_and_a_signal_death(user):
    assert user("run", "--rm", "--init", "base", "sh", "-c", "exit 7").returncode == 7
    assert user("run", "--rm", "--init", "-u", "1000", "base", "sh", "-c",
                "kill -KILL $$").returncode == 137


def test_stop_reaches_the_command(user):
    user.ok("run", "-d", "--init", "--name", "stopped", "-u", "1000", "base", "sh", "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done")
    try:
        wait_for(lambda: "ready" in user.ok("logs", "stopped").out, what="the trap set")
        user.ok("stop", "-t", "30", "stopped")
        assert user.ok("inspect", "-f", "{{.State.ExitCode}}", "stopped").out == "9\n"
        assert user.ok("logs", "stopped").out == "ready\ngot-term\n"
    finally:
        user("rm", "-f", "stopped")


def test_orphans_are_reaped(user):
    """An orphan is re-parented to pid 1, which must wait for it: it leaves no zombie."""
    script = ("p=$(sh -c 'sleep 2 >/dev/null & echo $!'); "
              "echo parent=$(cut -d' ' -f4 /proc/$p/stat); "
              "i=0; while [ -e /proc/$p ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
              "[ -e /proc/$p ] && echo left=$(cut -d' ' -f3 /proc/$p/stat) || echo reaped")
    out = user.ok("run", "--rm", "--init", "base", "sh", "-c", script, timeout=60).out
    assert out == "parent=1\nreaped\n"


def test_exec_and_top_as_another_user(user):
    user.ok("run", "-d", "--init", "-u", "1000", "--name", "other", "base", "sleep", "300")
    try:
        assert user.ok("exec", "other", "id", "-u").out == "1000\n"
        assert user.ok("exec", "-u", "0", "other", "id", "-u").out == "0\n"
        comm = user.ok("exec", "other", "cat", "/proc/1/comm").out
        assert comm.strip() in ("catatonit", "tini-static", "docker-init", "tini")
        assert "sleep 300" in user.ok("top", "other").out
    finally:
        user("rm", "-f", "other")


def test_a_command_that_cannot_run(user):
    for argv, code, words in ((("nosuch",), 127, 'exec: "nosuch": executable file not found'),
                              (("/nosuch",), 127, "exec /nosuch: no such file or directory"),
                              (("/etc/passwd",), 126, "exec /etc/passwd: permission denied"),
                              (("/etc",), 126, "exec /etc: permission denied")):
        proc = user("run", "--rm", "--init", "base", *argv)
        assert_one_error(proc, code)
        assert words in proc.err
        assert_one_error(user("run", "--rm", "base", *argv), code)


def test_an_unusable_init_program_is_an_error(user, tmp_path):
    script = tmp_path / "init.sh"
    script.write_text("#!/bin/sh\nexec \"$@\"\n")
    script.chmod(0o755)
    for path, words in ((str(tmp_path / "missing"), "not an executable file"),
                        (str(script), "not an ELF program")):
        proc = user("run", "--rm", "--init", "base", "true", env={"RBX_INIT_PATH": path})
        assert_one_error(proc, 125)
        assert words in proc.err and "hint: install catatonit" in proc.err
    assert user.ok("ps", "-a", "-q").out == ""
    if os.path.exists("/usr/bin/catatonit"):
        assert user("run", "--rm", "--init", "base", "true",
                    env={"RBX_INIT_PATH": "/usr/bin/catatonit"}).returncode == 0


def test_init_through_the_engine_api(user, tmp_path):
    """HostConfig.Init: the same pid 1, started by the service, whose environment it must not
    carry either."""
    import json
    from test_api import Service
    svc = Service(user, str(tmp_path / "run" / "docker.sock"),
                  env={"REV_SECRET_TOKEN": SECRET})
    try:
        status, _h, body = svc.request("POST", "/containers/create?name=viaapi", {
            "Image": "base", "Cmd": ["sh", "-c", READER], "User": "1000",
            "Env": ["RBX_MARK=visible-" + TAG], "HostConfig": {"Init": True}})
        assert status == 201, body
        cid = json.loads(body)["Id"]
        assert svc.request("POST", "/containers/%s/start" % cid)[0] == 204
        assert user.ok("wait", "viaapi", timeout=120).out == "0\n"
        out = user.ok("logs", "viaapi").out
        secret, marker = _counts(out)
        assert marker >= 1 and secret == 0, out
        assert user.ok("inspect", "-f", "{{.HostConfig.Init}}", "viaapi").out == "true\n"
    finally:
        svc.stop()
        user("rm", "-f", "viaapi")


def test_init_on_a_terminal(user):
    """-it: the command is the terminal's foreground process group under the init (^C and
    its job control reach it), and its status is run's."""
    text, status = run_in_pty(user, ("run", "--rm", "-it", "--init", "base", "sh", "-c",
                                     "tty; set -- $(cat /proc/$$/stat); "
                                     "[ $5 = $8 ] && echo foreground; exit 5"))
    assert "/dev/pts/0" in text and "foreground" in text and status == 5, text
