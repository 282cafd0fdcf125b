"""Terminals: the container's pty (opened in its own devpts) and the host-side relay.

Owns: opening /dev/ptmx inside the container after pivot_root, making the peer the controlling
terminal of the command, handing the master (and the seccomp listener, send_fd) to the parent
over a unix socket (SCM_RIGHTS),
and, in the parent, raw mode on the host terminal, copying bytes both ways, and keeping the
window size in sync on SIGWINCH (tty_ioctl(4), pty(7)). Must not: know about containers.
"""

import fcntl
import os
import select
import _signal as signal
import struct
import termios

TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431


def detach_sequence(text):
    """Docker's --detach-keys (and the API's detachKeys): comma-separated keys, "ctrl-X" or a
    single character; None or "" is Docker's ctrl-p,ctrl-q. -> bytes"""
    from ..errors import UsageError
    keys = b""
    for item in (text or "ctrl-p,ctrl-q").split(","):
        item = item.strip()
        if item.startswith("ctrl-") and len(item) == 6 and (item[5].isalpha() or
                                                              item[5] in "@[\\]^_"):
            keys += bytes([ord(item[5].upper()) & 0x1f])
        elif len(item) == 1:
            keys += item.encode()
        else:
            raise UsageError("invalid detach keys %r" % text,
                             "give keys like ctrl-p,ctrl-q or ctrl-a,x")
    return keys


class DetachWatch:
    """The detach keys in a byte stream that may bring them one read at a time: feed(data)
    -> (bytes to pass on, detached?); a prefix of the keys is held back until it is decided."""

    def __init__(self, keys):
        self.keys, self.typed = keys, b""

    def feed(self, data):
        typed = self.typed + data
        if self.keys in typed:
            return typed[:typed.index(self.keys)], True
        keep = 0
        for n in range(min(len(self.keys) - 1, len(typed)), 0, -1):
            if typed.endswith(self.keys[:n]):
                keep = n
                break
        self.typed = typed[len(typed) - keep:]
        return typed[:len(typed) - keep], False


def receive_fd(sock):
    """The next fd sent over sock (the pty master, then the seccomp listener), or None if the
    sender died before sending it. One byte per fd: a read never takes two messages."""
    import socket
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(sock, 1, 1)
    except OSError:
        return None
    return fds[0] if fds else None


def send_fd(sock, fd):
    import socket
    socket.send_fds(sock, [b"m"], [fd])


def setup_container_tty(sock, winsize):
    """Inside the container: new pty from the container's devpts, peer on fds 0-2; the
    master goes over sock (which the caller closes: the seccomp listener may follow)."""
    import socket
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    if winsize:
        fcntl.ioctl(peer, termios.TIOCSWINSZ, struct.pack("HHHH", winsize[0], winsize[1], 0, 0))
    socket.send_fds(sock, [b"m"], [master])
    os.close(master)
    fcntl.ioctl(peer, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(peer, fd)
    if peer > 2:
        os.close(peer)


def set_winsize(fd, rows, cols):
    """A terminal's size (the Engine API's resize of a -t container's terminal)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def host_winsize(fd=None):
    for candidate in ((fd,) if fd is not None else (0, 1, 2)):
        try:
            data = fcntl.ioctl(candidate, termios.TIOCGWINSZ, b"\0" * 8)
            rows, cols = struct.unpack("HHHH", data)[:2]
            if rows and cols:
                return rows, cols
        except OSError:
            continue
    return None


def relay(master, forward_stdin, on_signal=None, detach_keys=None, services=None,
          winsize_fd=None, eof_detaches=False):
    """Copy stdin -> master and master -> stdout until the container side closes, or until
    the user types detach_keys (bytes, e.g. ctrl-p ctrl-q: then True is returned).
    services: {fd: call} also watched meanwhile (the seccomp listener): call() when fd is
    readable, dropped once it returns False. winsize_fd: where the window size goes when
    master is not the terminal itself (attach's socket): set from ours at once and on each
    SIGWINCH.

    The host terminal is put in raw mode (if stdin is one) and restored afterwards, whatever
    happens."""
    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty and forward_stdin else None

    def resize(_signum, _frame):
        size = host_winsize()
        if size:
            try:
                fcntl.ioctl(master if winsize_fd is None else winsize_fd, termios.TIOCSWINSZ,
                            struct.pack("HHHH", size[0], size[1], 0, 0))
            except OSError:
                pass

    old_winch = signal.signal(signal.SIGWINCH, resize)
    if winsize_fd is not None:
        resize(None, None)
    try:
        if saved is not None:
            import tty
            tty.setraw(0, termios.TCSANOW)
        return _copy_loop(master, forward_stdin, detach_keys, services, eof_detaches)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)
        os.close(master)


def _write_all(fd, data):
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _copy_loop(master, forward_stdin, detach_keys=None, services=None, eof_detaches=False):
    readers = [master] + ([0] if forward_stdin else [])
    services = dict(services or {})
    typed = b""
    while True:
        ready, _w, _x = select.select(readers + list(services), [], [])
        for fd in ready:
            if fd in services and not services[fd]():
                del services[fd]
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every peer fd is closed, the container is done
                return
            if not data:
                return
            _write_all(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data and detach_keys:
                # the keys may arrive one read at a time: hold back a prefix of them
                typed += data
                if detach_keys in typed:
                    _write_all(master, typed[:typed.index(detach_keys)])
                    return True
                keep = 0
                for n in range(min(len(detach_keys) - 1, len(typed)), 0, -1):
                    if typed.endswith(detach_keys[:n]):
                        keep = n
                        break
                data, typed = typed[:len(typed) - keep], typed[len(typed) - keep:]
                if data:
                    _write_all(master, data)
            elif data:
                _write_all(master, data)
            else:
                readers.remove(0)
                if eof_detaches:
                    return True  # as detached (dockerd leaves a tty's input open)
                # stdin ended (a pipe): send the terminal's end-of-file character.
                _write_all(master, b"\x04")
