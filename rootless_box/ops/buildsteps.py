"""The two build steps that change a filesystem: RUN (a command in a temporary container) and
COPY/ADD (files written into the image's root), each ending as one new layer.

Owns: a temporary container directory per step (under the store's tmp, so a killed build
leaves nothing the next command does not clean), running the step with the same launcher as
`run`, and turning its changes into a layer (ops/commit.make_layer).
Must not: know Dockerfile syntax (build/ does) or print (the step's own output goes to the
caller's stdout and stderr, as `docker build` shows it).
"""

import os

from .. import errors
from ..userns import launcher
from ..userns.launcher import run_in_userns
from .commit import BASE_MOUNTPOINTS, make_layer
from .run import SignalForwarder, confinement, prepare_rootfs, write_etc_files
from .storage import choose_driver

# The build cache's places under the data root (build/ reads and writes them, ops/prune.py
# removes them): one directory per RUN --mount=type=cache id, each with a `.lock` beside it
# that every step using it holds (shared, or exclusive for sharing=locked) and the pruner
# takes exclusively; the step-key -> image map; the context files' digests.
CACHE_MOUNTS = "buildcache-mounts"
CACHE_FILE = "buildcache.json"
KNOWN_FILE = "buildcache-files.json"


class StepFailed(errors.BoxError):
    """A RUN step's command exited non-zero (`docker build` exits 1): its argv and status are
    kept for the API's classic-builder wording (api/build.py)."""

    exit_code = 1

    def __init__(self, message, hint=None, *, argv=(), code=None, **kw):
        super().__init__(message, hint, **kw)
        self.argv, self.code = list(argv), code


def run_step(store, idmap, lowers, argv, env, workdir="/", user="", network="host",
             quiet=False, mounts=(), times=None, add_hosts=()):
    """Run argv on top of the layer directories lowers; returns {"diff_id", "size"} of the
    layer holding its changes (mtimes as times says: layers.diff.Times), or raises StepFailed
    with the command's exit status. add_hosts: --add-host NAME:IP lines for /etc/hosts.
    mounts: RUN --mount descriptions from build/runmount.py; what they show never reaches the
    layer, nor do the placeholders made to mount them onto."""
    tmp = store.mkdtemp("build-run")
    locks = []  # cache locks (fds) and ssh relays (pids, as negative numbers)
    try:
        driver = choose_driver(store, idmap)
        spec = {"id": os.path.basename(tmp), "hostname": "buildkitsandbox", "argv": argv,
                "env": env, "cwd": workdir or "/", "user": user, "tty": False,
                "stdin": False, "init": False, "network": network, "read_only": False,
                "rootfs": prepare_rootfs(tmp, driver, lowers, idmap),
                "mounts": [m for n, desc in enumerate(mounts)
                           for m in _step_mount(tmp, n, desc, driver, idmap, locks)],
                "etc_files": write_etc_files(tmp, network, "buildkitsandbox",
                                             _EtcOptions(add_hosts) if add_hosts else None)}
        spec.update(confinement(idmap))
        spec["mounts"] += _apt_sandbox(tmp, lowers, spec)
        ran = {}
        code = _run_quietly(spec, idmap, ran) if quiet else _run(spec, idmap, ran)
        if code != 0:
            raise StepFailed("process %s did not complete successfully: exit code: %d"
                             % (_quote(argv), code), exit_code=1, argv=argv, code=code)
        changes = spec["rootfs"]["merged"] if driver == "copy" else spec["rootfs"]["upper"]
        points = list(BASE_MOUNTPOINTS) + [m["destination"].lstrip("/")
                                           for m in spec["mounts"]]
        # a non-root USER under the single-id mapping ran as uid 0 with faked ids: what it
        # created is that user's, as under Docker
        fake = ran.get("fake_ids")
        with store.lock():
            return make_layer(store, idmap, driver, changes, lowers, points, times,
                              new_owner=fake[:2] if fake else None, disposable=True)
    finally:
        for held in locks:
            if held < 0:
                _stop_relay(-held)
            else:
                os.close(held)
        _set_aside(store, tmp)


class _EtcOptions:
    """What write_etc_files reads of a run's options: a build has --add-host, no --dns."""

    def __init__(self, add_hosts):
        self.add_hosts = list(add_hosts)
        self.dns = self.dns_search = self.dns_options = ()


APT_SANDBOX_CONF = "/etc/apt/apt.conf.d/00rootless-box-sandbox"


def _apt_sandbox(tmp, lowers, spec):
    """Under the fake-root filter apt's privilege drop cannot work: it drops to _apt and then
    checks getuid() and that it cannot become root again, which the faked calls contradict.
    apt is told to skip the drop (Debug::NoDropPrivs) but keeps its sandbox user, so it still
    chowns its partial directories to _apt (recorded by the supervisor): the layer is the one
    a subuid build makes. By a file mounted for the step alone: never in the layer or the
    image. Images without apt get nothing."""
    if spec.get("seccomp") != "fakeroot" or \
            not any(os.path.isdir(os.path.join(d, "etc", "apt")) for d in lowers):
        return []
    conf = os.path.join(tmp, "apt-sandbox.conf")
    with open(conf, "w") as f:
        f.write('Debug::NoDropPrivs "true";\n')
    return [{"type": "bind", "source": conf, "destination": APT_SANDBOX_CONF,
             "readonly": True}]


def _step_mount(tmp, n, desc, driver, idmap, locks):
    """One RUN --mount as run spec mounts (userns/mounts.py), preparing what it shows: a copy
    of context files, a view of another stage, a cache directory, a secret's file."""
    kind, target = desc["kind"], desc["target"]
    if kind == "tmpfs":
        options = ["exec"] + (["size=%d" % desc["size"]] if desc.get("size") else [])
        return [{"type": "tmpfs", "destination": target, "options": options}]
    if kind == "host":
        return [{"type": "bind", "source": desc["source"], "destination": target,
                 "readonly": True}]
    own = os.path.join(tmp, "mount%d" % n)
    os.mkdir(own, 0o700)
    if kind == "context":
        copy = os.path.join(own, "data")
        _copy_context(desc["root"], desc["source"], desc["paths"], copy)
        return [{"type": "bind", "source": copy, "destination": target,
                 "readonly": not desc["rw"]}]
    if kind == "layers":
        view = {"type": "bind", "destination": target, "readonly": not desc["rw"],
                "subpath": desc["source"]}
        if driver != "overlay":
            # no overlayfs here: the other stage is copied, writes then go to the copy
            view["source"] = prepare_rootfs(own, "copy", desc["lowers"], idmap)["merged"]
            return [view]
        rootfs = prepare_rootfs(own, "overlay", desc["lowers"], idmap)
        view.update(type="overlay", source=rootfs["merged"], lower=rootfs["lower"])
        if desc["rw"]:
            # writes land in this step's temporary upper dir and go with it
            view.update(upper=rootfs["upper"], work=rootfs["work"])
        return [view]
    if kind == "cache":
        import fcntl
        os.makedirs(os.path.dirname(desc["dir"]), 0o700, exist_ok=True)
        fd = os.open(desc["dir"] + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        locks.append(fd)
        # held for the step, taken before the directory is made: `builder prune` skips a
        # cache in use; sharing=locked lets one step at a time use it
        fcntl.flock(fd, fcntl.LOCK_EX if desc["sharing"] == "locked" else fcntl.LOCK_SH)
        if not os.path.isdir(desc["dir"]):
            seed = None
            if desc.get("seed_lowers"):
                # from=: a new cache starts as a copy of that path of the other root
                seed = (os.path.join(own, "view"), desc["seed_lowers"], desc["source"])
                os.mkdir(seed[0], 0o700)
            _make_owned(desc["dir"], None, desc, idmap, seed)
        return [{"type": "bind", "source": desc["dir"], "destination": target,
                 "readonly": not desc["rw"]}]
    if kind == "ssh":
        if desc["socket"] is None:
            return []  # not required and not given: left out, as BuildKit does
        path = os.path.join(own, "agent.sock")
        locks.append(-_start_relay(desc["socket"], path))
        run_in_userns(_own_socket, idmap, path, desc["uid"], desc["gid"], desc["mode"])
        return [{"type": "bind", "source": path, "destination": target, "readonly": False}]
    if kind == "secret":
        if desc["data"] is None:
            return []
        path = os.path.join(own, "secret")
        _make_owned(path, desc["data"], desc, idmap)
        return [{"type": "bind", "source": path, "destination": target, "readonly": True}]
    raise errors.UsageError("RUN --mount=type=%s is not supported" % kind)


def _make_owned(path, data, desc, idmap, seed=None):
    """A directory (data None) or a file holding data, with the owner and mode the mount
    asks for; a container owner other than root is set from inside the user namespace.
    seed: (staging dir, layer dirs, path) whose tree fills the new directory."""
    tmp = path + ".new"
    if data is None:
        os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
        os.mkdir(tmp, 0o700)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    try:
        run_in_userns(_own_inside, idmap, tmp, desc["uid"], desc["gid"], desc["mode"], seed)
    except BaseException:
        run_in_userns(_remove_inside, idmap, tmp)
        raise
    os.rename(tmp, path)  # a cache directory appears whole or not at all


def _own_socket(path, uid, gid, mode):
    os.chmod(path, mode)
    try:
        os.chown(path, uid, gid)
    except OSError:
        pass  # an owner the mapping lacks (single id): every step process is root there


def _start_relay(agent, path):
    """A socket at path whose connections are relayed to the ssh agent's socket (BuildKit
    gives the step a socket of its own too: its owner and mode are the mount's, never a
    change to the user's agent). Served by a forked process; -> its pid. The agent sees
    this user as its peer, which it accepts."""
    import socket
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
        server.listen(16)
    except OSError as exc:
        server.close()
        raise errors.BoxError("cannot serve the ssh agent to the step: %s" % exc.strerror)
    pid = os.fork()
    if pid == 0:
        try:
            import signal
            from ..userns import libc
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
            _relay(server, agent)
        finally:
            os._exit(0)
    server.close()
    return pid


def _relay(server, agent):
    """Each accepted connection joined to a new connection to agent, both ways."""
    import select
    import socket
    peers = {}
    while True:
        ready, _, _ = select.select([server] + list(peers), [], [])
        for sock in ready:
            if sock is server:
                conn, _addr = server.accept()
                out = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    out.connect(agent)
                except OSError:
                    conn.close()  # the step's client sees the agent gone
                    out.close()
                    continue
                peers[conn], peers[out] = out, conn
                continue
            other = peers.get(sock)
            if other is None:
                continue
            try:
                data = sock.recv(65536)
                if data:
                    other.sendall(data)
                    continue
            except OSError:
                pass
            for end in (sock, other):
                peers.pop(end, None)
                end.close()


def _stop_relay(pid):
    import signal
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _own_inside(path, uid, gid, mode, seed):
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    if seed:
        _copy_tree_inside(path, *seed)


def _remove_inside(path):
    import shutil
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_tree_inside(dest, view, lowers, source):
    """The tree at source in the root of lowers (mounted at view, read-only), copied into dest
    with its owners and modes. Runs inside the user namespace."""
    import stat
    from ..layers.apply import place
    from ..securepath import resolve_in_root
    from ..userns.mounts import mount_overlay
    mount_overlay(view, lowers)
    top = resolve_in_root(view, source)
    if not os.path.isdir(top):
        raise errors.NotFound("RUN --mount=type=cache,from=: %s is no directory in that "
                              "stage" % source)
    for dirpath, dirs, files in os.walk(top):  # never into a symlinked directory
        rel = os.path.relpath(dirpath, top)
        for name in sorted(dirs) + sorted(files):
            src, dst = os.path.join(dirpath, name), os.path.normpath(os.path.join(dest, rel,
                                                                                   name))
            st = os.lstat(src)
            if place(src, dst, st, 0o755, specials=False):
                os.lchown(dst, st.st_uid, st.st_gid)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(dst, stat.S_IMODE(st.st_mode))


def _copy_context(root, rel, paths, dest):
    """A private copy of context files for a mount whose writes are thrown away (or whose
    ignore file leaves some out): paths are the entries below rel to copy, None for a file.
    Links are copied as links (the bind shows the context as the build sees it)."""
    import shutil
    src = os.path.join(root, rel)
    if paths is None:
        shutil.copy2(src, dest, follow_symlinks=False)
        return
    os.mkdir(dest, 0o755)
    shutil.copystat(src, dest)
    for sub in paths:
        source, target = os.path.join(src, sub), os.path.join(dest, sub)
        if os.path.isdir(source) and not os.path.islink(source):
            os.mkdir(target, 0o755)
            shutil.copystat(source, target)
        elif os.path.islink(source) or os.path.isfile(source):
            shutil.copy2(source, target, follow_symlinks=False)


def _run(spec, idmap, ran):
    """The step's exit status; ran["fake_ids"]: the ids its user was given (become)."""
    forwarder = SignalForwarder()
    try:
        container = launcher.start(spec, idmap)
        ran["fake_ids"] = container.fake_ids
        forwarder.attach(container.pid)
        from .chowns import services
        return container.wait(services(container))
    finally:
        forwarder.restore()


def _run_quietly(spec, idmap, ran):
    """The step's output goes nowhere (build -q): stdout and stderr point at /dev/null while
    the container inherits them."""
    null = os.open("/dev/null", os.O_WRONLY)
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        return _run(spec, idmap, ran)
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def _quote(argv):
    return "\"" + " ".join(argv).replace("\"", "\\\"") + "\""


def fetch_url(store, url, checksum=None):
    """ADD <url>: download into a store temporary (verified against --checksum when given).
    Returns (temporary directory, file name); the caller removes the directory."""
    import hashlib
    import http.client
    import posixpath
    import urllib.error
    import urllib.parse
    import urllib.request
    from ..config import add_max_bytes
    limit = add_max_bytes()
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise errors.UsageError("unsupported URL scheme in ADD: %s" % url)
    name = posixpath.basename(parsed.path.rstrip("/")) or "__unnamed__"
    tmp = store.mkdtemp("add-url")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, \
                open(os.path.join(tmp, name), "wb") as out:
            received = 0
            expected = response.headers.get("Content-Length")
            if limit and expected and expected.isdigit() and int(expected) > limit:
                raise _TooLarge(int(expected))
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                if limit and received + len(chunk) > limit:
                    raise _TooLarge(None)
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
            if expected and expected.isdigit() and int(expected) != received:
                # a connection closed early reads as a short, quiet EOF
                raise http.client.IncompleteRead(b"", int(expected) - received)
    except _TooLarge as exc:
        store.remove(tmp)
        raise errors.BoxError("ADD cannot download %s: %s than RBX_ADD_MAX_BYTES (%d bytes)"
                              % (url, "it is larger" if exc.size is None else
                                 "its %d bytes are more" % exc.size, limit),
                              "raise RBX_ADD_MAX_BYTES (0: no limit), or download it into the "
                              "context and COPY it") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        store.remove(tmp)
        raise errors.BoxError("ADD cannot download %s: %s" % (url, getattr(exc, "reason", exc)),
                              "check the URL, or download it into the context and COPY it")
    got = "sha256:" + digest.hexdigest()
    if checksum and checksum != got:
        store.remove(tmp)
        raise errors.BoxError("ADD %s: checksum mismatch: expected %s, got %s"
                              % (url, checksum, got))
    os.chmod(os.path.join(tmp, name), 0o600)  # Docker's mode for downloaded files
    return tmp, name, got


class _TooLarge(Exception):
    def __init__(self, size):
        super().__init__(size)
        self.size = size


def _copy_inside(driver, rootfs, other_lowers, other_mount, plan, resolve_other):
    from ..userns.mounts import mount_overlay
    # the directories COPY makes are 0755 (Docker), whatever the user's umask
    os.umask(0o022)
    if driver != "copy":
        mount_overlay(rootfs["merged"], rootfs["lower"], rootfs["upper"], rootfs["work"])
    if other_lowers:
        mount_overlay(other_mount, other_lowers)
    count = 0
    for item in plan:
        if item.get("from_other"):
            item = dict(item, **resolve_other(other_mount, item))
        try:
            count += _APPLY[item["kind"]](rootfs["merged"], item, other_mount)
        except OSError as exc:
            raise _container_error(exc, item, rootfs["merged"], other_mount) from None
    return count


def _container_error(exc, item, root, other_mount):
    """An OSError of a COPY/ADD as the user can read it: the destination and the failing
    path as the container names them (never this host's path of its mounted root); a source
    of another stage by its path there; a context file by its own path."""
    def shown(path):
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not path:
            return None
        for top in (root, other_mount):
            if path == top or path.startswith(top.rstrip("/") + "/"):
                return "/" + os.path.relpath(path, top) if path != top else "/"
        return path
    where = shown(exc.filename)
    dest = item.get("dest", "/")
    reason = (exc.strerror or str(exc)).lower()
    text = "cannot copy to %s: %s" % (dest, reason) if where in (None, dest) else \
        "cannot copy to %s: %s: %s" % (dest, where, reason)
    return errors.BoxError(text, "check the destination path against what the image holds")


def _apply_file(root, item, _other):
    from ..layers.copyin import is_dir_in, write_file
    dest = item["dest"]
    if is_dir_in(root, dest):
        # COPY <<EOF /existing-dir: the file goes into it, named after the heredoc
        dest = dest.rstrip("/") + "/" + item["name"]
    write_file(root, dest, item["data"].encode("utf-8", "surrogateescape"),
               item["uid"], item["gid"], item["mode"] or 0o644)
    return 1


def _apply_extract(root, item, _other):
    """ADD of a local tar archive: unpacked at the destination (owners from the archive unless
    --chown), as Docker does."""
    from ..layers.compression import open_stream
    from ..layers.copyin import ensure_dir
    from ..layers.unpack import unpack
    target = ensure_dir(root, item["dest"])
    # O_NOFOLLOW: the archive is the context's own file, never what a symlink points at
    fd = os.open(item["path"], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as raw:
        stream, _compression = open_stream(raw)
        stats = unpack(stream, target, keep_owners=True, record_owners=True,
                       owner=(item["uid"], item["gid"]) if item["chown"] else None)
    return stats.entries


def _apply_copy(root, item, other_mount):
    from ..layers.copyin import copy_into, is_dir_in
    src_root = other_mount if item["from_other"] else item["root"]
    sources, walk = item["sources"], item["walk"]
    dest = item["dest"]
    into = item["dest_is_dir"] or len(sources) > 1 or (
        len(sources) == 1 and not sources[0][1] and is_dir_in(root, dest))
    names = item.get("names")  # COPY --parents: each source keeps its path under dest
    entries = []
    for rel, is_dir, name in sources:
        src = os.path.join(src_root, rel)
        if is_dir:
            # a directory's contents are copied, not the directory itself (Docker)
            base = dest.rstrip("/") + "/" + names[rel] if names and names[rel] not in (
                ".", "") else dest
            if not is_dir_in(root, base):
                entries.append((src, base))
            entries += [(os.path.join(src, sub), base.rstrip("/") + "/" + sub)
                        for sub in walk.get(rel, [])]
        elif names:
            entries.append((src, dest.rstrip("/") + "/" + names[rel]))
        else:
            # named after the source as written: a followed symlink keeps the link's name
            entries.append((src, dest.rstrip("/") + "/" + os.path.basename(name) if into
                            else dest))
    return copy_into(root, entries, item["uid"], item["gid"], item["mode"])


def _apply_mkdir(root, item, _other):
    from ..layers.copyin import ensure_dir
    ensure_dir(root, item["dest"], item.get("uid", 0), item.get("gid", 0))
    return 1


_APPLY = {"file": _apply_file, "extract": _apply_extract, "copy": _apply_copy,
          "mkdir": _apply_mkdir}


def copy_step(store, idmap, lowers, plan, other_lowers=None, resolve_other=None,
              times=None):
    """Write the plan's items into the root of lowers; returns the new layer's report.
    plan: items from build/copyplan.py: {"kind": "copy"} (context sources, resolved, or
    --from patterns, resolved here against the other root), {"kind": "file"} (a heredoc),
    {"kind": "extract"} (ADD of a local archive). other_lowers: the layers of the stage or
    image of COPY --from, mounted read-only beside the root; resolve_other(root, item) ->
    {"sources", "walk", "names"} resolves a --from item's patterns there. times: the
    layer's mtimes (layers.diff.Times)."""
    tmp = store.mkdtemp("build-copy")
    try:
        driver = choose_driver(store, idmap)
        rootfs = prepare_rootfs(tmp, driver, lowers, idmap)
        other_mount = os.path.join(tmp, "from")
        os.mkdir(other_mount)
        run_in_userns(_copy_inside, idmap, driver, rootfs, other_lowers or [], other_mount,
                      plan, resolve_other)
        changes = rootfs["merged"] if driver == "copy" else rootfs["upper"]
        with store.lock():
            return make_layer(store, idmap, driver, changes, lowers, times=times,
                              disposable=True)
    finally:
        _set_aside(store, tmp)


def _set_aside(store, tmp):
    """A step's directory, to the trash: whoever runs the build deletes it there, the CLI's
    after it has answered (ops/storage.empty_trash). When the step's layer was there already
    (a reproducible rebuild) it still holds the step's whole output. Its mounts are gone."""
    try:
        store.discard(tmp)
    except OSError:
        store.remove(tmp)
