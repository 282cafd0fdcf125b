"""Layers made without unpacking their tar again (issue 19): a build step's upper dir becomes
its layer's directory by rename, and must hold exactly what unpacking the layer's tar makes;
a commit leaves the layer's directory to be unpacked from the blob when an image first needs
it, and never shares a file with the container, which stays usable."""

import json
import os
import stat

from conftest import layer_dir, needs_userns

pytestmark = needs_userns


def _summary(top):
    """Inside the user namespace: what a layer directory holds, as unpacking would make it
    (mtimes in whole seconds: a tar keeps no more)."""
    import hashlib
    out = {}
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, top)
            st = os.lstat(path)
            xattrs = {}
            for key in os.listxattr(path, follow_symlinks=False):
                xattrs[key] = os.getxattr(path, key, follow_symlinks=False).hex()
            # a whiteout's time is when it was made (the tar's marker has none to give it)
            mtime = None if stat.S_ISCHR(st.st_mode) else int(st.st_mtime)
            entry = [stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                     mtime, sorted(xattrs.items())]
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry += [st.st_size, hashlib.sha256(f.read()).hexdigest()]
            elif stat.S_ISLNK(st.st_mode):
                entry.append(os.readlink(path))
            elif stat.S_ISCHR(st.st_mode):
                entry.append(st.st_rdev)
            out[rel] = entry
    return out


def _unpacked_summary(blob, dest):
    """Inside the user namespace: the blob unpacked as the store unpacks a pulled layer."""
    from rootless_box.userns.idmap import plan
    from rootless_box.ops.storage import unpack_file
    unpack_file(blob, dest, plan().mode != "single")
    return _summary(dest)


def _layers(cli, image):
    image_id = json.loads(cli.ok("inspect", image).out)[0]["Id"]
    record = json.loads(open(os.path.join(cli.root, "images.json")).read())["images"][image_id]
    with open(os.path.join(cli.root, "blobs", "sha256", record["manifest"][7:]), "rb") as f:
        manifest = json.loads(f.read())
    return list(zip(record["layers"], (layer["digest"] for layer in manifest["layers"])))


def test_a_build_steps_renamed_upper_is_what_its_tar_unpacks_to(cli, image, tmp_path):
    from rootless_box.userns.idmap import plan
    from rootless_box.userns.launcher import run_in_userns
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM %s\n"
        "RUN mkdir -p /d/sub /gone && echo x > /d/sub/f && echo g > /gone/g\n"
        # a whiteout (rm of a lower file), an opaque dir (a lower dir made again), a copied-up
        # parent with a new mode, links, a fifo, set-id bits, a long name, a user xattr
        "RUN rm /bin/vi && rm -rf /gone && mkdir /gone && echo n > /gone/new && "
        "chmod 750 /d && ln -s ../d/sub/f /d/link && ln /d/sub/f /d/hard && mkfifo /d/fifo && "
        "chmod 4755 /d/sub/f && chown 12:34 /d/sub && touch /d/%s && "
        "(setfattr -n user.k -v v /d/sub/f 2>/dev/null || true)\n"
        "COPY data /copied/\n" % (image, "n" * 150))
    (ctx / "data").mkdir()
    (ctx / "data" / "a.txt").write_text("copied\n")
    cli.ok("build", "-t", "renamed:1", str(ctx))
    layers = _layers(cli, "renamed:1")
    base = len(_layers(cli, image))
    assert len(layers) == base + 3
    idmap = plan()
    for n, (diff_id, digest) in enumerate(layers[base:]):
        blob = os.path.join(cli.root, "blobs", "sha256", digest[7:])
        assert digest == diff_id  # build layers are stored uncompressed
        dest = str(tmp_path / ("unpacked%d" % n))
        os.mkdir(dest)
        expected = run_in_userns(_unpacked_summary, idmap, blob, dest)
        got = run_in_userns(_summary, idmap, layer_dir(cli, diff_id[7:]))
        assert got == expected, diff_id
        assert expected  # a layer with content, not two empty trees
    second = run_in_userns(_summary, idmap, layer_dir(cli, layers[base + 1][0][7:]))
    assert "bin/vi" in second or "usr/bin/vi" in second  # the whiteout is in the directory
    assert "d/fifo" in second and "gone/new" in second
    assert not any(p.startswith(("etc/hosts", "etc/hostname", "etc/resolv.conf", "proc"))
                   for p in second)  # the mount placeholders were left out of both
    out = cli.ok("run", "--rm", "renamed:1", "sh", "-c",
                 "cat /d/link /copied/a.txt; ls /gone; ls /bin/vi 2>&1; stat -c %u:%g /d/sub")
    assert out.out.split("\n")[:3] == ["x", "copied", "new"]
    assert "No such file" in out.out and "12:34" in out.out
    # the same steps again reuse the layers (the cache), and a build without the cache that
    # makes the same layer finds its directory there and drops its own upper dir
    cli.ok("build", "--no-cache", "-t", "renamed:2", str(ctx))
    assert cli.ok("run", "--rm", "renamed:2", "cat", "/copied/a.txt").out == "copied\n"
    assert os.listdir(os.path.join(cli.root, "tmp")) == []


def _inodes(top):
    """Inside the user namespace: (dev, inode) of every regular file below top."""
    found = set()
    for base, _dirs, files in os.walk(top):
        for name in files:
            st = os.lstat(os.path.join(base, name))
            if stat.S_ISREG(st.st_mode):
                found.add("%d:%d" % (st.st_dev, st.st_ino))
    return sorted(found)  # JSON back from the user namespace


def test_a_committed_container_stays_usable_and_shares_no_file_with_the_layer(cli, image):
    from rootless_box.userns.idmap import plan
    from rootless_box.userns.launcher import run_in_userns
    cli.ok("run", "--name", "keepgoing", image, "sh", "-c",
           "mkdir -p /w && echo before > /w/f && echo 1 > /w/other")
    cli.ok("commit", "keepgoing", "kept:1")
    diff_id = _layers(cli, "kept:1")[-1][0]
    # the container writes on: the image's file must not change
    cli.ok("start", "-a", "keepgoing")  # runs its command again: same content
    cid = json.loads(cli.ok("inspect", "keepgoing").out)[0]["Id"]
    upper = os.path.join(cli.root, "containers", cid, "upper")
    cli.ok("cp", "-", "keepgoing:/w", input=_one_file_tar("f", b"after\n"))
    assert cli.ok("run", "--rm", "kept:1", "cat", "/w/f", "/w/other").out == "before\n1\n"
    # that run unpacked the layer from its blob: a directory of its own
    layer = layer_dir(cli, diff_id[7:])
    assert os.path.isdir(layer)
    idmap = plan()
    in_layer = set(run_in_userns(_inodes, idmap, layer))
    assert in_layer and in_layer.isdisjoint(run_in_userns(_inodes, idmap, upper))
    cli.ok("commit", "keepgoing", "kept:2")
    assert cli.ok("run", "--rm", "kept:2", "cat", "/w/f").out == "after\n"
    cli.ok("rm", "keepgoing")
    assert cli.ok("run", "--rm", "kept:1", "cat", "/w/f").out == "before\n"


def _one_file_tar(name, data):
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
