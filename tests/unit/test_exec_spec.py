"""Docker's exec rules as ops/exec.build_spec applies them (no namespaces involved)."""

import pytest

from rootless_box import errors
from rootless_box.ops.exec import ExecOptions, build_spec


class FakeTarget:
    def __init__(self, idmap_mode="subuid"):
        self.idmap_mode = idmap_mode


RECORD = {"Config": {"Env": ["PATH=/bin", "HOSTNAME=h", "TERM=vt100", "A=container"],
                     "WorkingDir": "/srv", "User": "app"}}


def spec(*command, target=None, **kw):
    return build_spec(RECORD, ExecOptions("c", command or ("sh",), **kw),
                      target or FakeTarget())


def test_defaults_come_from_the_container():
    s = spec("id")
    assert (s["argv"], s["cwd"], s["user"]) == (["id"], "/srv", "app")
    assert s["env"] == ["PATH=/bin", "HOSTNAME=h", "TERM=vt100", "A=container"]
    assert (s["tty"], s["stdin"]) == (False, False)


def test_e_wins_and_the_containers_term_wins_over_the_tty_default():
    s = spec(env=["A=exec", "B=new"], tty=True, workdir="/tmp", user="0")
    env = dict(e.split("=", 1) for e in s["env"])
    assert env == {"PATH": "/bin", "HOSTNAME": "h", "TERM": "vt100", "A": "exec", "B": "new"}
    assert (s["cwd"], s["user"], s["tty"]) == ("/tmp", "0", True)
    bare = build_spec({"Config": {}}, ExecOptions("c", ["sh"], tty=True), FakeTarget())
    assert "TERM=xterm" in bare["env"] and any(e.startswith("PATH=") for e in bare["env"])


def test_detach_drops_tty_and_stdin():
    s = spec(tty=True, interactive=True, detach=True)
    assert (s["tty"], s["stdin"]) == (False, False)


def test_refusals():
    with pytest.raises(errors.UsageError):
        spec(workdir="relative")
    # a user under the single-id mapping is the fake root's to answer for (issue 22)
    assert spec(target=FakeTarget("single"))["user"]
    assert spec(user="root", target=FakeTarget("single"))["user"] == "root"
