"""Health checks with no daemon: --health-* and the image's HEALTHCHECK run by a checker beside
the container's keeper; State.Health in inspect, `(healthy)` in ps, `ps --filter health=`;
a failing check turns unhealthy after its retries, a passing one healthy."""

import os

from conftest import assert_one_error, inspect1, needs_userns, wait_for

pytestmark = needs_userns


def health(cli, cid):
    return inspect1(cli, cid)["State"].get("Health") or {}


def checkers(cid):
    """Our processes checking container cid."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                words = f.read().split(b"\0")
        except OSError:
            continue
        if b"__health" in words and cid.encode() in words:
            found.append(pid)
    return found


def monitor_left(cli, cid):
    """rm -f, then wait until the container's monitor has left: a checker's processes that
    came back to the monitor as orphans (it is a subreaper) would hold the container's pid
    namespace, and so the monitor, for ever."""
    pid = inspect1(cli, cid)["State"]["MonitorPid"]
    cli.ok("rm", "-f", cid)
    wait_for(lambda: not os.path.exists("/proc/%d" % pid) or
             open("/proc/%d/stat" % pid).read().split()[2] == "Z",
             what="the monitor of %s to leave" % cid)


def test_failing_check_turns_unhealthy_after_its_retries(cli, image):
    cid = cli.ok("run", "-d", "--health-cmd", "echo nope; exit 1", "--health-interval",
                 "100ms", "--health-retries", "3", image, "sleep", "60").out.strip()
    try:
        assert health(cli, cid).get("Status") in ("starting", None)
        got = wait_for(lambda: health(cli, cid).get("Status") == "unhealthy" and
                       health(cli, cid), what="unhealthy")
        assert got["FailingStreak"] >= 3
        assert got["Log"][-1]["ExitCode"] == 1 and got["Log"][-1]["Output"] == "nope\n"
        assert len(got["Log"]) <= 5
        assert "(unhealthy)" in cli.ok("ps", "--format", "{{.Status}}", "--filter",
                                       "id=" + cid).out
        assert cli.ok("ps", "-q", "--no-trunc", "--filter", "health=unhealthy").out.split() \
            == [cid]
        assert cli.ok("ps", "-q", "--filter", "health=healthy").out == ""
        monitor_left(cli, cid)
    finally:
        cli("rm", "-f", cid)
    wait_for(lambda: not checkers(cid), what="the checker to leave with its container")


def test_passing_check_turns_healthy(cli, image):
    cid = cli.ok("run", "-d", "--health-cmd", "test -e /tmp/ready", "--health-interval",
                 "100ms", "--health-retries", "1000", image, "sh", "-c",
                 "sleep 0.5; touch /tmp/ready; sleep 60").out.strip()
    try:
        wait_for(lambda: health(cli, cid).get("Status") == "healthy", what="healthy")
        assert health(cli, cid)["FailingStreak"] == 0
        assert "(healthy)" in cli.ok("ps", "--filter", "health=healthy").out
        assert cli.ok("ps", "-q", "--no-trunc", "--filter", "health=healthy").out.split() == \
            [cid]
    finally:
        cli("rm", "-f", cid)


def test_timeout_and_the_images_healthcheck(cli, image, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM %s\nHEALTHCHECK --interval=100ms --timeout=300ms --retries=1 CMD sleep 5\n"
        % image)
    cli.ok("build", "-q", "-t", "slowcheck:1", str(tmp_path))
    cid = cli.ok("run", "-d", "slowcheck:1", "sleep", "60").out.strip()
    try:
        got = wait_for(lambda: health(cli, cid).get("Status") == "unhealthy" and
                       health(cli, cid), what="unhealthy by timeout")
        assert got["Log"][0]["ExitCode"] == -1
        assert "exceeded timeout" in got["Log"][0]["Output"]
        assert inspect1(cli, cid)["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "sleep 5"]
        monitor_left(cli, cid)  # checks killed at their timeout leave nothing behind
    finally:
        cli("rm", "-f", cid)
    cid = cli.ok("create", "--no-healthcheck", "slowcheck:1", "true").out.strip()
    try:
        assert inspect1(cli, cid)["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    finally:
        cli("rm", cid)


def test_a_foreground_container_is_checked_too(cli, image):
    proc = cli.ok("run", "--rm", "--health-cmd", "touch /tmp/checked", "--health-interval",
                  "100ms", image, "sh", "-c",
                  "while [ ! -e /tmp/checked ]; do sleep 0.05; done; echo checked")
    assert proc.out == "checked\n"


def test_start_period_and_start_interval(cli, image):
    """In the start period failures do not count (still starting, no streak) and checks come
    every --health-start-interval, not every --health-interval."""
    cid = cli.ok("run", "-d", "--health-cmd", "exit 1", "--health-retries", "1",
                 "--health-interval", "1h", "--health-start-period", "1h",
                 "--health-start-interval", "100ms", image, "sleep", "60").out.strip()
    try:
        got = wait_for(lambda: len(health(cli, cid).get("Log") or ()) >= 3 and
                       health(cli, cid), what="three checks in the start period")
        assert got["Status"] == "starting" and got["FailingStreak"] == 0, got
        check = inspect1(cli, cid)["Config"]["Healthcheck"]
        assert check["StartPeriod"] == 3600 * 10**9 and check["StartInterval"] == 10**8
    finally:
        cli("rm", "-f", cid)


def test_bad_health_values_are_one_error(cli, image):
    for args in (("--health-interval", "soon"), ("--health-retries", "-1"),
                 ("--health-timeout", "10ns"),
                 ("--no-healthcheck", "--health-cmd", "true")):
        assert_one_error(cli("run", "--rm", *args, image, "true"), 125)
    assert_one_error(cli("ps", "--filter", "health=sick"), 1)
