"""The Engine API builder's and search's pure pieces: the classic builder's wording of the
build's progress, the completion of a tar the docker CLI leaves without end blocks, which
registry a search term names, Docker's search filters, X-Registry-Config's logins."""

import base64
import io
import json
import tarfile

import pytest

from rootless_box import errors
from rootless_box.api import build
from rootless_box.ops import search


def test_progress_in_the_classic_builders_words():
    assert build._docker_text("step", "STEP 2/5: RUN echo hi") == "Step 2/5 : RUN echo hi\n"
    assert build._docker_text("cached", "--> CACHED 0123456789ab") == \
        " ---> Using cache\n ---> 0123456789ab\n"
    assert build._docker_text("done", "--> 0123456789ab") == " ---> 0123456789ab\n"
    assert build._docker_text("warning", "one or more build args were not consumed: X") == \
        "[Warning] one or more build args were not consumed: X\n"


def _tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _names(stream):
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar]


def test_a_tar_cut_after_its_last_file_is_completed():
    whole = _tar([("Dockerfile", b"FROM base\n"), (".dockerignore", b"x" * 47)])
    # what the CLI sends with -f outside the context: no padding, no end blocks
    cut = whole[:512 * 3 + 47]
    assert _names(build._Completed(io.BytesIO(cut))) == [("Dockerfile", b"FROM base\n"),
                                                          (".dockerignore", b"x" * 47)]
    # a whole tar reads the same through it
    assert _names(build._Completed(io.BytesIO(whole)))[1][0] == ".dockerignore"


def test_which_registry_a_search_term_names():
    assert search.split_term("localhost:5000/team/app") == ("localhost:5000", "team/app")
    assert search.split_term("registry.example/app") == ("registry.example", "app")
    assert search.split_term("team/app") == ("docker.io", "team/app")
    assert search.split_term("busybox") == ("docker.io", "busybox")


def test_search_filters_as_dockers():
    rows = [{"name": "a", "star_count": 5, "is_official": True, "is_automated": False},
            {"name": "b", "star_count": 1, "is_official": False, "is_automated": False}]
    keep = search._filters({"stars": ["3"], "is-official": ["true"]})
    assert [r["name"] for r in rows if all(t(r) for t in keep)] == ["a"]
    for bad in ({"stars": ["many"]}, {"is-official": ["maybe"]}, {"color": ["red"]}):
        with pytest.raises(errors.UsageError):
            search._filters(bad)


def test_registry_config_header_gives_a_login_per_registry():
    doc = {"https://index.docker.io/v1/": {"username": "u", "password": "p"},
           "127.0.0.1:5000": {"username": "v", "password": "q"}, "other": {}}
    header = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")
    logins = build._registry_config(header)
    assert logins["docker.io"]["username"] == "u"
    assert logins["127.0.0.1:5000"] == {"username": "v", "password": "q",
                                        "identity_token": None}
    assert "other" not in logins
