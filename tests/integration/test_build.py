"""`build` end to end: instructions, multi-stage, .dockerignore, the cache, failures."""

import json
import os
import re
import tarfile
import time

import pytest

from conftest import Cli, assert_one_error, busybox_path, needs_userns, run_in_pty

pytestmark = needs_userns


@pytest.fixture
def context(tmp_path):
    def make(dockerfile, files=None):
        ctx = tmp_path / ("ctx%d" % len(list(tmp_path.iterdir())))
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        for name, data in (files or {}).items():
            path = ctx / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)
        return str(ctx)
    return make


def config_of(cli, name):
    return json.loads(cli.ok("inspect", name).out)[0]["Config"]


def test_instructions_make_docker_configs_and_layers(cli, image, context):
    ctx = context(
        "FROM %s\n"
        "ENV A=1 B=\"two words\"\n"
        "WORKDIR /app\n"
        "COPY hello.txt dir/ ./\n"
        "RUN echo \"$A $B\" > run.txt && cat hello.txt\n"
        "LABEL stage=test\n"
        "EXPOSE 8080 53/udp\n"
        "VOLUME /data\n"
        "STOPSIGNAL SIGUSR1\n"
        "HEALTHCHECK --interval=5s --retries=2 CMD true\n"
        "USER app\n"
        "ENTRYPOINT [\"sh\", \"-c\"]\n"
        "CMD [\"cat /app/run.txt\"]\n" % image,
        {"hello.txt": "hi\n", "dir/inner.txt": "inner\n"})
    out = cli.ok("build", "-t", "built:cfg", ctx).out
    assert "STEP 1/13: FROM" in out and "hi\n" in out
    assert cli.ok("run", "--rm", "built:cfg").out == "1 two words\n"
    cfg = config_of(cli, "built:cfg")
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "app"
    assert "A=1" in cfg["Env"] and "B=two words" in cfg["Env"]
    assert cfg["Labels"] == {"stage": "test"}
    assert set(cfg["ExposedPorts"]) == {"8080/tcp", "53/udp"}
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGUSR1"
    assert cfg["Entrypoint"] == ["sh", "-c"] and cfg["Cmd"] == ["cat /app/run.txt"]
    assert cfg["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]  # shell form, as Docker
    assert cfg["Healthcheck"]["Interval"] == 5 * 10 ** 9
    assert cli.ok("run", "--rm", "--entrypoint", "ls", "built:cfg", "/app").out.split() == \
        ["hello.txt", "inner.txt", "run.txt"]
    layers = json.loads(cli.ok("inspect", "built:cfg").out)[0]["RootFS"]["Layers"]
    base_layers = json.loads(cli.ok("inspect", image).out)[0]["RootFS"]["Layers"]
    assert len(layers) == len(base_layers) + 3  # WORKDIR (a new dir), COPY and RUN
    history = json.loads(open(os.path.join(cli.root, "blobs", "sha256", json.loads(
        cli.ok("inspect", "built:cfg").out)[0]["Id"][7:])).read())["history"]
    assert history[-1]["empty_layer"] is True
    assert any(h["created_by"].startswith("RUN") for h in history)


def test_a_rebuild_is_cached_and_no_cache_is_not(cli, image, context):
    ctx = context("FROM %s\nCOPY f /f\nRUN cat /f > /g\nENV X=1\n" % image, {"f": "v1"})
    first = cli.ok("build", "-q", ctx).out.strip()
    start = time.time()
    again = cli.ok("build", ctx)
    assert again.out.count("CACHED") == 3
    assert again.out.strip().splitlines()[-1] == first
    assert time.time() - start < 5
    # mtime is not part of the key; content is
    os.utime(os.path.join(ctx, "f"), (0, 0))
    assert cli.ok("build", "-q", ctx).out.strip() == first
    with open(os.path.join(ctx, "f"), "w") as f:
        f.write("v2")
    changed = cli.ok("build", ctx).out
    assert "CACHED" not in changed
    assert cli.ok("run", "--rm", changed.strip().splitlines()[-1], "cat", "/g").out == "v2"
    assert "CACHED" not in cli.ok("build", "--no-cache", ctx).out


def _trash_emptied(root, bound=120.0):
    """The store's trash once the detached deleter has done (waited for, bounded)."""
    trash = os.path.join(root, "trash")
    deadline = time.monotonic() + bound
    while os.path.isdir(trash) and os.listdir(trash) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.listdir(trash) if os.path.isdir(trash) else []


def test_a_no_cache_rebuild_of_the_same_layers_leaves_nothing_behind(cli, image, context):
    """--no-cache makes every step again: with reproducible layers they are the ones the
    store has, and each step's copy is set aside at once and deleted by a process of its own
    after the build answers: nothing is left in the store's tmp, the trash empties, no
    layer is added or lost, and the image still works."""
    files = {"d/%03d" % i: "%d\n" % i for i in range(50)}
    ctx = context("FROM %s\nCOPY d /d/\nRUN mkdir /g && for i in 1 2 3; do echo $i > /g/$i; "
                  "done\n" % image, files)
    first = cli.ok("build", "-q", ctx).out.strip()
    layers = sorted(os.listdir(os.path.join(cli.root, "layers", os.listdir(
        os.path.join(cli.root, "layers"))[0])))
    assert cli.ok("build", "-q", "--no-cache", ctx).out.strip() == first
    assert os.listdir(os.path.join(cli.root, "tmp")) == []
    assert _trash_emptied(cli.root) == []
    assert sorted(os.listdir(os.path.join(cli.root, "layers", os.listdir(
        os.path.join(cli.root, "layers"))[0]))) == layers
    assert cli.ok("run", "--rm", first, "sh", "-c", "cat /d/049 /g/3").out == "49\n3\n"


def test_the_store_spreads_its_temporaries_over_the_disk(tmp_path):
    """The store's tmp (where steps and unpacks make their trees) carries ext4's "top of
    directory hierarchies" flag (chattr +T), so that each new tree there gets a block group
    of its own: files made in a group where many were just deleted cost far more on ext4
    without a journal. Elsewhere (no such flag) the store works without it."""
    import fcntl
    import struct
    probe = str(tmp_path / "probe")
    os.mkdir(probe)
    fd = os.open(probe, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, 0x40086602, struct.pack("=iI", 0x00020000, 0))
    except OSError:
        pytest.skip("the file system here takes no chattr +T")
    finally:
        os.close(fd)
    cli = Cli(str(tmp_path / "data"))
    cli.ok("images")
    fd = os.open(os.path.join(cli.root, "tmp"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("=iI", fcntl.ioctl(fd, 0x80086601, bytes(8)))[0]
    finally:
        os.close(fd)
    assert flags & 0x00020000


def test_build_args_and_arg_scoping(cli, image, context):
    ctx = context("ARG BASE=%s\nARG GLOBAL=g\nFROM $BASE\nARG WHO=nobody\nARG GLOBAL\n"
                  "RUN echo \"$WHO $GLOBAL\" > /who\n" % image)
    cli.ok("build", "--build-arg", "WHO=someone", "-t", "args:1", ctx)
    assert cli.ok("run", "--rm", "args:1", "cat", "/who").out == "someone g\n"
    assert "WHO" not in " ".join(config_of(cli, "args:1")["Env"] or [])
    unused = cli.ok("build", "--build-arg", "NOPE=1", ctx)
    assert "NOPE" in unused.err


def test_platform_args(cli, image, context):
    ctx = context("FROM %s\nARG TARGETARCH\nARG TARGETPLATFORM\n"
                  "RUN echo $TARGETPLATFORM $TARGETARCH > /p\n" % image)
    cli.ok("build", "-t", "plat:1", ctx)
    from rootless_box.oci.image import host_arch
    out = cli.ok("run", "--rm", "plat:1", "cat", "/p").out.split()
    assert out[1] == host_arch() and out[0].startswith("linux/" + host_arch())


def test_multi_stage_target_and_unused_stages(cli, image, context):
    ctx = context("FROM %s AS broken\nRUN exit 3\n\n"
                  "FROM %s AS builder\nRUN echo built > /artifact\n\n"
                  "FROM %s\nCOPY --from=builder /artifact /from-builder\n" % ((image,) * 3))
    cli.ok("build", "-t", "multi:1", ctx)  # the failing stage is not needed
    assert cli.ok("run", "--rm", "multi:1", "cat", "/from-builder").out == "built\n"
    cli.ok("build", "--target", "builder", "-t", "multi:builder", ctx)
    assert cli.ok("run", "--rm", "multi:builder", "cat", "/artifact").out == "built\n"
    failed = cli("build", "--target", "broken", ctx)
    assert failed.returncode == 1 and "exit code: 3" in failed.err


def test_dockerignore_and_copy_flags(cli, image, context):
    ctx = context("FROM %s\nCOPY --chown=app:app --chmod=600 . /ctx/\n" % image,
                  {"keep.txt": "k", "secret.env": "s", "logs/a.log": "l",
                   "logs/important.log": "i", ".dockerignore": "*.env\nlogs\n!logs/important.log\n"})
    cli.ok("build", "-t", "ignore:1", ctx)
    out = cli.ok("run", "--rm", "ignore:1", "sh", "-c",
                 "cd /ctx && find . -type f | sort; stat -c '%u:%g %a' keep.txt").out.split("\n")
    assert "./keep.txt" in out and "./logs/important.log" in out
    assert "./secret.env" not in out and "./logs/a.log" not in out
    assert "1000:1000 600" in out


def test_add_extracts_local_archives(cli, image, context, tmp_path):
    archive = tmp_path / "a.tar.gz"
    src = tmp_path / "tree"
    (src / "d").mkdir(parents=True)
    (src / "d" / "x").write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "d", arcname="d")
    ctx = context("FROM %s\nADD a.tar.gz /opt/\n" % image, {"a.tar.gz": archive.read_bytes()})
    cli.ok("build", "-t", "add:1", ctx)
    assert cli.ok("run", "--rm", "add:1", "cat", "/opt/d/x").out == "x"


def test_onbuild_triggers_run_in_child_builds(cli, image, context):
    parent = context("FROM %s\nONBUILD RUN echo triggered > /onbuild\n" % image)
    cli.ok("build", "-t", "onbuild:parent", parent)
    child = context("FROM onbuild:parent\nRUN cat /onbuild\n")
    out = cli.ok("build", "-t", "onbuild:child", child).out
    assert "triggered" in out
    assert config_of(cli, "onbuild:child")["OnBuild"] is None


def test_shell_instruction_changes_run(cli, image, context):
    ctx = context("FROM %s\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0 > /shell\n" % image)
    cli.ok("build", "-t", "shell:1", ctx)
    assert cli.ok("run", "--rm", "shell:1", "cat", "/shell").out == "/bin/sh\n"
    assert config_of(cli, "shell:1")["Shell"] == ["/bin/sh", "-ec"]


@pytest.mark.parametrize("dockerfile,files,message", [
    ("FROM {img}\nFROBNICATE x\n", {}, "Dockerfile:2: unknown instruction: FROBNICATE"),
    ("FROM {img}\nCOPY missing.txt /\n", {}, "not found"),
    ("FROM {img}\nCOPY ../outside /\n", {}, "outside the build context"),
    # looked for in the registry (the tests' docker.io answers nowhere)
    ("FROM no-such-base:1\n", {}, "base image no-such-base:1: cannot reach"),
    ("FROM {img}\nRUN echo failing; exit 7\n", {}, "exit code: 7"),
    ("FROM {img}\nCOPY --from=nostage /a /b\n", {}, "no such stage or image"),
])
def test_bad_builds_fail_with_one_line(cli, image, context, dockerfile, files, message):
    before = set(json.loads(open(os.path.join(cli.root, "images.json")).read())["tags"])
    proc = cli("build", "-t", "bad:1", context(dockerfile.format(img=image), files))
    assert proc.returncode == 1, proc.err
    assert message in proc.err
    assert "Traceback" not in proc.err
    assert [l for l in proc.err.splitlines() if l.startswith("rootless-box: error:")]
    tags = set(json.loads(open(os.path.join(cli.root, "images.json")).read())["tags"])
    assert tags == before
    assert os.listdir(os.path.join(cli.root, "tmp")) == []


def test_symlinks_in_the_context_are_not_followed_out(cli, image, context, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host only")
    for target in (str(secret), "../host-secret"):
        ctx = context("FROM %s\nCOPY link /copied\n" % image)
        os.symlink(target, os.path.join(ctx, "link"))
        proc = cli("build", "-t", "link:1", ctx)
        assert proc.returncode == 1 and "Traceback" not in proc.err
        assert "not found" in proc.err or "outside the build context" in proc.err
        assert "host only" not in proc.out + proc.err
    assert cli("inspect", "link:1").returncode != 0


def test_a_source_that_is_a_symlink_copies_its_target(cli, image, context):
    """BuildKit follows a link that a source names (directly or by a wildcard); links inside
    a copied directory stay links."""
    ctx = context("FROM %s\nCOPY flink /f\nCOPY dlink/ /d/\nCOPY *.txt /w/\n" % image,
                  {"real/file": "content\n", "real/sub/x": "x\n", "target": "t\n"})
    os.symlink("real/file", os.path.join(ctx, "flink"))
    os.symlink("/real", os.path.join(ctx, "dlink"))  # / is the context's root
    os.symlink("../file", os.path.join(ctx, "real", "sub", "inner"))
    os.symlink("target", os.path.join(ctx, "m.txt"))
    img = cli.ok("build", "-q", ctx).out.strip()
    out = cli.ok("run", "--rm", img, "sh", "-c",
                 "cat /f; test -L /f || echo f-regular; ls /d /d/sub; readlink /d/sub/inner;"
                 " test -L /w/m.txt || cat /w/m.txt").out
    assert out.split("\n") == ["content", "f-regular", "/d:", "file", "sub", "", "/d/sub:",
                               "inner", "x", "../file", "t", ""]
    # the cache key is over the target's content: changing it invalidates the step
    with open(os.path.join(ctx, "real", "file"), "w") as f:
        f.write("changed\n")
    again = cli.ok("build", ctx)
    assert again.out.count("CACHED") == 0
    rebuilt = cli.ok("build", "-q", ctx).out.strip()
    assert cli.ok("run", "--rm", rebuilt, "cat", "/f").out == "changed\n"


def test_copy_from_a_stage_follows_a_source_symlink_inside_its_root(cli, image, context):
    img = _build(cli, context, "FROM %s AS base\nRUN echo hi > /real && ln -s /real /abs &&"
                               " ln -s ../../real /up\nFROM %s\nCOPY --from=base /abs /a\n"
                               "COPY --from=base /up /u\n" % (image, image))
    out = cli.ok("run", "--rm", img, "sh", "-c", "cat /a; test -L /a || echo regular").out
    assert out == "hi\nregular\n"


def test_trash_a_dead_process_left_is_swept_by_the_next_change(cli, image, context):
    """A build killed before its trash was deleted leaves trees named after it: the next
    command that takes the store's lock deletes them (as a dead process's temporaries)."""
    trash = os.path.join(cli.root, "trash")
    os.makedirs(os.path.join(trash, "999999999-deadbeef", "upper", "d"))
    with open(os.path.join(trash, "999999999-deadbeef", "upper", "d", "f"), "w") as f:
        f.write("x")
    cli.ok("tag", image, "swept:1")  # any change of the store
    assert os.listdir(trash) == []


def test_build_from_stdin_and_iidfile(cli, image, tmp_path):
    iid = tmp_path / "iid"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = cli.ok("build", "--iidfile", iid, "-q", "-", input=(
        "FROM %s\nRUN echo stdin > /s\n" % image).encode(), env={"TMPDIR": str(tmp)})
    assert iid.read_text() == proc.out.strip()
    assert list(tmp.iterdir()) == []  # the empty context it made is gone
    assert cli.ok("run", "--rm", proc.out.strip(), "cat", "/s").out == "stdin\n"


def test_copy_exclude_and_parents(cli, image, context):
    files = {"x/a.txt": "a", "x/y/b.txt": "b", "x/y/c.md": "c", "x/z/d.txt": "d"}
    ctx = context("FROM %s\n"
                  "COPY --exclude=**/*.md --exclude=z x /ex/\n"
                  "COPY --parents x/y/*.txt x/z/d.txt /par/\n"
                  "COPY --parents x/./y/b.txt /piv/\n" % image, files)
    cli.ok("build", "-t", "flags:1", ctx)
    out = cli.ok("run", "--rm", "flags:1", "sh", "-c",
                 "cd / && find /ex /par /piv -type f | sort").out.split()
    assert out == ["/ex/a.txt", "/ex/y/b.txt", "/par/x/y/b.txt", "/par/x/z/d.txt",
                   "/piv/y/b.txt"]


def test_add_from_a_url_with_checksum(cli, image, context, tmp_path):
    import hashlib
    import http.server
    import threading
    served = tmp_path / "served"
    served.mkdir()
    (served / "payload.txt").write_text("from the web\n")
    digest = "sha256:" + hashlib.sha256(b"from the web\n").hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/payload.txt" % server.server_address[1]
    try:
        ok = context("FROM %s\nADD --checksum=%s %s /web/\n" % (image, digest, url))
        direct = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
        cli.ok("build", "-t", "url:1", ok, env=direct)
        assert cli.ok("run", "--rm", "url:1", "sh", "-c",
                      "cat /web/payload.txt; stat -c %a /web/payload.txt").out == \
            "from the web\n600\n"
        bad = context("FROM %s\nADD --checksum=sha256:%s %s /web/\n" % (image, "0" * 64, url))
        proc = cli("build", bad, env=direct)
        assert proc.returncode == 1 and "checksum mismatch" in proc.err
        assert os.listdir(os.path.join(cli.root, "tmp")) == []
    finally:
        server.shutdown()


def test_terminal_progress_and_plain_lines(cli, image, context):
    """On a terminal the steps are styled by rich; piped, they are plain STEP lines."""
    ctx = context("FROM %s\nRUN echo inside-step\n" % image)
    text, status = run_in_pty(cli, ("build", "--no-cache", ctx), timeout=60)
    assert status == 0
    assert "\x1b[" in text and "STEP 2/2" in text and "inside-step" in text
    plain = cli.ok("build", "--progress=plain", "--no-cache", ctx).out
    assert "\x1b[" not in plain and "STEP 2/2: RUN echo inside-step" in plain


def test_proxy_args_reach_run_without_an_arg_line(cli, image, context):
    ctx = context("FROM %s\nRUN echo \"[$HTTP_PROXY]\" > /proxy\n" % image)
    cli.ok("build", "--build-arg", "HTTP_PROXY=http://proxy.invalid:3128", "-t", "proxy:1", ctx)
    assert cli.ok("run", "--rm", "proxy:1", "cat", "/proxy").out == \
        "[http://proxy.invalid:3128]\n"
    history = cli.ok("history", "--no-trunc", "proxy:1").out
    assert "proxy.invalid" not in history


def test_a_killed_build_leaves_no_image_and_no_temporaries(cli, image, context):
    import signal
    import subprocess
    ctx = context("FROM %s\nRUN echo started; sleep 30\n" % image)
    proc = subprocess.Popen(cli.argv("build", "-t", "killed:1", ctx), env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    line = b""
    while b"started" not in line and time.time() < deadline:
        line = proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.5)
    # the step's container dies with the build (parent-death signals), no orphan is left
    left = subprocess.run(["pgrep", "-u", str(os.getuid()), "-f", "^sleep 30$"],
                          capture_output=True, text=True).stdout.split()
    assert left == []
    assert cli("inspect", "killed:1").returncode == 1
    cli.ok("images")  # the next command cleans the dead build's temporaries
    assert os.listdir(os.path.join(cli.root, "tmp")) == []


# -- review findings, each a Docker rule or a safety property --------------------------------

def _build(cli, context, dockerfile, files=None, *args):
    return cli.ok("build", "-q", *args, context(dockerfile, files)).out.strip()


def test_cache_keys_tell_apart_what_prints_alike(cli, image, context):
    one = _build(cli, context, 'FROM %s\nENV A="x B=y"\n' % image)
    two = _build(cli, context, "FROM %s\nENV A=x B=y\n" % image)
    assert "B=y" in config_of(cli, two)["Env"] and one != two
    ctx_file = context("FROM %s\nCOPY a.txt /dst\n" % image, {"a.txt": "a"})
    cli.ok("build", ctx_file)
    with open(os.path.join(ctx_file, "Dockerfile"), "w") as f:
        f.write("FROM %s\nCOPY a.txt /dst/\n" % image)
    as_dir = cli.ok("build", "-q", ctx_file).out.strip()
    assert cli.ok("run", "--rm", as_dir, "cat", "/dst/a.txt").out == "a"


def test_cmd_in_the_stage_survives_entrypoint_and_onbuild_is_cleared(cli, image, context):
    img = _build(cli, context, 'FROM %s\nCMD ["mycmd"]\nENTRYPOINT ["/bin/echo"]\n' % image)
    assert config_of(cli, img)["Cmd"] == ["mycmd"]
    cli.ok("build", "-t", "onb:1", context("FROM %s\nONBUILD RUN touch /trig\n" % image))
    child = _build(cli, context, "FROM onb:1\n")
    assert config_of(cli, child)["OnBuild"] is None


def test_arg_defaults_see_env_and_earlier_args(cli, image, context):
    img = _build(cli, context, "FROM %s\nENV E=env\nARG A=1\nARG B=${A}2 C=${E}x\n"
                               "RUN echo \"$B $C\" > /out\n" % image)
    assert cli.ok("run", "--rm", img, "cat", "/out").out == "12 envx\n"


def test_add_never_reads_through_a_context_symlink(cli, image, context, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("SECRET")
    with tarfile.open(outside / "secret.tar", "w") as tar:
        tar.add(outside / "secret", arcname="secret")
    ctx = context("FROM %s\nADD link.tar /leak/\n" % image)
    os.symlink(str(outside / "secret.tar"), os.path.join(ctx, "link.tar"))
    proc = cli("build", "-q", ctx)
    # the link's absolute target is looked up inside the context, where it is missing
    assert proc.returncode == 1 and "not found" in proc.err and "SECRET" not in proc.err


def test_chown_names_never_come_from_outside_the_image(cli, image, context, tmp_path):
    fake = tmp_path / "passwd"
    fake.write_text("evil:x:4242:4242::/:/bin/sh\n")
    ctx = context("FROM %s\nRUN rm /etc/passwd && ln -s %s /etc/passwd\n"
                  "COPY --chown=evil a.txt /a\n" % (image, fake), {"a.txt": "a"})
    proc = cli("build", ctx)
    assert proc.returncode == 1 and "unable to find user evil" in proc.err


def test_copy_from_a_one_layer_image_and_heredoc_into_a_directory(cli, image, context):
    img = _build(cli, context, "FROM %s\nCOPY --from=%s /etc/passwd /p\n"
                               "COPY <<EOF /etc\nhello\nEOF\n" % (image, image))
    out = cli.ok("run", "--rm", img, "sh", "-c", "head -1 /p; cat /etc/EOF; ls /etc | wc -l")
    assert out.out.split("\n")[:2] == ["root:x:0:0:root:/root:/bin/sh", "hello"]


def test_add_copies_a_compressed_file_that_is_no_tar(cli, image, context):
    import gzip
    img = _build(cli, context, "FROM %s\nADD data.gz /d/\n" % image,
                 {"data.gz": gzip.compress(b"plain\n")})
    assert cli.ok("run", "--rm", img, "ls", "/d").out == "data.gz\n"


def test_unsupported_run_flags_and_a_failed_build_keeps_its_steps(cli, image, context):
    proc = cli("build", context("FROM %s\nRUN --security=insecure true\n" % image))
    assert proc.returncode == 1 and "RUN --security is not supported yet" in proc.err
    ctx = context("FROM %s\nRUN echo step2 > /s2\nRUN false\n" % image)
    assert cli("build", ctx).returncode == 1
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM %s\nRUN echo step2 > /s2\nRUN true\n" % image)
    assert "CACHED" in cli.ok("build", ctx).out.split("STEP 3/3")[0]


def test_a_run_layer_holds_only_what_the_command_changed(cli, image, context):
    """The /etc/hosts, hostname and resolv.conf placeholders and the etc/ directory copied
    up to hold them stay out of RUN layers."""
    from rootless_box.userns.idmap import plan
    img = _build(cli, context, "FROM %s\nRUN touch /made\n" % image)
    top = json.loads(cli.ok("inspect", img).out)[0]["RootFS"]["Layers"][-1]
    layer = os.path.join(cli.root, "layers", plan().key, top[7:])
    assert os.listdir(layer) == ["made"]


def test_workdir_is_created_in_the_image(cli, image, context):
    img = _build(cli, context, "FROM %s\nWORKDIR /w/x\nWORKDIR rel\n" % image)
    out = cli.ok("run", "--rm", "-w", "/", img, "sh", "-c", "ls -d /w/x/rel; pwd").out
    assert out == "/w/x/rel\n/\n"
    assert config_of(cli, img)["WorkingDir"] == "/w/x/rel"


def _add_from_server(cli, image, context, response, name, env=None):
    """A build whose ADD downloads from a one-shot loopback server sending response."""
    import socket
    import threading
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        conn.recv(65536)
        try:
            conn.sendall(response)
        except OSError:
            pass  # the client stopped reading
        conn.close()

    threading.Thread(target=answer, daemon=True).start()
    url = "http://127.0.0.1:%d/%s" % (server.getsockname()[1], name)
    try:
        return url, cli("build", context("FROM %s\nADD %s /%s\n" % (image, url, name)),
                        env=dict({"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"},
                                 **(env or {})))
    finally:
        server.close()


def test_add_of_a_truncated_download_is_one_error_line(cli, image, context):
    _url, proc = _add_from_server(cli, image, context, b"HTTP/1.0 200 OK\r\nContent-Length: "
                                  b"1000\r\n\r\nonly a part", "cut.txt")
    assert proc.returncode == 1 and "cannot download" in proc.err
    assert "internal error" not in proc.err and "Traceback" not in proc.err
    assert os.listdir(os.path.join(cli.root, "tmp")) == []


# -- RUN --mount ------------------------------------------------------------------------------

def _top_layer_entries(cli, image_id):
    from rootless_box.userns.idmap import plan
    top = json.loads(cli.ok("inspect", image_id).out)[0]["RootFS"]["Layers"][-1]
    layer = os.path.join(cli.root, "layers", plan().key, top[7:])
    return sorted(os.path.relpath(os.path.join(d, n), layer)
                  for d, dirs, names in os.walk(layer) for n in dirs + names)


def test_run_mount_bind_from_the_context(cli, image, context):
    ctx = context("FROM %s\nRUN --mount=target=/src,source=sub "
                  "cat /src/a > /out && (touch /src/w 2>/dev/null || echo ro >> /out)\n"
                  "RUN --mount=type=bind,src=sub,dst=/rw,rw echo new > /rw/a && cat /rw/a\n"
                  % image, {"sub/a": "from context\n", "secret.txt": "s"})
    img = cli.ok("build", "-q", ctx).out.strip()
    assert cli.ok("run", "--rm", img, "cat", "/out").out == "from context\nro\n"
    # the targets and what was written through a rw bind stay out of the image and context
    assert cli.ok("run", "--rm", img, "ls", "/").out.split().count("src") == 0
    assert _top_layer_entries(cli, img) == []
    assert open(os.path.join(ctx, "sub", "a")).read() == "from context\n"
    # the key covers the bound files' content
    assert cli.ok("build", ctx).out.count("CACHED") == 2
    with open(os.path.join(ctx, "sub", "a"), "w") as f:
        f.write("changed\n")
    img2 = cli.ok("build", "-q", ctx).out.strip()
    assert cli.ok("run", "--rm", img2, "cat", "/out").out == "changed\nro\n"


def test_run_mount_bind_honours_the_ignore_file(cli, image, context):
    ctx = context("FROM %s\nRUN --mount=target=/ctx ls -a /ctx > /listing\n" % image,
                  {"keep": "k", "hidden.key": "h", ".dockerignore": "*.key\n"})
    img = cli.ok("build", "-q", ctx).out.strip()
    listing = cli.ok("run", "--rm", img, "cat", "/listing").out.split()
    assert "keep" in listing and "hidden.key" not in listing


def test_run_mount_bind_from_a_stage_writes_are_thrown_away(cli, image, context):
    """buildah's multistage/copyback: a rw bind of another stage's root."""
    img = _build(cli, context,
                 "FROM %s AS base\nRUN echo base > /base-file\n"
                 "FROM %s\n"
                 "RUN --mount=type=bind,from=base,source=/,destination=/base,rw "
                 "echo scribble > /base/base-file && cp -a /base/base-file /copied\n"
                 "RUN --mount=from=base,target=/b cat /b/base-file > /again\n"
                 % (image, image))
    out = cli.ok("run", "--rm", img, "cat", "/copied", "/again").out
    assert out == "scribble\nbase\n"  # the second mount sees the stage unchanged
    assert _top_layer_entries(cli, img) == ["again"]


def test_a_stage_named_through_an_arg_is_built(cli, image, context):
    # `from=$STAGE` and `--from=$STAGE` make the stage a dependency as written out would
    # (BuildKit expands them), the ARG's default or the build arg naming it
    df = ("FROM %s AS one\nRUN echo one > /f\n"
          "FROM %s AS two\nRUN echo two > /f\n"
          "FROM %s\nARG S=one\nARG C\n"
          "RUN --mount=type=bind,from=$S,target=/m cat /m/f > /mounted\n"
          "COPY --from=${C:-one} /f /copied\n" % (image, image, image))
    img = _build(cli, context, df)
    assert cli.ok("run", "--rm", img, "cat", "/mounted", "/copied").out == "one\none\n"
    img = _build(cli, context, df, None, "--build-arg", "S=two", "--build-arg", "C=two")
    assert cli.ok("run", "--rm", img, "cat", "/mounted", "/copied").out == "two\ntwo\n"


def test_run_mount_cache_persists_across_builds_and_stays_out(cli, image, context):
    df = ("FROM %s\nRUN --mount=type=cache,target=/var/cache/app,id=c1 "
          "echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count\n" % image)
    first = cli.ok("build", "-q", "--no-cache", context(df)).out.strip()
    second = cli.ok("build", "-q", "--no-cache", context(df)).out.strip()
    assert cli.ok("run", "--rm", first, "cat", "/count").out.strip() == "1"
    assert cli.ok("run", "--rm", second, "cat", "/count").out.strip() == "2"
    assert _top_layer_entries(cli, second) == ["count"]
    # the same id at another target is the same cache; sharing=locked is accepted
    other = _build(cli, context, "FROM %s\nRUN --mount=type=cache,id=c1,target=/c,"
                                 "sharing=locked cat /c/log > /seen\n" % image)
    assert cli.ok("run", "--rm", other, "cat", "/seen").out == "run\nrun\n"
    assert os.listdir(os.path.join(cli.root, "buildcache-mounts"))


def test_builder_prune_empties_unused_cache_mounts_and_a_drops_the_step_cache(cli, image,
                                                                              context):
    import fcntl
    import hashlib
    df = ("FROM %s\nRUN --mount=type=cache,target=/c,id=prunable "
          "sh -c 'echo x >> /c/log; wc -l < /c/log > /count'\n" % image)
    cli.ok("build", "-q", "--no-cache", context(df))
    img = cli.ok("build", "-q", "--no-cache", "-t", "prunable:1", context(df)).out.strip()
    assert cli.ok("run", "--rm", img, "cat", "/count").out.strip() == "2"
    cache = os.path.join(cli.root, "buildcache-mounts",
                         hashlib.sha256(b"prunable").hexdigest())
    # a cache a build step holds (its lock, shared) is left alone
    short = os.path.basename(cache)[:12]
    with open(cache + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        # `system df` counts it as build cache, in use (Docker's `*`), as BuildKit's
        # exec.cachemount records
        assert re.search(r"\n%s\* +exec.cachemount +[0-9.]+k?B " % short,
                         cli.ok("system", "df", "-v").out)
        out = cli.ok("builder", "prune", "-f").out
        assert os.path.isdir(cache) and os.path.basename(cache) not in out
    assert re.search(r"\n%s +exec.cachemount " % short, cli.ok("system", "df", "-v").out)
    out = cli.ok("builder", "prune", "-f").out
    assert out.startswith("Deleted build cache objects:\n") and os.path.basename(cache) in out
    assert out.splitlines()[-1].startswith("Total reclaimed space: ")
    assert not os.path.exists(cache)
    assert short not in cli.ok("system", "df", "-v").out
    again = cli.ok("build", "-q", "--no-cache", context(df)).out.strip()
    assert cli.ok("run", "--rm", again, "cat", "/count").out.strip() == "1"  # an empty cache
    # without -a the step cache stays (a tagged image's steps are not run again); -a drops it
    # (a command whose output differs each time it runs: builds are reproducible, so only
    # a step that ran again can give another image)
    stamp = "FROM %s\nRUN cat /proc/sys/kernel/random/uuid > /stamp\n" % image
    ctx = context(stamp)
    first = cli.ok("build", "-q", "-t", "stamped:1", ctx).out.strip()
    cli.ok("builder", "prune", "-f")
    assert cli.ok("build", "-q", "-t", "stamped:1", ctx).out.strip() == first
    assert "Total reclaimed space" in cli.ok("builder", "prune", "-a", "-f").out
    assert cli.ok("build", "-q", "-t", "stamped:1", ctx).out.strip() != first
    # a no at the prompt removes nothing
    proc = cli("builder", "prune", input=b"n\n")
    assert proc.returncode == 0 and proc.out == ("WARNING! This will remove all dangling "
                                                 "build cache. Are you sure you want to "
                                                 "continue? [y/N] ")


def test_run_mount_tmpfs(cli, image, context):
    img = _build(cli, context, "FROM %s\nRUN --mount=type=tmpfs,target=/scratch,size=1m "
                               "echo x > /scratch/f && grep -q /scratch /proc/mounts && "
                               "touch /made\n" % image)
    assert _top_layer_entries(cli, img) == ["made"]


def test_run_mount_secret(cli, image, context, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t")
    ctx = context("FROM %s\nRUN --mount=type=secret,id=tok "
                  "test \"$(cat /run/secrets/tok)\" = s3cr3t && "
                  "stat -c %%a /run/secrets/tok > /mode\n"
                  "RUN --mount=type=secret,id=fromenv,target=/e,required "
                  "cat /e > /leak-check-not-the-secret-$(wc -c < /e)\n" % image)
    args = ("build", "-q", "--secret", "id=tok,src=%s" % secret,
            "--secret", "id=fromenv,env=RBX_TEST_SECRET")
    img = cli.ok(*args, ctx, env={"RBX_TEST_SECRET": "abc"}).out.strip()
    assert cli.ok("run", "--rm", img, "cat", "/mode").out == "400\n"
    layers = json.loads(cli.ok("inspect", img).out)[0]["RootFS"]["Layers"]
    assert _top_layer_entries(cli, img) == ["leak-check-not-the-secret-3"]
    for diff in layers[-2:]:
        blob = open(os.path.join(cli.root, "blobs", "sha256", diff[7:]), "rb").read()
        assert b"s3cr3t" not in blob and b"run/secrets" not in blob
    # a secret's content is not in the cache key
    secret.write_text("other!")
    assert cli.ok(*args, ctx, env={"RBX_TEST_SECRET": "xyz"}).out.strip() == img
    proc = cli("build", context("FROM %s\nRUN --mount=type=secret,id=nope,required true\n"
                                % image))
    assert proc.returncode == 1 and "secret nope: not provided" in proc.err
    # not required and not given: the step runs without it
    _build(cli, context, "FROM %s\nRUN --mount=type=secret,id=nope "
                         "test ! -e /run/secrets/nope\n" % image)


@pytest.mark.parametrize("mount,message", [
    ("type=ssh,required=true", "ssh default: not provided"),
    ("type=bind,target=/x,bogus=1", "unexpected key 'bogus'"),
    ("type=volume,target=/x", "unsupported mount type 'volume'"),
    ("type=cache", "needs a target"),
    ("target=/x,source=missing", "not found"),
    ("target=/x,source=../up", "outside the build context"),
    ("target=/x,from=nostage", "no such stage or image"),
])
def test_run_mount_bad_input_is_one_line(cli, image, context, mount, message):
    proc = cli("build", context("FROM %s\nRUN --mount=%s true\n" % (image, mount)))
    assert proc.returncode == 1 and message in proc.err, proc.err
    assert "Traceback" not in proc.err and "Dockerfile:2:" in proc.err


def test_run_mounts_with_the_copy_driver(cli, image, context):
    """Without overlayfs the other stage is a copy; writes to it are still thrown away and
    no mount target reaches the layer."""
    copy = {"RBX_STORAGE_DRIVER": "copy"}
    ctx = context("FROM %s AS base\nRUN echo base > /base-file\nFROM %s\n"
                  "RUN --mount=from=base,target=/b,rw --mount=type=tmpfs,target=/t "
                  "--mount=target=/ctx,rw echo x > /b/base-file && echo y > /ctx/f && "
                  "cat /b/base-file /ctx/f > /seen\n"
                  "RUN --mount=from=base,target=/b cat /b/base-file >> /seen\n"
                  % (image, image), {"f": "f\n"})
    img = cli.ok("build", "-q", ctx, env=copy).out.strip()
    assert cli.ok("run", "--rm", img, "cat", "/seen", env=copy).out == "x\ny\nbase\n"
    assert _top_layer_entries(cli, img) == ["seen"]
    assert open(os.path.join(ctx, "f")).read() == "f\n"


def test_run_mount_cache_from_a_stage_starts_as_its_copy(cli, image, context):
    img = _build(cli, context,
                 "FROM %s AS seed\nRUN mkdir -p /deps/sub && echo dep > /deps/sub/d && "
                 "chown -R 7:8 /deps/sub\n"
                 "FROM %s\nRUN --mount=type=cache,target=/c,from=seed,source=/deps,id=seeded "
                 "cat /c/sub/d > /seen && stat -c %%u:%%g /c/sub >> /seen && "
                 "echo more > /c/added\n"
                 "RUN --mount=type=cache,target=/c2,id=seeded ls /c2 > /kept\n" % (image, image))
    out = cli.ok("run", "--rm", img, "cat", "/seen", "/kept").out
    assert out == "dep\n7:8\nadded\nsub\n"


def test_copy_from_a_stage_with_exclude_parents_and_an_unmatched_glob(cli, image, context):
    img = _build(cli, context,
                 "FROM %s AS base\nRUN mkdir -p /src/a /src/b && touch /src/a/keep /src/a/x.log"
                 " /src/b/keep\n"
                 "FROM %s\nCOPY --from=base --exclude=*.log /src/a/ /one/\n"
                 "COPY --from=base --parents /src/./*/keep /two/\n"
                 "COPY --from=base /src/a/keep /nothing* /three/\n" % (image, image))
    out = cli.ok("run", "--rm", img, "sh", "-c", "ls /one /two/a /two/b /three").out.split()
    # (ls sorts its operands)
    assert out == ["/one:", "keep", "/three:", "keep", "/two/a:", "keep", "/two/b:", "keep"]
    proc = cli("build", context("FROM %s\nCOPY --from=%s /nothing* /d/\n" % (image, image)))
    assert proc.returncode == 1 and "not found" in proc.err


@pytest.mark.parametrize("with_length", [True, False])
def test_add_download_size_limit(cli, image, context, with_length):
    """RBX_ADD_MAX_BYTES: announced too large, or growing past it, is one error line."""
    head = b"HTTP/1.0 200 OK\r\n" + (b"Content-Length: 5000\r\n" if with_length else b"")
    url, proc = _add_from_server(cli, image, context, head + b"\r\n" + b"x" * 5000, "big.bin",
                                 {"RBX_ADD_MAX_BYTES": "1000"})
    assert_one_error(proc, 1)
    assert "RBX_ADD_MAX_BYTES (1000 bytes)" in proc.err and url in proc.err
    assert os.listdir(os.path.join(cli.root, "tmp")) == []


@pytest.mark.parametrize("dockerfile, message", [
    ("RUN echo > /file\nCOPY f /file/x", "cannot copy to /file/x: not a directory"),
    ("RUN ln -s /nowhere/x /lnk\nCOPY f /lnk/y", "cannot copy to /lnk/y: /nowhere/x: "
                                                "no such file or directory")])
def test_copy_errors_name_the_path_in_the_container(cli, image, context, dockerfile,
                                                    message):
    proc = cli("build", context("FROM %s\n%s\n" % (image, dockerfile), {"f": "x"}))
    assert_one_error(proc, 1)
    assert message in proc.err and cli.root not in proc.err


def test_add_host_reaches_run_steps(cli, image, context):
    ctx = context("FROM %s\nRUN grep myhost /etc/hosts > /h\n" % image)
    img = cli.ok("build", "-q", "--add-host", "myhost:10.1.2.3", ctx).out.strip()
    assert cli.ok("run", "--rm", img, "cat", "/h").out == "10.1.2.3\tmyhost\n"
    # the step ran with another /etc/hosts: not the cached one
    other = cli.ok("build", "-q", "--add-host", "myhost=10.9.9.9", ctx).out.strip()
    assert cli.ok("run", "--rm", other, "cat", "/h").out == "10.9.9.9\tmyhost\n"
    assert_one_error(cli("build", "--add-host", "nocolon", ctx), 1)


def test_no_cache_filter_runs_the_named_stages_again(cli, image, context):
    ctx = context("FROM %s AS first\nRUN echo one > /one\nFROM first AS second\n"
                  "RUN echo two > /two\nRUN echo three > /three\n" % image)
    cli.ok("build", "-q", ctx)
    out = cli.ok("build", "--no-cache-filter", "second", ctx).out
    assert out.count("CACHED") == 1 and "RUN echo one" in out.split("CACHED")[0]
    assert cli.ok("build", "--no-cache-filter", "first,second", ctx).out.count("CACHED") == 0


def test_build_contexts_directory_image_and_oci_layout(cli, image, context, tmp_path):
    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "data.txt").write_text("from extra\n")
    # FROM a directory context, COPY --from one, FROM an image named by one
    df = ("FROM extra AS files\nFROM base2\nCOPY --from=extra sub/data.txt /d.txt\n"
          "COPY --from=files /sub /files/\n")
    ctx = context(df)
    img = cli.ok("build", "-q", "--build-context", "extra=%s" % extra,
                 "--build-context", "base2=docker-image://%s" % image, ctx).out.strip()
    assert cli.ok("run", "--rm", img, "cat", "/d.txt", "/files/data.txt").out == \
        "from extra\nfrom extra\n"
    # the directory is keyed by content: a change runs the steps again
    (extra / "sub" / "data.txt").write_text("changed\n")
    again = cli.ok("build", "-q", "--build-context", "extra=%s" % extra,
                   "--build-context", "base2=docker-image://%s" % image, ctx).out.strip()
    assert cli.ok("run", "--rm", again, "cat", "/d.txt").out == "changed\n"
    # an OCI layout: by tag and by digest, loaded untagged
    archive, meta = tmp_path / "layout.tar", tmp_path / "meta.json"
    cli.ok("build", "-q", "-t", "laid:out", "-o", "type=oci,dest=%s" % archive,
           "--metadata-file", meta, context("FROM %s\nRUN echo laid > /laid\n" % image))
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout)
    cli.ok("rmi", "laid:out")
    digest = json.loads(meta.read_text())["containerimage.digest"]
    for suffix in (":out", "@" + digest):
        img = cli.ok("build", "-q", "--build-context", "lay=oci-layout://%s%s" % (
            layout, suffix), context("FROM lay\nRUN cat /laid > /again\n")).out.strip()
        assert cli.ok("run", "--rm", img, "cat", "/again").out == "laid\n"
    assert "laid" not in cli.ok("images").out
    for bad in ("x", "x=https://example.com/ctx.git", "x=%s" % (tmp_path / "missing")):
        assert_one_error(cli("build", "--build-context", bad,
                             context("FROM x\n")), 1)


def _fresh_store_with(cli, image, tmp_path):
    """Another user's empty store holding the same base image (saved and loaded)."""
    saved = tmp_path / "base.tar"
    cli.ok("save", "-o", saved, image)
    fresh = Cli(str(tmp_path / "fresh"))
    fresh.ok("load", "-i", saved)
    return fresh


def test_cache_exported_and_used_in_a_fresh_store(cli, image, context, tmp_path):
    """--cache-to type=local in one store, --cache-from in a fresh one (as in CI): every step
    is CACHED, nothing runs again, and the image is the same."""
    ctx = context("FROM %s\nENV A=1\nWORKDIR /w\nCOPY f /w/f\n"
                  "RUN echo printed-by-$((6*7)) && echo made > /r\n"
                  "LABEL done=yes\n" % image, {"f": "data\n"})
    cache = tmp_path / "cache"
    first = cli.ok("build", "-q", "--cache-to", "type=local,dest=%s" % cache, ctx).out.strip()
    assert (cache / "oci-layout").is_file() and (cache / "index.json").is_file()
    fresh = _fresh_store_with(cli, image, tmp_path)
    out = fresh.ok("build", "--progress", "plain", "--cache-from",
                   "type=local,src=%s" % cache, ctx).out
    assert out.count("CACHED") == 5 and "printed-by-42" not in out, out
    assert out.strip().splitlines()[-1] == first
    assert fresh.ok("run", "--rm", first, "cat", "/r", "/w/f").out == "made\ndata\n"
    # a changed COPY misses and it and the steps after it run; those before come from the
    # cache
    with open(os.path.join(ctx, "f"), "w") as f:
        f.write("changed\n")
    out = fresh.ok("build", "--progress", "plain", "--cache-from",
                   "type=local,src=%s" % cache, ctx).out
    assert out.count("CACHED") == 2 and "printed-by-42" in out
    for bad in ("type=gha", "dest=x", "type=local", "type=registry"):
        assert_one_error(cli("build", "--cache-to", bad, ctx), 1)
    assert_one_error(cli("build", "--cache-from", "type=local,src=%s" % (tmp_path / "no"),
                         ctx), 1)


def test_run_mount_ssh_reaches_a_real_agent(cli, context, tmp_path):
    """--ssh default|ID=SOCKET with RUN --mount=type=ssh: the step's ssh-add lists the key
    the user's ssh-agent holds, through a socket of the mount's owner and mode; the key
    never reaches the image."""
    import shutil
    import subprocess
    tools = [shutil.which(t) for t in ("ssh-agent", "ssh-add", "ssh-keygen")]
    if None in tools or busybox_path() is None:
        pytest.skip("needs openssh-client (ssh-agent, ssh-add, ssh-keygen) and busybox")
    from rootless_box.ops.fromhost import write_rootfs_tar
    rootfs = tmp_path / "ssh-rootfs.tar"
    with open(rootfs, "wb") as f:
        write_rootfs_tar([busybox_path(), tools[1]], f)
    cli.ok("import", rootfs, "sshbase:latest")
    key = tmp_path / "id_ed25519"
    subprocess.run([tools[2], "-q", "-t", "ed25519", "-N", "", "-C", "agent-key-comment",
                    "-f", str(key)], check=True)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen([tools[0], "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        for _ in range(200):  # the agent's socket appears once it listens
            if subprocess.run([tools[1], "-l"], env=env, capture_output=True).returncode \
                    in (0, 1):
                break
            time.sleep(0.05)
        subprocess.run([tools[1], str(key)], env=env, check=True, capture_output=True)
        ctx = context("FROM sshbase:latest\n"
                      "RUN --mount=type=ssh ssh-add -l > /listed; "
                      "stat -c '%a %u' $SSH_AUTH_SOCK >> /listed\n"
                      "RUN --mount=type=ssh,id=other,target=/agent,mode=0666,uid=1000 "
                      "SSH_AUTH_SOCK=/agent ssh-add -l > /other; stat -c '%a %u' /agent "
                      ">> /other\n")
        img = cli.ok("build", "-q", "--ssh", "default", "--ssh", "other=%s" % sock, ctx,
                     env={"SSH_AUTH_SOCK": str(sock)}).out.strip()
        listed = cli.ok("run", "--rm", img, "cat", "/listed", "/other").out.splitlines()
        assert "agent-key-comment" in listed[0] and listed[1] == "600 0"
        assert "agent-key-comment" in listed[2]
        assert listed[3] in ("666 1000", "666 0")  # 0 under a single-id mapping
        exported = cli.ok("run", "--rm", img, "sh", "-c",
                          "ls /run/buildkit 2>&1; ls -a /agent 2>&1; true").out
        assert "ssh_agent" not in exported and "No such file" in exported
    finally:
        agent.kill()
        agent.wait()
    for bad in (("--ssh", "x=%s" % key), ("--ssh", "default")):
        assert_one_error(cli("build", *bad, ctx, env={"SSH_AUTH_SOCK": ""}), 1)


def test_cache_in_a_registry_used_by_a_fresh_store(cli, image, context, tmp_path,
                                                   plain_registry):
    ctx = context("FROM %s\nCOPY f /f\nRUN echo printed-by-$((6*7)) && echo made > /r\n"
                  % image, {"f": "data\n"})
    ref = plain_registry.ref("cache/steps", "buildcache")
    # no cache there yet: a miss, not a failure
    first = cli.ok("build", "-q", "--cache-from", ref, "--cache-to",
                   "type=registry,ref=%s" % ref, ctx).out.strip()
    status, _ctype, doc, _digest = plain_registry.manifest("cache/steps", "buildcache")
    assert status == 200 and len(doc["manifests"]) == 2
    fresh = _fresh_store_with(cli, image, tmp_path)
    out = fresh.ok("build", "--progress", "plain", "--cache-from",
                   "type=registry,ref=%s" % ref, ctx).out
    assert out.count("CACHED") == 2 and "printed-by-42" not in out
    assert out.strip().splitlines()[-1] == first
    assert fresh.ok("run", "--rm", first, "cat", "/r").out == "made\n"
