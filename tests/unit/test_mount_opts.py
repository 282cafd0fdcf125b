"""Docker's `--mount` grammar, `--volumes-from` and the volume model's pure rules
(ops/mountopts.py, ops/volumes.py)."""

import pytest

from rootless_box.errors import UsageError
from rootless_box.ops import mountopts, volumes


@pytest.mark.parametrize("text,size", [
    ("64m", 64 << 20), ("1g", 1 << 30), ("100", 100), ("1.5k", 1536), ("2GiB", 2 << 30),
    ("10MB", 10 << 20), ("7b", 7), ("lots", None), ("-1m", None), ("", None), ("1.2.3", None)])
def test_ram_in_bytes_as_go_units(text, size):
    assert mountopts.ram_in_bytes(text) == size


def test_volume_mount_fields_and_aliases():
    spec, api = mountopts.parse_mount("type=volume,src=data,dst=/d,volume-nocopy,"
                                      "volume-label=a=1,volume-opt=type=tmpfs,"
                                      "volume-opt=device=tmpfs")
    assert api == {"Type": "volume", "Source": "data", "Target": "/d",
                   "VolumeOptions": {"NoCopy": True, "Labels": {"a": "1"},
                                     "DriverConfig": {"Options": {"type": "tmpfs",
                                                                  "device": "tmpfs"}}}}
    assert spec["name"] == "data" and spec["copy"] is False and not spec["anonymous"]
    assert spec["volume_options"] == {"type": "tmpfs", "device": "tmpfs"}
    # the default type is volume; no source is an anonymous volume with Docker's random name
    spec, _ = mountopts.parse_mount("destination=/x/../y")
    assert spec["anonymous"] and len(spec["name"]) == 64 and spec["destination"] == "/y"
    assert spec["copy"] is True


def test_bind_and_tmpfs_fields(tmp_path):
    spec, api = mountopts.parse_mount('type=bind,"source=%s",target=/b,ro=true,'
                                      'bind-propagation=RSHARED,bind-nonrecursive' % tmp_path)
    assert spec == {"type": "bind", "source": str(tmp_path), "destination": "/b",
                    "readonly": True, "propagation": "rshared", "recursive": False}
    assert api["BindOptions"] == {"Propagation": "rshared", "NonRecursive": True}
    spec, api = mountopts.parse_mount("type=tmpfs,dst=/t,tmpfs-size=3m,tmpfs-mode=1770,ro")
    assert spec == {"type": "tmpfs", "destination": "/t",
                    "options": ["ro", "mode=1770", "size=3m"]}
    assert mountopts.parse_mount("type=tmpfs,dst=/t,tmpfs-size=1000")[0]["options"] == \
        ["size=1000"]


def test_quoted_csv_field_keeps_its_comma(tmp_path):
    odd = tmp_path / "a,b"
    odd.mkdir()
    spec, _ = mountopts.parse_mount('type=bind,"src=%s",dst=/o' % odd)
    assert spec["source"] == str(odd)


def test_bad_mount_messages_name_the_field():
    with pytest.raises(UsageError) as info:
        mountopts.parse_mount("type=volume,dst=/x,size=1")
    assert info.value.message == ('invalid argument "type=volume,dst=/x,size=1" for "--mount" '
                                  "flag: unexpected key 'size' in 'size=1'")
    with pytest.raises(UsageError, match="invalid value for volume-nocopy: perhaps"):
        mountopts.parse_mount("dst=/x,volume-nocopy=perhaps")


def test_volumes_from_modes_and_entries():
    assert mountopts.parse_volumes_from("ctr") == ("ctr", None)
    assert mountopts.parse_volumes_from("ctr:ro") == ("ctr", "ro")
    for bad in ("", "ctr:z", "ctr:nocopy"):
        with pytest.raises(UsageError):
            mountopts.parse_volumes_from(bad)
    record = {"Mounts": [
        {"Type": "volume", "Name": "v", "Destination": "/v", "RW": True, "Anonymous": True},
        {"Type": "bind", "Source": "/h", "Destination": "/h", "RW": False},
        {"Type": "tmpfs", "Destination": "/t", "RW": True}]}
    inherited = mountopts.volumes_from(record, None)
    assert [(m["destination"], m["readonly"]) for m in inherited] == [("/v", False),
                                                                      ("/h", True)]
    assert inherited[0]["copy"] is False and inherited[0]["anonymous"] is True
    assert all(m["readonly"] for m in mountopts.volumes_from(record, "ro"))
    assert not any(m["readonly"] for m in mountopts.volumes_from(record, "rw"))


def test_merge_refuses_duplicates_and_lets_explicit_win():
    mine = [{"type": "tmpfs", "destination": "/v", "options": []}]
    theirs = [{"type": "bind", "source": "/h", "destination": "/v"},
              {"type": "bind", "source": "/h", "destination": "/w"}]
    assert [m["type"] for m in mountopts.merge(mine, theirs)] == ["tmpfs", "bind"]
    with pytest.raises(UsageError, match="Duplicate mount point: /v"):
        mountopts.merge(mine + mine, [])


def test_volume_names_and_local_driver_options():
    for good in ("ab", "a.b_c-1", "0x"):
        assert volumes.validate_name(good) == good
    for bad in ("a", "-ab", "a/b", "a b", ""):
        with pytest.raises(UsageError, match="includes invalid characters"):
            volumes.validate_name(bad)
    volumes.check_options("local", {})
    volumes.check_options("local", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    volumes.check_options("local", {"type": "none", "device": "/srv", "o": "bind"})
    for options, message in (({"size": "1"}, 'invalid option: "size"'),
                             ({"device": "/x"}, 'missing required option: "type"'),
                             ({"o": "bind", "type": "none"}, 'missing required option'),
                             ({"type": "none", "device": "rel", "o": "bind"}, "absolute"),
                             ({"type": "ext4", "device": "/dev/sda1"}, "unsupported")):
        with pytest.raises(UsageError, match=message):
            volumes.check_options("local", options)


def test_bind_recursive_values(tmp_path):
    src = "type=bind,src=%s,dst=/b" % tmp_path
    assert mountopts.parse_mount(src + ",bind-recursive=disabled")[0]["recursive"] is False
    assert mountopts.parse_mount(src + ",bind-recursive=enabled")[0]["recursive"] is True
    writable = mountopts.parse_mount(src + ",ro,bind-recursive=writable")[0]
    assert writable["readonly"] == "top" and writable["recursive"] is True
    forced = mountopts.parse_mount(src + ",ro,bind-recursive=readonly,bind-propagation=rprivate")
    assert forced[0]["readonly"] is True
    for extra, message in ((",bind-recursive=writable", "'bind-recursive=writable' requires "
                                                        "'readonly'"),
                           (",bind-recursive=readonly", "'bind-recursive=readonly' requires "
                                                        "'readonly'"),
                           (",ro,bind-recursive=readonly", "requires 'bind-propagation="
                                                           "rprivate'"),
                           (",bind-recursive=maybe", 'must be "enabled", "disabled", '
                                                     '"writable", or "readonly"')):
        with pytest.raises(UsageError, match=message):
            mountopts.parse_mount(src + extra)
