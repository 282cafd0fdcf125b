"""Container labels through the CLI: -l/--label, --label-file (Docker's file format), merged
over the image's in inspect, and `ps --filter label=`."""

import json

from conftest import needs_userns

pytestmark = needs_userns


def test_labels_merge_over_the_image_and_filter_ps(cli, rootfs_tar, tmp_path):
    cli.ok("import", "-c", "LABEL team=blue", "-c", "LABEL tier=web", "-c", 'CMD ["sh"]',
           rootfs_tar, "labelled:1")
    label_file = tmp_path / "labels"
    label_file.write_bytes(b"\xef\xbb\xbf# a comment\n\n  from.file=1\ntier=db\nbare\n")
    cid = cli.ok("create", "--label-file", label_file, "-l", "team=red", "--label",
                 "tier=cache", "labelled:1", "true").out.strip()
    labels = json.loads(cli.ok("inspect", cid).out)[0]["Config"]["Labels"]
    # the image's, then the file's, then -l's (later wins)
    assert labels == {"team": "red", "tier": "cache", "from.file": "1", "bare": ""}
    plain = cli.ok("run", "-d", "labelled:1", "sleep", "30").out.strip()
    assert json.loads(cli.ok("inspect", plain).out)[0]["Config"]["Labels"] == {
        "team": "blue", "tier": "web"}

    def ps(*filters):
        args = ["ps", "-a", "-q", "--no-trunc"]
        for f in filters:
            args += ["--filter", f]
        return set(cli.ok(*args).out.split())
    assert {cid, plain} <= ps("label=team")
    assert cid in ps("label=team=red") and plain not in ps("label=team=red")
    assert ps("label=bare", "label=from.file=1") == {cid}
    assert plain in ps("label=tier=web") and cid not in ps("label=tier=web")
    assert cli.ok("ps", "-a", "--filter", "id=" + cid, "--format",
                  '{{.Label "team"}} {{.Labels}}').out == \
        "red bare=,from.file=1,team=red,tier=cache\n"
    cli.ok("rm", "-f", cid, plain)


def test_bad_label_file_is_one_line_exit_125(cli, image, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("good=1\nbad key=2\n")
    for args, message in ((["--label-file", bad], "variable 'bad key' contains whitespaces"),
                          (["--label-file", tmp_path / "missing"], "no such file or directory"),
                          (["--label-file", _write(tmp_path / "noname", "=v\n")],
                           "no variable name on line '=v'")):
        proc = cli("run", "--rm", *args, image, "true")
        assert proc.returncode == 125 and message in proc.err, proc.err
        assert proc.err.startswith("rootless-box: error: ") and "Traceback" not in proc.err


def _write(path, text):
    path.write_text(text)
    return path
