"""`events`: the daemonless journal as a user reads it: container life (create, start, die,
kill, stop, destroy, exec, health_status), volume events, image events (tag, untag, delete,
load, import, save, a build's create and tag), network events (create, connect, disconnect,
destroy, prune), filters,
--format, and following new events live."""

import json
import subprocess
import time

from conftest import assert_one_error, needs_userns

pytestmark = needs_userns


def past(cli, *args):
    """Events from a minute ago until a second from now (the future bound ends it)."""
    until = "%d" % (time.time() + 1)
    return cli.ok("events", "--since", "1m", "--until", until, *args).out.splitlines()


def actions(cli, name):
    return [json.loads(line)["Action"] for line in
            past(cli, "--filter", "container=" + name, "--format", "json")]


def test_a_foreground_containers_life(cli, image, tmp_path):
    name = "ev-fg-%s" % tmp_path.name[-6:]
    assert cli("run", "--rm", "--name", name, image, "sh", "-c", "exit 3").returncode == 3
    assert actions(cli, name) == ["create", "start", "die", "destroy"]
    line = [line for line in past(cli, "--filter", "container=" + name,
                                  "--filter", "event=die")]
    assert len(line) == 1 and " container die " in line[0]
    assert "exitCode=3" in line[0] and "name=%s" % name in line[0]


def test_a_detached_containers_life_and_exec(cli, image, tmp_path):
    name = "ev-bg-%s" % tmp_path.name[-6:]
    cli.ok("run", "-d", "--name", name, image, "sleep", "60")
    cli.ok("exec", name, "true")
    cli.ok("stop", "-t", "0", name)  # sleep as pid 1 ignores SIGTERM: then SIGKILL
    cli.ok("rm", name)
    assert actions(cli, name) == ["create", "start", "exec_create: true",
                                  "exec_start: true", "kill", "kill", "die", "stop",
                                  "destroy"]
    kills = past(cli, "--filter", "container=" + name, "--filter", "event=kill", "--format",
                 "{{.Actor.Attributes.signal}}")
    assert kills == ["15", "9"]


def test_health_status_events(cli, image, tmp_path):
    name = "ev-h-%s" % tmp_path.name[-6:]
    cli.ok("run", "-d", "--name", name, "--health-cmd", "true", "--health-interval", "100ms",
           image, "sleep", "60")
    try:
        deadline = time.monotonic() + 30
        while "health_status: healthy" not in actions(cli, name):
            assert time.monotonic() < deadline, "no health_status event"
            time.sleep(0.1)
    finally:
        cli("rm", "-f", name)


def test_image_events_and_filters(cli, image):
    cli.ok("tag", image, "evimg:1")
    cli.ok("rmi", "evimg:1")
    lines = past(cli, "--filter", "type=image", "--format",
                 "{{.Action}} {{.Actor.Attributes.name}}")
    assert "tag evimg:1" in lines and "untag evimg:1" in lines
    assert not [line for line in lines if line.startswith(("create", "start"))]
    assert_one_error(cli("events", "--filter", "colour=red", "--until", "0s"), 1)


def test_volume_events(cli, image, tmp_path):
    """A volume's life as dockerd reports it: create, mount before the container starts,
    unmount after it dies, destroy; a --rm container's anonymous volume too."""
    vol = "evvol-%s" % tmp_path.name[-6:]
    cli.ok("volume", "create", vol)
    cli.ok("run", "--rm", "-v", vol + ":/data", image, "true")
    cli.ok("volume", "rm", vol)
    lines = past(cli, "--filter", "volume=" + vol, "--format",
                 "{{.Type}} {{.Action}} {{.Actor.Attributes.destination}}")
    assert lines == ["volume create <no value>", "volume mount /data",
                     "volume unmount <no value>", "volume destroy <no value>"]
    cid = cli.ok("create", "-v", "/anon", image, "true").out.strip()
    anon = json.loads(cli.ok("inspect", cid).out)[0]["Mounts"][0]["Name"]
    cli.ok("rm", "-v", cid)
    lines = past(cli, "--filter", "type=volume", "--filter", "volume=" + anon, "--format",
                 "{{.Action}} {{.Actor.Attributes.driver}}")
    assert lines == ["create local", "destroy local"]


def test_load_import_save_events(cli, image, rootfs_tar, tmp_path):
    archive = str(tmp_path / "saved.tar")
    cli.ok("save", "-o", archive, image)
    image_id = cli.ok("inspect", "-f", "{{.Id}}", image).out.strip()
    cli.ok("load", "-i", archive)
    imported = cli.ok("import", rootfs_tar, "evimport:1").out.strip()
    lines = past(cli, "--filter", "type=image", "--format", "{{.Action}} {{.Actor.ID}}")
    assert "save " + image_id in lines and "load " + image_id in lines
    assert "import " + imported in lines
    cli.ok("rmi", "evimport:1")


def test_following_new_events(cli, image, tmp_path):
    name = "ev-live-%s" % tmp_path.name[-6:]
    # --since the start of this second: nothing is missed however late the reader starts;
    # no --until: it follows
    proc = subprocess.Popen(cli.argv("events", "--since", "%d" % time.time(), "--filter",
                                     "container=" + name),
                            env=cli.env, stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        cli.ok("run", "--rm", "--name", name, image, "true")
        deadline = time.monotonic() + 30
        while "destroy" not in " ".join(seen):
            assert time.monotonic() < deadline, seen
            seen.append(proc.stdout.readline())
        assert [line.split()[2] for line in seen] == ["create", "start", "die", "destroy"]
    finally:
        proc.kill()
        proc.wait()


def test_rename_restart_commit(cli, image, tmp_path):
    name = "ev-r-%s" % tmp_path.name[-6:]
    cid = cli.ok("run", "-d", "--name", name, image, "sleep", "60").out.strip()
    try:
        cli.ok("rename", name, name + "b")
        cli.ok("restart", "-t", "0", name + "b")
        cli.ok("commit", "-m", "snap", name + "b", "evcommit:1")
        got = [json.loads(line) for line in past(cli, "--filter", "container=" + cid,
                                                 "--format", "json")]
        acts = [e["Action"] for e in got]
        assert "rename" in acts and "restart" in acts and "commit" in acts
        renamed = got[acts.index("rename")]["Actor"]["Attributes"]
        assert renamed["oldName"] == "/" + name and renamed["name"] == name + "b"
        assert acts.index("restart") > acts.index("stop")
        # commit as dockerd's: the image's create and tag, then the container's commit
        image_id = cli.ok("inspect", "-f", "{{.Id}}", "evcommit:1").out.strip()
        committed = got[acts.index("commit")]["Actor"]["Attributes"]
        assert committed["comment"] == "snap" and committed["imageID"] == image_id
        assert committed["imageRef"] == "evcommit:1"
        images = past(cli, "--filter", "type=image", "--filter", "image=" + image_id,
                      "--format", "{{.Action}} {{.Actor.Attributes.name}}")
        assert images == ["create " + image_id, "tag evcommit:1"], images
    finally:
        cli("rm", "-f", cid)
        cli("rmi", "evcommit:1")


def test_network_events(cli, image, tmp_path):
    """A user network's life as dockerd reports it: create; connect before each start of a
    container on it and disconnect after its die; `network connect`/`disconnect` of a
    running container; destroy; prune. Actor: the network's ID; name, type, container."""
    tag = tmp_path.name[-6:]
    net, other, name = "evnet-" + tag, "evnet2-" + tag, "ev-n-" + tag
    since = "%d" % time.time()
    net_id = cli.ok("network", "create", net).out.strip()
    other_id = cli.ok("network", "create", other).out.strip()
    try:
        cid = cli.ok("run", "-d", "--name", name, "--network", net, image,
                     "sleep", "60").out.strip()
        cli.ok("network", "connect", other, name)
        cli.ok("network", "disconnect", other, name)
        cli.ok("rm", "-f", name)
        cli.ok("network", "connect", other, cli.ok(  # a stopped container: no event
            "create", "--network", net, image, "true").out.strip())
    finally:
        for cid_left in cli.ok("ps", "-aq", "--no-trunc").out.split():
            cli("rm", "-f", cid_left)
        cli.ok("network", "rm", other, net)
    cli.ok("network", "prune", "-f")
    until = "%d" % (time.time() + 1)
    fmt = "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} " \
          "{{.Actor.Attributes.type}} {{.Actor.Attributes.container}}"
    lines = cli.ok("events", "--since", since, "--until", until, "--filter", "type=network",
                   "--format", fmt).out.splitlines()
    lines = [line for line in lines if not line.startswith("prune")] + \
        [line for line in lines if line.startswith("prune")][-1:]
    assert lines == [
        "create %s %s bridge <no value>" % (net_id, net),
        "create %s %s bridge <no value>" % (other_id, other),
        "connect %s %s bridge %s" % (net_id, net, cid),
        "connect %s %s bridge %s" % (other_id, other, cid),
        "disconnect %s %s bridge %s" % (other_id, other, cid),
        "disconnect %s %s bridge %s" % (net_id, net, cid),
        "destroy %s %s bridge <no value>" % (other_id, other),
        "destroy %s %s bridge <no value>" % (net_id, net),
        "prune  <no value> <no value> <no value>"], lines
    # filtered by network name, in Docker's default line; then the container's own
    # events around them: connect before its start, disconnect after its die
    mine = cli.ok("events", "--since", since, "--until", until, "--filter",
                  "network=" + net, "--filter", "event=connect").out.splitlines()
    assert len(mine) == 1 and " network connect %s (container=%s, name=%s, type=bridge)" % (
        net_id, cid, net) in mine[0], mine
    order = [(e["Type"], e["Action"]) for e in map(json.loads, cli.ok(
        "events", "--since", since, "--until", until, "--format", "json").out.splitlines())
        if e["Actor"]["ID"] == cid or e["Actor"]["Attributes"].get("container") == cid]
    assert order.index(("network", "connect")) < order.index(("container", "start"))
    assert order.index(("container", "die")) < \
        max(i for i, e in enumerate(order) if e == ("network", "disconnect"))


def test_build_events(cli, image, tmp_path):
    """A build reports as dockerd's BuildKit exporter does: create for the built image (Actor
    ID and name its ID), then tag for each -t; a build without -t only create."""
    (tmp_path / "Dockerfile").write_text("FROM %s\nRUN echo built > /b\n" % image)
    since = "%.6f" % time.time()  # not the image import of the same second
    built = cli.ok("build", "-q", "-t", "evbuild:1", "-t", "evbuild:2",
                   str(tmp_path)).out.strip()
    (tmp_path / "Dockerfile").write_text("FROM %s\nLABEL k=v\n" % image)
    anonymous = cli.ok("build", "-q", str(tmp_path)).out.strip()
    lines = cli.ok("events", "--since", since, "--until", "%d" % (time.time() + 1),
                   "--filter", "type=image", "--format",
                   "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}").out.splitlines()
    assert lines == ["create %s %s" % (built, built), "tag %s evbuild:1" % built,
                     "tag %s evbuild:2" % built,
                     "create %s %s" % (anonymous, anonymous)], lines
    cli.ok("rmi", "evbuild:1", "evbuild:2", anonymous)
