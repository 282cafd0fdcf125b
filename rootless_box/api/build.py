"""The Engine API's classic builder: `POST /build` (what `docker build` with the legacy builder,
docker-py's images.build and compose 1.29 send).

Owns: Docker's query parameters turned into the CLI's BuildOptions (t, dockerfile, buildargs,
labels, target, nocache, pull, q, networkmode, extrahosts, platform; rm/forcerm/cachefrom and
the resource limits accepted and without effect: no intermediate container outlives its step
here), the refusals (BuildKit's version=2, a remote context, squash), the context tar pumped
into a fork-server worker that reads it whole, hashing it, and builds in the context kept
for that digest (ops/contextcache.py) or else unpacks it as a hostile tar (layers/unpack.py:
`..` out of it, a hard link out of it: 400) and keeps it, and runs dockerfile/executor.build
(the CLI's build, whose keys come from the directory), and Docker's
JSON stream: `Step N/M : ...`, ` ---> ID`, the steps' own output, `{"aux":{"ID"}}`,
`Successfully built ID12`, `Successfully tagged NAME`, an error as `errorDetail`.
Must not: build anything itself (dockerfile/executor.py does) or run a build in a request
thread (RUN steps unshare: api/forkserver.py).
"""

import json
import os
import re

from .. import errors
from ..oci import reference
from . import transfer
from .forkserver import JOBS
from .httpserver import HTTPError

_STEP = re.compile(r"STEP (\d+)/(\d+): (.*)\Z", re.S)


def _json_param(h, name, want):
    text = h.arg(name)
    if not text:
        return want()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise HTTPError(400, "invalid %s: %s" % (name, exc)) from None
    if value is None:
        return want()
    if not isinstance(value, want):
        raise HTTPError(400, "invalid %s: not a JSON %s" % (
            name, "object" if want is dict else "array"))
    return value


def _platform(h):
    wanted = h.arg("platform") or ""
    if not wanted:
        return
    from ..oci.image import host_arch
    parts = wanted.lower().split("/")
    if parts[0] != "linux" or (len(parts) > 1 and parts[1] != host_arch()):
        raise HTTPError(400, "platform %s is not supported: this builder builds for "
                        "linux/%s only" % (wanted, host_arch()))


def build_args(h):
    """The request's parameters -> the worker's arguments (refusals are 400s here)."""
    version = h.arg("version") or "1"
    if version != "1":
        raise HTTPError(400, "builder version %s (BuildKit) is not supported: the service "
                        "serves the classic builder only; build with DOCKER_BUILDKIT=0, or "
                        "run `rootless-box build`" % version)
    if h.arg("remote"):
        raise HTTPError(400, "remote build contexts are not supported: send the context as "
                        "a tar body")
    if h.flag("squash"):
        raise HTTPError(400, "squash is only supported with experimental mode")
    tags = [t for t in h.query.get("t") or [] if t]
    for tag in tags:
        try:
            ref = reference.parse(tag)
        except errors.UsageError as exc:
            raise HTTPError(400, exc.message) from None
        if ref.digest:
            raise HTTPError(400, "invalid reference format: %s: a build cannot be tagged "
                            "with a digest" % tag)
    _platform(h)
    args = _json_param(h, "buildargs", dict)
    labels = _json_param(h, "labels", dict)
    cache_from = _json_param(h, "cachefrom", list)
    network = h.arg("networkmode") or "default"
    if network not in ("default", "bridge", "host", "none"):
        raise HTTPError(400, "unsupported network mode for build: %s" % network)
    hosts = [x for x in h.query.get("extrahosts") or [] if x]
    return {"tags": tags, "dockerfile": h.arg("dockerfile") or "Dockerfile",
            # a null build arg is one the client could not resolve: unset, as dockerd has it
            "build_args": {str(k): str(v) for k, v in args.items() if v is not None},
            "labels": {str(k): str(v) for k, v in labels.items() if v is not None},
            "target": h.arg("target") or None, "no_cache": h.flag("nocache"),
            "pull": h.flag("pull"), "quiet": h.flag("q"),
            # dockerd: an empty list is none given
            "cache_images": [str(c) for c in cache_from] or None,
            "network": "none" if network == "none" else "host", "add_hosts": hosts,
            "auth": _registry_config(h.headers.get("X-Registry-Config"))}


def _registry_config(header):
    """X-Registry-Config (every login the client has, by registry) -> {registry: login}."""
    if not header:
        return {}
    doc = transfer.header_json(header, "X-Registry-Config")
    if not isinstance(doc, dict):
        return {}
    result = {}
    for server, conf in doc.items():
        if isinstance(conf, dict) and (conf.get("username") or conf.get("identitytoken")):
            from ..registry.credentials import normalize
            result[normalize(server)] = {"username": conf.get("username") or "",
                                         "password": conf.get("password") or "",
                                         "identity_token": conf.get("identitytoken") or None}
    return result


def post_build(h):
    try:
        args = build_args(h)
    except HTTPError as exc:
        transfer.refuse(h, exc)
    ctx_r, ctx_w = os.pipe()
    transfer.bigger_pipe(ctx_w)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        job = transfer.routes().FORK.submit("build", args, [ctx_r, out_w, err_w])
    except BaseException:
        os.close(ctx_w)
        os.close(out_r)
        os.close(err_r)
        raise
    finally:
        os.close(ctx_r)
        os.close(out_w)
        os.close(err_w)
    try:
        transfer.pump_body(h, ctx_w)
    except BaseException:
        # the body broke off: the worker reads a cut context and ends
        job.close()
        os.close(out_r)
        os.close(err_r)
        raise
    lines = transfer.Lines(h)
    quiet = args["quiet"]

    partial = [""]  # stdout's unfinished line

    def text(chunk, stderr=False):
        if quiet:
            return
        if stderr:
            # the classic builder's (streamformatter's StderrFormatter): a step's stderr in red
            lines.send({"stream": "\x1b[91m%s\x1b[0m" % chunk})
            return
        # a message a line, as dockerd's (" ---> Using cache" apart from the next step's
        # line: clients count them), however the pipe cut or merged them
        *whole, partial[0] = (partial[0] + chunk).split("\n")
        for line in whole:
            lines.send({"stream": line + "\n"})

    def rest():
        if partial[0] and not quiet:
            lines.send({"stream": partial[0]})
    try:
        image_id = transfer.relay(job, out_r, text,
                                  lambda: transfer.routes()._gone(h.connection), err_fd=err_r)
    except errors.BoxError as exc:
        rest()
        lines.fail(exc)
        lines.end()
        return
    rest()
    lines.send({"aux": {"ID": image_id}})
    if quiet:
        lines.send({"stream": image_id + "\n"})
    else:
        lines.send({"stream": "Successfully built %s\n" % image_id[7:19]})
        for tag in args["tags"]:
            lines.send({"stream": "Successfully tagged %s\n" % reference.parse(tag).familiar()})
    lines.end()


# -- the worker's side --------------------------------------------------------------------------

def _docker_text(kind, text):
    """The CLI's progress lines in the classic builder's words."""
    if kind == "step":
        match = _STEP.match(text)
        if match:
            return "Step %s/%s : %s\n" % match.groups()
    elif kind == "cached":
        return " ---> Using cache\n ---> %s\n" % text.rpartition(" ")[2]
    elif kind == "done":
        return " ---> %s\n" % text.rpartition(" ")[2]
    elif kind == "warning":
        return "[Warning] %s\n" % text
    return text + "\n"


def _write(fd, text):
    data = text.encode("utf-8", "replace")
    while data:
        data = data[os.write(fd, data):]


class _Completed:
    """A tar stream completed at its end: the padding of its last block and the two zero
    blocks of the end of an archive, which the docker CLI leaves out when it appends a
    Dockerfile from outside the context (`-f ../X`) to the tar (dockerd's Go reader takes
    such a tar)."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0
        self.tail = None

    def read(self, size=-1):
        if self.tail is None:
            data = self.stream.read(size)
            if data or size == 0:
                self.count += len(data)
                return data
            self.tail = b"\0" * ((-self.count) % 512 + 1024)
        data, self.tail = (self.tail, b"") if size is None or size < 0 else \
            (self.tail[:size], self.tail[size:])
        return data


_SPILL = 32 << 20  # a context larger than this waits in a store temporary, not in memory


class _Received:
    """The context tar as the client sent it, read whole before anything is unpacked: its
    sha256 (the kept context's name, ops/contextcache.py) and its bytes again, from memory or,
    past _SPILL, from a store temporary."""

    def __init__(self, stream, store):
        import hashlib
        self.digest = hashlib.sha256()
        self._pieces, self._size, self._file, self._path = [], 0, None, None
        try:
            self._read(stream, store)
        except BaseException:
            self.close()
            raise

    def _read(self, stream, store):
        while True:
            data = stream.read(1 << 20)
            if not data:
                break
            self.digest.update(data)
            if self._file is None and self._size + len(data) > _SPILL:
                self._path = store.mktemp_path("build-tar")
                self._file = open(self._path, "w+b")
                self._file.writelines(self._pieces)
                self._pieces = []
            if self._file is not None:
                self._file.write(data)
            else:
                self._pieces.append(data)
            self._size += len(data)
        self.digest = self.digest.hexdigest()

    def reader(self):
        import io
        if self._file is None:
            return io.BytesIO(b"".join(self._pieces))
        self._file.seek(0)
        return self._file

    def close(self):
        self._pieces = []
        if self._file is not None:
            self._file.close()
            self._file = None
            os.unlink(self._path)


def _unpack_context(stream, dest):
    from ..layers import compression, unpack
    try:
        unpack.unpack(_Completed(compression.open_stream(stream)[0]), dest, keep_owners=False)
    except errors.BadArchive as exc:
        raise errors.BadArchive("the build context is not a usable tar: %s"
                                % exc.message) from None


def _context(received, store, keep=True):
    """The context directory of this tar (a _Received): a kept one of the same bytes, else
    the tar unpacked (into a store temporary, then kept unless not keep). -> (path, Held or
    None, a temporary to remove or None)."""
    from ..ops import contextcache
    try:
        held = contextcache.find(store, received.digest)
        if held is not None:
            return held.path, held, None
        tmp = store.mkdtemp("build-context")
        try:
            # a tar carries no mode for the context's own directory, which `COPY . /dest`
            # gives to a new /dest and so is in its key: a user's directory's usual 0755, so
            # the same files built by `rootless-box build` share the cache
            os.chmod(tmp, 0o755)
            _unpack_context(received.reader(), tmp)
        except BaseException:
            store.remove(tmp)
            raise
    finally:
        received.close()
    held = contextcache.keep(store, tmp, received.digest) if keep else None
    if held is None:
        return tmp, None, tmp
    return held.path, held, None


def _classic_error(exc):
    """A failed RUN step in the classic builder's words (moby builder/dockerfile: "The command
    '/bin/sh -c exit 1' returned a non-zero code: 1"), which docker-py's and compose's users
    match; the CLI's build keeps BuildKit's. The executor wraps the step's StepFailed (its
    context) in a BuildError naming the Dockerfile's line."""
    from ..ops.buildsteps import StepFailed
    failed = exc if isinstance(exc, StepFailed) else exc.__context__
    if isinstance(failed, StepFailed) and failed.argv:
        return errors.BoxError("The command '%s' returned a non-zero code: %d"
                               % (" ".join(failed.argv), failed.code), exit_code=1)
    return exc


def build_job(args, fds, progress):
    """fds: the context tar (a pipe to read), the output (a pipe: stdout of the build and its
    steps), the steps' stderr (a pipe). -> the image ID."""
    import signal
    import threading
    from ..ops.storage import open_store
    from ..userns import idmap as idmaps
    # a client that went away is a write that fails (EPIPE), so the clean-up below still runs
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    progress({"pid": os.getpid()})  # whom the request thread stops if its client leaves
    ctx_fd, out = fds[0], fds[1]
    os.dup2(out, 1)
    os.dup2(fds[2] if len(fds) > 2 else out, 2)
    idmap = idmaps.plan()
    store = open_store(idmap)
    # the context is read (and hashed) by a thread while this one imports the builder
    # (~35 ms): read after them, the client's upload stalled on a full pipe for all of it.
    # The thread has ended before any step runs, so containers still start from a
    # single-threaded process.
    got = {}

    def receive(stream):
        try:
            got["tar"] = _Received(stream, store)
        except BaseException as exc:  # raised again below, in this thread
            got["error"] = exc

    with os.fdopen(ctx_fd, "rb", closefd=True) as stream:
        reader = threading.Thread(target=receive, args=(stream,))
        reader.start()
        try:
            # what a cached COPY step imports too
            from ..dockerfile import copyplan  # noqa: F401
            from ..dockerfile.executor import BuildOptions, build
            from ..securepath import resolve_in_root
        finally:
            reader.join()
    if "error" in got:
        raise got["error"]
    # `-f` outside the context: the CLI adds the Dockerfile under a random name
    # (.dockerfile.<hex>), so that tar never comes again; kept, it would only push out
    # contexts that do
    context, held, temporary = _context(got["tar"], store, keep=not args[
        "dockerfile"].startswith(".dockerfile."))
    try:
        try:
            dockerfile = resolve_in_root(context, args["dockerfile"].lstrip("/"))
        except (errors.BoxError, OSError) as exc:
            raise errors.UsageError("Cannot locate specified Dockerfile: %s (%s)"
                                    % (args["dockerfile"], exc)) from None
        if not os.path.isfile(dockerfile):
            raise errors.UsageError("Cannot locate specified Dockerfile: %s"
                                    % args["dockerfile"])
        logins = args.get("auth") or {}

        def pull(store_, idmap_, name, _missing):
            # only a missing base image needs these (~15 ms of imports a cached build skips)
            from ..ops import pull as pull_ops
            from ..registry.credentials import Credentials
            ref = reference.parse(name)
            given = logins.get(ref.domain) or (logins.get("docker.io") if ref.domain ==
                                               reference.DEFAULT_DOMAIN else None)
            login = Credentials(given["username"], given["password"],
                                given["identity_token"]) if given else None
            if not args["quiet"]:
                _write(1, "%s: Pulling from %s\n" % (ref.tag or ref.digest, ref.path))
            result = pull_ops.pull(store_, idmap_, name, login=login)
            if not args["quiet"]:
                _write(1, "Digest: %s\nStatus: Downloaded newer image for %s\n"
                       % (result["digest"], ref.familiar()))

        def emit(kind, text):
            if not args["quiet"] or kind == "warning":
                _write(1, _docker_text(kind, text))
        opts = BuildOptions(context, dockerfile, None, args["tags"], args["build_args"],
                            args.get("target"), args["no_cache"], args["labels"],
                            args["quiet"], args["network"], pull=pull,
                            pull_always=args["pull"], add_hosts=args.get("add_hosts") or ())
        opts.cache_images = args.get("cache_images")
        if opts.add_hosts:
            from ..ops.ports import parse_add_hosts
            parse_add_hosts(opts.add_hosts)
        try:
            return build(store, idmap, opts, emit)
        except errors.BoxError as exc:
            raise _classic_error(exc) from None
    finally:
        if held is not None:
            held.release()
        if temporary is not None:
            store.remove(temporary)
        from ..ops.storage import empty_trash
        empty_trash(store)  # a worker of the service: no process of its own for it


JOBS["build"] = build_job

ROUTES = [("POST", r"/build", post_build)]
