"""The events journal (ops/events.py): one line per event from concurrent writers, bounded by
rotation, read back in order with Docker's filters."""

import os

from rootless_box import fastjson
from rootless_box.ops import events


def test_concurrent_writers_and_rotation_keep_every_line_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_BYTES", 20000)
    children = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:
            for i in range(300):
                events.emit(str(tmp_path), "container", "start", "c%d-%d" % (n, i),
                            {"name": "x" * 50})
            os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    for name in ("events.log", "events.log.1"):
        path = tmp_path / name
        assert path.stat().st_size < 20000 + 4 * 400  # bounded: rotated past the limit
        for line in path.read_bytes().splitlines():
            assert fastjson.loads(line)["Action"] == "start"
    kept = sum(len((tmp_path / n).read_bytes().splitlines())
               for n in ("events.log", "events.log.1"))
    got = list(events.read(str(tmp_path)))
    assert len(got) == kept and kept < 1200  # older ones rotated away, the rest read back
    # read back oldest first: each writer's events in the order it wrote them
    for n in range(4):
        mine = [int(e["Actor"]["ID"].split("-")[1]) for e in got
                if e["Actor"]["ID"].startswith("c%d-" % n)]
        assert mine == sorted(mine)
    assert got[-1]["Actor"]["ID"].endswith("-299")  # the last one written is kept


def test_filters_as_docker_reads_them():
    event = {"Type": "container", "Action": "exec_start: sh -c true",
             "Actor": {"ID": "abcdef123", "Attributes": {"name": "web", "image": "base",
                                                         "tier": "front"}}}
    assert events.matches(event, {"event": ["exec_start"], "container": ["web"]})
    assert events.matches(event, {"container": ["abc"], "image": ["base"],
                                  "label": ["tier=front", "tier"]})
    assert not events.matches(event, {"type": ["image"]})
    assert not events.matches(event, {"label": ["tier=back"]})
    assert not events.matches(event, {"container": ["db"]})


def test_volume_and_network_filters_name_their_own_kind():
    vol = {"Type": "volume", "Action": "mount",
           "Actor": {"ID": "data", "Attributes": {"driver": "local", "container": "abc"}}}
    assert events.matches(vol, {"volume": ["data"], "event": ["mount"]})
    assert not events.matches(vol, {"volume": ["other"]})
    assert not events.matches(vol, {"network": ["data"]})  # a volume is no network
    net = {"Type": "network", "Action": "create",
           "Actor": {"ID": "n123", "Attributes": {"name": "front", "type": "bridge"}}}
    assert events.matches(net, {"network": ["front"]}) and events.matches(net, {
        "network": ["n123"]})
    assert not events.matches(net, {"volume": ["front"]})


def test_mount_events_around_a_containers_start_and_die(tmp_path):
    record = {"Id": "c1", "Name": "web", "Config": {"Image": "base"},
              "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/d", "RW": False},
                         {"Type": "bind", "Source": "/x", "Destination": "/x"}]}
    events.container(str(tmp_path), record, "start")
    events.container(str(tmp_path), record, "die", exitCode=0)
    got = [(e["Type"], e["Action"], e["Actor"]["Attributes"].get("read/write"))
           for e in events.read(str(tmp_path))]
    assert got == [("volume", "mount", "false"), ("container", "start", None),
                   ("container", "die", None), ("volume", "unmount", None)]


def test_a_journal_that_cannot_be_written_fails_nobody(tmp_path):
    events.emit(str(tmp_path / "missing" / "dir"), "image", "tag", "x")


def test_reading_from_a_mark_skips_what_came_before(tmp_path, monkeypatch):
    root = str(tmp_path)
    events.emit(root, "container", "die", "old", {"exitCode": "1"})
    mark = events.mark(root)
    events.emit(root, "container", "die", "new", {"exitCode": "2"})
    assert [e["Actor"]["ID"] for e in events.read(root, after=mark)] == ["new"]
    # rotated since the mark: everything is read again, nothing is lost
    monkeypatch.setattr(events, "MAX_BYTES", 10)
    events.emit(root, "container", "die", "after", {})
    assert [e["Actor"]["ID"] for e in events.read(root, after=mark)] == [
        "old", "new", "after"]
    assert events.mark(str(tmp_path / "none")) is None


def test_network_events_around_a_containers_start_and_die(tmp_path):
    record = {"Id": "c1", "Name": "web", "Config": {"Image": "img"},
              "NetworkSettings": {"Networks": {"front": {"NetworkID": "n1"}}}}
    events.container(str(tmp_path), record, "start")
    events.container(str(tmp_path), record, "die", exitCode=0)
    got = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"])
           for e in events.read(str(tmp_path))]
    link = {"name": "front", "type": "bridge", "container": "c1"}
    assert [g[:3] for g in got] == [("network", "connect", "n1"), ("container", "start", "c1"),
                                    ("container", "die", "c1"),
                                    ("network", "disconnect", "n1")]
    assert got[0][3] == link and got[3][3] == link
