"""The Engine API's body types (api/bodytypes.py): what dockerd's JSON decoding refuses is
refused, in Go's words; what it takes (null, unknown fields, StrSlice's two forms) is taken."""

import pytest

from rootless_box.api import bodytypes


def _refused(body, shape=bodytypes.CREATE, where="ContainerConfig"):
    with pytest.raises(bodytypes.WrongType) as caught:
        bodytypes.check(body, shape, where)
    return str(caught.value)


def test_wrong_types_are_refused_in_gos_words():
    assert _refused({"Image": "x", "Tty": "yes"}) == \
        "json: cannot unmarshal string into Go struct field ContainerConfig.Tty of type bool"
    assert _refused({"HostConfig": {"RestartPolicy": "always"}}) == (
        "json: cannot unmarshal string into Go struct field "
        "ContainerConfig.HostConfig.RestartPolicy of type struct")
    assert "of type int64" in _refused({"StopTimeout": "10"})
    assert "cannot unmarshal bool into" in _refused({"HostConfig": {"Memory": True}})
    assert "cannot unmarshal number" in _refused({"HostConfig": {"Memory": 1.5}})
    assert "ContainerConfig.Labels of type string" in _refused({"Labels": {"a": 1}})
    assert "of type []string" in _refused({"Env": "A=1"})
    assert "HostConfig.PortBindings.HostPort of type string" in _refused(
        {"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}})
    assert _refused([], bodytypes.EXEC_CREATE, "ExecConfig") == \
        "json: cannot unmarshal array into Go value of type struct"
    assert "NetworkCreateRequest.IPAM.Config" in _refused(
        {"IPAM": {"Config": [5]}}, bodytypes.NETWORK_CREATE, "NetworkCreateRequest")


def test_what_dockerd_takes_is_taken():
    for body in (None, {}, {"Image": None, "Cmd": None, "HostConfig": None},
                 {"Cmd": "true", "Entrypoint": ["sh", "-c"], "HostConfig": {"CapAdd": "NET_RAW"}},
                 {"Unknown": [1, {"x": 2}], "HostConfig": {"Unknown": "x", "Memory": 1e6}},
                 {"ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}},
                  "NetworkingConfig": {"EndpointsConfig": {"net": {"Aliases": ["a"]}}}}):
        bodytypes.check(body, bodytypes.CREATE, "ContainerConfig")
    assert "StrSlice" in _refused({"Cmd": 5})
    assert "ContainerConfig.Cmd of type string" in _refused({"Cmd": ["a", 5]})
