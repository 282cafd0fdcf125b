"""Helpers in user namespaces, one or many at once: results in order, a failure raised after
every helper ended, nothing left running."""

import os

import pytest

from conftest import needs_userns
from rootless_box.errors import BoxError
from rootless_box.userns import idmap as idmaps
from rootless_box.userns.launcher import run_in_userns, run_in_userns_many

pytestmark = needs_userns


def _whoami(tag):
    return [tag, os.getuid(), os.getpid()]


def _fail_on(tag):
    if tag == "bad":
        raise BoxError("helper %s failed" % tag)
    return tag


def test_helpers_run_as_root_of_their_namespace_in_order():
    idmap = idmaps.plan()
    assert run_in_userns(_whoami, idmap, "one")[:2] == ["one", 0]
    results = run_in_userns_many(_whoami, idmap, [(str(i),) for i in range(5)], jobs=2)
    assert [r[0] for r in results] == ["0", "1", "2", "3", "4"]
    assert all(r[1] == 0 for r in results) and len({r[2] for r in results}) == 5


def test_a_failing_helper_is_raised_after_all_have_ended():
    idmap = idmaps.plan()
    with pytest.raises(BoxError, match="helper bad failed"):
        run_in_userns_many(_fail_on, idmap, [("a",), ("bad",), ("c",)], jobs=2)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child of ours is left unwaited
