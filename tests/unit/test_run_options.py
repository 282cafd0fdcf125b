"""Docker's rules for a container's command, environment, volumes and tmpfs (pure parts of
ops/run.py)."""

import os

import pytest

from rootless_box import config
from rootless_box.errors import NotFound, UsageError
from rootless_box.ops import run


def test_entrypoint_and_cmd_combine_like_docker():
    image = {"Entrypoint": ["/entry"], "Cmd": ["default"]}
    assert run.command_line(image, [], None) == ["/entry", "default"]
    assert run.command_line(image, ["x", "y"], None) == ["/entry", "x", "y"]
    # --entrypoint discards the image's CMD; "" resets the entrypoint.
    assert run.command_line(image, [], "/other") == ["/other"]
    assert run.command_line(image, ["a"], "/other") == ["/other", "a"]
    assert run.command_line({"Cmd": ["sh"]}, ["ls"], "") == ["ls"]
    with pytest.raises(UsageError, match="no command specified"):
        run.command_line({}, [], None)


def test_env_merge_order_default_path_and_host_passthrough():
    env = run.merge_env(["A=image", "B=image"], ["A=cli", "FROM_HOST", "MISSING", "C=1"],
                        {"FROM_HOST": "h"})
    assert env == ["PATH=" + config.DEFAULT_PATH, "B=image", "A=cli", "FROM_HOST=h", "C=1"]
    kept = run.merge_env(["PATH=/only"], [], {})
    assert kept == ["PATH=/only"]
    with pytest.raises(UsageError):
        run.merge_env([], ["=x"], {})


def test_env_file(tmp_path):
    path = tmp_path / "env"
    path.write_text("# comment\n\nA=1\n  B=two words\nHOSTVAR\n")
    assert run.parse_env_file(str(path)) == ["A=1", "B=two words", "HOSTVAR"]
    with pytest.raises(UsageError, match="cannot read env file"):
        run.parse_env_file(str(tmp_path / "missing"))


def test_bind_volume(tmp_path):
    vol = run.parse_volume("%s:/data:ro" % tmp_path, "/vols")
    assert vol == {"type": "bind", "source": str(tmp_path), "destination": "/data",
                   "readonly": True, "mode": "ro", "propagation": "rprivate"}
    assert run.parse_volume("%s:/d:rslave,cached" % tmp_path, "/v")["propagation"] == "rslave"
    assert run.parse_volume("%s:/d" % tmp_path, "/vols")["readonly"] is False


def test_relative_host_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("sub")
    assert run.parse_volume("./sub:/d", "/v")["source"] == str(tmp_path / "sub")


def test_named_and_anonymous_volumes():
    named = run.parse_volume("cache:/c", "/vols")
    assert named["type"] == "volume" and named["source"] == "/vols/cache/_data"
    anon = run.parse_volume("/scratch", "/vols")
    assert anon["anonymous"] and anon["destination"] == "/scratch"


@pytest.mark.parametrize("spec,error", [
    ("/a:relative", UsageError), ("/a:/b:bogus", UsageError), ("a:b:c:d", UsageError),
    ("/no/such/dir/anywhere:/x", NotFound), ("bad name!:/x", UsageError)])
def test_bad_volume_specs(spec, error):
    with pytest.raises(error):
        run.parse_volume(spec, "/vols")


def test_tmpfs_spec():
    assert run.parse_tmpfs("/t:size=1m,exec") == {"type": "tmpfs", "destination": "/t",
                                                   "options": ["size=1m", "exec"]}
    with pytest.raises(UsageError):
        run.parse_tmpfs("t")


def test_network_modes():
    assert run.network_mode("host") == "host"
    assert run.network_mode("none") == "none"
    assert run.network_mode("bridge0") == "user"  # a user-defined network's name


def test_hosts_file_names_the_container():
    text = run.hosts_file("none", "box1")
    assert "127.0.0.1\tlocalhost" in text and text.endswith("127.0.0.1\tbox1\n")


def test_security_opts_and_userns():
    assert run.parse_security_opts([]) is False
    assert run.parse_security_opts(["seccomp=unconfined"]) is True
    assert run.parse_security_opts(["seccomp:unconfined", "no-new-privileges"]) is True
    assert run.parse_security_opts(["no-new-privileges=true", "no-new-privileges:true"]) is False
    for bad in ("seccomp=/no/such/profile.json", "apparmor=myprofile", "seccomp=",
                "no-new-privileges=false", "bogus=1"):
        with pytest.raises(UsageError):
            run.parse_security_opts([bad])
    assert [run.parse_userns(v) for v in (None, "", "auto", "single", "subuid")] == \
        [None, None, "auto", "single", "subuid"]
    with pytest.raises(UsageError):
        run.parse_userns("host")
