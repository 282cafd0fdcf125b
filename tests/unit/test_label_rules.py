"""Docker's label grammar: -l KEY[=VALUE], --label-file's format, and the merge over the
image's labels (ops/labels.py)."""

import pytest

from rootless_box.errors import UsageError
from rootless_box.ops import labels


def test_key_alone_is_empty_and_later_wins():
    assert labels.to_map(["a=1", "b", "a=2", "c=x=y"]) == {"a": "2", "b": "", "c": "x=y"}


def test_label_file_format(tmp_path):
    path = tmp_path / "l"
    path.write_bytes(b"\xef\xbb\xbfone=1\r\n# comment\n\n   two= spaced value \n\tbare\n")
    assert labels.read_file(str(path)) == ["one=1", "two= spaced value ", "bare"]


@pytest.mark.parametrize("content,message", [
    (b"a b=1\n", "poorly formatted environment: variable 'a b' contains whitespaces"),
    (b"ok=1\n=v\n", "poorly formatted environment: no variable name on line '=v'"),
    (b"ok=1\nbad=\xff\n", "contains invalid utf8 bytes at line 2"),
])
def test_label_file_errors(tmp_path, content, message):
    path = tmp_path / "l"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        labels.read_file(str(path))
    with pytest.raises(UsageError, match="no such file or directory"):
        labels.read_file(str(tmp_path / "missing"))


def test_files_first_then_flags_over_the_image(tmp_path):
    path = tmp_path / "l"
    path.write_text("a=file\nb=file\n")
    own = labels.from_options(["b=flag"], [str(path)])
    assert own == {"a": "file", "b": "flag"}
    assert labels.merged({"a": "image", "c": "image"}, own) == {"a": "file", "b": "flag",
                                                                "c": "image"}
    assert labels.merged(None, {}) == {}
