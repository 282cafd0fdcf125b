"""The `run` use case: from options and an image to a finished container and its exit status.

Owns: Docker's rules for the container's command (ENTRYPOINT + CMD, --entrypoint resets CMD),
environment (image ENV, default PATH, HOSTNAME, TERM, --env-file, -e), working directory, user,
hostname, volume and tmpfs specs, and network mode; the run spec handed to the launcher; the
container record's life (created, running, exited, or removed with --rm).
Must not: import rich, pyelftools, zstandard or an HTTP client (this is the hot path), print,
or call syscalls (userns/ does).
"""

import os
import _signal as signal  # the signal module imports enum: ~10 ms

from .. import config, errors
from ..oci import reference
from ..userns import caps, idmap as idmaps, launcher
from . import cgroups, containers, events, images, labels, mountopts, ports, runflags, volumes
from .storage import choose_driver, open_store

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
_VOLUME_OPTS = {"ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave",
                "rslave", "nocopy", "consistent", "cached", "delegated"}

_HOSTS_BASE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
               "ff02::2\tip6-allrouters\n")


class RunOptions:
    """What `run` was asked for; commands/run.py fills it from the command line."""

    def __init__(self, image, command=(), **kw):
        self.image = image
        self.command = list(command)
        self.rm = kw.get("rm", False)
        self.name = kw.get("name")
        self.env = list(kw.get("env", ()))
        self.env_file = list(kw.get("env_file", ()))
        # where `-e NAME` takes its value: the caller's environment for the CLI; None (the
        # Engine API) keeps NAME as sent, as dockerd does
        self.host_env = kw.get("host_env", os.environ)
        self.workdir = kw.get("workdir")
        self.user = kw.get("user")
        self.entrypoint = kw.get("entrypoint")
        self.interactive = kw.get("interactive", False)
        self.tty = kw.get("tty", False)
        self.hostname = kw.get("hostname")
        self.volumes = list(kw.get("volumes", ()))
        self.mounts = list(kw.get("mounts", ()))  # --mount
        self.volumes_from = list(kw.get("volumes_from", ()))
        self.labels = list(kw.get("labels", ()))  # -l/--label
        self.label_files = list(kw.get("label_files", ()))
        self.tmpfs = list(kw.get("tmpfs", ()))
        self.read_only = kw.get("read_only", False)
        self.network = kw.get("network") or None
        self.network_aliases = list(kw.get("network_aliases", ()))
        self.ip = kw.get("ip") or None
        # further user networks ({"name", "aliases", "ip"}): --network given more than once
        self.networks = list(kw.get("networks", ()))
        # the first user network's endpoint beyond aliases and ip: {"mac", "links",
        # "driver_opts"} (--mac-address, --link, the long --network form, the API's)
        self.endpoint = dict(kw.get("endpoint") or {})
        self.publish = list(kw.get("publish", ()))
        self.publish_all = kw.get("publish_all", False)
        self.add_hosts = list(kw.get("add_hosts", ()))
        self.dns = list(kw.get("dns", ()))
        self.dns_search = list(kw.get("dns_search", ()))
        self.dns_options = list(kw.get("dns_options", ()))
        self.init = kw.get("init", False)
        self.detach = kw.get("detach", False)
        self.restart = kw.get("restart") or "no"
        self.log_opts = list(kw.get("log_opts", ()))
        self.log_driver = kw.get("log_driver") or "json-file"  # LOG_DRIVERS
        self.stop_signal = kw.get("stop_signal")
        self.stop_timeout = kw.get("stop_timeout")
        self.userns = kw.get("userns")
        self.security_opts = list(kw.get("security_opts", ()))
        self.__dict__.update(runflags.defaults(kw))


USERNS_MODES = ("auto", "single", "subuid")
# json-file, and Docker's none: nothing to read back (`logs` refuses; the watcher's log is then
# only the attach clients' channel, capped at 2 MiB: ops/watch.py)
LOG_DRIVERS = ("json-file", "none")


def parse_userns(text):
    """--userns auto|single|subuid (auto: a subordinate range when the user has one)."""
    if text is None or text == "":
        return None
    if text not in USERNS_MODES:
        raise errors.UsageError("invalid --userns %r" % text,
                                "use one of: %s" % ", ".join(USERNS_MODES))
    return text


def parse_security_opts(items):
    """--security-opt values -> whether seccomp is unconfined (ops/runflags.py has the
    rest)."""
    return runflags.security(items)["unconfined"]


def parse_restart(text):
    """--restart no|on-failure[:N]|always|unless-stopped -> Docker's RestartPolicy."""
    name, _, count = (text or "no").partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped") or \
            (count and (name != "on-failure" or not count.isdigit())):
        raise errors.UsageError("invalid restart policy %r" % text,
                                "use no, on-failure[:max-retries], always or unless-stopped")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def parse_log_opts(items):
    """--log-opt max-size=10m --log-opt max-file=3 -> the json-file driver's options."""
    result = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in ("max-size", "max-file"):
            raise errors.UsageError("unknown log opt %r" % item,
                                    "the json-file driver takes max-size and max-file")
        result[key] = value
    if "max-file" in result and not (result["max-file"].isdigit() and
                                     int(result["max-file"]) > 0):
        raise errors.UsageError("invalid max-file %r" % result["max-file"])
    if "max-size" in result:
        from .containers import parse_size
        try:
            parse_size(result["max-size"])
        except ValueError:
            raise errors.UsageError("invalid max-size %r" % result["max-size"],
                                    "give a size like 10m or 500k") from None
    return result


# -- pure helpers (unit-tested) ----------------------------------------------------------------

def parse_env_file(path):
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise errors.UsageError("cannot read env file %s: %s" % (path, exc.strerror))
    return [line.lstrip() for line in lines if line.strip() and
            not line.lstrip().startswith("#")]


def _env_entry(item, host_env):
    key, eq, _value = item.partition("=")
    if not key:
        raise errors.UsageError("invalid environment variable: %r" % item)
    if eq or host_env is None:
        return item
    return "%s=%s" % (key, host_env[key]) if key in host_env else None


def merge_env(image_env, extra, host_env):
    """Image ENV, then extra (-e/--env-file, later wins); `-e NAME` takes NAME from the host
    or is dropped, as Docker does; PATH defaults to Docker's when the image sets none."""
    merged = {}
    entries = list(image_env or []) + [e for e in (_env_entry(i, host_env) for i in extra) if e]
    for entry in entries:
        key = entry.partition("=")[0]
        merged.pop(key, None)
        merged[key] = entry
    if "PATH" not in merged:
        merged = {"PATH": "PATH=" + config.DEFAULT_PATH, **merged}
    return list(merged.values())


def entrypoint_words(entrypoint):
    """--entrypoint (a string) or the Engine API's Entrypoint (a list; [""] resets, as the
    docker CLI sends `--entrypoint ""`) -> the words, [] for a reset."""
    if isinstance(entrypoint, list):
        return [] if entrypoint == [""] else list(entrypoint)
    return [entrypoint] if entrypoint else []


def command_line(image_config, command, entrypoint):
    """ENTRYPOINT + CMD as Docker combines them; --entrypoint discards the image's CMD."""
    if entrypoint is not None:
        entry = entrypoint_words(entrypoint)
        cmd = list(command)
    else:
        entry = list(image_config.get("Entrypoint") or [])
        cmd = list(command) if command else list(image_config.get("Cmd") or [])
    argv = entry + cmd
    if not argv:
        raise errors.UsageError("no command specified",
                                "give a command after the image name, or set CMD in the image")
    return argv


def parse_volume(spec, volumes_root):
    """-v SRC:DST[:OPTS] (SRC a host path or a volume name) or -v DST (anonymous)."""
    parts = spec.split(":")
    if len(parts) == 1:
        src, dst, opts = None, parts[0], ""
    elif len(parts) in (2, 3):
        src, dst = parts[0], parts[1]
        opts = parts[2] if len(parts) == 3 else ""
    else:
        raise errors.UsageError("invalid volume specification: %r" % spec,
                                "use -v HOST_PATH:CONTAINER_PATH[:ro]")
    if not dst.startswith("/"):
        raise errors.UsageError("invalid volume specification: %r: the container path must be "
                                "absolute" % spec)
    options = [o for o in opts.split(",") if o]
    bad = [o for o in options if o not in _VOLUME_OPTS]
    if bad:
        raise errors.UsageError("invalid volume specification: %r: unknown option %s"
                                % (spec, bad[0]), "use ro or rw")
    readonly = "ro" in options
    if src is None or not (src.startswith("/") or src.startswith(".") or src.startswith("~")):
        name = volumes.validate_name(src) if src else volumes.random_name()
        return {"type": "volume", "name": name, "anonymous": src is None,
                "source": os.path.join(volumes_root, name, "_data"), "destination": dst,
                "readonly": readonly, "copy": "nocopy" not in options, "mode": opts}
    source = os.path.abspath(os.path.expanduser(src))
    if not os.path.exists(source):
        raise errors.NotFound("invalid mount config: bind source path does not exist: %s"
                              % source, "create it first, or fix the path")
    propagation = [o for o in options if o in mountopts.PROPAGATIONS]
    return {"type": "bind", "source": source, "destination": dst, "readonly": readonly,
            "mode": opts, "propagation": (propagation or ["rprivate"])[-1]}


def parse_tmpfs(spec):
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise errors.UsageError("invalid tmpfs specification: %r: the path must be absolute"
                                % spec)
    return {"type": "tmpfs", "destination": dst, "options": [o for o in opts.split(",") if o]}


def network_mode(name, publishing=False):
    """--network NAME -> host | private | none (ops/ports.py has the names)."""
    return ports.network_mode(name, publishing)


def host_resolv_conf():
    """The host's resolver file; a systemd-resolved stub (127.0.0.53) is useless inside a
    container with its own loopback, so take the upstream list instead (as Podman does)."""
    path = "/etc/resolv.conf"
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return "nameserver 8.8.8.8\n"
    upstream = "/run/systemd/resolve/resolv.conf"
    if "127.0.0.53" in text and os.path.exists(upstream):
        with open(upstream) as f:
            return f.read()
    return text


def hosts_file(network, hostname, extra=""):
    if network == "host":
        try:
            with open("/etc/hosts") as f:
                text = f.read()
        except OSError:
            text = _HOSTS_BASE
    else:
        text = _HOSTS_BASE
    if not text.endswith("\n"):
        text += "\n"
    return text + extra + "127.0.0.1\t%s\n" % hostname


# -- the use case ------------------------------------------------------------------------------

def _populate_inside(layers, root):
    from ..layers.apply import populate
    return populate(layers, root)


def prepare_rootfs(cdir, driver, lower, idmap):
    """The rootfs part of a run spec in directory cdir: overlay dirs, or a filled copy."""
    if not lower:
        # an image with no layer yet (FROM scratch): overlayfs needs one lower directory
        lower = [os.path.join(cdir, "empty")]
        os.mkdir(lower[0], 0o755)
    rootfs = {"driver": driver, "lower": lower}
    if driver == "copy":
        # last resort (no overlay): the container gets its own copy of the image
        rootfs["merged"] = os.path.join(cdir, "rootfs")
        os.mkdir(rootfs["merged"], 0o755)
        launcher.run_in_userns(_populate_inside, idmap, rootfs["lower"], rootfs["merged"])
    else:
        for name in ("upper", "work", "merged"):
            rootfs[name] = os.path.join(cdir, name)
            os.mkdir(rootfs[name], 0o755)
    return rootfs


def write_etc_files(cdir, network, hostname, opts=None, outbound=None):
    files = {}
    extra_hosts = ports.parse_add_hosts(opts.add_hosts) if opts is not None else ""
    resolv = host_resolv_conf()
    if outbound == "slirp4netns":
        # the host's resolvers may be on its loopback, which slirp4netns keeps out of reach;
        # its own forwarder asks them (as Podman writes)
        resolv = ports.resolv_conf(resolv, [ports.SLIRP_DNS])
    if opts is not None:
        resolv = ports.resolv_conf(resolv, opts.dns, opts.dns_search, opts.dns_options)
    for target, name, text in (("/etc/hostname", "hostname", hostname + "\n"),
                               ("/etc/hosts", "hosts", hosts_file(network, hostname,
                                                                  extra_hosts)),
                               ("/etc/resolv.conf", "resolv.conf", resolv)):
        path = os.path.join(cdir, name)
        with open(path, "w") as f:
            f.write(text)
        files[target] = path
    return files


def prepare(store, idmap, opts, joined=None, shared=None):
    """Check everything the user gave, create the container record and its directories, and
    return (record, spec). Bad input fails here, before anything is created. joined: the
    (record, spec) of the container whose network `--network container:NAME` joins; shared:
    ({"pid"|"ipc"|"uts": (record, spec)} of --pid/--ipc/--uts container:NAME, the ID of the
    container whose user namespace the joins enter, or None)."""
    network = network_mode(opts.network, bool(opts.publish or opts.publish_all))
    if network == "none" and (opts.publish or opts.publish_all):
        raise errors.UsageError("conflicting options: port publishing and the container "
                                "type network mode")
    if opts.networks and network != "user":
        raise errors.UsageError("conflicting options: cannot attach both user-defined and "
                                "non-user-defined network-modes")
    if (opts.ip or opts.endpoint.get("ip6")) and network != "user":
        raise errors.UsageError("user specified IP address is supported on user defined "
                                "networks only")
    if opts.network_aliases and network != "user":
        raise errors.UsageError("network-scoped alias is supported only for containers in "
                                "user defined networks")
    if network != "user":
        for key, flag, why in (("mac", "--mac-address", "a MAC address is set on a "
                                "user-defined network's interface only"),
                               ("links", "--link", "containers in private namespaces cannot "
                                "reach each other; links are made on user-defined networks "
                                "and the host's")):
            if opts.endpoint.get(key) and not (key == "links" and network == "host"):
                raise errors.UsageError("%s is not supported with network mode %s: %s"
                                        % (flag, opts.network or ("bridge" if network ==
                                                                  "private" else network),
                                           why),
                                        "create a network and run with --network NAME")
    ports.parse_add_hosts(opts.add_hosts)
    ports.resolv_conf("", opts.dns)
    for spec in opts.publish:
        ports.parse_publish(spec)
    mounts, api_mounts = mountopts.gather(store, opts)
    own_labels = labels.from_options(opts.labels, opts.label_files)
    extra_env = []
    for path in opts.env_file:
        extra_env += parse_env_file(path)
    extra_env += opts.env
    with store.lock():
        # one hold from resolving the image to recording the container, so a concurrent
        # rmi or prune cannot take the image away in between
        return _create(store, idmap, opts, network, mounts, extra_env, joined, api_mounts,
                       own_labels, shared)


def _create(store, idmap, opts, network, mounts, extra_env, joined=None, api_mounts=(),
            own_labels=None, shared=None):
    joined, joined_spec = joined or (None, None)
    shared_ns, userns_of = shared or ({}, None)
    unconfined = parse_security_opts(opts.security_opts)
    resolved = runflags.check(opts)
    image = images.resolve(store, opts.image)
    images.ensure_unpacked(store, idmap, image)
    image_config = image.config.get("config") or {}
    workdir = opts.workdir or image_config.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise errors.UsageError("the working directory %r is invalid, it needs to be an "
                                "absolute path" % workdir)
    argv = command_line(image_config, opts.command, opts.entrypoint)
    user = opts.user if opts.user is not None else image_config.get("User") or ""
    if user and idmap.mode == "single" and unconfined and \
            user.split(":")[0] not in ("0", "root"):
        # without the fake root's filter nothing answers getuid() with the user's id
        raise errors.SetupError(
            "cannot run as user %s with seccomp=unconfined: this user has no subordinate id "
            "range, so only uid 0 exists in the container" % user,
            idmaps.admin_fix(idmaps.user_name(os.getuid())))
    user_net = None
    endpoints = {}
    if network == "user":
        from . import networks
        user_net = networks.find(store, opts.network)
        endpoints[user_net["Name"]] = networks.endpoint(
            user_net, opts.network_aliases, opts.ip, opts.endpoint.get("mac"),
            opts.endpoint.get("links") or (), opts.endpoint.get("driver_opts"),
            opts.endpoint.get("ip6"))
        for extra in opts.networks:
            net = networks.find(store, extra["name"])
            if net["Name"] in endpoints or net.get("Predefined"):
                raise errors.UsageError('network "%s" is specified multiple times'
                                        % extra["name"] if net["Name"] in endpoints else
                                        "conflicting options: cannot attach both "
                                        "user-defined and non-user-defined network-modes")
            endpoints[net["Name"]] = networks.endpoint(
                net, extra.get("aliases") or (), extra.get("ip"), extra.get("mac"),
                extra.get("links") or (), extra.get("driver_opts"), extra.get("ip6"))
    driver = choose_driver(store, idmap)
    mounts = mounts + mountopts.image_volumes(image_config, mounts)
    own_ns = network in ("private", "user")
    bindings, exposed = ports.port_bindings(
        opts.publish if own_ns else (),
        opts.publish_all and own_ns,
        runflags.exposed(opts, image_config.get("ExposedPorts")))
    record = containers.create_record(store, {
        "Image": image.id, "ImageName": opts.image, "Path": argv[0], "Args": argv[1:],
        "Driver": driver,
        "Config": {"Image": opts.image, "Cmd": opts.command or None, "Tty": opts.tty,
                   "OpenStdin": opts.interactive, "User": user, "WorkingDir": workdir,
                   "ExposedPorts": exposed or None,
                   "Labels": labels.merged(image_config.get("Labels"), own_labels),
                   "Entrypoint": image_config.get("Entrypoint") if opts.entrypoint is None
                   else (entrypoint_words(opts.entrypoint) or None)},
        "HostConfig": {"AutoRemove": opts.rm,
                       "NetworkMode": "container:" + joined["Id"] if joined else
                       user_net["Name"] if user_net else network,
                       "PortBindings": bindings, "ExtraHosts": opts.add_hosts or None,
                       "Dns": opts.dns, "DnsSearch": opts.dns_search,
                       "DnsOptions": opts.dns_options,
                       "UsernsMode": opts.userns or "", "SecurityOpt": opts.security_opts,
                       "ReadonlyRootfs": opts.read_only, "Init": opts.init,
                       "Binds": list(opts.volumes) or None,
                       "Tmpfs": {t.partition(":")[0]: t.partition(":")[2]
                                 for t in opts.tmpfs} or None,
                       "Mounts": list(api_mounts) or None,
                       "VolumesFrom": opts.volumes_from or None,
                       "RestartPolicy": parse_restart(opts.restart),
                       "LogConfig": {"Type": opts.log_driver,
                                     "Config": parse_log_opts(opts.log_opts)},
                       **runflags.host_config(opts, resolved)},
        "Mounts": [mountopts.record_entry(m, store.volumes) for m in mounts],
        "State": {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0,
                  **containers.starter_fields()},
        "NetworkSettings": {"Ports": {}, **({"Networks": endpoints} if user_net else {
            "DriverOpts": opts.endpoint["driver_opts"]} if opts.endpoint.get("driver_opts")
            else {})},
    }, opts.name)
    cid = record["Id"]
    cdir = store.container_dir(cid)
    if joined:
        # Docker: the joined container's name and resolver files (the same files)
        hostname = (joined.get("Config") or {}).get("Hostname") or joined["Id"][:12]
    elif "uts" in shared_ns:
        hostname = runflags.joined_hostname(shared_ns)
    else:
        hostname = opts.hostname or (os.uname().nodename if network == "host" or
                                     resolved["uts"] == "host" else cid[:12])
    record["Config"]["Hostname"] = hostname
    record["Config"].update(runflags.config_part(opts, image_config))
    # decided once, with the resolver it needs: the same helper at every start
    outbound = ports.outbound_helper() if network == "private" else None
    record["Config"]["StopSignal"] = opts.stop_signal or image_config.get("StopSignal") or \
        "SIGTERM"
    if opts.stop_timeout is not None:
        record["Config"]["StopTimeout"] = opts.stop_timeout
    record["RestartCount"] = 0
    record["LogPath"] = containers.log_path(store, cid)
    made = []
    try:
        volumes.attach(store, mounts, made)
        # where each volume's data really is (a type=none volume's host directory)
        record["Mounts"] = [mountopts.record_entry(m, store.volumes) for m in mounts]
        link_hosts = ""
        if network == "host" and opts.endpoint.get("links"):
            from . import networks
            record["HostConfig"]["Links"], link_env, link_hosts = networks.host_links(
                store, opts.endpoint["links"], record["Name"])
            extra_env = link_env + extra_env  # the user's own variables win, as Docker's
        env = merge_env(image_config.get("Env"),
                        ["HOSTNAME=" + hostname] + (["TERM=xterm"] if opts.tty else []) +
                        extra_env, opts.host_env)
        record["Config"]["Env"] = env
        spec = {
            "id": cid, "hostname": hostname, "argv": argv, "env": env, "cwd": workdir,
            "user": user, "tty": opts.tty, "stdin": opts.interactive, "init": opts.init,
            "network": network, "read_only": opts.read_only,
            "rootfs": prepare_rootfs(cdir, driver, image.layer_dirs(), idmap),
            "mounts": mounts,
            "etc_files": joined_spec.get("etc_files") if joined
            else write_etc_files(cdir, network, hostname, opts, outbound),
            "outbound": outbound,
        }
        if link_hosts:
            with open(spec["etc_files"]["/etc/hosts"], "a") as f:
                f.write(link_hosts)
        if user_net and not opts.dns:
            with open(spec["etc_files"]["/etc/resolv.conf"], "w") as f:
                # --dns-search/--dns-option still apply (the holder stays the server)
                f.write(ports.resolv_conf(networks.resolv_conf(
                    store, user_net["Name"], host_resolv_conf()), (), opts.dns_search,
                    opts.dns_options))
        if joined and (joined.get("HostConfig") or {}).get("NetworkMode") == "host":
            # joining the host's network is having it: nothing to enter (and no user
            # namespace of ours owns it)
            spec["network"] = "host"
        elif joined:
            spec["network_of"] = joined["Id"]
        spec.update(confinement(idmap, unconfined))
        spec.update(runflags.spec_part(opts, resolved, idmap))
        spec.update(runflags.joined_part(shared_ns))
        if userns_of:
            spec["userns_of"] = userns_of
        spec["port_bypass"] = own_ns and ports.port_bypass(
            bindings, spec["chown_notify"])
        store.write_container(record)
        containers.save_spec(store, cid, spec)
        events.container(store, record, "create")
    except BaseException:
        store.remove(cdir)
        volumes.forget(store, made)
        raise
    return record, spec


def confinement(idmap, unconfined=False):
    """The parts of a run spec every container gets: Docker's capabilities, the mapping, and
    under a single-id mapping the seccomp fake root (userns/seccomp.py), so that the
    credential changes and chowns of package managers succeed where only uid 0 exists; its
    chowns go to the container's keeper (chown_notify: ops/chowns.py), which records the
    owner asked for. Every keeper of launcher.start (foreground run, monitor, build step)
    serves them."""
    fake = idmap.mode == "single" and not unconfined
    from . import seccomp
    return {"caps": list(caps.DOCKER_DEFAULT), "idmap_mode": idmap.mode,
            "tty_gid_mapped": idmap.to_host_gid(5) is not None, "winsize": None,
            "seccomp": "fakeroot" if fake else None, "chown_notify": fake,
            # Docker's default profile (runflags changes it for other flags)
            "seccomp_bpf": None if unconfined else
            seccomp.compiled(seccomp.default_text(), caps.DOCKER_DEFAULT)}


def idmap_of(spec, idmap):
    """The mapping a kept run spec was made for (`create --userns=single` then `start`):
    layers and the container's files were prepared under it, whatever the default is now."""
    if spec.get("idmap_mode") and spec["idmap_mode"] != idmap.mode:
        return idmaps.plan(spec["idmap_mode"])
    return idmap


class SignalForwarder:
    """Forwards the signals a user sends to `rootless-box run` to the container's init.

    Installed before the container starts, so a signal that arrives in between is kept and
    delivered once init exists rather than killing the CLI and orphaning the container."""

    def __init__(self):
        self.pid = None
        self.pending = []
        self.previous = {sig: signal.signal(sig, self._handle) for sig in FORWARDED_SIGNALS}

    def _handle(self, signum, _frame):
        if self.pid is None:
            self.pending.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def attach(self, pid):
        self.pid = pid
        for signum in self.pending:
            self._handle(signum, None)
        self.pending = []

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _discard(store, record):
    store.remove(store.container_dir(record["Id"]))
    events.container(store, record, "destroy")
    volumes.discard_anonymous(store, record.get("Mounts") or [], record["Id"])


def _made(opts, warn, pull):
    """The id map, the store, and the container prepared (its image pulled as pull, from
    commands/run.puller, says): what run, create and run -d all begin with.
    -> (idmap, store, record, spec)"""
    parse_security_opts(opts.security_opts)  # bad input fails before the image is pulled
    if opts.rm and parse_restart(opts.restart)["Name"] != "no":
        # Docker's CLI words (dockerd's: api/jobs.py); a restart needs the container kept
        raise errors.UsageError("conflicting options: cannot specify both --restart and --rm",
                                "leave out --rm, or --restart")
    runflags.check(opts)
    idmap = idmaps.plan(parse_userns(opts.userns))
    if idmap.warning and warn:
        warn(idmap.warning)
    for note in runflags.notes(opts) if warn else ():
        warn(note)
    store = open_store(idmap)
    joined = shared = None
    network_join = network_mode(opts.network) == "container"
    if network_join:
        ports.check_joined(opts)
    if network_join or runflags.joins_any(opts):
        idmap, store, joined, shared = _joined_mapping(store, idmap, opts, network_join)
    if pull is not None and pull.always:
        pull(store, idmap, opts.image, False)
    try:
        record, spec = prepare(store, idmap, opts, joined, shared)
    except errors.NotFound:
        # only now is the image looked for again: a run of an image that is here reads the
        # index once, as before pulls existed
        if pull is None or pull.always or not _pullable(store, opts.image):
            raise
        pull(store, idmap, opts.image, True)
        record, spec = prepare(store, idmap, opts, joined, shared)
    runflags.write_cidfile(opts.cidfile, record["Id"])
    # after prepare: a bad -p or a missing image is the one line a user sees, with no warning
    _network_warnings(opts, warn, spec)
    return idmap, store, record, spec


def _joined_mapping(store, idmap, opts, network_join):
    """`--network/--pid/--ipc/--uts container:NAME` enter NAME's user namespace (the owner of
    the namespaces joined): the new container runs under NAME's mapping, with layers
    unpacked for it; namespaces of containers in different user namespaces cannot be joined
    together. -> (idmap, store, (NAME's record, its run spec) for the network or None,
    ({ns: (record, spec)} for --pid/--ipc/--uts, the user namespace's owner ID or None))"""
    joined, targets = None, []
    if network_join:
        name = ports.joined_container(opts.network)
        record = containers.find(store, name)
        joined = (record, containers.load_spec(store, record))
        if (record.get("HostConfig") or {}).get("NetworkMode") != "host":
            targets.append(("--network container:" + name, record, joined[1]))
    shared_ns = runflags.shared(store, opts)
    if shared_ns and network_mode(opts.network) == "user":
        # a user network nests the container's user namespace in the network holder's;
        # another container's namespaces can only be joined from that one's
        raise errors.UsageError(
            "conflicting options: --network %s and %s: a container on a user-defined "
            "network has a user namespace of its own" % (
                opts.network, " ".join("--%s container:..." % ns for ns in sorted(shared_ns))),
            "put both containers on the network, or join the other container's network "
            "too (--network container:NAME)")
    targets += runflags.real_joins(shared_ns)
    owners = {}
    for flag, record, spec in targets:
        owners.setdefault(runflags.userns_owner(store, record, spec), flag)
    if len(owners) > 1:
        first, second = list(owners.values())[:2]
        raise errors.UsageError(
            "conflicting options: %s and %s: those containers run in different user "
            "namespaces, and joining a namespace needs its owner's" % (first, second),
            "join the namespaces of one container (or of containers that joined each "
            "other's)")
    owner = next(iter(owners), None)
    source = targets[0] if targets else ((("--network container:" + name,) + joined)
                                         if joined else None)
    result = (joined, (shared_ns, owner))
    mode = source[2].get("idmap_mode") if source else None
    if not mode or mode == idmap.mode:
        return (idmap, store) + result
    if parse_userns(opts.userns) not in (None, "auto"):
        ns = source[0].split()[0][2:]
        raise errors.UsageError(
            "conflicting options: --userns=%s and the %s mode: container %s runs under the "
            "%s mapping" % (opts.userns, ns if ns == "network" else ns.upper(),
                            source[1]["Name"], mode),
            "leave --userns out to take the other container's mapping")
    idmap = idmaps.plan(mode)
    return (idmap, open_store(idmap)) + result


def _pullable(store, name):
    """A NotFound from prepare was the image's, and its name is a reference to pull by."""
    try:
        images.resolve(store, name)
        return False  # the image is here: something else was not found
    except errors.NotFound:
        pass
    try:
        reference.parse(name)
    except errors.UsageError:
        return False
    return True


def _network_warnings(opts, warn, spec):
    if warn is None:
        return
    if spec["network"] == "host" and (opts.publish or opts.publish_all):
        warn(ports.HOST_NET_WARNING)
    elif spec["network"] == "private" and not spec.get("outbound"):
        # no helper was chosen at create: the warning says why
        text = ports.outbound_warning()
        if text:
            warn(text)


def create(opts, warn=None, pull=None):
    """`create`: the container made, not started. -> record"""
    return _made(opts, warn, pull)[2]


def start(store, idmap, record):
    """Start a created or exited container under a monitor (a detached container). Returns
    the record, running."""
    from . import monitor
    record = containers.refresh_state(store, record)
    if record["State"].get("Status") in containers.LIVE_STATES:
        return record  # Docker: starting a running container is a no-op
    spec = containers.load_spec(store, record)
    idmap = idmap_of(spec, idmap)
    containers.update_state(store, record, StoppedByUser=False, **containers.starter_fields())
    published = ports.bind(store, record, spec.get("outbound"))
    with published:
        monitor.launch(store, idmap, record, spec, published)
    return store.read_container(record["Id"]) or record


def run_detached(opts, warn=None, pull=None, created=None):
    """`run -d`: create, start under a monitor, return the container's record at once.
    created(record): called between the two (a client that must hold the log first)."""
    idmap, store, record, _spec = _made(opts, warn, pull)
    if created is not None:
        created(record)
    try:
        return start(store, idmap, record)
    except errors.BoxError as exc:
        if opts.rm or not isinstance(exc, (errors.CommandNotFound, errors.CannotExecute)):
            from .monitor import discard
            discard(store, record)
        raise


def run(opts, warn=None, pull=None):
    """Run a container in the foreground; returns its exit status (Docker's numbers).
    pull: the --pull step (see _made)."""
    idmap, store, record, spec = _made(opts, warn, pull)
    if opts.tty:
        from ..userns.pty import host_winsize
        spec["winsize"] = host_winsize()
    if opts.rm:
        # mounted once, deleted when it ends: no sync of the upper file system at its end
        # (userns/mounts.py, op_mount_overlay)
        spec["rootfs"]["volatile"] = True
    forwarder = SignalForwarder()
    try:
        try:
            published = ports.bind(store, record, spec.get("outbound"))
            with published:
                container = launcher.start(runflags.joined_spec(store, spec), idmap,
                                           cgroups.prestart(spec, published.prestart()),
                                           published.fds())
        except errors.BoxError as exc:
            if isinstance(exc, (errors.CommandNotFound, errors.CannotExecute)) and \
                    not opts.rm:
                containers.mark_exited(store, record, exc.exit_code, exc.message)
            else:
                _discard(store, record)
            raise
        except BaseException:
            _discard(store, record)
            raise
        containers.mark_running(store, record, container.pid)
        runflags.started(store, record)
        forwarder.attach(container.pid)
        code = _wait(container, opts)
        if spec.get("cgroup_files"):
            cgroups.remove(record["Id"])
    finally:
        forwarder.restore()
    if opts.rm:
        events.container(store, record, "die", exitCode=code)
        _discard(store, record)
    else:
        containers.mark_exited(store, record, code)
    return code


def _wait(container, opts):
    """Relay the pty (if any) and wait; if relaying fails, the container is killed rather
    than left running with nobody attached."""
    services = {}
    if container.listener is not None:
        from .chowns import services as chown_services
        services = chown_services(container)
    try:
        if container.master_fd is not None:
            from ..userns.pty import relay
            relay(container.master_fd, opts.interactive, services=services)
    except BaseException:
        container.kill()
        container.wait()
        raise
    return container.wait(services)
