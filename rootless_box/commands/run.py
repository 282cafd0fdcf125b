"""`run [OPTIONS] IMAGE [COMMAND] [ARG...]`: Docker's flags -> ops.run.RunOptions."""

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import Conflict, UsageError
from ..ops import run as run_ops
from . import runflags
from ._common import warn

OPTS = (
    Opt("--rm", FLAG, "Automatically remove the container and its associated anonymous "
                      "volumes when it exits"),
    Opt("--name", VALUE, "Assign a name to the container"),
    Opt("-e,--env", LIST, "Set environment variables", metavar="list"),
    Opt("--env-file", LIST, "Read in a file of environment variables", metavar="list"),
    Opt("-w,--workdir", VALUE, "Working directory inside the container"),
    Opt("-u,--user", VALUE, "Username or UID (format: <name|uid>[:<group|gid>])"),
    Opt("--entrypoint", VALUE, "Overwrite the default ENTRYPOINT of the image"),
    Opt("-i,--interactive", FLAG, "Keep STDIN open even if not attached"),
    Opt("-t,--tty", FLAG, "Allocate a pseudo-TTY"),
    Opt("-h,--hostname", VALUE, "Container host name"),
    Opt("-v,--volume", LIST, "Bind mount a volume", metavar="list"),
    Opt("--tmpfs", LIST, "Mount a tmpfs directory", metavar="list"),
    Opt("--mount", LIST, "Attach a filesystem mount to the container", metavar="mount"),
    Opt("-l,--label", LIST, "Set meta data on a container", metavar="list"),
    Opt("--label-file", LIST, "Read in a line delimited file of labels", metavar="list",
        dest="label_file"),
    Opt("--volumes-from", LIST, "Mount volumes from the specified container(s)",
        metavar="list", dest="volumes_from"),
    Opt("--read-only", FLAG, "Mount the container's root filesystem as read only"),
    Opt("--network,--net", LIST, "Connect a container to a network (host, private or "
                                 "bridge, none, container:NAME, or a network's name; "
                                 "repeat for several: name=NET,alias=A,ip=IP,ip6=IP6)",
        metavar="network", dest="network"),
    Opt("--network-alias,--net-alias", LIST, "Add network-scoped alias for the container",
        metavar="list", dest="network_alias"),
    Opt("--ip", VALUE, "IPv4 address (e.g., 172.30.100.104)"),
    Opt("--ip6", VALUE, "IPv6 address (e.g., 2001:db8::33; on a network made with --ipv6)"),
    Opt("--mac-address", VALUE, "Container MAC address (e.g., 92:d0:c6:0a:29:33; on a "
                                "user-defined network)", dest="mac_address"),
    Opt("--link", LIST, "Add link to another container (NAME[:ALIAS]; on a user-defined "
                        "network: ALIAS resolves to NAME for this container)",
        metavar="list"),
    Opt("-p,--publish", LIST, "Publish a container's port(s) to the host", metavar="list",
        dest="publish"),
    Opt("-P,--publish-all", FLAG, "Publish all exposed ports to random ports",
        dest="publish_all"),
    Opt("--add-host", LIST, "Add a custom host-to-IP mapping (host:ip)", metavar="list",
        dest="add_host"),
    Opt("--dns", LIST, "Set custom DNS servers", metavar="list", dest="dns"),
    Opt("--dns-search", LIST, "Set custom DNS search domains", metavar="list",
        dest="dns_search"),
    Opt("--dns-option,--dns-opt", LIST, "Set DNS options", metavar="list",
        dest="dns_option"),
    Opt("--init", FLAG, "Run an init inside the container that forwards signals and reaps "
                        "processes"),
    Opt("-d,--detach", FLAG, "Run container in background and print container ID"),
    Opt("--restart", VALUE, "Restart policy to apply when a container exits",
        default="no"),
    Opt("--log-opt", LIST, "Log driver options", metavar="list", dest="log_opt"),
    Opt("--log-driver", VALUE, "Logging driver for the container", default="json-file"),
    Opt("--stop-signal", VALUE, "Signal to stop the container"),
    Opt("--stop-timeout", VALUE, "Timeout (in seconds) to stop a container"),
    Opt("--pull", VALUE, 'Pull image before running ("always", "missing", "never")',
        default="missing"),
    Opt("--platform", VALUE, "Set platform if server is multi-platform capable"),
    Opt("--userns", VALUE, "User namespace mapping: auto (a subordinate id range when the "
                           "user has one), single, subuid"),
    Opt("--security-opt", LIST, "Security options (seccomp=unconfined|FILE.json, "
                                "no-new-privileges, systempaths=unconfined)",
        metavar="list", dest="security_opt"),
) + runflags.OPTS


def command(verb, summary):
    return Command(verb, "run [OPTIONS] IMAGE [COMMAND] [ARG...]", summary, OPTS, min_args=1,
                   interspersed=False)


def options_from(parsed):
    if parsed.log_driver not in ("json-file", "k8s-file", "none"):
        raise UsageError("unsupported log driver %r" % parsed.log_driver,
                         "rootless-box writes Docker's json-file logs, or none")
    stop_timeout = None
    if parsed.stop_timeout is not None:
        try:
            stop_timeout = int(parsed.stop_timeout)
        except ValueError:
            raise UsageError("invalid --stop-timeout %r" % parsed.stop_timeout) from None
    network = parsed.network[0] if parsed.network else None
    aliases, ip, more = parsed.network_alias, parsed.ip, []
    endpoint = {"mac": parsed.mac_address, "links": parsed.link, "ip6": parsed.ip6}
    if len(parsed.network) > 1 or (network and "=" in network):
        from ..ops.networks import parse_flags  # several, or the long syntax
        network, aliases, ip, more, first = parse_flags(parsed.network, aliases, ip,
                                                        parsed.mac_address, parsed.ip6)
        endpoint.update(first)
    return run_ops.RunOptions(
        parsed.args[0], parsed.args[1:], rm=parsed.rm, name=parsed.name, env=parsed.env,
        env_file=parsed.env_file, workdir=parsed.workdir, user=parsed.user,
        entrypoint=parsed.entrypoint, interactive=parsed.interactive, tty=parsed.tty,
        hostname=parsed.hostname, volumes=parsed.volume, tmpfs=parsed.tmpfs,
        mounts=parsed.mount, volumes_from=parsed.volumes_from, labels=parsed.label,
        label_files=parsed.label_file,
        read_only=parsed.read_only, network=network, init=parsed.init,
        detach=getattr(parsed, "detach", False), restart=parsed.restart,
        log_opts=parsed.log_opt, log_driver="none" if parsed.log_driver == "none" else None,
        stop_signal=parsed.stop_signal, stop_timeout=stop_timeout,
        userns=run_ops.parse_userns(parsed.userns), security_opts=parsed.security_opt,
        publish=parsed.publish, publish_all=parsed.publish_all, add_hosts=parsed.add_host,
        dns=parsed.dns, dns_search=parsed.dns_search, dns_options=parsed.dns_option,
        **runflags.kwargs(parsed), network_aliases=aliases, ip=ip, networks=more,
        endpoint=endpoint)


def puller(policy, platform=None, quiet=False):
    """The pull step of `run`/`create` for --pull (ops/run.py decides when: always before,
    missing once the image is found missing, never not at all): -> pull(store, idmap, name,
    missing) with an `always` attribute, or None."""
    if policy not in ("always", "missing", "never"):
        raise UsageError('invalid pull option: "%s"' % policy,
                         "use one of: always, missing, never")
    if policy == "never":
        return None

    def pull(store, idmap, name, missing):
        from .pull import pull_missing
        pull_missing(store, idmap, name, notice=missing, platform=platform, quiet=quiet)
    pull.always = policy == "always"
    return pull


def main(parsed):
    opts = options_from(parsed)
    pull = puller(parsed.pull, parsed.platform, parsed.quiet)
    if opts.detach:
        import sys
        if opts.interactive and not opts.tty:
            pass  # Docker keeps stdin open for a later attach; nothing reads it here
        record = run_ops.run_detached(opts, warn=warn, pull=pull)
        sys.stdout.write(record["Id"] + "\n")
        return 0
    if not opts.sig_proxy or parsed.detach_keys is not None or (opts.tty and opts.interactive) \
            or opts.restart != "no":
        return kept_apart(opts, parsed.detach_keys, pull)
    return run_ops.run(opts, warn=warn, pull=pull)


def kept_apart(opts, detach_keys, pull):
    """`run` without -d whose container must outlive this process (--sig-proxy=false: a
    signal to the CLI ends the CLI, not the container; -it or --detach-keys: the detach keys
    leave it running; --restart: its monitor restarts it after this process returned at
    its first exit): it runs under a monitor, as `run -d`, and this process attaches as
    `start -a` (the output from its start, stdin with -i) or, with -t, as `attach` does (the
    terminal sized as ours from the start, what it showed before we connected kept for us
    by the watcher), as Docker's CLI is a client of the daemon that keeps the container.
    -> the container's status at its first exit (0 once detached)."""
    import os
    import time
    from ..ops import containers, watch
    from ..ops.lifecycle import NextExit
    from ..ops.storage import open_store
    from .attach import attach_terminal, detach_sequence
    from .start import _attach
    keys = detach_sequence(detach_keys)
    held, runs = [], []

    def hold_log(record):
        runs.append(NextExit(open_store(), record["Id"]))  # before the start: its first exit
        # the monitor may remove the container (--rm), log and all, before we read it; the
        # log made now and held open stays readable through /proc/self/fd
        held.append(os.open(record["LogPath"], os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC,
                            0o640))
        if opts.tty:
            store = open_store()
            from ..userns.pty import host_winsize
            size = host_winsize()
            if size:  # Docker's ConsoleSize: the terminal starts with the client's size
                spec = containers.load_spec(store, record)
                spec["winsize"] = list(size)
                containers.save_spec(store, record["Id"], spec)
            watch.expect_client(store, record["Id"])
    record = run_ops.run_detached(opts, warn=warn, pull=pull, created=hold_log)
    log = "/proc/self/fd/%d" % held[0]
    store = open_store()
    run = runs[0]
    forwarder = run_ops.SignalForwarder() if opts.sig_proxy else None
    try:
        if forwarder is not None:
            forwarder.attach(record["State"].get("Pid"))
        if opts.tty:
            try:
                code = attach_terminal(store, record, stdin=opts.interactive, keys=keys,
                                       run=run)
                code = 0 if code is None else code  # detached: Docker's run says nothing
            except Conflict:
                # its socket is gone: the container ended (and went, with --rm; or was
                # restarted) before this client connected: its output is all in the log
                if not run.ended():
                    raise
                code = _attach(store, record, log=log, run=run)
        else:
            code = _attach(store, record, stdin=opts.interactive, log=log if opts.rm else None,
                           run=run)
    finally:
        if forwarder is not None:
            forwarder.restore()
        for fd in held:
            os.close(fd)
    if opts.rm:
        # Docker's CLI waits for the removal too; a container detached from runs on
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            current = store.read_container(record["Id"])
            if current is None or current["State"].get("Running"):
                break
            time.sleep(0.01)
    return code
