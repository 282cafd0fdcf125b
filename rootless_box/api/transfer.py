"""The Engine API's large bodies and JSON-line answers: what build, load and import share.

Owns: a request body (chunked or sized, of any length) pumped as it arrives into a pipe a
fork-server worker reads (so a build context or an image archive never sits whole in the
service's memory), the JSON-line progress answer begun lazily (an error before the first line
is a real status, one after it travels in the stream as Docker's `errorDetail`), and a
worker's output pipe relayed while its answer is awaited.
Must not: know an endpoint's meaning (api/build.py, api/images2.py do) or fork.
"""

import json
import os
import select
import threading

from .. import errors
from .forkserver import answer
from .httpserver import HTTPError

_PIECE = 1 << 16
_BATCH = 1 << 20
DRAIN = 64 << 20


def routes():
    """api/routes.py (its FORK, Docker's header and filter readers), imported when a request
    comes: the route table imports the modules that use this one."""
    from . import routes as table
    return table


def _pieces(h, size):
    """size bytes of the body, as they arrive."""
    while size:
        data = h.rfile.read(min(size, _PIECE))
        if not data:
            raise HTTPError(400, "the body ended early")
        size -= len(data)
        yield data


def _chunks(h):
    """The request body's pieces as they arrive (chunked transfer or Content-Length)."""
    if h.headers.get("Transfer-Encoding", "").lower() != "chunked":
        yield from _pieces(h, int(h.headers.get("Content-Length") or 0))
        return
    while True:
        line = h.rfile.readline(1024)
        try:
            size = int(line.split(b";")[0].strip() or b"0", 16)
        except ValueError:
            raise HTTPError(400, "malformed chunked body") from None
        if size == 0:
            h.rfile.readline(1024)
            return
        yield from _pieces(h, size)
        h.rfile.readline(1024)


def header_json(header, name):
    """A header of base64 JSON (X-Registry-Auth, X-Registry-Config: base64url, but the
    standard alphabet and missing padding are accepted too, as clients differ) -> its
    value; 400 when it is not that."""
    import base64
    text = header.strip().replace("-", "+").replace("_", "/")
    try:
        return json.loads(base64.b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        raise HTTPError(400, "invalid %s header" % name) from None


def pump_body(h, fd):
    """Write the request body to fd (a pipe's writing end, closed here). A reader that went
    away (the worker refused the archive) ends the writing; the rest of the body is read and
    dropped (up to DRAIN bytes, so the client reads the answer instead of a reset), else the
    connection closes after the answer. -> True when the whole body went through."""
    whole = False
    pieces = _chunks(h)
    # the docker CLI sends a context in chunks of a few KiB: written one by one, each would
    # wake the worker (a context switch per chunk on a busy machine); gathered, one per _BATCH
    batch = bytearray()
    try:
        for data in pieces:
            batch += data
            if len(batch) >= _BATCH:
                _write_all(fd, batch)
                batch.clear()
        _write_all(fd, batch)
        whole = True
    except BrokenPipeError:
        os.close(fd)
        fd = None
        _drop(h, pieces)
    finally:
        if fd is not None:
            os.close(fd)
        h._body = b""  # read here (or abandoned): httpserver must not read it again
    return whole


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def bigger_pipe(fd):
    """Make a pipe hold a batch whole where the kernel lets us (F_SETPIPE_SZ; a user past
    pipe-user-pages-soft keeps the default), so a write of one is one wake-up, not 16."""
    import fcntl
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _BATCH)
    except OSError:
        pass


def _drop(h, pieces):
    """Read the rest of the body and drop it, up to DRAIN bytes; past that (or a body that
    breaks off) the connection closes after the answer."""
    dropped = 0
    try:
        for data in pieces:
            dropped += len(data)
            if dropped > DRAIN:
                h.close_connection = True
                return
    except (HTTPError, OSError):
        h.close_connection = True


def refuse(h, exc):
    """Raise exc (an HTTPError) after the body was read and dropped: a client still sending
    a build context or an archive reads the refusal, not a reset."""
    _drop(h, _chunks(h))
    h._body = b""
    raise exc


class Lines:
    """A JSON-line answer (application/json, chunked), its headers sent with the first line."""

    def __init__(self, h):
        self.h = h
        self._write = None

    @property
    def begun(self):
        return self._write is not None

    def send(self, obj):
        if self._write is None:
            self._write, _end = self.h.stream()
        self._write((json.dumps(obj) + "\n").encode())

    def fail(self, exc):
        """An error: Docker's status when nothing was sent yet, else `errorDetail` in-stream."""
        if not self.begun:
            raise HTTPError(_status(exc), exc.message)
        self.send({"errorDetail": {"message": exc.message}, "error": exc.message})

    def end(self):
        if self._write is None:
            self._write, _end = self.h.stream()
        self.h.wfile.write(b"0\r\n\r\n")
        self.h.wfile.flush()


def _status(exc):
    if isinstance(exc, errors.BadArchive):
        return 400
    from .httpserver import status_of
    return status_of(exc)


def relay(job, out_fd, on_text, gone=None, err_fd=None):
    """Await a worker's answer while its output pipe (out_fd, closed here) goes to
    on_text(str) as it comes, and its error pipe (err_fd, if given, closed here) to
    on_text(str, True); -> the answer's value, or raise its BoxError. A process the
    job left holding the pipe does not keep the answer waiting. gone(): the client left;
    then the worker (which announced its pid in a progress line) and its process group are
    killed, so a build nobody waits for stops instead of running on: a step's container goes
    with its middle process (parent-death signal), the worker's temporaries with the next
    opening of the store (a dead pid's temporaries are stale), as after a killed CLI build.
    Not SIGTERM: during a step the CLI's signal forwarder hands it to the step's pid 1."""
    import codecs
    import signal
    pipes = {fd: codecs.getincrementaldecoder("utf-8")("replace")
             for fd in (out_fd, err_fd) if fd is not None}
    result = {}
    pids = []

    def text(fd, data, final=False):
        decoded = pipes[fd].decode(data, final=final)
        if decoded:
            on_text(decoded, True) if fd == err_fd else on_text(decoded)

    def wait():
        try:
            result["ok"] = answer(job, lambda p: pids.append(p.get("pid")))
        except errors.BoxError as exc:
            result["error"] = exc
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    try:
        open_fds = list(pipes)
        while open_fds:
            ready = select.select(open_fds, [], [], 0.2)[0]
            for fd in ready:
                data = os.read(fd, _PIECE)
                if data:
                    text(fd, data)
                else:
                    open_fds.remove(fd)
            if not ready and not waiter.is_alive():
                break
            if gone is not None and waiter.is_alive() and gone():
                raise BrokenPipeError("the client went away")
        waiter.join()
    finally:
        if waiter.is_alive():  # the client left (or its socket failed): stop the worker
            for pid in pids[:1]:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
        for fd in pipes:
            os.close(fd)
        job.close()
    for fd in pipes:
        text(fd, b"", final=True)
    if "error" in result:
        raise result["error"]
    return result.get("ok")
