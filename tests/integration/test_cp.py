"""`cp` end to end through the CLI, as the unprivileged user: both directions, running and
stopped (created, exited) containers, Docker's naming rules, tar streams, owners, symlinks
that point out of the container, hostile tars, and the image's layers left alone."""

import io
import os
import tarfile

import pytest

from conftest import layer_dir, needs_subuid, needs_userns, tar_bytes

pytestmark = needs_userns


@pytest.fixture(scope="module")
def box(cli, image):
    cli.ok("run", "-d", "--name", "cpbox", image, "sh", "-c",
           "mkdir -p /data/sub && echo one > /data/a && echo two > /data/sub/b && "
           "ln -s /../../../etc /escape && ln -s ../../../../../etc /escape2 && "
           "echo ready > /ready && exec sleep 120")
    for _ in range(200):
        if cli("exec", "cpbox", "test", "-e", "/ready").returncode == 0:
            break
    yield "cpbox"
    cli("rm", "-f", "cpbox")


def _members(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def _read(path):
    with open(path) as f:
        return f.read()


# -- out of a running container -----------------------------------------------------------------

def test_file_to_new_name_and_into_directory(cli, box, tmp_path):
    cli.ok("cp", box + ":/data/a", tmp_path / "renamed")
    assert _read(tmp_path / "renamed") == "one\n"
    os.mkdir(tmp_path / "dir")
    cli.ok("container", "cp", box + ":data/a", tmp_path / "dir")
    assert _read(tmp_path / "dir" / "a") == "one\n"
    assert os.stat(tmp_path / "dir" / "a").st_uid == os.getuid()


def test_directory_to_new_name_into_existing_and_contents(cli, box, tmp_path):
    cli.ok("cp", box + ":/data", tmp_path / "copy")
    assert _read(tmp_path / "copy" / "sub" / "b") == "two\n"
    os.mkdir(tmp_path / "existing")
    cli.ok("cp", box + ":/data", tmp_path / "existing")
    assert _read(tmp_path / "existing" / "data" / "a") == "one\n"
    os.mkdir(tmp_path / "contents")
    cli.ok("cp", box + ":/data/.", tmp_path / "contents")
    assert sorted(os.listdir(tmp_path / "contents")) == ["a", "sub"]


def test_directory_onto_a_file_and_missing_parent_are_refused(cli, box, tmp_path):
    (tmp_path / "file").write_text("x")
    proc = cli("cp", box + ":/data", tmp_path / "file")
    assert proc.returncode == 1 and "cannot copy directory" in proc.err
    assert (tmp_path / "file").read_text() == "x"
    proc = cli("cp", box + ":/data/a", tmp_path / "missing" / "a")
    assert proc.returncode == 1 and "does not exist" in proc.err


def test_missing_source_is_dockers_error(cli, box, tmp_path):
    proc = cli("cp", box + ":/x", tmp_path)
    assert proc.returncode == 1
    assert "Could not find the file /x in container cpbox" in proc.err
    assert "Traceback" not in proc.err
    proc = cli("cp", "nosuchbox:/x", tmp_path)
    assert proc.returncode == 1 and "No such container: nosuchbox" in proc.err


def test_tar_stream_out(cli, box):
    proc = cli.ok("cp", box + ":/data", "-")
    members = _members(proc.stdout)
    assert set(members) == {"data", "data/a", "data/sub", "data/sub/b"}
    assert members["data/a"].uid == 0
    contents = _members(cli.ok("cp", box + ":/data/.", "-").stdout)
    assert {"a", "sub/b"} <= {n.lstrip("./") for n in contents}


def test_symlink_pointing_out_resolves_inside_the_container(cli, box, tmp_path):
    cli.ok("exec", box, "sh", "-c", "echo container-only > /etc/marker")
    for link in ("/escape", "/escape2"):
        cli.ok("cp", box + ":%s/marker" % link, tmp_path / "m")
        assert _read(tmp_path / "m") == "container-only\n"
        os.unlink(tmp_path / "m")
    # without -L the link itself is copied; with -L its target, inside the container
    cli.ok("cp", box + ":/escape", tmp_path / "link")
    assert os.readlink(tmp_path / "link") == "/../../../etc"
    cli.ok("cp", "-L", box + ":/escape", tmp_path / "followed")
    assert _read(tmp_path / "followed" / "marker") == "container-only\n"
    # and copying in through it writes the container's /etc, not the host's
    (tmp_path / "in").write_text("through\n")
    cli.ok("cp", tmp_path / "in", box + ":/escape2/")
    assert cli.ok("exec", box, "cat", "/etc/in").out == "through\n"


# -- into a running container -------------------------------------------------------------------

def test_into_running_container(cli, box, tmp_path):
    src = tmp_path / "tree"
    (src / "deep").mkdir(parents=True)
    (src / "deep" / "f").write_text("f\n")
    (src / "top").write_text("t\n")
    cli.ok("cp", src, box + ":/newname")
    cli.ok("cp", src, box + ":/tmp")
    cli.ok("cp", str(src) + "/.", box + ":/contents")
    out = cli.ok("exec", box, "sh", "-c", "cat /newname/deep/f /tmp/tree/top "
                 "/contents/top; stat -c %u:%g /newname/deep/f").out
    assert out == "f\nt\nt\n0:0\n"
    proc = cli("cp", src / "top", box + ":/nodir/")
    assert proc.returncode == 1 and "no such directory" in proc.err
    proc = cli("cp", src / "top", box + ":/nodir/sub/x")
    assert proc.returncode == 1 and "Could not find the file /nodir/sub" in proc.err
    proc = cli("cp", tmp_path / "nothere", box + ":/tmp")
    assert proc.returncode == 1 and "no such file or directory" in proc.err


def test_tar_stream_in_keeps_owners_only_with_archive(cli, box):
    data = tar_bytes([({"name": "owned", "uid": 1000, "gid": 1000, "mode": 0o640}, b"o\n")])
    cli.ok("cp", "-", box + ":/tmp", input=data)
    assert cli.ok("exec", box, "stat", "-c", "%u:%g %a", "/tmp/owned").out == "0:0 640\n"
    proc = cli("cp", "-", box + ":/tmp/owned", input=data)
    assert proc.returncode == 1 and "must be a directory" in proc.err


@needs_subuid
def test_archive_keeps_the_streams_owner(cli, box):
    if cli.env.get("RBX_USERNS") == "single":
        pytest.skip("a single-id mapping has no uid 1000 to keep")
    data = tar_bytes([({"name": "kept", "uid": 1000, "gid": 1000}, b"k\n")])
    cli.ok("cp", "-a", "-", box + ":/tmp", input=data)
    assert cli.ok("exec", box, "stat", "-c", "%u:%g", "/tmp/kept").out == "1000:1000\n"


def test_hostile_tar_stream_is_refused_or_contained(cli, box):
    climbing = tar_bytes([({"name": "../../../../climbed"}, b"x")])
    proc = cli("cp", "-", box + ":/tmp", input=climbing)
    assert proc.returncode != 0 and "Traceback" not in proc.err
    assert cli("exec", box, "test", "-e", "/climbed").returncode == 1
    # a symlink entry pointing out, then a file through it: kept inside the destination
    linked = tar_bytes([({"name": "out", "type": tarfile.SYMTYPE, "linkname": "/etc"}, None),
                        ({"name": "out/planted"}, b"p\n")])
    cli("cp", "-", box + ":/tmp", input=linked)
    assert cli("exec", box, "test", "-e", "/etc/planted").returncode == 1
    assert not os.path.exists("/etc/planted")


# -- stopped and created containers -------------------------------------------------------------

def test_stopped_and_created_containers(cli, image, tmp_path):
    cli.ok("run", "-d", "--name", "cpdone", image, "sh", "-c", "echo made > /made")
    assert cli.ok("wait", "cpdone").out.strip() == "0"
    cli.ok("cp", "cpdone:/made", tmp_path / "made")
    assert _read(tmp_path / "made") == "made\n"

    cli.ok("create", "--name", "cpnew", image, "sh", "-c", "cat /incoming /etc/hostname.d/x")
    (tmp_path / "incoming").write_text("copied before start\n")
    cli.ok("cp", tmp_path / "incoming", "cpnew:/")
    cli.ok("cp", "-", "cpnew:/etc", input=tar_bytes([({"name": "hostname.d/x"}, b"deep\n")]))
    proc = cli.ok("start", "-a", "cpnew")
    assert proc.out == "copied before start\ndeep\n"
    # out of the stopped container again, and its tar stream
    assert "incoming" in _members(cli.ok("cp", "cpnew:/incoming", "-").stdout)

    # the image's layers are shared: another container does not see the copy
    assert cli("run", "--rm", image, "test", "-e", "/incoming").returncode == 1
    for top, _dirs, files in os.walk(layer_dir(cli)):
        assert "incoming" not in files, top
    cli("rm", "-f", "cpdone", "cpnew")


def test_stopped_containers_volumes_and_binds_are_where_the_container_has_them(cli, image,
                                                                              tmp_path):
    # as Docker mounts them for cp: what the container wrote to its volume or bind mount is
    # read from there, and a copy into them lands there (not hidden under the mount point)
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    cli.ok("run", "--name", "cpvol", "-v", "cpdata:/data", "-v", "%s:/mnt/host" % host_dir,
           image, "sh", "-c", "echo in-volume > /data/f; echo in-bind > /mnt/host/g")
    cli.ok("cp", "cpvol:/data/f", tmp_path / "f")
    assert _read(tmp_path / "f") == "in-volume\n"
    assert "g" in _members(cli.ok("cp", "cpvol:/mnt/host/g", "-").stdout)
    (tmp_path / "incoming").write_text("copied while stopped\n")
    cli.ok("cp", tmp_path / "incoming", "cpvol:/data/")
    cli.ok("cp", tmp_path / "incoming", "cpvol:/mnt/host/in2")
    assert _read(host_dir / "in2") == "copied while stopped\n"
    # another container with the same volume sees the copy: it is in the volume
    out = cli.ok("run", "--rm", "-v", "cpdata:/data", image, "cat", "/data/incoming").out
    assert out == "copied while stopped\n"
    # a read-only volume is one a copy cannot write into
    cli.ok("create", "--name", "cpro", "-v", "cpdata:/data:ro", image, "true")
    proc = cli("cp", tmp_path / "incoming", "cpro:/data/again")
    assert proc.returncode == 1 and "mounted volume is marked read-only" in proc.err
    assert cli("run", "--rm", "-v", "cpdata:/data", image, "test", "-e",
               "/data/again").returncode == 1
    cli("rm", "-f", "cpvol", "cpro")


def test_usage_errors(cli, image, tmp_path):
    proc = cli("cp", tmp_path, tmp_path / "b")
    assert proc.returncode == 1 and "must specify at least one container source" in proc.err
    proc = cli("cp", "a:/x", "b:/y")
    assert proc.returncode == 1 and "copying between containers is not supported" in proc.err
