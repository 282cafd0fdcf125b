"""The Engine API's jobs: the ops calls that fork, run in the fork server's workers.

Owns: Docker's container-create body turned into ops.run.RunOptions (the same options the CLI's
flags become), and the thin job functions (create, start, restart, rm, rmi, pull, exec) with
JSON-only arguments and results. Must not: run in a request thread (api/forkserver.py says
why), or hold Docker's HTTP vocabulary (api/routes.py does).
"""

import os

from .. import errors
from ..ops import containers, images, lifecycle, run as run_ops
from ..ops.storage import open_store
from ..userns import idmap as idmaps
from . import createbody
from .forkserver import JOBS


def _job(func):
    JOBS[func.__name__] = func
    return func


def _strings(value, field):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.UsageError("json: cannot unmarshal %s into field %s of type []string"
                                % (type(value).__name__, field))
    return value


def _publish(bindings):
    """HostConfig.PortBindings -> `-p` words (an empty HostPort: a random port, as Docker)."""
    words = []
    for port, hosts in (bindings or {}).items():
        for host in hosts or [{}]:
            ip, hport = (host or {}).get("HostIp") or "", (host or {}).get("HostPort") or ""
            words.append(("%s:%s:%s" % (ip, hport, port)) if ip else
                         ("%s:%s" % (hport, port)) if hport else port)
    return words


def run_options(name, body):
    """A /containers/create body -> RunOptions (unknown fields are ignored, as dockerd does)."""
    if not isinstance(body, dict):
        raise errors.UsageError("invalid JSON: the body must be an object")
    host = body.get("HostConfig")
    host = {} if host is None else host
    if not isinstance(host, dict):
        raise errors.UsageError("invalid JSON: HostConfig must be an object")
    more = createbody.run_keywords(body, host)  # the run flags' fields, as their texts
    image = body.get("Image")
    if not isinstance(image, str) or not image:
        raise errors.UsageError("config cannot be empty in order to create a container")
    entry = body.get("Entrypoint")
    entrypoint = None if entry is None else _strings(entry, "Entrypoint")
    restart = host.get("RestartPolicy") or {}
    policy = restart.get("Name") or "no"
    if policy == "on-failure" and restart.get("MaximumRetryCount"):
        policy += ":%d" % restart["MaximumRetryCount"]
    if host.get("AutoRemove") and policy != "no":
        raise errors.UsageError("can't create 'AutoRemove' container with restart policy")
    labels = ["%s=%s" % kv for kv in (body.get("Labels") or {}).items()]
    tmpfs = ["%s:%s" % (k, v) if v else k for k, v in (host.get("Tmpfs") or {}).items()]
    stop_timeout = body.get("StopTimeout")
    binds = _strings(host.get("Binds"), "Binds")
    # `docker run -v /dst` and docker-py's volumes=[...] come as Config.Volumes: an anonymous
    # volume each, unless a bind or a mount has that destination (moby: those win)
    taken = {b.split(":")[1] if ":" in b else b for b in binds} | {
        m.get("Target") for m in host.get("Mounts") or [] if isinstance(m, dict)}
    binds += [dst for dst in (body.get("Volumes") or {}) if dst not in taken]
    driver = (host.get("LogConfig") or {}).get("Type") or "json-file"
    if driver not in run_ops.LOG_DRIVERS:  # moby's words for another
        raise errors.UsageError("logger: no log driver named '%s' is registered" % driver)
    return run_ops.RunOptions(
        image, _strings(body.get("Cmd"), "Cmd"), name=name or None,
        env=_strings(body.get("Env"), "Env"), host_env=None, workdir=body.get("WorkingDir") or None,
        user=body.get("User") or None, entrypoint=entrypoint,
        interactive=bool(body.get("OpenStdin")), tty=bool(body.get("Tty")),
        hostname=body.get("Hostname") or None, volumes=binds,
        tmpfs=tmpfs, volumes_from=_strings(host.get("VolumesFrom"), "VolumesFrom"),
        labels=labels, read_only=bool(host.get("ReadonlyRootfs")),
        init=bool(host.get("Init")), rm=bool(host.get("AutoRemove")), restart=policy,
        stop_signal=body.get("StopSignal") or None,
        stop_timeout=int(stop_timeout) if isinstance(stop_timeout, int) else None,
        publish=_publish(host.get("PortBindings")),
        publish_all=bool(host.get("PublishAllPorts")),
        add_hosts=_strings(host.get("ExtraHosts"), "ExtraHosts"),
        dns=_strings(host.get("Dns"), "Dns"), dns_search=_strings(host.get("DnsSearch"),
                                                                   "DnsSearch"),
        dns_options=_strings(host.get("DnsOptions"), "DnsOptions"),
        security_opts=_strings(host.get("SecurityOpt"), "SecurityOpt"),
        log_opts=["%s=%s" % kv for kv in ((host.get("LogConfig") or {}).get("Config")
                                          or {}).items()], log_driver=driver, **more)


@_job
def create(args, _fds, _progress):
    body = args.get("body")
    opts = run_options(args.get("name"), body)
    warnings = []  # what the CLI prints as warnings: create's Warnings
    record = run_ops.create(opts, warn=warnings.append, pull=None)
    _keep_as_sent(record["Id"], body.get("HostConfig"))
    size = (body.get("HostConfig") or {}).get("ConsoleSize")
    if opts.tty and isinstance(size, list) and len(size) == 2 and all(
            isinstance(n, int) and n > 0 for n in size):
        # the client's terminal size, given at create: the pty starts with it
        _idmap, store = _store()
        spec = containers.load_spec(store, record)
        spec["winsize"] = list(size)
        containers.save_spec(store, record["Id"], spec)
    return {"Id": record["Id"], "Warnings": warnings}


def _keep_as_sent(cid, sent):
    """HostConfig fields the record has no value of its own for (isolation, cgroupns, device
    cgroup rules, swappiness...: accepted and not applied by a rootless runtime) kept as the
    client sent them: Docker's clients read HostConfig back exactly as sent."""
    if not isinstance(sent, dict):
        return
    _idmap, store = _store()
    with store.lock():
        record = store.read_container(cid)
        if record is None:
            return
        host = record.setdefault("HostConfig", {})
        extra = {k: v for k, v in sent.items() if k not in host and v is not None}
        if extra:
            host.update(extra)
            store.write_container(record)


def _store():
    idmap = idmaps.plan()
    return idmap, open_store(idmap)


def _ensure_log(store, record):
    """The log file made before the container starts (its watcher appends to it): a stream
    asked for at once (docker-py's run() follows the logs right after start) can hold it
    before a --rm container's directory goes (api/routes.py _KeptLog)."""
    path = record.get("LogPath") or containers.log_path(store, record["Id"])
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640))
    except OSError:
        pass


@_job
def start(args, _fds, _progress):
    idmap, store = _store()
    record = containers.refresh_state(store, containers.find(store, args["id"]))
    if record["State"].get("Status") in containers.LIVE_STATES:
        return False  # Docker's 304
    _ensure_log(store, record)
    run_ops.start(store, idmap, record)
    return True


@_job
def restart(args, _fds, _progress):
    idmap, store = _store()
    _ensure_log(store, containers.find(store, args["id"]))
    lifecycle.restart(store, idmap, args["id"], args.get("timeout"), args.get("signal"))
    return True


@_job
def remove(args, _fds, _progress):
    _idmap, store = _store()
    record = containers.find(store, args["id"])
    containers.remove(store, record, force=args.get("force", False),
                      volumes=args.get("volumes", False))
    return record["Id"]


@_job
def rmi(args, _fds, _progress):
    _idmap, store = _store()
    return images.remove(store, args["name"], force=args.get("force", False))


@_job
def pull(args, _fds, progress):
    from ..ops import pull as pull_ops
    from ..registry.credentials import Credentials
    idmap, store = _store()

    def report(_event, **fields):
        progress(fields)
    given = args.get("login")
    login = Credentials(given.get("username") or "", given.get("password") or "",
                        given.get("identity_token") or None) if given else None
    result = pull_ops.pull(store, idmap, args["name"], platform=args.get("platform") or None,
                           progress=report, login=login)
    return {"digest": result["digest"], "updated": result["updated"],
            "image_id": result["image_id"]}


@_job
def exec_start(args, fds, _progress):
    """An exec's process with fds[0..2] as its stdin, stdout, stderr (a hijacked client's
    socket, or pipes the request thread frames), its exit status the answer."""
    from ..ops import exec as exec_ops
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        os.close(fd)
    opts = exec_ops.ExecOptions(args["container"], args["cmd"], env=args.get("env") or (),
                                workdir=args.get("workdir") or None,
                                user=args.get("user") or None,
                                interactive=args.get("stdin", False),
                                tty=args.get("tty", False), detach=args.get("detach", False),
                                winsize=args.get("winsize"),
                                detach_keys=_keys(args.get("detach_keys")), on_detach=_hang_up)
    return exec_ops.exec_in(opts)


def _keys(text):
    from ..userns.pty import detach_sequence
    return detach_sequence(text) if text else None


def _hang_up():
    """A -it exec's client typed the detach keys: dockerd hangs up on it (the request thread
    holds the same socket, so only a shutdown ends the connection) and the command runs on."""
    import socket
    try:
        socket.socket(fileno=os.dup(0)).shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@_job
def info(_args, _fds, _progress):
    """`/info`: gathering the facts probes a user namespace (a fork)."""
    from ..ops.info import document, gather
    facts, fixes = gather()
    return document(facts, fixes)
