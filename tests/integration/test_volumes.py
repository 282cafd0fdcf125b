"""Volumes as objects, `--mount`, `--volumes-from` and copy-up, through the CLI as a user runs
them, under both id mappings where owners differ."""

import io
import json
import os
import shutil
import tarfile

import pytest

from conftest import Cli, has_subuid, needs_userns
from rootless_box.layers import owners

pytestmark = needs_userns

MAPPINGS = [pytest.param("single", id="single"),
            pytest.param("subuid", id="subuid", marks=pytest.mark.skipif(
                not has_subuid(), reason="needs /etc/subuid ranges and newuidmap"))]


def _with_owned_dir(rootfs_tar, path):
    """The base rootfs plus /srv/data (uid 1000, 0750) holding f (uid 1000:1001, 0640)."""
    shutil.copy(rootfs_tar, path)
    with tarfile.open(path, "a") as tar:
        for name, kind, mode, uid, gid, data in (
                ("srv", tarfile.DIRTYPE, 0o755, 0, 0, b""),
                ("srv/data", tarfile.DIRTYPE, 0o750, 1000, 1000, b""),
                ("srv/data/f", tarfile.REGTYPE, 0o640, 1000, 1001, b"from image\n"),
                ("srv/data/link", tarfile.SYMTYPE, 0o777, 0, 0, b"")):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid = kind, mode, uid, gid
            info.size = len(data)
            if kind == tarfile.SYMTYPE:
                info.linkname = "f"
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


@pytest.fixture(scope="module")
def owned_tar(tmp_path_factory, rootfs_tar):
    return _with_owned_dir(rootfs_tar, str(tmp_path_factory.mktemp("owned") / "owned.tar"))


def _tar_of(name, data):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def volume_dir(cli, name):
    return os.path.join(cli.root, "volumes", name, "_data")


def inspect_volume(cli, *names):
    return json.loads(cli.ok("volume", "inspect", *names).out)


# -- volume create, ls, inspect, rm, prune ---------------------------------------------------

def test_volume_verbs_and_dockers_json(cli, image):
    assert cli.ok("volume", "create", "--label", "team=blue", "--label", "tier",
                  "vol-a").out == "vol-a\n"
    unnamed = cli.ok("volume", "create").out.strip()
    assert len(unnamed) == 64 and int(unnamed, 16) >= 0
    # an existing name is the same volume again, as Docker's local driver answers
    assert cli.ok("volume", "create", "vol-a").out == "vol-a\n"
    (meta,) = inspect_volume(cli, "vol-a")
    assert sorted(meta) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                            "Scope"]
    assert (meta["Driver"], meta["Scope"], meta["Options"]) == ("local", "local", {})
    assert meta["Labels"] == {"team": "blue", "tier": ""}
    assert meta["Mountpoint"] == volume_dir(cli, "vol-a") and os.path.isdir(meta["Mountpoint"])
    assert meta["CreatedAt"].endswith("Z") and meta["CreatedAt"][:2] == "20"
    assert cli.ok("volume", "inspect", "-f", "{{.Name}}:{{.Labels.team}}",
                  "vol-a").out == "vol-a:blue\n"
    # one made by a container's -v has no labels and no options (null), as Docker shows it
    cli.ok("run", "--rm", "-v", "vol-b:/b", image, "true")
    assert inspect_volume(cli, "vol-b")[0]["Labels"] is None

    listing = cli.ok("volume", "ls").out.splitlines()
    assert listing[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert {"vol-a", "vol-b", unnamed} <= {line.split()[1] for line in listing[1:]}
    assert cli.ok("volume", "ls", "-q", "--filter", "label=team=blue").out == "vol-a\n"
    assert cli.ok("volume", "ls", "-q", "--filter", "label=tier").out == "vol-a\n"
    assert cli.ok("volume", "ls", "-q", "--filter", "label=team=red").out == ""
    assert cli.ok("volume", "ls", "-q", "--filter", "name=ol-b").out == "vol-b\n"
    assert cli.ok("volume", "ls", "-q", "--filter", "driver=local", "--filter",
                  "name=^vol-a$").out == "vol-a\n"
    assert cli.ok("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Label \"team\"}}",
                  "--filter", "name=vol-a").out == "vol-a local blue\n"
    row = json.loads(cli.ok("volume", "ls", "--format", "json", "--filter",
                            "name=vol-a").out)
    assert row["Name"] == "vol-a" and row["Labels"] == "team=blue,tier="
    bad = cli("volume", "ls", "--filter", "colour=red")
    assert bad.returncode == 1 and "invalid filter 'colour'" in bad.err

    assert cli.ok("volume", "rm", "vol-a", unnamed).out == "vol-a\n%s\n" % unnamed
    missing = cli("volume", "inspect", "vol-a")
    assert missing.returncode == 1 and "no such volume: vol-a" in missing.err
    assert cli("volume", "rm", "vol-a").returncode == 1
    assert cli.ok("volume", "rm", "-f", "vol-a").out == "vol-a\n"  # -f: missing is fine


def test_volume_in_use_is_refused_and_dangling(cli, image):
    cid = cli.ok("create", "-v", "busy:/b", image, "true").out.strip()
    refused = cli("volume", "rm", "busy")
    assert refused.returncode == 1
    assert "remove busy: volume is in use - [%s]" % cid in refused.err
    assert "Traceback" not in refused.err
    assert cli("volume", "rm", "-f", "busy").returncode == 1  # -f does not take it from a user
    assert os.path.isdir(volume_dir(cli, "busy"))
    cli.ok("volume", "create", "idle")
    dangling = cli.ok("volume", "ls", "-q", "--filter", "dangling=true").out.split()
    assert "idle" in dangling and "busy" not in dangling
    assert "busy" in cli.ok("volume", "ls", "-q", "--filter", "dangling=false").out.split()
    assert cli("volume", "ls", "--filter", "dangling=maybe").returncode == 1
    cli.ok("rm", cid)
    assert cli.ok("volume", "rm", "busy", "idle").out == "busy\nidle\n"


def test_prune_takes_anonymous_volumes_unless_all(cli, image):
    cli.ok("volume", "create", "--label", "keep=yes", "named-kept")
    cli.ok("volume", "create", "named-pruned")
    cid = cli.ok("create", "-v", "/anon", image, "true").out.strip()
    (anon,) = [m["Name"] for m in json.loads(cli.ok("inspect", cid).out)[0]["Mounts"]]
    assert inspect_volume(cli, anon)[0]["Labels"] == {"com.docker.volume.anonymous": ""}
    cli.ok("rm", cid)  # without -v its anonymous volume stays, unused
    assert cli.ok("volume", "prune", input=b"n\n").out == (
        "WARNING! This will remove anonymous local volumes not used by at least one "
        "container.\nAre you sure you want to continue? [y/N] ")
    assert os.path.isdir(volume_dir(cli, anon))
    out = cli.ok("volume", "prune", "-f").out
    assert out.startswith("Deleted Volumes:\n%s\n\nTotal reclaimed space: " % anon)
    assert not os.path.exists(volume_dir(cli, anon))
    out = cli.ok("volume", "prune", "-a", "-f", "--filter", "label!=keep").out
    assert "named-pruned\n" in out and "named-kept" not in out
    assert cli.ok("volume", "ls", "-q", "--filter", "name=named").out == "named-kept\n"
    cli.ok("volume", "rm", "named-kept")


def test_rm_v_keeps_an_anonymous_volume_another_container_uses(cli, image):
    cli.ok("run", "--name", "owner", "-v", "/shared", image, "sh", "-c", "echo 1 > /shared/f")
    cli.ok("create", "--name", "borrower", "--volumes-from", "owner", image, "true")
    anon = json.loads(cli.ok("inspect", "owner").out)[0]["Mounts"][0]["Name"]
    cli.ok("rm", "-v", "owner")
    assert os.path.isdir(volume_dir(cli, anon))
    cli.ok("rm", "-v", "borrower")
    assert not os.path.exists(volume_dir(cli, anon))


# -- copy-up --------------------------------------------------------------------------------

@pytest.mark.parametrize("mapping", MAPPINGS)
def test_new_volume_is_filled_from_the_image_with_its_owners(tmp_path, owned_tar, mapping):
    cli = Cli(str(tmp_path / "data"), env={"RBX_USERNS": mapping})
    cli.ok("import", "-c", 'CMD ["sh"]', owned_tar, "owned:1")
    out = cli.ok("run", "--rm", "-v", "filled:/srv/data", "owned:1", "sh", "-c",
                 "cat /srv/data/f; readlink /srv/data/link; "
                 "stat -c '%u:%g %a' /srv/data /srv/data/f").out.splitlines()
    assert out[:2] == ["from image", "f"]
    data = volume_dir(cli, "filled")
    assert oct(os.stat(data).st_mode & 0o777) == "0o750"  # the volume takes the dir's mode
    if mapping == "subuid":
        # the container's own owners, inside and on the host (its subordinate ids, so the
        # user cannot even look into the 0750 directory)
        assert out[2:] == ["1000:1000 750", "1000:1001 640"]
        assert os.stat(data).st_uid != os.getuid()
        with pytest.raises(PermissionError):
            os.stat(os.path.join(data, "f"))
    else:
        # one id: files are the user's, the owner the image gave kept in the xattr
        assert out[2:] == ["0:0 750", "0:0 640"]
        assert os.stat(os.path.join(data, "f")).st_uid == os.getuid()
        assert owners.decode(os.getxattr(os.path.join(data, "f"),
                                         "user.rootlesscontainers")) == (1000, 1001)
    # a volume with content is never filled again
    cli.ok("run", "--rm", "-v", "filled:/srv/data", "owned:1", "sh", "-c",
           "echo mine > /srv/data/f")
    assert cli.ok("run", "--rm", "-v", "filled:/srv/data", "owned:1", "cat",
                  "/srv/data/f").out == "mine\n"
    # volume-nocopy (and -v's nocopy) leave a new volume empty
    assert cli.ok("run", "--rm", "--mount", "src=empty1,dst=/srv/data,volume-nocopy",
                  "owned:1", "ls", "-A", "/srv/data").out == ""
    assert cli.ok("run", "--rm", "-v", "empty2:/srv/data:nocopy", "owned:1", "ls", "-A",
                  "/srv/data").out == ""
    # an anonymous volume is filled too; a bind mount never is
    assert cli.ok("run", "--rm", "-v", "/srv/data", "owned:1", "cat",
                  "/srv/data/f").out == "from image\n"
    (tmp_path / "empty-bind").mkdir()
    assert cli.ok("run", "--rm", "-v", "%s:/srv/data" % (tmp_path / "empty-bind"), "owned:1",
                  "ls", "-A", "/srv/data").out == ""
    # files of subordinate owners the user cannot even read go with volume rm all the same
    assert cli.ok("volume", "rm", "filled").out == "filled\n"
    assert not os.path.exists(os.path.dirname(data))


# -- local driver options ---------------------------------------------------------------------

def test_tmpfs_and_bind_volumes(cli, image, tmp_path):
    cli.ok("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o",
           "o=size=256k,mode=1770", "ram")
    line = cli.ok("run", "--rm", "-v", "ram:/r", image, "sh", "-c",
                  "grep ' /r ' /proc/mounts").out
    assert line.startswith("tmpfs /r tmpfs") and "size=256k" in line and "mode=1770" in line
    assert inspect_volume(cli, "ram")[0]["Options"] == {"type": "tmpfs", "device": "tmpfs",
                                                        "o": "size=256k,mode=1770"}
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    cli.ok("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt",
           "device=%s" % host_dir, "hostdir")
    cli.ok("run", "--mount", "source=hostdir,target=/h", image, "sh", "-c",
           "echo via-volume > /h/f")
    assert (host_dir / "f").read_text() == "via-volume\n"
    cid = cli.ok("ps", "-a", "-l", "-q", "--no-trunc").out.strip()
    (mount,) = json.loads(cli.ok("inspect", cid).out)[0]["Mounts"]
    # where the data is, so that cp into the stopped container lands there too
    assert (mount["Type"], mount["Name"], mount["Source"]) == ("volume", "hostdir",
                                                               str(host_dir))
    cli.ok("cp", "-", "%s:/h" % cid, input=_tar_of("copied", b"by cp\n"))
    assert (host_dir / "copied").read_text() == "by cp\n"
    cli.ok("rm", cid)
    for opts, message in ((["-o", "colour=red"], 'invalid option: "colour"'),
                          (["-o", "type=tmpfs"], 'missing required option: "device"'),
                          (["-o", "type=nfs", "-o", "device=:/x"], "unsupported volume"),
                          (["-d", "other"], 'plugin "other" not found'),
                          (["-o", "novalue"], "invalid key value pair")):
        proc = cli("volume", "create", *opts, "badvol")
        assert proc.returncode == 1 and message in proc.err, (opts, proc.err)
        assert not os.path.exists(volume_dir(cli, "badvol"))
    bad = cli("volume", "create", "x")
    assert bad.returncode == 1 and "includes invalid characters for a local volume name" \
        in bad.err
    shutil.rmtree(host_dir)
    gone = cli("run", "--rm", "-v", "fresh-vol:/f", "-v", "hostdir:/h", image, "true")
    assert gone.returncode == 125 and "no such file or directory" in gone.err
    # nothing half made: the volume this failed create made first is gone again
    assert not os.path.exists(volume_dir(cli, "fresh-vol"))
    cli.ok("volume", "rm", "ram", "hostdir")


# -- --mount ----------------------------------------------------------------------------------

def test_mount_types_and_inspect(cli, image, tmp_path):
    (tmp_path / "in").write_text("host")
    cid = cli.ok("create", "--mount", "type=bind,src=%s,dst=/b,readonly" % tmp_path,
                 "--mount", "type=volume,source=mvol,destination=/v,volume-label=a=1",
                 "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=700",
                 "--mount", "type=bind,src=%s,dst=/p,bind-propagation=rslave" % tmp_path,
                 image, "sh", "-c",
                 "cat /b/in; touch /b/x 2>/dev/null || echo ro; echo w > /v/f; "
                 "grep ' /t ' /proc/mounts").out.strip()
    out = cli.ok("start", "-a", cid).out
    assert out.startswith("hostro\n")
    assert "tmpfs /t tmpfs" in out and "size=1024k" in out and "mode=700" in out
    info = json.loads(cli.ok("inspect", cid).out)[0]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/b"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/b",
                            "Mode": "", "RW": False, "Propagation": "rprivate"}
    assert mounts["/p"]["Propagation"] == "rslave"
    assert mounts["/t"]["Type"] == "tmpfs"  # --mount type=tmpfs is listed (--tmpfs is not)
    assert mounts["/v"] == {"Type": "volume", "Name": "mvol",
                            "Source": volume_dir(cli, "mvol"), "Destination": "/v",
                            "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}
    assert inspect_volume(cli, "mvol")[0]["Labels"] == {"a": "1"}
    host = {m["Target"]: m for m in info["HostConfig"]["Mounts"]}
    assert host["/b"] == {"Type": "bind", "Source": str(tmp_path), "Target": "/b",
                          "ReadOnly": True}
    assert host["/t"]["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o700}
    assert host["/v"]["VolumeOptions"] == {"Labels": {"a": "1"}}
    assert info["HostConfig"]["Binds"] is None and info["HostConfig"]["VolumesFrom"] is None
    cli.ok("rm", cid)
    cli.ok("volume", "rm", "mvol")


@pytest.mark.parametrize("value,message", [
    ("type=volume", "target is required"),
    ("dst=/x,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("dst=/x,colour=red", "unexpected key 'colour' in 'colour=red'"),
    ("type=bind,dst=/x,src=/tmp,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=tmpfs,dst=/x,tmpfs-mode=999", "invalid value for tmpfs-mode: 999"),
    ("type=bind,src=/tmp,dst=/x,volume-nocopy", "cannot mix 'volume-*' options with mount "
                                                "type 'bind'"),
    ("type=volume,dst=/x,bind-propagation=shared", "cannot mix 'bind-*' options with mount "
                                                   "type 'volume'"),
    ("type=bind,dst=/x,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type 'bind'"),
    ("type=floppy,dst=/x", 'invalid mount config for type "floppy": mount type unknown'),
    ("type=bind,dst=/x", 'invalid mount config for type "bind": field Source must not be '
                         'empty'),
    ("type=bind,src=/tmp,dst=rel", "invalid mount path: 'rel' mount path must be absolute"),
    ("type=bind,src=/tmp,dst=/x,bind-propagation=wide", "invalid propagation mode: wide"),
    ("type=bind,src=/no/such/dir,dst=/x", "bind source path does not exist: /no/such/dir"),
    ("type=tmpfs,src=foo,dst=/x", "field Source must not be specified"),
    ("type=volume,dst=/x,ro", "must not set ReadOnly mode when using anonymous volumes"),
    ("type=volume,src=bad!name,dst=/x", "includes invalid characters for a local volume"),
    ("type=volume,src=v,dst=/", "destination can't be '/'"),
])
def test_bad_mount_is_one_line_exit_125(cli, image, value, message):
    before = sorted(os.listdir(os.path.join(cli.root, "containers")))
    for verb in ("run", "create"):
        proc = cli(verb, "--rm", "--mount", value, image, "true")
        assert proc.returncode == 125, proc.err
        assert proc.err.startswith("rootless-box: error: ") and message in proc.err
        assert proc.err.count("\n") <= 2 and "Traceback" not in proc.err
    assert sorted(os.listdir(os.path.join(cli.root, "containers"))) == before


def test_volume_subpath(cli, image):
    cli.ok("run", "--rm", "-v", "parts:/p", image, "sh", "-c",
           "mkdir -p /p/one/deeper && echo in-one > /p/one/f && ln -s /etc /p/escape")
    out = cli.ok("run", "--rm", "--mount", "src=parts,dst=/s,volume-subpath=one/.", image,
                 "sh", "-c", "cat /s/f; ls /s").out
    assert out == "in-one\ndeeper\nf\n"
    # a symlink in the volume is followed inside the volume, never to the container's /etc
    escaped = cli("run", "--rm", "--mount", "src=parts,dst=/s,volume-subpath=escape", image,
                  "ls", "/s/passwd")
    assert escaped.returncode != 0
    for value, message in (("dst=/s,volume-subpath=one", "must not set Subpath when using "
                                                          "anonymous volumes"),
                           ("src=parts,dst=/s,volume-subpath=../x", "subpath must be a "
                                                                    "relative path"),
                           ("src=parts,dst=/s,volume-subpath=/one", "subpath must be a "
                                                                    "relative path")):
        proc = cli("run", "--rm", "--mount", value, image, "true")
        assert proc.returncode == 125 and message in proc.err, proc.err
    missing = cli("run", "--rm", "--mount", "src=parts,dst=/s,volume-subpath=two", image,
                  "true")
    assert missing.returncode == 125 and "No such file or directory" in missing.err
    assert "Traceback" not in missing.err
    cli.ok("volume", "rm", "parts")


def test_duplicate_mount_point(cli, image, tmp_path):
    proc = cli("run", "--rm", "-v", "%s:/x" % tmp_path, "--mount",
               "type=tmpfs,dst=/x", image, "true")
    assert proc.returncode == 125 and "Duplicate mount point: /x" in proc.err


def test_volumes_from(cli, image, tmp_path):
    (tmp_path / "h").write_text("bound\n")
    cli.ok("create", "--name", "source-ctr", "-v", "vf-data:/data", "-v",
           "%s:/host:ro" % tmp_path, "--tmpfs", "/scratch", image, "true")
    cli.ok("run", "--rm", "-v", "vf-data:/data", image, "sh", "-c", "echo shared > /data/f")
    out = cli.ok("run", "--rm", "--volumes-from", "source-ctr", image, "sh", "-c",
                 "cat /data/f /host/h; echo more >> /data/f; touch /host/x 2>/dev/null || "
                 "echo host-ro; grep -c ' /scratch ' /proc/mounts || true").out
    assert out == "shared\nbound\nhost-ro\n0\n"  # tmpfs mounts are not inherited
    ro = cli("run", "--rm", "--volumes-from", "source-ctr:ro", image, "sh", "-c",
             "echo x >> /data/f")
    assert ro.returncode != 0 and "Read-only file system" in ro.err
    cid = cli.ok("create", "--volumes-from", "source-ctr:rw", image, "true").out.strip()
    info = json.loads(cli.ok("inspect", cid).out)[0]
    assert info["HostConfig"]["VolumesFrom"] == ["source-ctr:rw"]
    source = json.loads(cli.ok("inspect", "source-ctr").out)[0]["HostConfig"]
    assert source["Binds"] == ["vf-data:/data", "%s:/host:ro" % tmp_path]
    assert source["Tmpfs"] == {"/scratch": ""} and source.get("Mounts") is None
    # a --tmpfs mount is HostConfig.Tmpfs only, as Docker's (no mount point of its own)
    assert sorted(m["Destination"] for m in json.loads(cli.ok(
        "inspect", "source-ctr").out)[0]["Mounts"]) == ["/data", "/host"]
    assert {m["Destination"]: m["RW"] for m in info["Mounts"]} == {"/data": True,
                                                                   "/host": True}
    refused = cli("volume", "rm", "vf-data")
    assert refused.returncode == 1 and cid in refused.err
    # ps finds the users of a volume by its name or by the place it is mounted at
    users = cli.ok("ps", "-a", "-q", "--no-trunc", "--filter", "volume=vf-data").out.split()
    source_id = json.loads(cli.ok("inspect", "source-ctr").out)[0]["Id"]
    assert sorted(users) == sorted([cid, source_id])
    assert cid in cli.ok("ps", "-a", "-q", "--no-trunc", "--filter",
                         "volume=/host").out.split()
    assert cli.ok("ps", "-a", "-q", "--filter", "volume=no-such").out == ""
    bad = cli("run", "--rm", "--volumes-from", "source-ctr:rshared", image, "true")
    assert bad.returncode == 125 and "invalid mode: rshared" in bad.err
    missing = cli("run", "--rm", "--volumes-from", "no-such-ctr", image, "true")
    assert missing.returncode == 125 and "no such container: no-such-ctr" in missing.err
    cli.ok("rm", cid, "source-ctr")
    cli.ok("volume", "rm", "vf-data")


def test_image_volume_paths_get_filled_anonymous_volumes(cli, owned_tar):
    cli.ok("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /srv/data", owned_tar, "withvol:1")
    cli.ok("volume", "create", "--label", "test=image-volume", "unrelated")
    before = set(os.listdir(os.path.join(cli.root, "volumes")))
    cid = cli.ok("run", "-d", "withvol:1", "sh", "-c", "echo new > /srv/data/g").out.strip()
    cli.ok("wait", cid)
    (mount,) = json.loads(cli.ok("inspect", cid).out)[0]["Mounts"]
    assert mount["Destination"] == "/srv/data" and len(mount["Name"]) == 64
    assert inspect_volume(cli, mount["Name"])[0]["Labels"] == {
        "com.docker.volume.anonymous": ""}
    # the volume, not the container's layer, holds what was written there
    assert cli.ok("run", "--rm", "-v", "%s:/v" % mount["Name"], "withvol:1", "sh", "-c",
                  "cat /v/f /v/g").out == "from image\nnew\n"
    # a mount of the user's at that path takes the place of the image's volume
    out = cli.ok("run", "--rm", "--mount", "type=tmpfs,dst=/srv/data", "withvol:1", "sh",
                 "-c", "ls -A /srv/data; grep -c ' /srv/data ' /proc/mounts").out
    assert out == "1\n"
    cli.ok("rm", "-v", cid)
    assert set(os.listdir(os.path.join(cli.root, "volumes"))) == before
    cli.ok("volume", "rm", "unrelated")


def test_plain_inspect_finds_volumes(cli, image):
    cli.ok("volume", "create", "--label", "k=v", "inspected")
    (obj,) = json.loads(cli.ok("inspect", "inspected").out)
    assert obj == inspect_volume(cli, "inspected")[0]
    assert cli.ok("inspect", "--type", "volume", "-f", "{{.Labels.k}}",
                  "inspected").out == "v\n"
    missing = cli("inspect", "--type", "volume", image)
    assert missing.returncode == 1 and "no such object: %s" % image in missing.err
    nothing = cli("inspect", "no-such-thing")
    assert nothing.returncode == 1 and "no such object: no-such-thing" in nothing.err
    cli.ok("volume", "rm", "inspected")
