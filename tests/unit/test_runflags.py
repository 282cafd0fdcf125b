"""Docker's rules for the run flags ops/runflags.py owns (pure parts)."""

import pytest

from rootless_box.errors import UsageError
from rootless_box.ops import run, runflags
from rootless_box.userns import caps


def opts(**kw):
    return run.RunOptions("img", **kw)


def test_caps_default_add_drop_all():
    assert runflags.capabilities(opts()) == list(caps.DOCKER_DEFAULT)
    got = runflags.capabilities(opts(cap_add=["sys_ptrace", "CAP_net_admin"],
                                     cap_drop=["cap_chown"]))
    assert "CHOWN" not in got and {"SYS_PTRACE", "NET_ADMIN"} <= set(got)
    assert runflags.capabilities(opts(cap_drop=["ALL"], cap_add=["kill"])) == ["KILL"]
    everything = runflags.capabilities(opts(cap_add=["all"], cap_drop=["SYS_ADMIN"]))
    assert "SYS_ADMIN" not in everything and len(everything) == len(runflags.all_caps()) - 1
    assert runflags.capabilities(opts(privileged=True, cap_drop=["ALL"])) == \
        runflags.all_caps()


def test_unknown_capability_names_the_flag():
    with pytest.raises(UsageError, match='"--cap-add" flag: unknown capability: "CAP_BOGUS"'):
        runflags.capabilities(opts(cap_add=["bogus"]))


def test_host_config_uses_dockers_names():
    o = opts(cap_add=["sys_ptrace"], cap_drop=["ALL"])
    host = runflags.host_config(o, runflags.check(o))
    assert host["CapAdd"] == ["CAP_SYS_PTRACE"] and host["CapDrop"] == ["ALL"]
    assert host["Privileged"] is False
