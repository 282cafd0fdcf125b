"""The watcher's terminal fan-out (ops/watch.py) with real ptys and sockets: what a -t
container showed before its first client came reaches that client first, and a client that
leaves while output is going out is dropped without ending the watch (which would leave the
container running with nobody copying its output or answering `attach`)."""

import os
import socket
import threading

from rootless_box.ops import watch


def _listening(tmp_path):
    path = str(tmp_path / "attach.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(4)
    return "%d:%s" % (listener.detach(), path), path


def test_a_client_leaving_mid_output_is_dropped_and_the_backlog_comes_first(tmp_path):
    master, slave = os.openpty()
    attach, path = _listening(tmp_path)
    # larger than a socket's buffer: the watcher is still sending it when the client goes
    backlog = bytearray(b"early" * (1 << 20))
    got = {}

    def client():
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
        msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 1)
        got["first"] = (msg, len(fds))
        for fd in fds:
            os.close(fd)
        got["data"] = conn.recv(65536)
        # output arrives and the client leaves, both before the watcher looks again
        os.write(slave, b"later")
        conn.close()
        os.close(slave)  # the container's end: the watch ends once "later" is read
    thread = threading.Thread(target=client)
    thread.start()
    watch._copy_output({master: "tty"}, None, attach, backlog=backlog)
    thread.join()
    assert got["first"] == (b"T", 1)  # the terminal's master, for the window size
    assert got["data"].startswith(b"early")
    assert not os.path.exists(path)  # the watch ended at the container's end, not before


def test_a_client_connecting_as_the_terminal_ends_gets_the_whole_session(tmp_path):
    attach, path = _listening(tmp_path)
    listener = socket.socket(fileno=int(attach.partition(":")[0]))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)  # queued, not accepted when the watch ended
    watch._late(listener, bytearray(b"all of it\n"))
    listener.close()
    with conn.makefile("rb") as stream:
        assert stream.read() == b"all of it\n"
    conn.close()
