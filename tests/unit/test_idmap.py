"""Choosing the id mapping from /etc/subuid and /etc/subgid (subuid(5))."""

import os

import pytest

from rootless_box.errors import SetupError
from rootless_box.userns import idmap


@pytest.fixture
def subid(tmp_path, monkeypatch):
    def write(uid_text, gid_text):
        (tmp_path / "subuid").write_text(uid_text)
        (tmp_path / "subgid").write_text(gid_text)
        monkeypatch.setenv("RBX_SUBUID_FILE", str(tmp_path / "subuid"))
        monkeypatch.setenv("RBX_SUBGID_FILE", str(tmp_path / "subgid"))
    monkeypatch.delenv("RBX_USERNS", raising=False)
    return write


def test_read_ranges_by_name_or_uid(tmp_path):
    path = tmp_path / "subuid"
    path.write_text("alice:100000:65536\n1234:300000:10\nbad line\nbob:x:1\nalice:500000:5\n")
    assert idmap.read_ranges(str(path), "alice", 999) == [(100000, 65536), (500000, 5)]
    assert idmap.read_ranges(str(path), "carol", 1234) == [(300000, 10)]
    assert idmap.read_ranges(str(tmp_path / "missing"), "alice", 1) == []


def test_subuid_plan_maps_user_to_root_and_range_above(subid, monkeypatch):
    monkeypatch.setattr(idmap, "find_helper", lambda name: "/usr/bin/" + name)
    name = idmap.user_name(os.getuid())
    subid("%s:200000:65536\n" % name, "%s:300000:1000\n" % name)
    plan = idmap.plan(uid=os.getuid(), gid=os.getgid())
    assert plan.mode == "subuid" and plan.warning is None
    assert plan.uid_map == [(0, os.getuid(), 1), (1, 200000, 65536)]
    assert plan.gid_map == [(0, os.getgid(), 1), (1, 300000, 1000)]
    assert plan.to_host_uid(1000) == 200999 and plan.to_host_uid(70000) is None
    assert plan.to_host_gid(5) == 300004


def test_no_range_falls_back_to_single_with_a_warning_and_the_fix(subid):
    subid("", "")
    plan = idmap.plan()
    assert plan.mode == "single"
    assert plan.uid_map == [(0, os.getuid(), 1)]
    assert "usermod --add-subuids" in plan.warning


def test_subuid_demanded_but_missing_is_an_error(subid):
    subid("", "")
    with pytest.raises(SetupError, match="cannot use a subordinate id mapping"):
        idmap.plan("subuid")


def test_single_chosen_explicitly_has_no_warning(subid, monkeypatch):
    subid("x:1:1\n", "x:1:1\n")
    monkeypatch.setenv("RBX_USERNS", "single")
    plan = idmap.plan()
    assert plan.mode == "single" and plan.warning is None
