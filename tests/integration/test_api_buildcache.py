"""The Engine API's build and the build cache it shares with the CLI's build.

What a user relies on: `docker build` through the service and `rootless-box build` of the same
directory hit each other's cache (the COPY key is the content key of the context's files,
computed once, in dockerfile/context.py, whichever way the files came; a tar's context
directory is 0755, as a user's directory usually is); an unchanged context
sent again is not unpacked again (kept by the tar's digest, ops/contextcache.py), yet a
changed byte, a changed mode or a changed symlink misses; a file the context's .dockerignore
excludes changes nothing even when a client sends it; a bad tar is Docker's JSON 400 and
leaves nothing kept; `builder prune` (and `system prune`, the API's /build/prune) removes the
kept contexts and counts their bytes, and `system df` counts them as build cache.
"""

import json
import os
import re

import pytest

import registry_server as rs
from conftest import tar_bytes
from test_api import Service, api_cli, docker, no_leftovers, service  # noqa: F401

pytestmark = [pytest.mark.skipif(not rs.shutil.which("docker"), reason="no docker CLI")]

DOCKERFILE = "FROM base\nCOPY . /ctx\nRUN cat /ctx/data > /copied\nENV A=1\n"


def _context(tmp_path, name):
    ctx = tmp_path / name
    (ctx / "sub").mkdir(parents=True)
    os.chmod(str(ctx), 0o755)  # a user's directory as usual (a tar carries no mode for it)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "data").write_text("v1\n")
    (ctx / "sub" / "tool").write_text("#!/bin/sh\n")
    os.chmod(str(ctx / "sub" / "tool"), 0o755)
    os.symlink("data", str(ctx / "link"))
    return ctx


def _api_build(docker, ctx, *flags):
    out = docker("build", *flags, str(ctx), timeout=300)
    assert out.returncode == 0, out.err
    return out.out


def _api_id(out):
    return re.search(r"^Successfully built ([0-9a-f]{12})$", out, re.M).group(1)


def _kept(api_cli):
    path = os.path.join(api_cli.root, "buildcache-contexts")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_cli_and_api_builds_share_the_cache(docker, api_cli, tmp_path):
    # the CLI first, then the API: every step from the cache, the same image
    ctx = _context(tmp_path, "one")
    first = api_cli.ok("build", "-q", str(ctx)).out.strip()
    out = _api_build(docker, ctx)
    assert out.count("Using cache") == 3, out
    assert first[7:19] == _api_id(out)
    # the API first, then the CLI
    ctx = _context(tmp_path, "two")
    (ctx / "data").write_text("v2\n")
    out = _api_build(docker, ctx)
    assert "Using cache" not in out
    again = api_cli.ok("build", str(ctx)).out
    assert again.count("CACHED") == 3, again
    assert again.strip().splitlines()[-1][7:19] == _api_id(out)
    # COPY . /ctx gives /ctx the context directory's mode: 0755 from a tar, which has none
    assert docker("run", "--rm", _api_id(out), "stat", "-c", "%a", "/ctx").out == "755\n"
    # a private (0700) directory makes another /ctx, so another key: the CLI misses
    os.chmod(str(ctx), 0o700)
    assert "CACHED" not in api_cli.ok("build", str(ctx)).out.split("STEP 3/")[0]


def test_an_unchanged_context_is_kept_and_a_change_misses(docker, api_cli, tmp_path):
    ctx = _context(tmp_path, "kept")
    (ctx / "data").write_text("kept\n")
    first = _api_id(_api_build(docker, ctx))
    kept = _kept(api_cli)
    out = _api_build(docker, ctx)
    assert out.count("Using cache") == 3 and _api_id(out) == first
    assert _kept(api_cli) == kept  # the same tar: the same kept context, no other
    # an mtime alone: another tar (another kept context), the same keys
    os.utime(str(ctx / "data"), (1, 1))
    assert _api_id(_api_build(docker, ctx)) == first
    # a changed byte, a changed mode, a changed link target: each misses its COPY
    (ctx / "data").write_text("kepT\n")
    out = _api_build(docker, ctx)
    assert "Using cache" not in out.split("Step 3/")[0], out
    assert docker("run", "--rm", _api_id(out), "cat", "/copied").out == "kepT\n"
    os.chmod(str(ctx / "sub" / "tool"), 0o700)
    out = _api_build(docker, ctx)
    assert "Using cache" not in out.split("Step 3/")[0], out
    os.unlink(str(ctx / "link"))
    os.symlink("sub", str(ctx / "link"))
    out = _api_build(docker, ctx)
    assert "Using cache" not in out.split("Step 3/")[0], out
    assert docker("run", "--rm", _api_id(out), "readlink", "/ctx/link").out == "sub\n"


def test_a_raw_tar_keys_as_the_directory_does(service, api_cli, tmp_path):
    """A client's own tar (docker-py sends one it made itself): the owners in it do not
    count, a file the context's .dockerignore excludes does not either, the bytes do."""
    def tar(data, ignored, uid):
        return tar_bytes([
            ({"name": "Dockerfile"}, b"FROM base\nCOPY . /ctx\n"),
            ({"name": ".dockerignore"}, b"ignored\n"),
            ({"name": "data", "mode": 0o644, "uid": uid}, data),
            ({"name": "ignored"}, ignored)])

    def build(body):
        status, _h, answer = service.request("POST", "/v1.44/build?t=raw:1", body)
        assert status == 200, answer
        lines = [json.loads(line) for line in answer.decode().splitlines()
                 if line.strip() and not re.fullmatch(r"[0-9a-f]+", line.strip())]
        assert not any("error" in line for line in lines), lines
        text = "".join(line.get("stream", "") for line in lines)
        return text, [line["aux"]["ID"] for line in lines if "aux" in line][0]

    text, first = build(tar(b"one", b"a", 0))
    assert "Using cache" not in text
    text, again = build(tar(b"one", b"b", 1000))
    assert (text.count("Using cache"), again) == (1, first)
    text, changed = build(tar(b"two", b"b", 1000))
    assert "Using cache" not in text and changed != first
    # the CLI's build of the same files as a directory: the same key
    ctx = tmp_path / "raw"
    ctx.mkdir()
    os.chmod(str(ctx), 0o755)
    (ctx / "Dockerfile").write_text("FROM base\nCOPY . /ctx\n")
    (ctx / ".dockerignore").write_text("ignored\n")
    (ctx / "data").write_text("two")
    (ctx / "ignored").write_text("c")
    os.chmod(str(ctx / "data"), 0o644)
    out = api_cli.ok("build", str(ctx)).out
    assert out.count("CACHED") == 1 and out.strip().splitlines()[-1] == changed


def test_bad_tars_are_dockers_400_and_nothing_is_kept(service, api_cli):
    before = _kept(api_cli)
    whole = tar_bytes([({"name": "Dockerfile"}, b"FROM base\n"),
                       ({"name": "big"}, b"x" * 5000)])
    for body in (whole[:1200], b"\x1f\x8b" + b"garbage" * 99,
                 tar_bytes([({"name": "Dockerfile"}, b"FROM base\n"),
                            ({"name": "a/../../out"}, b"x")])):
        status, headers, answer = service.request("POST", "/v1.44/build?t=bad:1", body)
        assert status == 400, answer
        assert headers["content-type"].startswith("application/json")
        assert json.loads(answer)["message"]
    assert _kept(api_cli) == before
    assert not [n for n in os.listdir(os.path.join(api_cli.root, "tmp"))
                if "build-context" in n or "build-tar" in n]
    assert service.request("GET", "/v1.44/images/bad:1/json")[0] == 404


def test_kept_contexts_are_bounded_and_pruned(docker, api_cli, tmp_path):
    from rootless_box.ops.contextcache import KEEP
    for i in range(KEEP + 2):
        ctx = _context(tmp_path, "n%d" % i)
        (ctx / "data").write_text("n%d\n" % i)
        _api_build(docker, ctx)
    assert 1 <= len(_kept(api_cli)) <= KEEP
    out = api_cli.ok("builder", "prune", "-f").out
    assert "Total reclaimed space" in out
    assert _kept(api_cli) == []


def test_kept_contexts_count_as_build_cache_and_prunes_free_them(docker, service, api_cli,
                                                                 tmp_path):
    """A kept context is build cache as Docker shows it: `system df`'s Build Cache row
    (TOTAL, ACTIVE, SIZE, RECLAIMABLE with no percentage), `system df -v`'s table,
    /system/df's BuildCache records (what the docker CLI prints from); `builder prune`,
    the API's /build/prune (`docker builder prune`) and `system prune` remove it and count
    its bytes in the space reclaimed; the next build still works."""
    from test_image_cli import df_rows, to_bytes
    api_cli.ok("builder", "prune", "-f")
    ctx = _context(tmp_path, "counted")
    (ctx / "big").write_bytes(b"x" * 300000)
    first = _api_id(_api_build(docker, ctx))
    [kept] = _kept(api_cli)
    row = df_rows(api_cli)["Build Cache"]
    assert (row["TOTAL"], row["ACTIVE"]) == ("1", "0")
    assert 300e3 <= to_bytes(row["SIZE"]) < 400e3 and row["RECLAIMABLE"] == row["SIZE"]
    verbose = api_cli.ok("system", "df", "-v").out
    assert "Build cache usage: %s\n" % row["SIZE"] in verbose
    assert re.search(r"\n%s +source.local +%s " % (kept[:12], row["SIZE"]), verbose), verbose
    status, _h, body = service.request("GET", "/v1.44/system/df?type=build-cache")
    doc = json.loads(body)
    assert status == 200 and [(c["ID"], c["Type"], c["InUse"]) for c in doc["BuildCache"]] \
        == [(kept, "source.local", False)]
    assert doc["BuildCache"][0]["Size"] >= 300000 and doc["BuilderSize"] >= 300000
    out = docker("system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}").out
    assert "Build Cache 1 " in out, out
    # builder prune: the kept context and its bytes
    out = api_cli.ok("builder", "prune", "-f").out
    assert out.startswith("Deleted build cache objects:\n") and kept in out, out
    assert to_bytes(out.splitlines()[-1].split(": ")[1]) >= 300e3
    assert _kept(api_cli) == [] and df_rows(api_cli)["Build Cache"]["SIZE"] == "0B"
    # the next build unpacks the context again, its steps from the cache
    out = _api_build(docker, ctx)
    assert _api_id(out) == first and _kept(api_cli) == [kept]
    # the API's /build/prune, as the docker CLI calls it
    out = docker("builder", "prune", "-f")
    assert out.returncode == 0, out.err
    assert to_bytes(out.out.splitlines()[-1].split(": ")[1]) >= 300e3, out.out
    assert _kept(api_cli) == []
    # system prune's build cache part
    _api_build(docker, ctx)
    out = api_cli.ok("system", "prune", "-f").out
    assert "Deleted build cache objects:\n%s\n" % kept in out, out
    assert to_bytes(out.splitlines()[-1].split(": ")[1]) >= 300e3
    assert _kept(api_cli) == []


def test_a_dockerfile_from_outside_the_context_keeps_nothing(docker, api_cli, tmp_path):
    """`-f` outside the context: the CLI adds the Dockerfile under a random name, so that
    tar never comes again; it is built (from the cache) and not kept."""
    ctx = _context(tmp_path, "outside")
    (ctx / "data").write_text("outside\n")
    first = _api_id(_api_build(docker, ctx))
    other = tmp_path / "Other.Dockerfile"
    other.write_text(DOCKERFILE)
    kept = _kept(api_cli)
    out = _api_build(docker, ctx, "-f", str(other))
    assert out.count("Using cache") == 3 and _api_id(out) == first
    assert _kept(api_cli) == kept
    assert not [n for n in os.listdir(os.path.join(api_cli.root, "tmp"))
                if "build-context" in n]
