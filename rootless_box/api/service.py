"""`system service`: the Engine API served until idle.

Owns: the order that keeps containers startable from a threaded server: the fork server is
forked first (single-threaded, api/forkserver.py), then the listening socket is made and the
request threads begin; the socket file removed at the end. The endpoints (api/routes.py and
the ops it imports, some 50 ms) are loaded by the first request that needs one, so a
socket-activated service answers a client's opening `/_ping` within its interpreter's start.
Must not: print (the command does), or serve anything itself (api/httpserver.py,
api/routes.py).
"""

import os
import signal
import sys
import threading

from . import httpserver
from .forkserver import ForkServer

_LOADED = []
_LOADING = threading.Lock()


def _dispatch(fork):
    def dispatch(h, method, path):
        if not _LOADED:
            with _LOADING:  # the first requests wait for one import, not race it
                if not _LOADED:
                    from . import routes
                    routes.FORK = fork
                    _LOADED.append(routes.dispatch)
        return _LOADED[0](h, method, path)
    return dispatch


def run(uri=None, idle=5.0, on_listen=None):
    """Serve the API on uri (default: the user's unix socket) until idle seconds pass with no
    connection (0: never). on_listen(where) is called once it listens."""
    fork = ForkServer()  # before any thread exists
    # each request thread would otherwise keep a malloc arena of its own: ~3 MiB of an
    # idle service's RSS after a few dozen requests (bench/api.py)
    from ..userns.libc import one_malloc_arena
    one_malloc_arena()
    # systemd's stop (and kill): leave through the finally clauses, socket file removed
    signal.signal(signal.SIGTERM, lambda _sig, _frame: sys.exit(0))
    try:
        server, where = httpserver.make_server(uri or httpserver.default_uri(), idle,
                                               _dispatch(fork))
        try:
            if on_listen is not None:
                on_listen(where)
            httpserver.serve(server)
        finally:
            if where.startswith("unix://"):
                try:
                    os.unlink(where[len("unix://"):])
                except OSError:
                    pass
    finally:
        fork.close()
