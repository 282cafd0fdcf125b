"""fastjson gives the same bytes and values as the json module."""

import json

import pytest

from rootless_box import fastjson

VALUES = [{"a": [1, 2.5, None, True, False, "x\u00e9\"\\\n"], "b": {}}, [], "s", 0, -3,
          1e100, {"nested": {"list": [[], [{}]]}}]


@pytest.mark.parametrize("value", VALUES)
def test_round_trip_and_same_bytes_as_json(value):
    assert fastjson.dumps(value) == json.dumps(value).encode()
    assert fastjson.dumps(value, compact=True) == json.dumps(value,
                                                             separators=(",", ":")).encode()
    assert fastjson.loads(fastjson.dumps(value)) == value
    assert fastjson.loads(json.dumps(value, indent=2)) == value


@pytest.mark.parametrize("bad", ["", "{", '{"a": 1} x', "[1,]", "nope"])
def test_invalid_json_is_a_value_error(bad):
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_unserialisable_objects_are_refused():
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})
