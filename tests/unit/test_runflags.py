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


def test_security_opts_notes_and_profiles(tmp_path):
    sec = runflags.security(["label=disable", "apparmor=unconfined", "label:type:x"])
    assert not sec["unconfined"] and sec["profile"] is None and len(sec["notes"]) == 3
    assert runflags.security(["systempaths=unconfined"])["unmask"] is True
    good = tmp_path / "p.json"
    good.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    assert runflags.security(["seccomp=%s" % good])["profile"][0] == str(good)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not JSON"):
        runflags.security(["seccomp=%s" % bad])


def test_the_compiled_profile_is_cached_and_a_hit_stays_light(tmp_path):
    """`run` pays for a compile once: afterwards the program comes from the cache by the
    profile's digest, without json, hashlib or the syscall tables being imported."""
    import os
    import subprocess
    import sys
    # what the call itself imports (the interpreter's start-up may import anything)
    code = ("import sys; before = set(sys.modules); from rootless_box.ops import seccomp; "
            "from rootless_box.userns.caps import DOCKER_DEFAULT; "
            "out = seccomp.compiled(seccomp.default_text(), DOCKER_DEFAULT); "
            "print(len(out), ' '.join(sorted(set(sys.modules) - before)))")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    first = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    cached = os.listdir(tmp_path / "rootless-box" / "seccomp")
    assert len(cached) == 1 and cached[0].endswith(".bpf")
    again = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                           capture_output=True, text=True).stdout.split()
    assert again[0] == first[0]
    assert "rootless_box.userns.syscalls" in first[1:]  # the miss compiled
    for heavy in ("json", "hashlib", "re", "rootless_box.userns.syscalls"):
        assert heavy not in again[1:], heavy
    # another bounding set is another program
    out = subprocess.run([sys.executable, "-c", code.replace("DOCKER_DEFAULT)",
                                                             "['SYS_ADMIN'])")],
                         env=env, cwd=root, check=True, capture_output=True, text=True)
    assert len(os.listdir(tmp_path / "rootless-box" / "seccomp")) == 2, out.stderr


def test_cgroup_v2_files_as_runc_writes_them():
    from rootless_box.ops import cgroups
    files = cgroups.files({"Memory": 64 << 20, "MemorySwap": 128 << 20, "NanoCpus": 1500000000,
                           "CpuShares": 1024, "PidsLimit": -1, "BlkioWeight": 500,
                           "CpusetCpus": "0-1"})
    assert files == {"memory.max": str(64 << 20), "memory.swap.max": str(64 << 20),
                     "cpu.max": "150000 100000", "cpu.weight": "39", "pids.max": "max",
                     "io.weight": "4950", "cpuset.cpus": "0-1"}
    assert cgroups.files({"CpuQuota": 50000, "CpuPeriod": 200000})["cpu.max"] == \
        "50000 200000"
    assert cgroups.files({"Memory": 1 << 30, "MemorySwap": -1})["memory.swap.max"] == "max"


def test_limit_parsing_follows_docker():
    from rootless_box.ops import cgroups
    asked, warnings = cgroups.limits(opts(memory="512m", cpus="0.5", pids_limit="0",
                                          oom_kill_disable=True))
    assert asked == {"Memory": 512 << 20, "NanoCpus": 500000000, "PidsLimit": -1}
    assert len(warnings) == 1 and "--oom-kill-disable" in warnings[0]
    for bad in ({"cpus": "-1"}, {"cpus": "x"}, {"memory": "1k"}, {"memory_swap": "1g"},
                {"cpu_quota": "10"}, {"cpuset_cpus": "0-99"}, {"blkio_weight": "2000"}):
        with pytest.raises(UsageError):
            cgroups.limits(opts(**bad))


def test_healthcheck_merge_and_moby_rules():
    from rootless_box.ops import health
    image_check = {"Test": ["CMD", "true"], "Interval": 10 ** 9, "Retries": 5}
    got = health.config(opts(health_interval="2s", health_retries="2"), image_check)
    assert got == {"Test": ["CMD", "true"], "Interval": 2 * 10 ** 9, "Retries": 2}
    assert health.config(opts(health_cmd="curl -f x"), None)["Test"] == \
        ["CMD-SHELL", "curl -f x"]
    assert health.config(opts(no_healthcheck=True), image_check) == {"Test": ["NONE"]}
    assert health.config(opts(), None) is None
    assert not health.active({"Test": ["NONE"]}) and health.active(image_check)
    assert health.argv_of(["CMD-SHELL", "a b"]) == ["/bin/sh", "-c", "a b"]
    check = {"Retries": 2}
    fail = {"ExitCode": 1}
    state = health._next(None, None, False, check)
    assert state["Status"] == "starting"
    state = health._next(state, fail, True, check)  # in the start period: not counted
    assert (state["Status"], state["FailingStreak"]) == ("starting", 0)
    state = health._next(health._next(state, fail, False, check), fail, False, check)
    assert (state["Status"], state["FailingStreak"]) == ("unhealthy", 2)
    state = health._next(state, {"ExitCode": 0}, False, check)
    assert (state["Status"], state["FailingStreak"]) == ("healthy", 0)
    for _ in range(7):
        state = health._next(state, fail, False, check)
    assert len(state["Log"]) == 5
    with pytest.raises(UsageError):
        health.flags(opts(health_interval="fast"))
