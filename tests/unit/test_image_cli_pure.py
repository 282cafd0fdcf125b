"""The pure logic behind `images`, `history`, `image prune`, `system df`, `system prune`:
Docker's filter grammar and semantics, reference globs (Go's path.Match), `--format` output
(table with a header, json lines, templates), history rows, the reclaimable text, durations and
`until=` times. No store, no namespaces."""

import json
import time

import pytest

from rootless_box.commands import history, images, systemdf, systemprune
from rootless_box.errors import BoxError, UsageError
from rootless_box.ops import images as image_ops
from rootless_box.ops import imagefilter, prune


class FakeImage:
    def __init__(self, tags=(), created="2024-01-01T00:00:00Z", labels=None, record=None):
        self.id = "sha256:" + "ab" * 32
        self.tags = list(tags)
        self.record = record or {"size": 1000}
        self.config = {"created": created, "config": {"Labels": labels}}


# -- --filter grammar ---------------------------------------------------------------------------

def test_parse_filters_groups_repeated_keys_and_lowercases_them():
    assert images.parse_filters(["reference=a*", "Reference=b*", "label=x=y", "dangling=true"],
                                images.IMAGE_FILTERS) == {
        "reference": ["a*", "b*"], "label": ["x=y"], "dangling": ["true"]}


def test_parse_filters_label_not_is_its_own_key():
    assert images.parse_filters(["label!=k=v"], prune.PRUNE_FILTERS) == {"label!": ["k=v"]}


@pytest.mark.parametrize("bad", ["dangling", "=x", "colour=red", "until=1h"])
def test_parse_filters_refuses_unknown_or_malformed(bad):
    with pytest.raises(UsageError) as info:
        images.parse_filters([bad], images.IMAGE_FILTERS)
    assert info.value.hint and "\n" not in info.value.message


# -- reference globs (Go's path.Match on the familiar name) -------------------------------------

@pytest.mark.parametrize("pattern,tag,expected", [
    ("busy*", "docker.io/library/busybox:latest", True),
    ("busybox", "docker.io/library/busybox:1.36", True),       # the name alone matches
    ("base:*", "docker.io/library/base:latest", True),
    ("base:*", "docker.io/library/basement:latest", False),
    ("*", "docker.io/team/app:1", False),                     # * does not cross /
    ("team/*", "docker.io/team/app:1", True),
    ("*/app:?", "docker.io/team/app:1", True),
    ("localhost:5000/*", "localhost:5000/app:1", True),
    ("a[pq]p", "docker.io/library/app:x", True),
    ("a[^p]p", "docker.io/library/app:x", False),
    ("a[a-z]p", "docker.io/library/app:x", True),
    ("ap\\p", "docker.io/library/app:x", True),
])
def test_reference_matches(pattern, tag, expected):
    assert bool(imagefilter.reference_matches([imagefilter.glob_regex(pattern)], tag)) is expected


@pytest.mark.parametrize("pattern", ["a[", "a[]", "a\\", "[-a]", "a[b-"])
def test_bad_glob_is_a_usage_error(pattern):
    with pytest.raises(UsageError):
        imagefilter.glob_regex(pattern)


# -- image filter semantics ---------------------------------------------------------------------

def test_dangling_and_labels():
    keep, regexes = images.image_filter(None, {"dangling": ["true"]})
    assert regexes == []
    tagged, untagged = FakeImage(["docker.io/library/a:1"]), FakeImage()
    assert not keep(tagged, tagged.config) and keep(untagged, untagged.config)
    keep, _ = images.image_filter(None, {"dangling": ["false"]})
    assert keep(tagged, tagged.config) and not keep(untagged, untagged.config)
    keep, _ = images.image_filter(None, {"label": ["a", "b=2"]})
    both = FakeImage(labels={"a": "1", "b": "2"})
    assert keep(both, both.config)
    wrong = FakeImage(labels={"a": "1", "b": "3"})
    assert not keep(wrong, wrong.config)
    none = FakeImage(labels=None)
    assert not keep(none, none.config)


def test_dangling_must_be_boolean():
    with pytest.raises(UsageError):
        images.image_filter(None, {"dangling": ["maybe"]})


def test_label_matches():
    assert image_ops.label_matches({"k": "v"}, "k")
    assert image_ops.label_matches({"k": "v"}, "k=v")
    assert not image_ops.label_matches({"k": "v"}, "k=w")
    assert image_ops.label_matches({"k": "a=b"}, "k=a=b")
    assert not image_ops.label_matches(None, "k")


def test_created_seconds_keeps_the_fraction():
    a = image_ops.created_seconds("2024-01-01T00:00:00.250000000Z")
    b = image_ops.created_seconds("2024-01-01T00:00:00.5Z")
    assert a == image_ops.created_epoch("2024-01-01T00:00:00Z") + 0.25 and b > a
    assert image_ops.created_seconds("garbage") == 0


# -- digests ------------------------------------------------------------------------------------

def test_digest_for():
    digest = "sha256:" + "1" * 64
    record = {"digests": ["docker.io/library/busybox@" + digest]}
    assert images.digest_for(record, "busybox") == digest
    assert images.digest_for(record, "other") == "<none>"
    assert images.digest_for({"digests": [digest]}, "anything") == digest
    assert images.digest_for({}, "busybox") == "<none>"


def test_image_rows_fields_and_dangling_row():
    image = FakeImage(["docker.io/library/base:latest", "localhost:5000/x/y:2"])
    rows = images.image_rows(image, image.config, image.tags, no_trunc=False)
    assert [(r["Repository"], r["Tag"]) for r in rows] == [("base", "latest"),
                                                           ("localhost:5000/x/y", "2")]
    assert rows[0]["ID"] == "ab" * 6 and rows[0]["Size"] == "1kB"
    assert rows[0]["Digest"] == "<none>" and rows[0]["CreatedSince"].endswith(" ago")
    dangling = images.image_rows(image, image.config, [], no_trunc=True)
    assert len(dangling) == 1 and dangling[0]["Repository"] == dangling[0]["Tag"] == "<none>"
    assert dangling[0]["ID"] == image.id


# -- --format -----------------------------------------------------------------------------------

ROWS = [{"Repository": "base", "Tag": "latest", "ID": "abc"},
        {"Repository": "a-much-longer-name", "Tag": "1", "ID": "def"}]


def test_default_table(capsys):
    images.write_formatted(images.compile_format(None, "table {{.Repository}}\t{{.Tag}}"),
                           ROWS, images.HEADERS)
    assert capsys.readouterr().out.splitlines() == [
        "REPOSITORY           TAG", "base                 latest", "a-much-longer-name   1"]


def test_table_template_with_typed_backslash_t_gets_a_header(capsys):
    images.write_formatted(images.compile_format("table {{.ID}}\\t{{.Repository}}", "table"),
                           ROWS, images.HEADERS)
    assert capsys.readouterr().out.splitlines() == [
        "IMAGE ID   REPOSITORY", "abc        base", "def        a-much-longer-name"]


def test_table_with_no_rows_prints_the_header(capsys):
    images.write_formatted(images.compile_format("table", images.DEFAULT), [], images.HEADERS)
    assert capsys.readouterr().out.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED",
                                               "SIZE"]


def test_plain_template_has_no_header(capsys):
    images.write_formatted(images.compile_format("{{.Repository}}:{{.Tag}}", "table"), ROWS,
                           images.HEADERS)
    assert capsys.readouterr().out == "base:latest\na-much-longer-name:1\n"


def test_json_is_one_object_per_line(capsys):
    images.write_formatted(images.compile_format("json", "table"), ROWS, images.HEADERS)
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == ROWS


def test_bad_template_fails_when_compiled():
    with pytest.raises(BoxError):
        images.compile_format("{{.Repository", "table")


# -- history ------------------------------------------------------------------------------------

CONFIG = {"created": "2024-01-02T00:00:00Z", "history": [
    {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:1 in /"},
    {"created": "2024-01-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]",
     "empty_layer": True},
    {"created": "2024-01-02T00:00:00Z",
     "created_by": "/bin/sh -c apt-get update && apt-get install -y\tsomething-long",
     "comment": "buildkit"}]}


def test_history_rows_newest_first_with_missing_and_sizes():
    rows = history.history_rows("sha256:" + "cd" * 32, CONFIG, [2000000, 5000])
    assert [r["ID"] for r in rows] == ["cd" * 6, "<missing>", "<missing>"]
    assert [r["Size"] for r in rows] == ["5kB", "0B", "2MB"]
    assert rows[0]["Comment"] == "buildkit" and rows[2]["Comment"] == ""
    assert len(rows[0]["CreatedBy"]) == 45 and rows[0]["CreatedBy"].endswith("…")
    assert "\t" not in rows[0]["CreatedBy"]
    assert rows[0]["CreatedSince"].endswith(" ago")


def test_history_rows_raw_and_untruncated():
    rows = history.history_rows("sha256:" + "cd" * 32, CONFIG, [2000000, 5000], human=False,
                                trunc=False)
    assert rows[0]["ID"] == "sha256:" + "cd" * 32
    assert [r["Size"] for r in rows] == ["5000", "0", "2000000"]
    assert rows[0]["CreatedBy"].endswith("something-long")
    assert rows[0]["CreatedSince"] == rows[0]["CreatedAt"]
    assert rows[0]["CreatedAt"][:4] == "2024" and rows[0]["CreatedAt"][10] == "T"


def test_history_without_history_has_a_row_per_layer():
    rows = history.history_rows("sha256:" + "cd" * 32, {"created": "2024-01-01T00:00:00Z"},
                                [1, 2])
    assert [r["Size"] for r in rows] == ["2B", "1B"]


def test_rfc3339_local_in_utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert history.rfc3339_local(0) == "1970-01-01T00:00:00Z"
        assert images.go_time_string(0) == "1970-01-01 00:00:00 +0000 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_ellipsis():
    assert history.ellipsis("abc", 3) == "abc"
    assert history.ellipsis("abcd", 3) == "ab…"


# -- system df / prune texts --------------------------------------------------------------------

def test_reclaimable_text():
    assert systemdf.reclaimable_text(700, 1000) == "700B (70%)"
    assert systemdf.reclaimable_text(999, 1000) == "999B (99%)"
    assert systemdf.reclaimable_text(0, 0) == "0B"


def test_summary_rows():
    usage = {"images": [{"containers": 1}, {"containers": 0}], "images_total": 3000,
             "images_reclaimable": 1000,
             "containers": [{"running": True, "size": 10}, {"running": False, "size": 30}],
             "volumes": [{"links": 0, "size": 5}],
             "build_cache": [{"in_use": True, "size": 2000}, {"in_use": False, "size": 500}]}
    rows = systemdf.summary_rows(usage)
    assert [r["Type"] for r in rows] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert rows[0] == {"Type": "Images", "TotalCount": "2", "Active": "1", "Size": "3kB",
                       "Reclaimable": "1kB (33%)"}
    assert rows[1]["Active"] == "1" and rows[1]["Reclaimable"] == "30B (75%)"
    assert rows[2]["Reclaimable"] == "5B (100%)"
    # Docker's Build Cache row: in use is active and not reclaimable; no percentage
    assert rows[3] == {"Type": "Build Cache", "TotalCount": "2", "Active": "1",
                       "Size": "2.5kB", "Reclaimable": "500B"}
    assert systemdf.summary_rows(dict(usage, build_cache=[]))[3]["Size"] == "0B"


def test_system_prune_warning_is_dockers():
    assert systemprune.warning(False, False) == (
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n  - all dangling images\n"
        "  - unused build cache\n\nAre you sure you want to continue?")
    text = systemprune.warning(True, True)
    assert "  - all anonymous volumes not used by at least one container\n" in text
    assert "  - all images without at least one container associated to them\n" in text
    assert text.endswith("  - all build cache\n\nAre you sure you want to continue?")


# -- durations and until= -----------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("1h30m", 5400), ("90s", 90),
                                          ("1.5h", 5400), ("300ms", 0.3), ("0", 0),
                                          ("-2m", -120)])
def test_parse_duration(text, seconds):
    assert prune.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "10", "1x", "1..5h", "abc"])
def test_not_a_duration(text):
    assert prune.parse_duration(text) is None


def test_parse_until():
    now = 1_700_000_000.0
    assert prune.parse_until("1h", now) == now - 3600
    assert prune.parse_until("1600000000", now) == 1_600_000_000
    assert prune.parse_until("2024-01-01T00:00:00Z", now) == 1704067200
    assert prune.parse_until("2024-01-01T00:00:00.123456789Z", now) == pytest.approx(
        1704067200.123456)
    assert prune.parse_until("2024-01-01T01:00:00+01:00", now) == 1704067200
    with pytest.raises(UsageError):
        prune.parse_until("yesterday", now)


def test_prune_filter_until_and_labels():
    accepts = prune.image_filter({"until": ["1h"]}, now=10_000)
    assert accepts(10_000 - 3600, {}) and not accepts(10_000 - 60, {})
    accepts = prune.image_filter({"label": ["keep"]})
    assert accepts(0, {"keep": ""}) and not accepts(0, {})
    accepts = prune.image_filter({"label!": ["keep"]})
    assert not accepts(0, {"keep": "1"}) and accepts(0, {"other": "1"})
    with pytest.raises(UsageError):
        prune.image_filter({"until": ["1h", "2h"]})
