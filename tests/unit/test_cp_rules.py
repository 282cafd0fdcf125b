"""Docker's cp rules as pure functions: which side is the container, and the name a copy's
top entry takes (moby's PrepareArchiveCopy)."""

import pytest

from rootless_box import errors
from rootless_box.ops.cp import asserts_directory, plan_top, split_arg


def test_split_arg():
    assert split_arg("box:/etc/hosts") == ("box", "/etc/hosts")
    assert split_arg("box:etc") == ("box", "etc")
    assert split_arg("/abs:path") == (None, "/abs:path")
    assert split_arg("./file:name.txt") == (None, "./file:name.txt")
    assert split_arg("plain") == (None, "plain")
    assert split_arg("-") == (None, "-")


def test_asserts_directory():
    assert asserts_directory("/a/") and asserts_directory("/a/.")
    assert not asserts_directory("/a") and not asserts_directory("/a/..")


def _dst(exists=False, is_dir=False, asserts=False, base="dst"):
    return {"exists": exists, "is_dir": is_dir, "asserts_dir": asserts, "base": base}


def test_plan_top():
    assert plan_top(False, "f", _dst(True, True)) == "f"
    assert plan_top(True, ".", _dst(True, True)) == "."
    assert plan_top(False, "f", _dst(True, False)) == "dst"
    assert plan_top(True, "d", _dst()) == "dst"
    assert plan_top(True, ".", _dst(asserts=True)) == "dst"
    assert plan_top(False, "f", _dst()) == "dst"
    with pytest.raises(errors.BoxError, match="cannot copy directory") as info:
        plan_top(True, "d", _dst(True, False))
    assert info.value.exit_code == 1
    with pytest.raises(errors.BoxError, match="no such directory"):
        plan_top(False, "f", _dst(asserts=True))
