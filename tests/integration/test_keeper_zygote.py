"""Detached containers' keepers forked from a warm zygote (ops/zygote.py), and the way back.

What a user relies on: a detached container's keeper costs little memory because most of its
pages are shared with the zygote that forked it (bench/lifecycle.py measures the PSS); the
zygote holds nothing: killed, every container keeps running and is watched to its end, the
next `run -d` still works (the monitor's own way) and brings a new zygote; a stuck one costs
a `run -d` two seconds, never a second start; one zygote serves
every store of the user, each container landing in its own; RBX_ZYGOTE=0 keeps the old way.
Real namespaces, the real CLI, an unprivileged user.
"""

import os
import signal
import sys

from conftest import REPO, Cli, needs_userns, wait_for
from test_lifecycle import state, user  # noqa: F401  (user: the fixture)

pytestmark = needs_userns


def _stat(pid):
    """(state letter, parent pid) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid):
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return b""


def is_zygote(pid):
    """pid is the zygote the CLI asks (this interpreter's, this tree's, on its socket)."""
    from rootless_box.ops.zygote import socket_path
    line = _cmdline(pid)
    return b"rootless_box.ops.zygote import main" in line and REPO.encode() in line and \
        line.split(b"\0")[-2] == socket_path().encode()


def zygotes():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and is_zygote(int(p))]


def listening(pid, any_zygote=False):
    """pid holds the zygote's bound socket (its keepers, forked from it, share its command
    line but not that socket); any_zygote: the socket of any zygote, not the one we ask."""
    from rootless_box.ops.zygote import socket_path
    with open("/proc/net/unix") as f:
        inodes = {"socket:[%s]" % line.split()[6] for line in f
                  if line.split()[-1] == socket_path() or
                  (any_zygote and "/zygote-" in line.split()[-1])}
    try:
        return alive(pid) and any(os.readlink("/proc/%d/fd/%s" % (pid, fd)) in inodes
                                  for fd in os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return False


def ready_zygote(cli, exclude=()):
    """The zygote, listening: a first `run -d` (the monitor's own way) starts one when none
    answers."""
    def found():
        live = [p for p in zygotes() if p not in exclude and listening(p)]
        return live[0] if live else None
    if found() is None:
        cid = cli.ok("run", "-d", "base:latest", "sleep", "60").out.strip()
        cli.ok("rm", "-f", cid)
    return wait_for(found, what="a zygote listening")


def keeper_of(cli, name):
    st = state(cli, name)
    assert st["Running"]
    keeper = st["MonitorPid"]
    assert _stat(st["Pid"])[1] == keeper  # init is the keeper's own child
    return keeper


def smaps(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        return {line.split(":")[0]: int(line.split()[1]) for line in f if ":" in line
                and line.split()[-1] == "kB"}


def test_keepers_are_forked_from_the_zygote_and_share_its_pages(user):
    zygote = ready_zygote(user)
    user.ok("run", "-d", "--name", "a", "base:latest", "sleep", "60")
    user.ok("run", "-d", "--name", "b", "base:latest", "sh", "-c", "echo hi; sleep 60")
    keepers = [keeper_of(user, "a"), keeper_of(user, "b")]
    for keeper in keepers:
        assert _stat(keeper)[1] == zygote
        # a session of its own, as the monitor's: the caller's terminal and shell can go
        assert os.getsid(keeper) not in (os.getsid(0), os.getsid(zygote))
        # most of what it wrote is still the zygote's, shared (an exec'd watcher: none)
        mem = smaps(keeper)
        assert mem["Shared_Dirty"] > mem["Private_Dirty"], mem
    wait_for(lambda: user.ok("logs", "b").out == "hi\n", what="the log")
    user.ok("stop", "-t", "0", "b")
    assert state(user, "b")["Status"] == "exited"
    assert not alive(keepers[1])


def test_a_killed_zygote_takes_no_container_and_is_replaced(user):
    zygote = ready_zygote(user)
    user.ok("run", "-d", "--name", "before", "base:latest", "sh", "-c",
            "trap 'echo bye; exit 7' TERM; while :; do sleep 0.1; done")
    keeper = keeper_of(user, "before")
    assert _stat(keeper)[1] == zygote
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: not alive(zygote), what="the zygote's end")
    # its keeper and container go on, watched to the end
    assert state(user, "before")["Status"] == "running" and alive(keeper)
    # the next run starts its keeper the monitor's own way, and a new zygote
    user.ok("run", "-d", "--name", "after", "base:latest", "sleep", "60")
    assert not is_zygote(_stat(keeper_of(user, "after"))[1])
    fresh = ready_zygote(user, exclude=(zygote,))
    user.ok("run", "-d", "--name", "later", "base:latest", "sleep", "60")
    assert _stat(keeper_of(user, "later"))[1] == fresh
    user.ok("stop", "-t", "5", "before")
    assert user.ok("wait", "before").out == "7\n"
    assert user.ok("logs", "before").out == "bye\n"
    assert not alive(keeper)
    assert state(user, "after")["Running"] and state(user, "later")["Running"]


def test_a_stuck_zygote_delays_run_but_never_starts_a_container_twice(user):
    zygote = ready_zygote(user)
    os.kill(zygote, signal.SIGSTOP)
    try:
        cid = user.ok("run", "-d", "base:latest", "sleep", "60").out.strip()
        assert not is_zygote(_stat(keeper_of(user, cid))[1])
    finally:
        os.kill(zygote, signal.SIGCONT)
    # the zygote takes the abandoned request now: its keeper finds no request and leaves
    user.ok("run", "-d", "--name", "next", "base:latest", "sleep", "60")
    assert _stat(keeper_of(user, "next"))[1] == zygote
    assert len(user.ok("ps", "-a", "-q").out.split()) == 2
    assert state(user, cid)["Running"]


def test_one_zygote_serves_every_store_each_container_in_its_own(user, tmp_path, rootfs_tar):
    other = Cli(str(tmp_path / "other"))
    other.ok("import", rootfs_tar, "base:latest")
    try:
        zygote = ready_zygote(user)
        mine = user.ok("run", "-d", "base:latest", "sleep", "60").out.strip()
        theirs = other.ok("run", "-d", "base:latest", "sleep", "60").out.strip()
        assert _stat(keeper_of(user, mine))[1] == zygote
        assert _stat(keeper_of(other, theirs))[1] == zygote
        assert user.ok("ps", "-q", "--no-trunc").out.split() == [mine]
        assert other.ok("ps", "-q", "--no-trunc").out.split() == [theirs]
    finally:
        for cid in other.ok("ps", "-a", "-q").out.split():
            other("rm", "-f", cid)


def _nice(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


def test_a_caller_under_other_limits_gets_its_own_zygote(user):
    """A container gets what its caller passes on (here a nice value), as a keeper of the
    monitor's own way would, never that of whichever `run -d` started the zygote."""
    import subprocess
    zygote = ready_zygote(user)
    base = _nice(zygote)

    def niced(*args):
        proc = subprocess.run(user.argv(*args), env=user.env, capture_output=True,
                              preexec_fn=lambda: os.nice(3))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.decode().strip()
    niced("run", "-d", "--name", "n1", "base:latest", "sleep", "60")

    def own_zygote():
        for p in os.listdir("/proc"):
            if p.isdigit() and b"rootless_box.ops.zygote import main" in _cmdline(int(p)):
                try:
                    if _nice(int(p)) == base + 3 and listening(int(p), any_zygote=True):
                        return int(p)
                except OSError:
                    pass
        return None
    wait_for(own_zygote, what="a zygote of the caller's nice value")
    niced("run", "-d", "--name", "n2", "base:latest", "sleep", "60")
    for name in ("n1", "n2"):
        keeper = keeper_of(user, name)
        assert _stat(keeper)[1] != zygote
        assert _nice(keeper) == _nice(state(user, name)["Pid"]) == base + 3
    # the second came from a zygote of that nice value's own
    assert is_zygote(_stat(keeper_of(user, "n2"))[1]) is False  # not the caller's key
    assert b"rootless_box.ops.zygote import main" in _cmdline(_stat(keeper_of(user, "n2"))[1])


def test_without_the_zygote_the_keeper_is_the_monitor_itself(user):
    env = {"RBX_ZYGOTE": "0"}
    user.ok("run", "-d", "--name", "plain", "base:latest", "sleep", "60", env=env)
    keeper = keeper_of(user, "plain")
    assert not is_zygote(_stat(keeper)[1])
    assert b"rootless_box.ops.watch import main" in _cmdline(keeper)


def test_a_zygote_whose_code_changed_on_disk_is_replaced(tmp_path, rootfs_tar):
    """An upgrade (or an edit) of the installed code while a zygote runs: its keepers would
    run the old code, so the next `run -d` gets the new code's keeper and a new zygote."""
    import shutil
    tree = tmp_path / "tree"
    shutil.copytree(os.path.join(REPO, "rootless_box"), str(tree / "rootless_box"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    class CopyCli(Cli):
        def argv(self, *args):  # -P: the copy, not the tree in the working directory
            return [sys.executable, "-P", "-m", "rootless_box"] + [str(a) for a in args]

    cli = CopyCli(str(tmp_path / "data"))
    cli.env["PYTHONPATH"] = str(tree)
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")

    def ours():
        # zygotes of the copy (not their keepers, which share the command line but not
        # the socket)
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and
                b"rootless_box.ops.zygote import main" in _cmdline(int(p)) and
                (b"%r" % str(tree).encode()).strip(b"b") in _cmdline(int(p)) and
                listening(int(p), any_zygote=True)]

    try:
        cli.ok("run", "-d", "--name", "first", "base:latest", "sleep", "60")
        old = wait_for(lambda: ours() or None, what="the copy's zygote")[0]
        cli.ok("run", "-d", "--name", "served", "base:latest", "sleep", "60")
        assert _stat(keeper_of(cli, "served"))[1] == old
        watch = tree / "rootless_box" / "ops" / "watch.py"
        watch.write_text(watch.read_text() + "\n# upgraded\n")
        cli.ok("run", "-d", "--name", "after", "base:latest", "sleep", "60")
        assert _stat(keeper_of(cli, "after"))[1] != old  # not the stale zygote's keeper
        wait_for(lambda: not alive(old), what="the stale zygote's end")
        new = wait_for(lambda: [p for p in ours() if p != old] or None,
                       what="a zygote of the new code")[0]
        cli.ok("run", "-d", "--name", "later", "base:latest", "sleep", "60")
        assert _stat(keeper_of(cli, "later"))[1] == new
        assert all(state(cli, n)["Running"] for n in ("first", "served", "after", "later"))
    finally:
        cli("rm", "-f", "first", "served", "after", "later")


def test_an_init_container_from_the_zygote_is_watched(user):
    """--init's pid 1 is a fork that is never exec'd: it must not hold the keeper's handoff
    socket, or the keeper waits for its end for ever and nothing logs the output."""
    zygote = ready_zygote(user)
    user.ok("run", "-d", "--init", "--name", "withinit", "base:latest", "sh", "-c",
            "echo started; exec sleep 60")
    try:
        assert _stat(keeper_of(user, "withinit"))[1] == zygote
        wait_for(lambda: user.ok("logs", "withinit").out == "started\n", what="the log")
        user.ok("stop", "-t", "0", "withinit")
        assert state(user, "withinit")["Status"] == "exited"
    finally:
        user("rm", "-f", "withinit")
