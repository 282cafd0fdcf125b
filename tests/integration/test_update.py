"""`update`: a restart policy changed on a running container takes effect at its next exit;
limits are applied where a delegated cgroup v2 subtree exists and refused, naming it, where
not; Docker's refusals (an --rm container's policy, no flag at all)."""

import pytest

from conftest import assert_one_error, inspect1, needs_userns, wait_for

pytestmark = needs_userns


def test_restart_policy_takes_effect_at_the_next_exit(cli, image, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    gate.chmod(0o777)
    cid = cli.ok("run", "-d", "-v", "%s:/w" % gate, image, "sh", "-c",
                 "while [ ! -e /w/go ]; do sleep 0.05; done; rm /w/go; exit 3").out.strip()
    try:
        assert cli.ok("update", "--restart", "on-failure:1", cid).out == cid + "\n"
        assert inspect1(cli, cid)["HostConfig"]["RestartPolicy"] == \
            {"Name": "on-failure", "MaximumRetryCount": 1}
        (gate / "go").write_text("")
        wait_for(lambda: inspect1(cli, cid)["RestartCount"] == 1, what="the restart")
        (gate / "go").write_text("")
        wait_for(lambda: inspect1(cli, cid)["State"]["Status"] == "exited", what="the end")
        assert inspect1(cli, cid)["State"]["ExitCode"] == 3
        assert inspect1(cli, cid)["RestartCount"] == 1  # on-failure:1: once, not twice
    finally:
        cli("rm", "-f", cid)


def test_update_refusals(cli, image):
    rm = cli.ok("create", "--rm", image, "true").out.strip()
    try:
        proc = cli("update", "--restart", "always", rm)
        assert_one_error(proc, 1)
        assert "AutoRemove" in proc.err
    finally:
        cli("rm", rm)
    cid = cli.ok("create", image, "true").out.strip()
    try:
        assert_one_error(cli("update", cid), 1)
        assert_one_error(cli("update", "--restart", "sometimes", cid), 1)
        assert_one_error(cli("update", "--restart", "always", "no-such-container"), 1)
        assert_one_error(cli("update", "--cpus", "-1", cid), 1)
    finally:
        cli("rm", cid)


def _delegated():
    from rootless_box.ops import cgroups
    where, detail = cgroups.delegated()
    return where is not None and {"memory", "pids"} <= set(detail), detail


def test_limits_without_delegation_are_refused(cli, image):
    usable, detail = _delegated()
    if usable:
        pytest.skip("this machine delegates cgroup v2: test_limits_are_applied runs")
    cid = cli.ok("run", "-d", image, "sleep", "30").out.strip()
    try:
        proc = cli("update", "-m", "64m", cid)
        assert_one_error(proc, 1)
        assert "cgroup v2" in proc.err
        assert inspect1(cli, cid)["HostConfig"]["Memory"] == 0
    finally:
        cli("rm", "-f", cid)


def test_limits_are_applied(cli, image):
    usable, detail = _delegated()
    if not usable:
        pytest.skip("no delegated cgroup v2 subtree with memory and pids here: %s" % detail)
    cid = cli.ok("run", "-d", "-m", "32m", image, "sleep", "30").out.strip()
    try:
        cli.ok("update", "-m", "64m", "--pids-limit", "20", cid)
        path = inspect1(cli, cid)["RootlessBox"]["CgroupPath"]
        assert open(path + "/memory.max").read().strip() == str(64 << 20)
        assert open(path + "/pids.max").read().strip() == "20"
        assert inspect1(cli, cid)["HostConfig"]["PidsLimit"] == 20
    finally:
        cli("rm", "-f", cid)
