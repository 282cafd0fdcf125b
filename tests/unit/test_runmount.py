"""RUN --mount values: BuildKit's keys, aliases, defaults, and one-line refusals."""

import pytest

from rootless_box.dockerfile.runmount import MountError, parse


def test_defaults_and_aliases():
    assert parse("target=/x") == {"type": "bind", "target": "/x"}
    assert parse("type=bind,src=a,dst=/x,rw") == {"type": "bind", "source": "a",
                                                  "target": "/x", "readwrite": True}
    cache = parse("type=cache,target=/c,id=pip,sharing=locked,mode=0700,uid=1,gid=2")
    assert cache["mode"] == 0o700 and cache["sharing"] == "locked"
    assert parse("type=tmpfs,target=/t,size=64m")["size"] == 64 << 20
    assert parse("type=secret,id=tok") == {"type": "secret", "id": "tok",
                                           "target": "/run/secrets/tok"}
    assert parse("type=secret,target=/etc/tok")["id"] == "tok"
    assert parse('"target=/a,b"')["target"] == "/a,b"  # CSV quoting
    # the target's default, /run/buildkit/ssh_agent.N, needs the mount's place in the step
    assert parse("type=ssh") == {"type": "ssh", "id": "default", "target": ""}


@pytest.mark.parametrize("value,message", [
    ("type=ssh,source=x", "unexpected key 'source'"),
    ("type=nfs,target=/x", "unsupported mount type"),
    ("target=/x,size=1", "unexpected key 'size'"),
    ("type=cache", "needs a target"),
    ("type=cache,target=/c,sharing=maybe", "invalid sharing"),
    ("type=cache,target=/c,mode=rwx", "invalid mode"),
    ("type=tmpfs,target=/t,size=lots", "invalid tmpfs size"),
    ("target=/x,readonly,rw", "readonly and readwrite"),
    ("target=/x,oops", "give key=value"),
])
def test_refusals(value, message):
    with pytest.raises(MountError, match=message):
        parse(value)
