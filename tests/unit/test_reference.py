"""Image references normalised as Docker does (distribution/reference)."""

import pytest

from rootless_box.errors import UsageError
from rootless_box.oci import reference


@pytest.mark.parametrize("text,full,familiar", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("reg.example.com/team/app", "reg.example.com/team/app:latest",
     "reg.example.com/team/app:latest"),
    ("a-b__c/e.f", "docker.io/a-b__c/e.f:latest", "a-b__c/e.f:latest"),
])
def test_normalisation(text, full, familiar):
    ref = reference.parse(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_digest_references_have_no_default_tag():
    digest = "sha256:" + "a" * 64
    ref = reference.parse("busybox@" + digest)
    assert ref.tag is None and ref.digest == digest
    assert str(ref) == "docker.io/library/busybox@" + digest
    both = reference.parse("busybox:1@" + digest)
    assert both.tag == "1" and both.digest == digest


@pytest.mark.parametrize("bad", ["", "UPPER", "a//b", "-a", "a:", "a:-t", "a@sha256:12",
                                 "a b", "a/b_", "a..b", " busybox"])
def test_invalid_references(bad):
    with pytest.raises(UsageError, match="invalid reference format"):
        reference.parse(bad)


def test_looks_like_id():
    assert reference.looks_like_id("0123abcd")
    assert reference.looks_like_id("sha256:" + "f" * 64)
    assert not reference.looks_like_id("busybox")
    assert not reference.looks_like_id("f" * 65)
