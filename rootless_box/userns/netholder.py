"""The network holder: one small process per user and id mapping that keeps a user
namespace (U0, mapped as containers are) and a network namespace owned by it (N0), where each
user-defined network is a bridge. A container on a user network gets its user namespace
nested inside U0 (identity map, so owners on disk are what they would be without it) and a
veth pair from its own network namespace into the bridge: a veth between two network
namespaces needs CAP_NET_ADMIN over the user namespaces owning both, which only an ancestor
user namespace gives (the research's kernel table, docs/ARCHITECTURE.md "User networks").
The holder also answers DNS for the containers (userns/dnsd.py) on port 53 of N0, with one
socket opened on the host before it left the host's network namespace for forwarding.

Owns: starting the holder (fork, new session, U0 with the same maps as a container's, N0,
loopback, the DNS sockets), its leaving (its runtime dir removed under that dir's lock),
plumbing a container's network namespace (run in a process that is in U0: bridges made on
demand with their gateway address and MAC, veths, the container side's address and default
route), removing a veth. Must not: decide addresses or names (ops/
networks.py does), or read the store.
"""

import os
import signal
import socket

from .. import errors
from . import idmap as idmaps, libc
from .netlink import Netlink


NS_GET_PARENT = 0xB702  # linux/nsfs.h: _IO(0xb7, 0x2)


def parent_userns(pid):
    """An fd of the user namespace above process `pid`'s (ioctl_ns(2) NS_GET_PARENT), or
    None: for a container on a user network that is the holder's U0, which its nested
    namespace keeps alive after the holder died."""
    import fcntl
    try:
        fd = os.open("/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        parent = fcntl.ioctl(fd, NS_GET_PARENT)
        os.set_inheritable(parent, False)
        return parent
    except OSError:
        return None
    finally:
        os.close(fd)


def spawn(idmap, table_path, watch, userns_fd=None, uplink=None):
    """Start a holder for `idmap` whose DNS answers come from the JSON file table_path;
    -> (its pid once N0 exists and DNS listens, the uplink's state: "" when up or not
    asked for, else why not). It is nobody's child (double fork, own session) and
    outlives the caller, until the directory `watch` holds no network.
    userns_fd: an existing U0 to enter instead of making one (a dead holder's, still kept
    by its containers: they can then be wired to the new holder's bridges).
    uplink: "pasta" or "slirp4netns" to give N0 a way out (see _uplink)."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    first = os.fork()
    if first == 0:
        try:
            os.close(ready_r)
            os.setsid()
            c2p_r, c2p_w = os.pipe2(os.O_CLOEXEC)
            p2c_r, p2c_w = os.pipe2(os.O_CLOEXEC)
            holder = os.fork()
            if holder == 0:
                os.close(c2p_r)
                os.close(p2c_w)
                _holder(idmap, table_path, watch, ready_w, c2p_w, p2c_r, userns_fd, uplink)
            os.close(c2p_w)
            os.close(p2c_r)
            os.close(ready_w)
            if idmap.mode != "single" and userns_fd is None:
                if os.read(c2p_r, 1) == b"U":
                    idmaps.apply_from_parent(idmap, holder)
                    os.write(p2c_w, b"M")
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(ready_w)
    os.waitpid(first, 0)
    with os.fdopen(ready_r, "rb") as f:
        data = f.read()
    if not data.startswith(b"R"):
        raise errors.SetupError("cannot start the network holder: %s" % (
            data.decode(errors="replace").strip() or "it died"),
            "run 'rootless-box info' to check user namespaces on this machine")
    pid, _sp, uplink_state = data[1:].decode(errors="replace").partition(" ")
    return int(pid), uplink_state


# N0's side of the uplink: a link-local /30 of its own rather than the host's address (what
# pasta copies by default), so that a container reaches the host's own address too
UPLINK_ADDRESS, UPLINK_GATEWAY, UPLINK_IFNAME = "169.254.1.2", "169.254.1.1", "tap0"
_UPLINK_TIMEOUT = 10.0
# forwarding in N0 only from a non-internal bridge (rb-*, internal ones are ri-*) to the
# uplink, and the replies; masqueraded, as netavark does in rootless Podman's namespace
NFT_RULES = """table ip rootless-box {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "rb-*" oifname "%s" accept
  }
  chain postrouting {
    type nat hook postrouting priority 100;
    iifname "rb-*" oifname "%s" masquerade
  }
}
""" % (UPLINK_IFNAME, UPLINK_IFNAME)


def uplink_argv(kind, pid):
    """The helper that gives the holder `pid`'s N0 a tap device and a default route: as a
    private network's (userns/portfwd.py), without port forwarding or the host's loopback."""
    if kind == "slirp4netns":
        return ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                "--userns-path=/proc/%d/ns/user" % pid, str(pid), UPLINK_IFNAME]
    return ["pasta", "--config-net", "--quiet", "--foreground", "--mtu", "65520",
            "--no-map-gw", "-a", UPLINK_ADDRESS, "-n", "30", "-g", UPLINK_GATEWAY,
            "-I", UPLINK_IFNAME, "-t", "none", "-u", "none", "-T", "none", "-U", "none",
            "--userns", "/proc/%d/ns/user" % pid, "--netns", "/proc/%d/ns/net" % pid]


def _uplink_keeper(kind):
    """Fork, while the holder is still on the host: the child waits for N0 to exist, then
    becomes the helper (its host sockets are the host's; it dies with the holder, its
    parent). -> (its pid, the fd to write one byte to once N0 exists)."""
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    holder = os.getpid()
    child = os.fork()
    if child == 0:
        try:
            os.close(go_w)
            libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.read(go_r, 1) != b"G" or os.getppid() != holder:
                os._exit(0)
            devnull = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT,
                        signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)  # ignored signals survive exec
            argv = uplink_argv(kind, holder)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(go_r)
    return child, go_w


def _uplink_up(child, go_w):
    """In N0, as root of U0: start the helper, wait (bounded) for its default route, then
    forward and masquerade. -> "" or why there is no way out."""
    import subprocess
    import time
    os.write(go_w, b"G")
    os.close(go_w)
    deadline = time.monotonic() + _UPLINK_TIMEOUT
    while not _default_route():
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            return "its helper exited with status %d" % os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            return "its helper brought no route up in %d s" % _UPLINK_TIMEOUT
        time.sleep(0.005)
    # with br_netfilter, frames between two ports of one bridge would meet the forward
    # chain as rb-X to rb-X, like routed ones between two bridges: keep them out of it
    # (a per-namespace setting since Linux 5.3)
    for name in ("iptables", "ip6tables", "arptables"):
        try:
            with open("/proc/sys/net/bridge/bridge-nf-call-" + name, "w") as f:
                f.write("0")
        except FileNotFoundError:
            pass  # no br_netfilter: bridged frames never meet it
        except OSError as exc:
            return "bridge-nf-call-%s cannot be turned off (%s)" % (name, exc.strerror)
    nft = next((path for path in ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft")
                if os.access(path, os.X_OK)), "nft")
    try:
        proc = subprocess.run([nft, "-f", "-"], input=NFT_RULES.encode(),
                              capture_output=True, timeout=_UPLINK_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        return "nft cannot be run (%s)" % exc
    if proc.returncode:
        return "nft refused its rules (%s)" % proc.stderr.decode(errors="replace").strip()
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")
    return ""


def _default_route():
    with open("/proc/self/net/route") as f:
        return any(line.split()[1] == "00000000" for line in f.readlines()[1:])


def _holder(idmap, table_path, watch, ready_w, c2p_w, p2c_r, userns_fd=None, uplink=None):
    try:
        from .detach import keep_only
        keep_only((ready_w, c2p_w, p2c_r, userns_fd))
        os.chdir("/")  # pin no directory of the caller's (a mount, a test's tmp dir)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        # the caller's handlers (run's signal forwarder) must not keep it from a SIGTERM
        for sig in (signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        # made on the host, before leaving its network namespace: the way out for
        # names the holder does not know (no tun needed)
        upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        upstream.bind(("0.0.0.0", 0))
        keeper = _uplink_keeper(uplink) if uplink else None
        if userns_fd is not None:
            libc.setns(userns_fd, libc.CLONE_NEWUSER)
            os.close(userns_fd)
        else:
            libc.unshare(libc.CLONE_NEWUSER)
        if userns_fd is not None:
            pass
        elif idmap.mode == "single":
            idmaps.apply_single_self(idmap)
        else:
            os.write(c2p_w, b"U")
            if os.read(p2c_r, 1) != b"M":
                os._exit(1)
        os.close(c2p_w)
        os.close(p2c_r)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        if idmap.mode != "single":
            os.setgroups([])
        libc.unshare(libc.CLONE_NEWNET)
        from .net import loopback_up
        loopback_up()
        dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        dns.bind(("0.0.0.0", 53))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("0.0.0.0", 53))
        tcp.listen(16)
        tcp.setblocking(False)
        uplink_state = _uplink_up(*keeper) if keeper else ""
        os.write(ready_w, ("R%d %s" % (os.getpid(), uplink_state)).encode())
        os.close(ready_w)
        from . import dnsd
        while True:
            dnsd.serve(dns, upstream, table_path, watch, tcp)
            if _leave(os.path.dirname(table_path), watch):
                os._exit(0)
    except BaseException as exc:
        try:
            os.write(ready_w, ("E%s" % exc).encode())
        except OSError:
            pass
    os._exit(1)


def lock_state(base, wait=True):
    """An fd holding the flock of the holder's runtime dir `base` (its `lock` file, made if
    missing). Whoever removes the directory does so under this lock, so one that waited on
    a file removed meanwhile tries the new one; None: the directory is gone, or (not wait)
    the lock is taken."""
    import fcntl
    while True:
        try:
            fd = os.open(os.path.join(base, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            if os.fstat(fd).st_nlink:
                return fd
        except BlockingIOError:
            os.close(fd)
            return None
        os.close(fd)


def remove_state(base):
    """Remove the holder's runtime dir `base`, its lock held: its files, then itself."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(base, name))
        except OSError:
            pass
    try:
        os.rmdir(base)
    except OSError:
        pass  # a file written meanwhile: the next holder start's sweep takes it


def _leave(base, watch):
    """The holder's last step, its store having no network left: under the runtime dir's
    lock, False if a network came back meanwhile (serve on: a command may have found this
    holder alive); else its runtime dir removed when holder.json still names it (a command
    may have started another there), and True."""
    from .. import fastjson
    from .dnsd import networks_left
    fd = lock_state(base)
    if fd is None:
        return True
    try:
        if networks_left(watch):
            return False
        try:
            with open(os.path.join(base, "holder.json"), "rb") as f:
                mine = fastjson.loads(f.read()).get("pid") == os.getpid()
        except (OSError, ValueError, AttributeError):
            mine = False
        if mine:
            remove_state(base)
        return True
    finally:
        os.close(fd)


def open_holder(pid):
    """[user fd, net fd] of the holder `pid` (close-on-exec), for a process that enters it."""
    from .launcher import _open_joined
    try:
        fds = _open_joined({"net": pid})
        return [fds["user"], fds["net"]]
    except errors.SetupError:
        raise errors.SetupError("the network holder (pid %d) is gone" % pid,
                                "run the command again: it starts a new one") from None


def identity_maps(pid, idmap):
    """Write the nested user namespace's maps of `pid` from U0: each id as itself, so the
    container's ids land on the same host ids as without the nesting."""
    for name, mapping in (("uid_map", idmap.uid_map), ("gid_map", idmap.gid_map)):
        text = "".join("%d %d %d\n" % (inside, inside, count)
                       for inside, _outside, count in mapping)
        fd = os.open("/proc/%d/%s" % (pid, name), os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def plumb(holder_net_fd, target_net_fd, links, stale=False):
    """In a process in U0 (it ends in the target's network namespace): each link's bridge
    (made on demand with its gateway address, up), a veth pair from it into the target's
    namespace, and there the address, the link up and, for the first non-internal link,
    the default route. links: dicts with bridge, gateway, prefix, veth, ifname (None: the
    first ethN free in the target), ip, route, bridge_mac (the bridge's, when made here),
    and on an IPv6 network ip6, prefix6, gateway6 (the bridge's second address).
    stale: the target's ethN links are removed first (a repair after the holder was
    killed: the kernel tears down a dead network namespace, and with it the peers of its
    veths, asynchronously, so the old eth0 can outlive the holder for a while, longer on a
    busy machine, and a new one of that name could not be made)."""
    if stale or any(link["ifname"] is None for link in links):
        libc.setns(target_net_fd, libc.CLONE_NEWNET)
        names = {name for _index, name in socket.if_nameindex()}
        if stale:
            with Netlink() as nl:
                for name in names:
                    if name.startswith("eth") and name[3:].isdigit():
                        nl.delete(name)
            names = {name for _index, name in socket.if_nameindex()}
        for link in links:
            if link["ifname"] is None:
                link["ifname"] = next("eth%d" % n for n in range(len(names) + 1)
                                      if "eth%d" % n not in names)
                names.add(link["ifname"])
    libc.setns(holder_net_fd, libc.CLONE_NEWNET)
    with Netlink() as nl:
        for link in links:
            # a fixed MAC: a bridge without one takes its lowest port's, which changes as
            # containers come and go, and a container still holding the old one in its ARP
            # cache then reaches neither its gateway nor the DNS there (ops/networks.assign)
            nl.add_bridge(link["bridge"], link.get("bridge_mac"))
            bridge = socket.if_nametoindex(link["bridge"])
            nl.add_address(bridge, link["gateway"], link["prefix"])
            if link.get("ip6"):
                nl.add_address(bridge, link["gateway6"], link["prefix6"])
            nl.set_up(bridge)
            nl.delete(link["veth"])  # left by an earlier start whose namespace lives on
            nl.add_veth(link["veth"], bridge, link["ifname"], target_net_fd, link.get("mac"))
            nl.set_up(socket.if_nametoindex(link["veth"]))
    libc.setns(target_net_fd, libc.CLONE_NEWNET)
    with Netlink() as nl:
        for link in links:
            index = socket.if_nametoindex(link["ifname"])
            nl.add_address(index, link["ip"], link["prefix"])
            if link.get("ip6"):
                nl.add_address(index, link["ip6"], link["prefix6"])
            nl.set_up(index)
            if link.get("route"):
                # IPv4 only: no uplink carries IPv6 (N0's rules are `table ip`), and a v6
                # default route into nowhere would make an outside AAAA answer hang until
                # TCP gives up, where without it the connect fails at once and the client
                # goes on to the IPv4 address
                nl.add_default_route(link["gateway"], index)


def unplumb(holder_net_fd, veths):
    """In a process in U0: remove the veths (their peers in the containers go with them)."""
    libc.setns(holder_net_fd, libc.CLONE_NEWNET)
    with Netlink() as nl:
        for name in veths:
            nl.delete(name)


def enter_and(holder_pid, func, *args):
    """Run func(holder net fd, *args) in a child that entered the holder's user namespace
    (root there, with every capability over it and the namespaces nested in it); raise a
    SetupError with its error when it fails."""
    user_fd, net_fd = open_holder(holder_pid)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(err_r)

        def entered():
            libc.setns(user_fd, libc.CLONE_NEWUSER)
            func(net_fd, *args)
        _child(err_w, entered)
    os.close(err_w)
    os.close(user_fd)
    os.close(net_fd)
    _reap(pid, err_r, "cannot set up the container's network")


def _child(err_w, func):
    """A helper child's end: func() run, its error written to err_w, the exit status."""
    code = 0
    try:
        func()
    except BaseException as exc:
        os.write(err_w, str(getattr(exc, "strerror", None) or exc).encode())
        code = 1
    os._exit(code)


def _reap(pid, err_r, what):
    """The helper's error (read to EOF) and status; a SetupError when it failed."""
    with os.fdopen(err_r, "rb") as f:
        err = f.read().decode(errors="replace")
    _pid, status = os.waitpid(pid, 0)
    if status or err:
        raise errors.SetupError("%s: %s" % (what, err or "status %d" % status))


def nest(user_fd, net_fd, flags, idmap, links):
    """The middle process's side of a container on user networks: enter U0, start a
    helper there, make the container's namespaces (its user namespace nested in U0), and
    have the helper write the identity maps and plumb the links. Returns as root of the new
    user namespace; raises a SetupError with the helper's error."""
    libc.setns(user_fd, libc.CLONE_NEWUSER)
    os.close(user_fd)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    me = os.getpid()
    helper = os.fork()
    if helper == 0:
        os.close(go_w)
        os.close(err_r)

        def wire():
            if os.read(go_r, 1) != b"G":
                os._exit(1)  # the middle died before its unshare
            identity_maps(me, idmap)
            target = os.open("/proc/%d/ns/net" % me, os.O_RDONLY | os.O_CLOEXEC)
            plumb(net_fd, target, links)
        _child(err_w, wire)
    os.close(go_r)
    os.close(err_w)
    os.close(net_fd)
    try:
        libc.unshare(flags)
    finally:
        os.write(go_w, b"G")
        os.close(go_w)
    _reap(helper, err_r, "cannot connect the container to its network")
