"""The grammars of build's BuildKit flags (issue 20): -o/--output, --cache-to/--cache-from,
--build-context. Pure: no store, no namespace."""

import os

import pytest

from rootless_box import errors
from rootless_box.ops import buildcache, buildcontexts, buildoutput


def test_output_forms():
    assert buildoutput.parse("out") == {"type": "local", "dest": "out", "names": [],
                                        "push": False}
    assert buildoutput.parse("-")["type"] == "tar"
    # CSV quoting keeps a comma inside a value: two names
    out = buildoutput.parse('type=image,"name=reg.example/a:1,reg.example/b:2",push=true')
    assert out["names"] == ["reg.example/a:1", "reg.example/b:2"] and out["push"]
    assert buildoutput.parse("type=registry,name=x")["type"] == "image"
    assert buildoutput.parse("type=registry,name=x")["push"] is True
    assert buildoutput.parse("type=tar,dest=f.tar,rewrite-timestamp=true")["dest"] == "f.tar"
    assert buildoutput.parse("type=docker")["dest"] is None


@pytest.mark.parametrize("spec, message", [
    ("type=zip,dest=x", "unknown type"), ("type=local", "needs dest="),
    ("type=tar,dest=x,name=y", "takes no name"), ("dest=x", "no type"),
    ("type=image,push=maybe", "give true or false"), ("type=oci,dest=x,compression=zstd",
                                                     "takes no compression"),
    ("type=local,dest", "is not KEY=VALUE")])
def test_output_refusals(spec, message):
    with pytest.raises(errors.UsageError, match=message):
        buildoutput.parse(spec)


def test_push_needs_a_name_and_one_stdout():
    with pytest.raises(errors.UsageError, match="tag is needed"):
        buildoutput.plan([], push=True)
    assert buildoutput.plan([], push=True, tags=["r/x"])[-1]["push"]
    with pytest.raises(errors.UsageError, match="standard output"):
        buildoutput.plan(["-", "type=oci,dest=-"])


def test_cache_forms():
    assert buildcache.parse("type=local,dest=d,mode=max", True) == {
        "type": "local", "path": os.path.abspath("d")}
    assert buildcache.parse("reg.example/c:t", False) == {"type": "registry",
                                                          "ref": "reg.example/c:t"}
    for spec, to in (("type=local,src=d", True), ("type=gha", True), ("d", True),
                     ("type=registry", False), ("type=local,src=d,extra=1", False)):
        with pytest.raises(errors.UsageError):
            buildcache.parse(spec, to)


def test_build_context_forms():
    assert buildcontexts.parse(["A=dir", "b=docker-image://x:1"]) == {
        "a": "dir", "b": "docker-image://x:1"}
    assert buildcontexts._split_layout("/p/lay:tag") == ("/p/lay", "tag", None)
    assert buildcontexts._split_layout("/p/lay@sha256:ab") == ("/p/lay", None, "sha256:ab")
    assert buildcontexts._split_layout("/p:x/lay") == ("/p:x/lay", None, None)
    for bad in ("noequals", "=dir", "x=git://host/repo"):
        with pytest.raises(errors.UsageError):
            buildcontexts.parse([bad])
