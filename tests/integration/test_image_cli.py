"""`images` (flags, filters, --format), `history`, `image prune`, `system df` and `system prune`
as a user relies on them, through the real CLI on real user namespaces.

Promises checked on disk: what prune removes leaves no blob in `<root>/blobs/sha256` and no
unpacked layer in `<root>/layers/*/`; an image a container uses is never pruned; a prompt answered
anything but y removes nothing; `system df` sees the space come back.
"""

import glob
import json
import os
import re
import uuid

import pytest

from conftest import Cli, docker_failure_code, has_subuid, needs_userns, tar_bytes

pytestmark = needs_userns

ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE_PROMPT = ("WARNING! This will remove all dangling images.\n"
                "Are you sure you want to continue? [y/N] ")
ALL_PROMPT = ("WARNING! This will remove all images without at least one container associated "
              "to them.\nAre you sure you want to continue? [y/N] ")


# -- helpers ------------------------------------------------------------------------------------

def cells(line):
    return re.split(r"\s{2,}", line.strip())


def table(out):
    """A Docker table as a list of {header: cell} (cells are separated by 2+ spaces)."""
    lines = out.splitlines()
    head = cells(lines[0])
    rows = [cells(line) for line in lines[1:]]
    for row in rows:
        assert len(row) == len(head), (head, row)
    return [dict(zip(head, row)) for row in rows]


def unique_tar(tmp_path, label="layer"):
    """A tiny rootfs tarball whose layer belongs to this test alone."""
    data = tar_bytes([({"name": "marker", "mode": 0o644},
                       ("%s-%s" % (label, uuid.uuid4().hex)).encode() * 50)])
    path = tmp_path / ("%s-%s.tar" % (label, uuid.uuid4().hex[:8]))
    path.write_bytes(data)
    return str(path)


def import_id(cli, *args):
    out = cli.ok("import", *args).out.strip()
    assert ID_RE.match(out), out
    return out


def on_disk(cli, image_id):
    """(blob paths, layer dir paths) that exist for an image: its config, its manifest, its layer
    blobs (read from the manifest on disk) and its unpacked layers under every id mapping."""
    index = json.load(open(os.path.join(cli.root, "images.json")))
    record = index["images"][image_id]
    blobs = os.path.join(cli.root, "blobs", "sha256")
    manifest = json.load(open(os.path.join(blobs, record["manifest"][7:])))
    digests = [image_id, record["manifest"]] + [d["digest"] for d in manifest["layers"]]
    layers = [p for d in record["layers"]
              for p in glob.glob(os.path.join(cli.root, "layers", "*", d[7:]))]
    assert layers, "the image's layers are unpacked"
    return [os.path.join(blobs, d[7:]) for d in digests], layers


def gone(paths):
    return [p for p in paths if os.path.lexists(p)] == []


def image_ids(cli):
    return set(cli.ok("images", "-q", "--no-trunc").out.split())


def df_rows(cli):
    return {row["TYPE"]: row for row in table(cli.ok("system", "df").out)}


def to_bytes(text):
    number, unit = re.match(r"^([0-9.]+)([kMGT]?B)$", text.split()[0]).groups()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]


def assert_one_error(proc):
    assert proc.returncode == docker_failure_code(proc.args), (proc.out, proc.err)
    assert "Traceback" not in proc.err
    lines = proc.err.splitlines()
    assert lines[0].startswith("rootless-box: error: ") and len(lines) <= 2, proc.err
    assert len(lines) == 1 or lines[1].startswith("hint: ")


# -- images -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def listed(cli, image, rootfs_tar, tmp_path_factory):
    """base:latest, then labelled:1 (LABEL team=blue), then a dangling image, in that order."""
    tmp = tmp_path_factory.mktemp("listed")
    ids = {"base": json.loads(cli.ok("inspect", image).out)[0]["Id"],
           "labelled": import_id(cli, "-c", "LABEL team=blue", rootfs_tar, "labelled:1"),
           "dangling": import_id(cli, unique_tar(tmp, "dangling"))}
    return ids


def test_images_all_quiet_no_trunc_digests(cli, listed):
    plain = cli.ok("images").out
    # no intermediate images to hide: -a lists the same images
    assert [r["IMAGE ID"] for r in table(cli.ok("images", "-a").out)] == \
        [r["IMAGE ID"] for r in table(plain)]
    rows = table(plain)
    assert ("<none>", "<none>", listed["dangling"][7:19]) in \
        [(r["REPOSITORY"], r["TAG"], r["IMAGE ID"]) for r in rows]
    quiet = cli.ok("images", "-q").out.split()
    assert len(quiet) == len(set(quiet)) and {i[7:19] for i in listed.values()} <= set(quiet)
    assert set(listed.values()) <= image_ids(cli)
    digests = table(cli.ok("images", "--digests").out)
    assert list(digests[0]) == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert {r["DIGEST"] for r in digests} == {"<none>"}  # imports have no registry digest


def test_images_filters(cli, listed):
    def ids(*filters):
        args = [a for f in filters for a in ("--filter", f)]
        return set(cli.ok("images", "-q", "--no-trunc", *args).out.split())

    assert ids("dangling=true") == {listed["dangling"]}
    assert listed["dangling"] not in ids("dangling=false")
    assert {listed["base"], listed["labelled"]} <= ids("dangling=false")
    assert ids("reference=bas*") == {listed["base"]}
    assert ids("reference=*:1") == {listed["labelled"]}
    assert ids("reference=labelled:*", "reference=base") == {listed["base"], listed["labelled"]}
    assert ids("reference=nothing*") == set()
    assert ids("label=team") == ids("label=team=blue") == {listed["labelled"]}
    assert ids("label=team=red") == set()
    assert ids("since=base:latest") == {listed["labelled"], listed["dangling"]}
    assert ids("before=" + listed["dangling"][7:19]) == {listed["base"], listed["labelled"]}
    assert ids("before=labelled:1", "since=base") == set()
    # only the tags a reference filter matched are listed
    cli.ok("tag", "labelled:1", "other:2")
    rows = table(cli.ok("images", "--filter", "reference=other*").out)
    assert [(r["REPOSITORY"], r["TAG"]) for r in rows] == [("other", "2")]
    cli.ok("rmi", "other:2")


@pytest.mark.parametrize("bad", ["colour=red", "dangling=maybe", "before=no-such-image",
                                 "reference=[", "nonsense"])
def test_images_bad_filter_is_one_error(cli, listed, bad):
    assert_one_error(cli("images", "--filter", bad))


def test_images_format(cli, listed):
    lines = cli.ok("images", "--format", "json").out.splitlines()
    objects = [json.loads(line) for line in lines]
    assert len(objects) == 3
    for key in ("Repository", "Tag", "ID", "Digest", "CreatedSince", "CreatedAt", "Size"):
        assert all(key in o for o in objects), key
    assert {(o["Repository"], o["Tag"]) for o in objects} >= {("base", "latest"),
                                                            ("labelled", "1")}
    out = cli.ok("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}",
                 "--filter", "reference=base").out
    assert out == "base:latest %s\n" % listed["base"][7:19]
    out = cli.ok("images", "--format", "table {{.Repository}}\\t{{.Size}}", "base").out
    assert table(out) == [{"REPOSITORY": "base", "SIZE": table(out)[0]["SIZE"]}]
    assert out.splitlines()[0].split() == ["REPOSITORY", "SIZE"]
    # two calls may straddle a second: "1 second ago" then "2 seconds ago"
    def without_age(rows):
        return [{k: v for k, v in row.items() if k != "CREATED"} for row in rows]
    assert without_age(table(cli.ok("images", "--format", "table").out)) == \
        without_age(table(cli.ok("images").out))
    assert_one_error(cli("images", "--format", "{{.Repository"))


# -- history ------------------------------------------------------------------------------------

def test_history_of_an_imported_image(cli, listed, rootfs_tar):
    rows = table(cli.ok("history", "labelled:1").out)
    assert list(rows[0]) == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert len(rows) == 1
    row = rows[0]
    assert row["IMAGE"] == listed["labelled"][7:19]
    assert row["COMMENT"] == "Imported from %s" % os.path.basename(rootfs_tar)
    assert row["CREATED BY"] == "rootless-box import %s" % os.path.basename(rootfs_tar)
    assert row["CREATED"].endswith("ago")
    size_in_images = table(cli.ok("images", "labelled:1").out)[0]["SIZE"]
    assert row["SIZE"] == size_in_images
    raw = table(cli.ok("history", "-H=false", "--no-trunc", "labelled:1").out)[0]
    assert raw["IMAGE"] == listed["labelled"]
    assert int(raw["SIZE"]) == json.loads(cli.ok("inspect", "labelled:1").out)[0]["Size"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$", raw["CREATED"])
    assert cli.ok("history", "-q", "labelled:1").out == listed["labelled"][7:19] + "\n"
    line = json.loads(cli.ok("history", "--format", "json", "labelled:1").out)
    assert line["ID"] == listed["labelled"][7:19] and line["Comment"] == row["COMMENT"]
    assert cli.ok("history", "--format", "{{.Size}}|{{.Comment}}", "labelled:1").out == \
        "%s|%s\n" % (row["SIZE"], row["COMMENT"])
    assert_one_error(cli("history", "no-such-image:1"))


def test_history_of_a_committed_image(cli, image):
    """Two steps: the commit on top (the image's ID, the new layer's size) over the import
    (`<missing>`, as Docker shows layers not built here); CREATED BY cut at 45 characters."""
    command = "dd if=/dev/zero of=/big bs=1000 count=300 2>/dev/null; echo done-with-it"
    cli.ok("run", "--name", "hist-src", image, "sh", "-c", command)
    proc = cli("commit", "-m", "made here", "hist-src", "committed:1")
    cli.ok("rm", "hist-src")
    if proc.returncode != 0:
        pytest.skip("commit is not available yet: %s" % proc.err.strip())
    rows = table(cli.ok("history", "committed:1").out)
    assert [r["IMAGE"] for r in rows] == [proc.out.strip()[7:19], "<missing>"]
    assert rows[0]["COMMENT"] == "made here"
    assert len(rows[0]["CREATED BY"]) == 45 and rows[0]["CREATED BY"].endswith("…")
    assert 300e3 <= to_bytes(rows[0]["SIZE"]) < 400e3
    assert rows[1]["SIZE"] == table(cli.ok("history", image).out)[0]["SIZE"]
    full = table(cli.ok("history", "--no-trunc", "committed:1").out)
    assert full[0]["CREATED BY"].endswith("echo done-with-it")
    # Docker's Parent: the image the container ran, the one committed on top of it
    base_id = cli.ok("inspect", "-f", "{{.Id}}", image).out
    assert cli.ok("inspect", "-f", "{{.Parent}}", "committed:1").out == base_id
    assert cli.ok("inspect", "-f", "{{.Parent}}", image).out == "\n"  # imported: none
    cli.ok("rmi", "committed:1")


# -- image prune --------------------------------------------------------------------------------

def test_image_prune_asks_first_and_removes_blobs_and_layers(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    base = import_id(cli, rootfs_tar, "base:latest")
    dangling = import_id(cli, unique_tar(tmp_path, "dangling"))
    blobs, layers = on_disk(cli, dangling)
    base_blobs, base_layers = on_disk(cli, base)
    before = df_rows(cli)["Images"]

    for answer in (b"n\n", b"\n", b"", b"yes please\n"):
        proc = cli.ok("image", "prune", input=answer)
        assert proc.out == IMAGE_PROMPT, proc.out
        assert image_ids(cli) == {base, dangling}
    assert not gone(blobs) and not gone(layers)

    proc = cli.ok("image", "prune", input=b"y\n")
    assert proc.out.startswith(IMAGE_PROMPT + "Deleted Images:\ndeleted: %s\n\n" % dangling)
    assert re.search(r"\nTotal reclaimed space: [0-9.]+[kM]?B\n$", proc.out), proc.out
    assert to_bytes(proc.out.rsplit(": ", 1)[1]) > 0
    assert image_ids(cli) == {base}
    assert gone(blobs) and gone(layers)
    assert not [p for p in base_blobs + base_layers if not os.path.lexists(p)]
    after = df_rows(cli)["Images"]
    assert (before["TOTAL"], after["TOTAL"]) == ("2", "1")
    assert to_bytes(after["SIZE"]) < to_bytes(before["SIZE"])

    # nothing dangling left: prune says so and keeps the tagged image
    proc = cli.ok("image", "prune", "-f")
    assert proc.out == "Total reclaimed space: 0B\n"
    assert image_ids(cli) == {base}
    # -a asks with Docker's other warning
    assert cli.ok("image", "prune", "-a", input=b"N\n").out == ALL_PROMPT
    proc = cli.ok("image", "prune", "-a", input=b"Y\n")
    assert "untagged: base:latest\ndeleted: %s\n" % base in proc.out
    assert image_ids(cli) == set() and gone(base_blobs) and gone(base_layers)


def test_prune_never_removes_an_image_a_container_uses(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    used_tagged = import_id(cli, rootfs_tar, "used:1")
    # the same rootfs, another config: a dangling image that shares the layer
    used_dangling = import_id(cli, "-c", "LABEL x=1", rootfs_tar)
    unused = import_id(cli, unique_tar(tmp_path, "unused"), "unused:1")
    unused_dangling = import_id(cli, unique_tar(tmp_path, "gone"))
    cli.ok("run", "--name", "by-tag", "used:1", "true")
    cli.ok("run", "--name", "by-id", used_dangling[7:19], "true")
    kept_blobs, kept_layers = on_disk(cli, used_dangling)

    proc = cli.ok("image", "prune", "-f")
    assert "deleted: %s" % unused_dangling in proc.out
    assert used_dangling not in proc.out
    proc = cli.ok("image", "prune", "-a", "-f")
    assert "untagged: unused:1\ndeleted: %s\n" % unused in proc.out
    assert used_tagged not in proc.out and used_dangling not in proc.out
    assert image_ids(cli) == {used_tagged, used_dangling}
    assert not gone(kept_blobs) and all(os.path.isdir(p) for p in kept_layers)
    cli.ok("run", "--rm", "used:1", "true")  # still runnable

    cli.ok("rm", "by-tag", "by-id")
    cli.ok("image", "prune", "-a", "-f")
    assert image_ids(cli) == set()
    assert os.listdir(os.path.join(cli.root, "blobs", "sha256")) == []
    assert glob.glob(os.path.join(cli.root, "layers", "*", "*")) == []


def test_image_prune_filters(tmp_path, rootfs_tar):
    cli = Cli(str(tmp_path / "data"))
    blue = import_id(cli, "-c", "LABEL team=blue", unique_tar(tmp_path, "blue"), "blue:1")
    red = import_id(cli, "-c", "LABEL team=red", unique_tar(tmp_path, "red"), "red:1")
    plain = import_id(cli, unique_tar(tmp_path, "plain"), "plain:1")

    # bad filters fail before the question is asked
    for bad in ("colour=red", "until=yesterday", "dangling=true"):
        proc = cli("image", "prune", "-a", "--filter", bad, input=b"y\n")
        assert_one_error(proc)
        assert proc.out == ""
    assert image_ids(cli) == {blue, red, plain}

    cli.ok("image", "prune", "-a", "-f", "--filter", "until=1h")  # all are newer
    assert image_ids(cli) == {blue, red, plain}
    proc = cli.ok("image", "prune", "-a", "-f", "--filter", "label=team=blue")
    assert "untagged: blue:1" in proc.out
    assert image_ids(cli) == {red, plain}
    cli.ok("image", "prune", "-a", "-f", "--filter", "label!=team")
    assert image_ids(cli) == {red}
    cli.ok("image", "prune", "-a", "-f", "--filter", "until=0s")
    assert image_ids(cli) == set()


# -- system df, system prune (both id mappings) -------------------------------------------------

MAPPINGS = [pytest.param("single", id="single"),
            pytest.param("subuid", id="subuid", marks=pytest.mark.skipif(
                not has_subuid(), reason="needs /etc/subuid ranges and newuidmap"))]


@pytest.mark.parametrize("mapping", MAPPINGS)
def test_system_df_and_system_prune(tmp_path, rootfs_tar, mapping):
    cli = Cli(str(tmp_path / "data"), env={"RBX_USERNS": mapping})
    base = import_id(cli, rootfs_tar, "base:latest")
    dangling = import_id(cli, unique_tar(tmp_path, "dangling"))
    # a container whose upper dir holds a directory only its (subordinate) owner can read
    cli.ok("run", "--name", "stopped", "-v", "data:/data", "base",
           "sh", "-c", "echo hi > /data/f; mkdir /priv; echo x > /priv/f; "
                       "chown 1000 /priv 2>/dev/null; chmod 700 /priv; "
                       "dd if=/dev/zero of=/big bs=1000 count=100 2>/dev/null")
    dangling_files = on_disk(cli, dangling)

    rows = df_rows(cli)
    assert list(rows) == ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert (rows["Images"]["TOTAL"], rows["Images"]["ACTIVE"]) == ("2", "1")
    assert (rows["Containers"]["TOTAL"], rows["Containers"]["ACTIVE"]) == ("1", "0")
    assert to_bytes(rows["Containers"]["SIZE"]) >= 100e3
    assert rows["Containers"]["RECLAIMABLE"].endswith("(100%)")
    assert (rows["Local Volumes"]["TOTAL"], rows["Local Volumes"]["ACTIVE"]) == ("1", "1")
    assert rows["Local Volumes"]["SIZE"] == "3B"
    assert rows["Build Cache"]["SIZE"] == "0B"
    assert re.match(r"^[0-9.]+[kM]?B \(\d+%\)$", rows["Images"]["RECLAIMABLE"])
    as_json = [json.loads(line) for line in cli.ok("system", "df", "--format", "json")
               .out.splitlines()]
    assert [o["Type"] for o in as_json] == list(rows)
    assert as_json[0]["TotalCount"] == "2" and as_json[0]["Size"] == rows["Images"]["SIZE"]
    verbose = cli.ok("system", "df", "-v").out
    for title in ("Images space usage:", "Containers space usage:",
                  "Local Volumes space usage:", "Build cache usage: 0B"):
        assert title in verbose
    assert re.search(r"\nbase +latest +%s " % base[7:19], verbose)
    assert re.search(r"\ndata +1 +3B\n", verbose)
    assert set(json.loads(cli.ok("system", "df", "-v", "--format", "json").out)) == {
        "Images", "Containers", "Volumes", "BuildCache"}

    warning = ("WARNING! This will remove:\n  - all stopped containers\n"
               "  - all networks not used by at least one container\n"
               "  - all anonymous volumes not used by at least one container\n"
               "  - all dangling images\n  - unused build cache\n"
               "\nAre you sure you want to continue? [y/N] ")
    assert cli.ok("system", "prune", "--volumes", input=b"n\n").out == warning
    assert df_rows(cli) == rows

    proc = cli.ok("system", "prune", "-f")
    assert re.match(r"^Deleted Containers:\n[0-9a-f]{64}\n\nDeleted Images:\n"
                    r"deleted: %s\n\nTotal reclaimed space: [0-9.]+[kM]?B\n$" % dangling,
                    proc.out), proc.out
    assert to_bytes(proc.out.rsplit(": ", 1)[1]) >= 100e3
    assert cli.ok("ps", "-a", "-q").out == ""
    assert image_ids(cli) == {base}
    assert gone(dangling_files[0]) and gone(dangling_files[1])
    after = df_rows(cli)
    assert (after["Images"]["TOTAL"], after["Containers"]["TOTAL"]) == ("1", "0")
    assert after["Local Volumes"]["TOTAL"] == "1"  # kept: --volumes was not given
    assert after["Local Volumes"]["ACTIVE"] == "0"
    assert to_bytes(after["Images"]["SIZE"]) < to_bytes(rows["Images"]["SIZE"])

    proc = cli.ok("system", "prune", "-a", "-f", "--volumes")
    # Docker 23+: --volumes takes anonymous volumes only; a named one goes with volume prune -a
    assert "Deleted Volumes" not in proc.out
    assert "untagged: base:latest\n" in proc.out
    assert image_ids(cli) == set()
    assert cli.ok("volume", "ls", "-q").out == "data\n"
    assert "Deleted Volumes:\ndata\n\n" in cli.ok("volume", "prune", "-a", "-f").out
    assert not os.path.exists(os.path.join(cli.root, "volumes", "data"))
    assert glob.glob(os.path.join(cli.root, "layers", "*", "*")) == []
    assert os.listdir(os.path.join(cli.root, "blobs", "sha256")) == []
    final = df_rows(cli)
    assert [final[k]["TOTAL"] for k in final] == ["0", "0", "0", "0"]
