"""The Engine API's image transfers and registry calls: save, load, import, push, history,
search, and the login check.

Owns: Docker's answers for `GET /images/get` and `/images/{name}/get` (one tar, several
names), `POST /images/load` (JSON lines `Loaded image: ...`), `POST /images/create?fromSrc=-`
(import: the body is the rootfs tar; `{"status": ID}`), `POST /images/{name}/push` (the
client's X-Registry-Auth for that push alone; Docker's progress lines, the digest line and
its `aux`), `GET /images/{name}/history`, `GET /images/search`, and `POST /auth` (credentials
checked against the registry, nothing saved: the client keeps them).
The archives go through ops/archive.py and ops/images.py, the pushes through ops/push.py, the
login check through ops/login.py: the CLI's code. Load and import unpack layers in a user
namespace, so they run in a fork-server worker that reads the body from a pipe.
Must not: fork, or keep anything of a client's credentials.
"""

import os

from .. import errors
from ..oci import reference
from ..ops import images
from ..ops.storage import open_store
from . import transfer
from .forkserver import JOBS, answer
from .httpserver import HTTPError


# -- save ---------------------------------------------------------------------------------------

class _TarOut:
    """A chunked application/x-tar answer, begun at the first byte (a missing image is a
    404 before it)."""

    def __init__(self, h):
        self.h = h
        self._write = None

    def write(self, data):
        if self._write is None:
            self._write, _end = self.h.stream("application/x-tar")
        self._write(bytes(data))
        return len(data)

    def flush(self):
        pass

    def end(self):
        if self._write is None:
            self._write, _end = self.h.stream("application/x-tar")
        self.h.wfile.write(b"0\r\n\r\n")
        self.h.wfile.flush()


def images_get(h, name=None):
    names = [name] if name else [n for n in h.query.get("names") or [] if n]
    if not names:
        raise HTTPError(400, "no image names given: use ?names=IMAGE (repeated for several)")
    from ..ops import archive  # hashlib, tarfile: not resident in an idle service
    out = _TarOut(h)
    try:
        archive.save_to_stream(open_store(), names, out)
    except errors.NotFound as exc:
        if out._write is not None:
            raise
        missing = next((n for n in names if n in exc.message), names[0])
        raise HTTPError(404, "No such image: %s" % missing) from None
    out.end()


# -- load and import: a worker reads the body ---------------------------------------------------

def _with_body(h, job, args):
    """Start job with the request body on a pipe as its fds[0]; -> the job's answer socket."""
    body_r, body_w = os.pipe()
    try:
        conn = transfer.routes().FORK.submit(job, args, [body_r])
    finally:
        os.close(body_r)
    try:
        transfer.pump_body(h, body_w)
    except BaseException:
        conn.close()  # the body broke off: the worker reads a cut archive and ends
        raise
    return conn


def _answer(conn, on_progress=None):
    try:
        return answer(conn, on_progress)
    finally:
        conn.close()


def images_load(h):
    """Docker's answer: `Loading layer` lines (each new layer once it is unpacked; none
    with quiet), then `Loaded image: NAME` (`Loaded image ID: ID` for an untagged one). A
    failure is in the stream, a bad archive's too: dockerd answers 200 and then the error
    (docker-py raises ImageLoadError from it, the CLI prints it and exits 1)."""
    lines = transfer.Lines(h)
    quiet = h.flag("quiet")

    def loading(fields):
        if not quiet:
            lines.send({"status": "Loading layer", "id": fields["id"][7:19], "progressDetail":
                        {"current": fields["size"], "total": fields["size"]}})
    try:
        result = _answer(_with_body(h, "load", {}), loading)
    except errors.BoxError as exc:
        lines.send({"errorDetail": {"message": exc.message}, "error": exc.message})
        lines.end()
        return
    for line in result["lines"]:
        lines.send({"stream": line + "\n"})
    lines.end()


def image_import(h):
    """`POST /images/create?fromSrc=-`: the body is a rootfs tar (docker import)."""
    source = h.arg("fromSrc")
    if source != "-":
        transfer.refuse(h, HTTPError(400, "importing from %s is not supported: send the "
                                     "tarball as the request body (fromSrc=-)" % source))
    repo, tag = h.arg("repo") or "", h.arg("tag") or ""
    name = (repo + (":" + tag if tag else "")) if repo else None
    if name:
        try:
            reference.parse(name)
        except errors.UsageError as exc:
            transfer.refuse(h, HTTPError(400, exc.message))
    args = {"name": name, "changes": [c for c in h.query.get("changes") or [] if c],
            "message": h.arg("message") or ""}
    lines = transfer.Lines(h)
    try:
        image_id = _answer(_with_body(h, "import", args))
    except errors.BoxError as exc:
        lines.fail(exc)
        lines.end()
        return
    lines.send({"status": image_id})
    lines.end()


def _worker_store():
    from ..userns import idmap as idmaps
    idmap = idmaps.plan()
    return idmap, open_store(idmap)


def load_job(_args, fds, progress):
    from ..ops import archive
    idmap, store = _worker_store()
    with os.fdopen(fds[0], "rb") as stream:
        result = archive.load(store, idmap, stream,
                              lambda diff_id, size: progress({"id": diff_id, "size": size}))
    return {"lines": result["lines"]}


def import_job(args, fds, _progress):
    idmap, store = _worker_store()
    with os.fdopen(fds[0], "rb") as stream:
        image_id, _report = images.import_rootfs(store, idmap, stream, args.get("name"),
                                                 args.get("changes") or (),
                                                 args.get("message") or "")
    return image_id


JOBS["load"] = load_job
JOBS["import"] = import_job


# -- push ---------------------------------------------------------------------------------------

def image_push(h, name):
    """Docker's push: `tag` names one tag, none pushes every tag of the repository."""
    from ..ops import push as push_ops
    from ..registry.credentials import Credentials
    tag = h.arg("tag") or ""
    try:
        repo = reference.parse(name, default_tag=False)
    except errors.UsageError as exc:
        raise HTTPError(400, exc.message) from None
    store = open_store()
    if tag:
        targets = [name + ("@" if tag.startswith("sha256:") else ":") + tag]
    elif repo.tag or repo.digest:
        targets = [name]
    else:
        targets = sorted(t for t in store.read_index()["tags"]
                         if reference.parse(t).repository == repo.repository)
    for target in targets or [name]:
        try:
            images.resolve(store, target)
        except errors.NotFound:
            raise HTTPError(404, "An image does not exist locally with the tag: %s"
                            % reference.parse(target, default_tag=False).familiar()) from None
    given = transfer.routes().registry_auth(h.headers.get("X-Registry-Auth"))
    login = Credentials(given["username"], given["password"], given["identity_token"]) \
        if given else None
    lines = transfer.Lines(h)
    lines.send({"status": "The push refers to repository [%s]" % repo.repository})

    def progress(_event, **fields):
        msg = {"status": fields.get("status", ""), "progressDetail": {}, "id": fields.get("id")}
        if fields.get("status") == "Pushing" and fields.get("total"):
            msg["progressDetail"] = {"current": fields.get("current", 0),
                                     "total": fields["total"]}
        lines.send(msg)
    for target in targets:
        try:
            result = push_ops.push(store, target, progress=progress, login=login)
        except errors.BoxError as exc:
            lines.fail(exc)
            break
        shown = result["ref"].tag or reference.DEFAULT_TAG
        lines.send({"status": "%s: digest: %s size: %d" % (shown, result["digest"],
                                                           result["size"])})
        lines.send({"progressDetail": {}, "aux": {"Tag": shown, "Digest": result["digest"],
                                                  "Size": result["size"]}})
    lines.end()


# -- history, search, auth ----------------------------------------------------------------------

def image_history(h, name):
    from ..ops.prune import layer_sizes
    store = open_store()
    try:
        image = images.resolve(store, name)
    except (errors.NotFound, errors.UsageError):
        raise HTTPError(404, "No such image: %s" % name) from None
    rows = []
    for entry, size in images.history_entries(image.config, layer_sizes(store, image)):
        rows.append({"Id": "<missing>",
                     "Created": int(images.created_epoch(str(entry.get("created") or ""))),
                     "CreatedBy": str(entry.get("created_by") or ""), "Tags": None,
                     "Size": size, "Comment": str(entry.get("comment") or "")})
    rows.reverse()
    rows[0]["Id"] = image.id
    rows[0]["Tags"] = [reference.parse(t).familiar() for t in image.tags] or None
    h.reply(200, rows)


def images_search(h):
    from ..ops import search as search_ops
    try:
        found = search_ops.search(h.arg("term") or "", h.number("limit", 25),
                                  transfer.routes()._filters(h))
    except errors.UsageError as exc:
        raise HTTPError(400, exc.message) from None
    h.reply(200, found)


def post_auth(h):
    """`docker login` through the service: the registry checks the credentials; nothing is
    saved here (the client stores them in its own config), as dockerd saves nothing."""
    from ..ops import login as login_ops
    body = h.json_body({})
    if not isinstance(body, dict):
        raise HTTPError(400, "invalid JSON: the body must be an object")
    server = body.get("serveraddress") or "https://index.docker.io/v1/"
    username, password = body.get("username") or "", body.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise HTTPError(400, "username and password are required")
    try:
        login_ops.login(server, username, password, save=False)
    except errors.AuthError as exc:
        raise HTTPError(401, exc.message) from None
    h.reply(200, {"Status": "Login Succeeded", "IdentityToken": ""})


ROUTES = [
    ("GET", r"/images/get", images_get),
    ("GET", r"/images/(.+)/get", images_get),
    ("POST", r"/images/load", images_load),
    ("POST", r"/images/(.+)/push", image_push),
    ("GET", r"/images/(.+)/history", image_history),
    ("GET", r"/images/search", images_search),
    ("POST", r"/auth", post_auth),
]
