"""BuildKit's own Dockerfile-parser corpus (../shared/conformance/buildkit-parser/): every
`result` reproduced byte for byte, every negative case rejected, the line-number fixture.

Files are read as bytes and decoded without newline translation: tabs, trailing blanks and a
missing final newline are part of what is tested.
"""

import os

import pytest

from rootless_box.dockerfile.parser import DockerfileError, dump, parse

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(os.path.dirname(REPO), "shared", "conformance", "buildkit-parser")

pytestmark = pytest.mark.skipif(not os.path.isdir(CORPUS),
                                reason="conformance corpus not found at %s" % CORPUS)


def _cases(kind):
    directory = os.path.join(CORPUS, kind)
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def _read(*parts):
    with open(os.path.join(CORPUS, *parts), "rb") as f:
        return f.read().decode("utf-8")


@pytest.mark.parametrize("name", _cases("testfiles"))
def test_result_matches(name):
    dockerfile = parse(_read("testfiles", name, "Dockerfile"))
    assert dump(dockerfile) + "\n" == _read("testfiles", name, "result")


@pytest.mark.parametrize("name", _cases("testfiles-negative"))
def test_negative_case_is_rejected(name):
    with pytest.raises(DockerfileError) as info:
        parse(_read("testfiles-negative", name, "Dockerfile"))
    assert info.value.message.startswith("Dockerfile:")
    assert info.value.exit_code == 1


def test_corpus_is_complete():
    # FORMAT.md: 33 positive and 4 negative cases; a silently shrunken corpus proves little.
    assert len(_cases("testfiles")) == 33
    assert len(_cases("testfiles-negative")) == 4


def test_line_numbers():
    dockerfile = parse(_read("testfile-line", "Dockerfile"))
    assert (dockerfile.start_line, dockerfile.end_line) == (5, 31)
    assert [(i.start_line, i.end_line) for i in dockerfile.instructions] == [
        (5, 5), (11, 12), (17, 31)]
    assert dockerfile.directives == {"escape": "\\"}
