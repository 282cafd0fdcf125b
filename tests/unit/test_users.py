"""-u resolution against an image's passwd and group files (runc/Docker rules)."""

import pytest

from rootless_box.errors import UsageError
from rootless_box.oci.users import resolve

PASSWD = """root:x:0:0:root:/root:/bin/sh
# comment
app:x:1000:1000:app:/home/app:/bin/sh
svc:x:1001:1001::/srv:/bin/false
"""
GROUP = """root:x:0:
app:x:1000:
svc:x:1001:
wheel:x:10:app,svc
audio:x:29:app
"""


def test_default_is_root_with_home():
    user = resolve("", PASSWD, GROUP)
    assert (user.uid, user.gid, user.home) == (0, 0, "/root")


def test_name_gives_uid_gid_home_and_supplementary_groups():
    user = resolve("app", PASSWD, GROUP)
    assert (user.uid, user.gid, user.home) == (1000, 1000, "/home/app")
    assert user.groups == [10, 29]


def test_numeric_uid_known_and_unknown():
    assert resolve("1001", PASSWD, GROUP).home == "/srv"
    unknown = resolve("4242", PASSWD, GROUP)
    assert (unknown.uid, unknown.gid, unknown.home, unknown.groups) == (4242, 0, "/", [])


def test_explicit_group_by_name_and_number():
    assert resolve("app:wheel", PASSWD, GROUP).gid == 10
    assert resolve("1000:77", PASSWD, GROUP).gid == 77


@pytest.mark.parametrize("spec,match", [("nobody", "unable to find user nobody"),
                                        ("app:nogroup", "unable to find group nogroup"),
                                        (":1", "invalid user")])
def test_unknown_names_are_errors(spec, match):
    with pytest.raises(UsageError, match=match):
        resolve(spec, PASSWD, GROUP)


def test_no_passwd_file_still_allows_numeric_ids():
    user = resolve("1000:1000", "", "")
    assert (user.uid, user.gid, user.home) == (1000, 1000, "/")
