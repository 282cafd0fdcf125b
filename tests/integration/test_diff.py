"""`diff`: Docker's A/C/D list of a container's changes against its image, for the overlay and
the copy driver, running or stopped, under both mappings; nothing of what is only mounted
onto (/etc/hosts, /proc, volumes) shows."""

import pytest

from conftest import Cli, assert_one_error, needs_userns

pytestmark = needs_userns

CHANGES = ("touch /tmp/new; mkdir -p /made/sub; echo x > /made/sub/f; rm /bin/cat; "
           "echo more >> /etc/group; mkdir -p /vol/inner")
EXPECTED = ["A /made", "A /made/sub", "A /made/sub/f", "C /etc", "C /etc/group", "C /tmp",
            "A /tmp/new"]


def lines(cli, name):
    return cli.ok("diff", name).out.splitlines()


@pytest.fixture(scope="module", params=["auto", "copy", "single"])
def user(request, tmp_path_factory, rootfs_tar):
    env = {"RBX_STORAGE_DRIVER": "copy"} if request.param == "copy" else \
        {"RBX_USERNS": "single"} if request.param == "single" else {}
    cli = Cli(str(tmp_path_factory.mktemp("data")), env=env)
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return cli


def test_diff_of_a_stopped_container(user, tmp_path):
    name = "d-%s" % tmp_path.name[-8:]
    user.ok("run", "--name", name, "-v", "/vol", "base", "sh", "-c", CHANGES)
    try:
        got = lines(user, name)
        cat = [line for line in got if line.endswith("/cat")]
        assert len(cat) == 1 and cat[0].startswith("D ")
        assert [line for line in got if line not in cat and "/bin" not in line and
                not line.endswith("/usr")] == sorted(EXPECTED, key=lambda l: l[2:])
        assert not [line for line in got if line[2:].startswith(("/vol", "/proc", "/dev",
                                                                 "/sys", "/etc/hosts",
                                                                 "/etc/hostname",
                                                                 "/etc/resolv.conf"))]
    finally:
        user("rm", "-f", name)


def test_diff_of_a_running_container_and_of_none(user):
    cid = user.ok("run", "-d", "base", "sh", "-c", "touch /live; sleep 30").out.strip()
    try:
        user.ok("exec", cid, "test", "-e", "/live")
        assert lines(user, cid) == ["A /live"]
    finally:
        user("rm", "-f", cid)
    clean = user.ok("create", "base", "true").out.strip()
    try:
        assert lines(user, clean) == []
    finally:
        user("rm", clean)
    assert_one_error(user("diff", "no-such-container"), 1)
