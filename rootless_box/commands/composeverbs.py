"""The `compose` verbs that make and manage containers, with Docker Compose v2's options and
output: progress lines on stderr (` Container p-web-1  Started`), data on stdout, the
attached `up`'s and `logs`' `web-1  | line` printer (rotating colours on a terminal, one
thread per container feeding one writer), ^C stopping an attached `up`.

Owns: each verb's grammar and what it prints.
Must not: converge or tear down itself (compose/project.py does, on ops/).
"""

import os
import sys

from ..cliparse import FLAG, LIST, VALUE, Command, Opt, check_arity, parse
from ..errors import BoxError, NotFound, UsageError

_COLORS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")

_TIMEOUT = Opt("-t,--timeout", VALUE, "Specify a shutdown timeout in seconds", metavar="int")

_ORPHANS = Opt("--remove-orphans", FLAG, "Remove containers for services not defined in "
                                        "the Compose file")
_PULL = Opt("--pull", VALUE, 'Pull image before running ("always"|"missing"|"never")',
            default="missing")
# what `create` and `up` share: how the containers are converged
_CONVERGE = (
    Opt("--build", FLAG, "Build images before starting containers"),
    Opt("--no-build", FLAG, "Don't build an image, even if it's policy"),
    Opt("--force-recreate", FLAG, "Recreate containers even if their configuration and "
                                  "image haven't changed"),
    Opt("--no-recreate", FLAG, "If containers already exist, don't recreate them. "
                               "Incompatible with --force-recreate."),
    _ORPHANS,
    Opt("--scale", LIST, "Scale SERVICE to NUM instances. Overrides the scale setting in "
                         "the Compose file if present.", metavar="scale"),
    _PULL,
    Opt("-y,--yes", FLAG, "Assume \"yes\" as answer to all prompts"),
)

VERBS = {
    "up": ("[OPTIONS] [SERVICE...]", _CONVERGE + (
        Opt("-d,--detach", FLAG, "Detached mode: Run containers in the background"),
        Opt("--wait", FLAG, "Wait for services to be running|healthy. Implies detached mode."),
        Opt("--wait-timeout", VALUE, "Maximum duration in seconds to wait for the project to "
                                     "be running|healthy", metavar="int"),
        Opt("--no-deps", FLAG, "Don't start linked services"),
        Opt("--no-start", FLAG, "Don't start the services after creating them"),
        Opt("--abort-on-container-exit", FLAG, "Stops all containers if any container was "
                                               "stopped. Incompatible with -d"),
        Opt("--exit-code-from", VALUE, "Return the exit code of the selected service "
                                       "container. Implies --abort-on-container-exit"),
        Opt("--no-color", FLAG, "Produce monochrome output"),
        Opt("--no-log-prefix", FLAG, "Don't print prefix in logs"),
        Opt("--timestamps", FLAG, "Show timestamps"),
        Opt("--quiet-pull", FLAG, "Pull without printing progress information"),
        _TIMEOUT)),
    "create": ("[OPTIONS] [SERVICE...]", _CONVERGE),
    "down": ("[OPTIONS] [SERVICES]", (
        Opt("-v,--volumes", FLAG, "Remove named volumes declared in the \"volumes\" section "
                                  "of the Compose file and anonymous volumes attached to "
                                  "containers"),
        Opt("--rmi", VALUE, 'Remove images used by services. "local" remove only images that '
                            'don\'t have a custom tag ("local"|"all")'),
        _ORPHANS, _TIMEOUT)),
    "ps": ("[OPTIONS] [SERVICE...]", (
        Opt("-a,--all", FLAG, "Show all stopped containers (including those created by the "
                              "run command)"),
        Opt("-q,--quiet", FLAG, "Only display IDs"),
        Opt("--services", FLAG, "Display services"),
        Opt("--format", VALUE, "Format output using a custom template: 'table', 'table "
                               "TEMPLATE', 'json', or a Go template", default="table"),
        Opt("--status", LIST, "Filter services by status. Values: [paused | restarting | "
                              "removing | running | dead | created | exited]",
            metavar="stringArray"),
        Opt("--no-trunc", FLAG, "Don't truncate output"),
        Opt("--orphans", FLAG, "Include orphaned services (not declared by project)",
            default=True))),
    "logs": ("[OPTIONS] [SERVICE...]", (
        Opt("-f,--follow", FLAG, "Follow log output"),
        Opt("-t,--timestamps", FLAG, "Show timestamps"),
        Opt("-n,--tail", VALUE, "Number of lines to show from the end of the logs for each "
                                "container", default="all"),
        Opt("--no-color", FLAG, "Produce monochrome output"),
        Opt("--no-log-prefix", FLAG, "Don't print prefix in logs"),
        Opt("--since", VALUE, "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or "
                              "relative (e.g. 42m for 42 minutes)"),
        Opt("--until", VALUE, "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or "
                              "relative (e.g. 42m for 42 minutes)"),
        Opt("--index", VALUE, "index of the container if service has multiple replicas",
            metavar="int"))),
    "exec": ("[OPTIONS] SERVICE COMMAND [ARGS...]", (
        Opt("-d,--detach", FLAG, "Detached mode: Run command in the background"),
        Opt("-e,--env", LIST, "Set environment variables", metavar="stringArray"),
        Opt("--index", VALUE, "Index of the container if service has multiple replicas",
            default="1", metavar="int"),
        Opt("-T,--no-TTY", FLAG, "Disable pseudo-TTY allocation. By default docker compose "
                                 "exec allocates a TTY.", dest="no_tty"),
        Opt("--privileged", FLAG, "Give extended privileges to the process"),
        Opt("-u,--user", VALUE, "Run the command as this user"),
        Opt("-w,--workdir", VALUE, "Path to workdir directory for this command"))),
    "run": ("[OPTIONS] SERVICE [COMMAND] [ARGS...]", (
        Opt("-d,--detach", FLAG, "Run container in background and print container ID"),
        Opt("--rm", FLAG, "Automatically remove the container when it exits"),
        Opt("-e,--env", LIST, "Set environment variables", metavar="stringArray"),
        Opt("-l,--label", LIST, "Add or override a label", metavar="stringArray"),
        Opt("--name", VALUE, "Assign a name to the container"),
        Opt("--entrypoint", VALUE, "Override the entrypoint of the image"),
        Opt("--service-ports", FLAG, "Run command with all service's ports enabled and "
                                     "mapped to the host"),
        Opt("-p,--publish", LIST, "Publish a container's port(s) to the host",
            metavar="stringArray"),
        Opt("--no-deps", FLAG, "Don't start linked services"),
        Opt("-T,--no-TTY", FLAG, "Disable pseudo-TTY allocation (default: auto-detected)",
            dest="no_tty"),
        Opt("-i,--interactive", FLAG, "Keep STDIN open even if not attached", default=True),
        Opt("-u,--user", VALUE, "Run as specified username or uid"),
        Opt("-w,--workdir", VALUE, "Working directory inside the container"),
        Opt("-v,--volume", LIST, "Bind mount a volume", metavar="stringArray"),
        Opt("--build", FLAG, "Build image before starting container"), _PULL,
        Opt("--quiet-pull", FLAG, "Pull without printing progress information"), _ORPHANS)),
    "start": ("[SERVICE...]", ()),
    "stop": ("[OPTIONS] [SERVICE...]", (_TIMEOUT,)),
    "restart": ("[OPTIONS] [SERVICE...]", (_TIMEOUT, Opt("--no-deps", FLAG, "Don't restart "
                                                                            "dependent services"))),
    "kill": ("[OPTIONS] [SERVICE...]", (
        Opt("-s,--signal", VALUE, "SIGNAL to send to the container", default="SIGKILL"),
        _ORPHANS)),
    "rm": ("[OPTIONS] [SERVICE...]", (
        Opt("-f,--force", FLAG, "Don't ask to confirm removal"),
        Opt("-s,--stop", FLAG, "Stop the containers, if required, before removing"),
        Opt("-v,--volumes", FLAG, "Remove any anonymous volumes attached to containers"))),
    "pause": ("[SERVICE...]", ()),
    "unpause": ("[SERVICE...]", ()),
    "top": ("[SERVICES...]", ()),
    "port": ("[OPTIONS] SERVICE PRIVATE_PORT", (
        Opt("--index", VALUE, "Index of the container if service has multiple replicas",
            default="1", metavar="int"),
        Opt("--protocol", VALUE, "tcp or udp", default="tcp"))),
    "images": ("[OPTIONS] [SERVICE...]", (
        Opt("-q,--quiet", FLAG, "Only display IDs"),
        Opt("--format", VALUE, "Format the output. Values: [table | json]", default="table"))),
    "ls": ("[OPTIONS]", (
        Opt("-a,--all", FLAG, "Show all stopped Compose projects"),
        Opt("-q,--quiet", FLAG, "Only display project names"),
        Opt("--format", VALUE, "Format the output. Values: [table | json]", default="table"),
        Opt("--filter", LIST, "Filter output based on conditions provided"))),
    "build": ("[OPTIONS] [SERVICE...]", (
        Opt("--no-cache", FLAG, "Do not use cache when building the image"),
        Opt("--pull", FLAG, "Always attempt to pull a newer version of the image"),
        Opt("-q,--quiet", FLAG, "Don't print anything to STDOUT"),
        Opt("--build-arg", LIST, "Set build-time variables for services",
            metavar="stringArray"))),
    "pull": ("[OPTIONS] [SERVICE...]", (
        Opt("-q,--quiet", FLAG, "Pull without printing progress information"),
        Opt("--ignore-pull-failures", FLAG, "Pull what it can and ignores images with pull "
                                            "failures"))),
    "cp": ("[OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n\trootless-box compose cp [OPTIONS] "
           "SRC_PATH|- SERVICE:DEST_PATH", (
        Opt("--index", VALUE, "Index of the container if service has multiple replicas",
            metavar="int"),
        Opt("-a,--archive", FLAG, "Archive mode (copy all uid/gid information)"),
        Opt("-L,--follow-link", FLAG, "Always follow symbol link in SRC_PATH"))),
    "push": ("[OPTIONS] [SERVICE...]", (
        Opt("--ignore-push-failures", FLAG, "Push what it can and ignores images with push "
                                            "failures"),
        Opt("-q,--quiet", FLAG, "Push without printing progress information"))),
    "version": ("[OPTIONS]", (
        Opt("-f,--format", VALUE, "Format the output. Values: [pretty | json]"),
        Opt("--short", FLAG, "Shows only Compose's version number"))),
}


def main(parsed, sub, rest):
    from .compose import SUBCOMMANDS
    usage, opts = VERBS[sub]
    cmd = Command("compose " + sub, "compose %s %s" % (sub, usage), SUBCOMMANDS[sub], opts,
                  interspersed=sub not in ("exec", "run"))
    sub_parsed = parse(cmd, rest)
    if sub_parsed.help:
        sys.stdout.write(cmd.help_text())
        return 0
    check_arity(cmd, sub_parsed)
    handler = globals()["_" + sub]
    try:
        return handler(parsed, sub_parsed)
    except BoxError as exc:
        if exc.exit_code == 125 and sub not in ("run",):
            exc.exit_code = 1  # Compose exits 1 on an error, whichever op raised it
        raise


# -- helpers --------------------------------------------------------------------------------

def _report(kind, name, status):
    sys.stderr.write(" %s %s  %s\n" % (kind, name, status))
    sys.stderr.flush()


def _warn(text):
    sys.stderr.write("WARN[0000] %s\n" % text)
    sys.stderr.flush()


def _load(parsed, names=(), with_deps=True, pull="missing", quiet_pull=False):
    """-> compose/project.Project over the services named (and what they depend on)."""
    from ..compose import loader
    from ..compose.project import Project
    from .compose import _options
    from .run import puller
    try:
        loaded = loader.load(_options(parsed))
    except NotFound as exc:
        # `-p NAME down|ps|logs|stop|...` with no file: the project's containers, networks
        # and volumes by their labels (Compose v2 does the same)
        name = parsed.project_name or os.environ.get("COMPOSE_PROJECT_NAME")
        if not name or not exc.message.startswith("no configuration file") or names:
            raise
        loaded = loader.Project(name, os.getcwd(), [], {}, {"services": {}}, [], [], [])
    for warning in loaded.warnings:
        _warn(warning)
    if with_deps:
        selected = loader.select(loaded, names)
    else:
        for n in names:
            if n not in loaded.model["services"]:
                raise NotFound("no such service: %s" % n, exit_code=1)
        selected = {n: loaded.model["services"][n] for n in names}
    services = loader.resolve_environment(loaded, selected)
    return Project(loaded, services, report=_report, warn=_warn,
                   pull=puller(pull or "missing", quiet=quiet_pull), build=_build_one,
                   pull_for=lambda policy: puller(
                       policy if policy in ("always", "never") else "missing",
                       quiet=quiet_pull))


def _int(text, flag):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise UsageError('invalid argument "%s" for "%s" flag' % (text, flag),
                         exit_code=1) from None


def _display(p_name, record):
    name = record["Name"]
    return name[len(p_name) + 1:] if name.startswith(p_name + "-") else name


def _scale(items):
    out = {}
    for item in items:
        svc, eq, num = item.partition("=")
        if not eq or not num.isdigit():
            raise UsageError("invalid --scale %r: SERVICE=NUM" % item, exit_code=1)
        out[svc] = int(num)
    return out


def _build_one(p, name, svc, no_cache=False, pull=False, extra_args=None):
    """A service's build section through `build`'s own executor; the image is tagged as
    compose names it (image:, else project-service)."""
    from ..dockerfile.executor import BuildOptions, build
    from ..userns import idmap as idmaps
    from .build import _pull_missing
    spec = svc["build"]
    context = spec.get("context") or p.loaded.workdir
    if "://" in context:
        raise UsageError("service %s: a remote build context is not supported yet" % name,
                         exit_code=1)
    dockerfile, text = None, None
    if spec.get("dockerfile_inline"):
        text = spec["dockerfile_inline"].encode()
    elif spec.get("dockerfile"):
        dockerfile = spec["dockerfile"]
        if not os.path.isabs(dockerfile):
            dockerfile = os.path.join(context, dockerfile)
    args = {k: ("" if v is None else str(v)) for k, v in (spec.get("args") or {}).items()}
    args.update(extra_args or {})
    hosts = spec.get("extra_hosts") or []
    if isinstance(hosts, dict):
        hosts = ["%s:%s" % kv for kv in hosts.items()]
    tag = p.image_of(name)
    _report("Service", name, "Building")
    opts = BuildOptions(context, dockerfile, text, [tag], args, spec.get("target"), no_cache,
                        dict(spec.get("labels") or {}), False,
                        "none" if spec.get("network") == "none" else "host",
                        pull=_pull_missing, pull_always=pull, add_hosts=hosts)
    idmap = idmaps.plan()
    from ..ops.storage import open_store

    def emit(kind, line):
        if kind == "warning":
            _warn(line)
        else:
            sys.stderr.write(line + "\n")
    # the steps' own output is progress too: stderr, as Compose prints builds (stdout stays
    # the verbs' data, e.g. `run`'s)
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    store = open_store(idmap)
    try:
        image_id = build(store, idmap, opts, emit)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        from ..ops.storage import empty_trash
        empty_trash(store, detach=True)
    _report("Service", name, "Built")
    return image_id


# -- up / create ----------------------------------------------------------------------------

def _up_options(opts):
    from ..compose.project import UpOptions
    if opts.force_recreate and opts.no_recreate:
        raise UsageError("--force-recreate and --no-recreate are incompatible", exit_code=1)
    if opts.build and opts.no_build:
        raise UsageError("--build and --no-build are incompatible", exit_code=1)
    return UpOptions(force_recreate=opts.force_recreate, no_recreate=opts.no_recreate,
                     remove_orphans=opts.remove_orphans, scale=_scale(opts.scale),
                     build=opts.build, no_build=opts.no_build,
                     timeout=_int(getattr(opts, "timeout", None), "--timeout"))


def _create(parsed, opts):
    from ..compose import project as proj
    p = _load(parsed, opts.args, pull=opts.pull)
    proj.up(p, _up_options(opts), sorted(p.services), start=False)
    return 0


def _up(parsed, opts):
    from ..compose import project as proj
    cascade = opts.abort_on_container_exit or bool(opts.exit_code_from)
    detach = opts.detach or opts.wait
    if detach and cascade:
        raise UsageError("--abort-on-container-exit and --detach are incompatible",
                         exit_code=1)
    upo = _up_options(opts)
    p = _load(parsed, opts.args, with_deps=not opts.no_deps, pull=opts.pull,
              quiet_pull=opts.quiet_pull)
    if opts.exit_code_from and opts.exit_code_from not in p.services:
        raise NotFound("no such service: %s" % opts.exit_code_from, exit_code=1)
    for name in upo.scale:
        if name not in p.services:
            raise NotFound("no such service: %s" % name, exit_code=1)
    import time
    since = time.time_ns()  # attached: the output of this run, not of earlier ones
    plan, started = proj.up(p, upo, sorted(p.services), start=not opts.no_start)
    if opts.no_start:
        return 0
    if opts.wait:
        proj.wait_ready(p, started, _int(opts.wait_timeout, "--wait-timeout"))
        return 0
    if detach:
        return 0
    records = [r for _n, rs in plan for r in rs]
    return _attach(p, records, opts, cascade, opts.exit_code_from, since)


def _prefixer(p, records, opts):
    from ..compose.project import label
    names = {r["Id"]: _display(p.name, r) for r in records}
    width = max([len(n) for n in names.values()] or [0])
    color = not opts.no_color and os.isatty(1) and os.environ.get("NO_COLOR") is None
    services = sorted({label(r, "service") or "" for r in records})
    prefixes = {}
    for r in records:
        if opts.no_log_prefix:
            prefixes[r["Id"]] = ""
            continue
        text = "%-*s | " % (width + 1, names[r["Id"]])
        if color:
            code = _COLORS[services.index(label(r, "service") or "") % len(_COLORS)]
            text = "\033[%sm%s\033[0m" % (code, text)
        prefixes[r["Id"]] = text
    return names, prefixes


def _line(prefix, entry, timestamps):
    from ..ops import logwriter
    text = entry.log
    if timestamps:
        text = logwriter.format_time(entry.ns, fixed=True) + " " + text
    if not text.endswith("\n"):
        text += "\n"
    return prefix + text


def _followers(p, records, tail=None, since=None, until=None, follow=True):
    """One thread per container feeding (kind, record, entry) into a queue: "line" per log
    entry, "end" when the container stops (follow) or its log is read."""
    import queue
    import threading
    from ..ops import containers as container_ops
    from ..ops import logfile
    q = queue.Queue()

    def one(record):
        path = record.get("LogPath") or container_ops.log_path(p.store, record["Id"])
        cid = record["Id"]

        def running():
            current = p.store.read_container(cid)
            if current is None:
                return False
            state = container_ops.refresh_state(p.store, current).get("State", {})
            return state.get("Status") in container_ops.LIVE_STATES
        try:
            if follow:
                entries = logfile.follow(path, running, tail=tail, since=since, until=until)
            elif not os.path.exists(path):
                entries = ()
            elif tail is None:
                entries = logfile.read_entries(path, since=since, until=until)
            else:
                entries = (e for e in logfile.tail(path, tail)
                           if (since is None or e.ns >= since) and
                           (until is None or e.ns <= until))
            for entry in entries:
                q.put(("line", record, entry))
        finally:
            q.put(("end", record, None))
    for record in records:
        threading.Thread(target=one, args=(record,), daemon=True).start()
    return q


def _stop_all(p, records, timeout=None):
    """Stop the live ones among records, dependents first, a depth's containers together."""
    from ..compose.project import parallel, stop_groups
    from ..ops import containers as container_ops
    from ..ops import lifecycle

    def one(record):
        current = p.store.read_container(record["Id"])
        if current is None:
            return
        if container_ops.refresh_state(p.store, current)["State"].get("Status") in \
                container_ops.LIVE_STATES:
            _report("Container", record["Name"], "Stopping")
            lifecycle.stop(p.store, record["Id"], timeout)
            _report("Container", record["Name"], "Stopped")
    for group in stop_groups(p, records):
        parallel([lambda r=r: one(r) for r in group])


def _attach(p, records, opts, cascade, exit_from, since=None):
    """The attached `up`: every container's output, prefixed, until all have stopped; ^C
    stops them all (exit 0, as Compose v2); with cascade the first exit stops the rest."""
    import queue
    from ..compose.project import label
    if not records:
        return 0
    names, prefixes = _prefixer(p, records, opts)
    sys.stdout.write("Attaching to %s\n" % ", ".join(names[r["Id"]] for r in records))
    sys.stdout.flush()
    q = _followers(p, records, since=since)
    alive, code, aborting = len(records), 0, False
    try:
        while alive:
            try:
                kind, record, entry = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "line":
                sys.stdout.write(_line(prefixes[record["Id"]], entry, opts.timestamps))
                sys.stdout.flush()
                continue
            alive -= 1
            current = p.store.read_container(record["Id"]) or record
            exit_code = (current.get("State") or {}).get("ExitCode") or 0
            sys.stdout.write("%s exited with code %d\n" % (names[record["Id"]], exit_code))
            sys.stdout.flush()
            if cascade:
                service = label(record, "service")
                if exit_from is None:
                    exit_from = service
                if service == exit_from:
                    code = exit_code
                if not aborting:
                    aborting = True
                    sys.stdout.write("Aborting on container exit...\n")
                    sys.stdout.flush()
                    _stop_all(p, records, _timeout_of(opts))
    except KeyboardInterrupt:
        sys.stderr.write("Gracefully stopping... (press Ctrl+C again to force)\n")
        _stop_all(p, records, _timeout_of(opts))
        return 0
    return code


def _timeout_of(opts):
    return _int(getattr(opts, "timeout", None), "--timeout")


# -- down / ps / logs -----------------------------------------------------------------------

def _down(parsed, opts):
    from ..compose import project as proj
    if opts.rmi not in (None, "all", "local"):
        raise UsageError('invalid --rmi option "%s"' % opts.rmi, "use all or local",
                         exit_code=1)
    p = _load(parsed)
    proj.down(p, remove_orphans=opts.remove_orphans, volumes=opts.volumes,
              timeout=_int(opts.timeout, "--timeout"), images=opts.rmi)
    return 0


def _records(p, names, all_=True, oneoff=False):
    from ..ops import containers as container_ops
    for n in names:
        if n not in p.loaded.model["services"]:
            raise NotFound("no such service: %s" % n, exit_code=1)
    records = p.containers(names or None, oneoff=oneoff)
    if not all_:
        records = [r for r in (container_ops.refresh_state(p.store, r) for r in records)
                   if r["State"].get("Status") in container_ops.LIVE_STATES]
    return records


def _publishers(record):
    out = []
    ports = (record.get("NetworkSettings") or {}).get("Ports") or {}
    for key, binds in sorted(ports.items()):
        port, _, proto = key.partition("/")
        for b in binds or [None]:
            out.append({"URL": (b or {}).get("HostIp", ""), "TargetPort": int(port),
                        "PublishedPort": int((b or {}).get("HostPort") or 0),
                        "Protocol": proto or "tcp"})
    return out


def _ps(parsed, opts):
    import json
    from ..compose.project import label
    from ..ops import containers as container_ops
    from . import ps as ps_cmd
    from .images import compile_format, write_formatted
    p = _load(parsed)
    if opts.services:
        names = opts.args or sorted(p.loaded.model["services"])
        for n in names:
            if n not in p.loaded.model["services"]:
                raise NotFound("no such service: %s" % n, exit_code=1)
        running = {label(r, "service") for r in _records(p, opts.args, all_=opts.all)}
        sys.stdout.write("".join(n + "\n" for n in names if n in running))
        return 0
    records = _records(p, opts.args, all_=opts.all or bool(opts.status),
                       oneoff=None if opts.all else False)
    records = [container_ops.refresh_state(p.store, r) for r in records]
    if opts.status:
        records = [r for r in records if r["State"].get("Status") in opts.status]
    if opts.quiet:
        sys.stdout.write("".join((r["Id"] if opts.no_trunc else r["Id"][:12]) + "\n"
                                 for r in records))
        return 0
    cache = {}
    rows = []
    for r in records:
        row = ps_cmd.row(p.store, r, not opts.no_trunc, False, cache)
        state = r.get("State") or {}
        row.update({"Name": r["Name"], "Service": label(r, "service") or "",
                    "Project": p.name, "Health": (state.get("Health") or {}).get("Status", ""),
                    "ExitCode": str(state.get("ExitCode") or 0),
                    "Publishers": _publishers(r)})
        rows.append(row)
    if opts.format == "json":
        keys = ("Command", "CreatedAt", "ExitCode", "Health", "ID", "Image", "Labels",
                "LocalVolumes", "Mounts", "Name", "Names", "Networks", "Ports", "Project",
                "Publishers", "RunningFor", "Service", "Size", "State", "Status")
        for row in rows:
            obj = {k: row[k] for k in keys}
            obj["ExitCode"] = int(obj["ExitCode"])
            sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        return 0
    default = "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t" \
              "{{.Status}}\t{{.Ports}}"
    compiled = compile_format(None if opts.format == "table" else opts.format, default)
    headers = dict(ps_cmd.HEADERS, Name="NAME", Service="SERVICE", Project="PROJECT",
                   Health="HEALTH", ExitCode="EXIT CODE", Publishers="PUBLISHERS")
    write_formatted(compiled, rows, headers)
    return 0


def _logs(parsed, opts):
    import queue
    from .logs import _tail_count, parse_timestamp
    import time
    p = _load(parsed)
    records = _records(p, opts.args, all_=True, oneoff=None)
    index = _int(opts.index, "--index")
    if index is not None:
        from ..compose.project import label
        records = [r for r in records if label(r, "container-number") == str(index)]
    if not records:
        return 0
    now = time.time_ns()
    since = parse_timestamp(opts.since, now) if opts.since else None
    until = parse_timestamp(opts.until, now) if opts.until else None
    _names, prefixes = _prefixer(p, records, opts)
    q = _followers(p, records, tail=_tail_count(opts.tail), since=since, until=until,
                   follow=opts.follow)
    alive = len(records)
    pending = []
    try:
        while alive:
            try:
                kind, record, entry = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "end":
                alive -= 1
            elif opts.follow:
                sys.stdout.write(_line(prefixes[record["Id"]], entry, opts.timestamps))
                sys.stdout.flush()
            else:
                pending.append((entry.ns, prefixes[record["Id"]], entry))
    except KeyboardInterrupt:
        return 130
    pending.sort(key=lambda t: t[0])
    for _ns, prefix, entry in pending:
        sys.stdout.write(_line(prefix, entry, opts.timestamps))
    return 0


# -- exec / run -----------------------------------------------------------------------------

def _one(p, service, index, oneoff=False):
    from ..compose.project import label
    if service not in p.loaded.model["services"]:
        raise NotFound("no such service: %s" % service, exit_code=1)
    for r in p.containers([service], oneoff=oneoff):
        if label(r, "container-number") == str(index):
            return r
    raise NotFound("service \"%s\" is not running" % service, exit_code=1)


def _exec(parsed, opts):
    from ..ops import exec as exec_ops
    if len(opts.args) < 2:
        raise UsageError('"compose exec" requires at least 2 arguments',
                         "see 'rootless-box compose exec --help'", exit_code=1)
    if opts.privileged:
        raise UsageError("--privileged is not supported: an exec'd process gets the "
                         "container's own capabilities", exit_code=1)
    p = _load(parsed)
    record = _one(p, opts.args[0], _int(opts.index, "--index"))
    tty = not opts.no_tty and not opts.detach and os.isatty(0)
    xo = exec_ops.ExecOptions(record["Id"], opts.args[1:], env=opts.env, workdir=opts.workdir,
                              user=opts.user, interactive=not opts.detach and tty,
                              tty=tty, detach=opts.detach)
    return exec_ops.exec_in(xo)


def _run(parsed, opts):
    from ..compose import project as proj
    from ..ops import run as run_ops
    if not opts.args:
        raise UsageError('"compose run" requires at least 1 argument',
                         "see 'rootless-box compose run --help'", exit_code=1)
    service = opts.args[0]
    p = _load(parsed, [service], with_deps=not opts.no_deps, pull=opts.pull,
              quiet_pull=opts.quiet_pull)
    svc = dict(p.services[service])
    svc.pop("restart", None)  # Compose clears a one-off's restart policy
    if isinstance(svc.get("deploy"), dict):
        svc["deploy"] = {k: v for k, v in svc["deploy"].items() if k != "restart_policy"}
    if opts.build or not opts.no_deps:
        proj.build_images(p, [service] if opts.no_deps else list(p.services), opts.build)
    else:
        proj.build_images(p, [service])
    if not opts.no_deps:
        proj.start_dependencies(p, service)
    proj.ensure_networks(p)
    proj.ensure_volumes(p)
    name = opts.name or proj.oneoff_name(p, service)
    tty = not opts.no_tty and not opts.detach and os.isatty(0) and os.isatty(1)

    def mutate(ro):
        if len(opts.args) > 1:
            ro.command = list(opts.args[1:])
        if opts.entrypoint is not None:
            ro.entrypoint = opts.entrypoint
        ro.env = list(ro.env) + list(opts.env)
        ro.labels = list(ro.labels) + list(opts.label)
        ro.volumes = list(ro.volumes) + list(opts.volume)
        if opts.user:
            ro.user = opts.user
        if opts.workdir:
            ro.workdir = opts.workdir
        if opts.service_ports:
            ro.publish = [proj._port_flag(x) for x in svc.get("ports") or ()]
        ro.publish = list(ro.publish) + list(opts.publish)
        ro.rm = opts.rm
        ro.detach = opts.detach
        ro.tty = tty
        ro.interactive = opts.interactive and not opts.detach
        ro.name = name
    ro, extra_nets = proj.run_options(p, service, svc, None, oneoff=name, extra_labels={
        proj.PREFIX + "slug": name.rsplit("-", 1)[-1]})
    mutate(ro)
    if opts.detach:
        from ..ops import networks as network_ops

        def connect(record):  # between its create and its start
            for net, aliases, ip, ip6 in extra_nets:
                network_ops.connect(p.store, net, record["Id"], aliases, ip, ip6=ip6)
        record = run_ops.run_detached(ro, warn=p.warn, pull=p.pull, created=connect)
        sys.stdout.write(record["Name"] + "\n")
        return 0
    # a foreground run is wired at its start: the other networks as run's repeated --network
    ro.networks = list(ro.networks) + [{"name": net, "aliases": list(aliases), "ip": ip,
                                        "ip6": ip6} for net, aliases, ip, ip6 in extra_nets]
    return run_ops.run(ro, warn=p.warn, pull=p.pull)


# -- start / stop / restart / kill / rm / pause / unpause -----------------------------------

def _start(parsed, opts):
    from ..compose import project as proj
    p = _load(parsed, opts.args)
    plan = [(n, p.containers([n])) for n in proj.order(p.services)]
    if not any(rs for _n, rs in plan):
        raise NotFound("no containers to start", exit_code=1)
    proj.start_services(p, plan)
    return 0


def _stop(parsed, opts):
    p = _load(parsed, opts.args, with_deps=False)
    _stop_all(p, _records(p, opts.args), _int(opts.timeout, "--timeout"))
    return 0


def _ordered(p, records):
    from ..compose.project import label, order
    rank = {n: i for i, n in enumerate(order(p.loaded.model["services"]))}
    return sorted(records, key=lambda r: rank.get(label(r, "service"), -1))


def _restart(parsed, opts):
    from ..ops import lifecycle
    p = _load(parsed, opts.args, with_deps=False)
    for r in _ordered(p, _records(p, opts.args)):
        _report("Container", r["Name"], "Restarting")
        from ..userns import idmap as idmaps
        lifecycle.restart(p.store, idmaps.plan(), r["Id"], _int(opts.timeout, "--timeout"))
        _report("Container", r["Name"], "Started")
    return 0


def _kill(parsed, opts):
    from ..ops import lifecycle
    p = _load(parsed, opts.args, with_deps=False)
    records = _records(p, opts.args, all_=False)
    if not records:
        raise NotFound("no container to kill", exit_code=1)
    for r in records:
        _report("Container", r["Name"], "Killing")
        lifecycle.kill(p.store, r["Id"], opts.signal)
        _report("Container", r["Name"], "Killed")
    return 0


def _rm(parsed, opts):
    from ..compose import project as proj
    from ..ops import containers as container_ops
    p = _load(parsed, opts.args, with_deps=False)
    records = [container_ops.refresh_state(p.store, r) for r in _records(p, opts.args)]
    if opts.stop:
        _stop_all(p, [r for r in records if r["State"].get("Status") in
                      container_ops.LIVE_STATES])
        records = [container_ops.refresh_state(p.store, r) for r in records]
    stopped = [r for r in records if r["State"].get("Status") not in
               container_ops.LIVE_STATES]
    if not stopped:
        sys.stderr.write("No stopped containers\n")
        return 0
    if not opts.force:
        sys.stdout.write("Going to remove %s\n" % ", ".join(r["Name"] for r in stopped))
        sys.stdout.write("? Are you sure you want to remove these containers? (y/N) ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    for r in stopped:
        proj.stop_remove(p, r, volumes=opts.volumes, stop=False)
    return 0


def _pause(parsed, opts, verb="pause"):
    from ..ops import pause as pause_ops
    p = _load(parsed, opts.args, with_deps=False)
    for r in _records(p, opts.args, all_=False):
        _report("Container", r["Name"], "Pausing" if verb == "pause" else "Unpausing")
        getattr(pause_ops, verb)(p.store, r["Id"])
        _report("Container", r["Name"], "Paused" if verb == "pause" else "Unpaused")
    return 0


def _unpause(parsed, opts):
    return _pause(parsed, opts, "unpause")


# -- top / port / images / ls / build / pull / version --------------------------------------

def _top(parsed, opts):
    from . import top as top_cmd
    p = _load(parsed, opts.args, with_deps=False)
    for r in _records(p, opts.args, all_=False):
        sys.stdout.write("%s\n" % r["Name"])
        sys.stdout.flush()
        args = parse(top_cmd.command("top", ""), [r["Id"]])
        top_cmd.main(args)
        sys.stdout.write("\n")
    return 0


def _port(parsed, opts):
    from ..ops import ports
    from ..ops import containers as container_ops
    if len(opts.args) != 2:
        raise UsageError('"compose port" requires exactly 2 arguments', exit_code=1)
    p = _load(parsed)
    record = container_ops.refresh_state(p.store, _one(p, opts.args[0],
                                                       _int(opts.index, "--index")))
    published = (record.get("NetworkSettings") or {}).get("Ports") or {} \
        if record["State"].get("Running") else {}
    key = "%s/%s" % (opts.args[1], opts.protocol)
    lines = ports.port_lines(published, key)
    if not lines:
        raise NotFound("no port %s for container %s" % (key, record["Name"]), exit_code=1)
    sys.stdout.write(lines[0].split(" -> ")[-1] + "\n")
    return 0


def _images(parsed, opts):
    import json
    from ..compose.project import label
    from ..ops import images as image_ops
    from ._common import human_size
    p = _load(parsed, opts.args, with_deps=False)
    rows = []
    for r in _records(p, opts.args):
        ref = r.get("ImageName") or ""
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "",
                                                                                    "latest")
        size = 0
        try:
            img = image_ops.resolve(p.store, r["Image"])
            size = img.record.get("size") or img.record.get("Size") or 0
        except BoxError:
            pass
        rows.append((r["Name"], repo, tag, r["Image"], size, label(r, "service")))
    if opts.quiet:
        sys.stdout.write("".join(sorted({row[3] + "\n" for row in rows})))
        return 0
    if opts.format == "json":
        sys.stdout.write(json.dumps([{"ID": row[3], "ContainerName": row[0],
                                      "Repository": row[1], "Tag": row[2],
                                      "Size": row[4]} for row in rows]) + "\n")
        return 0
    table = [("CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE")] + [
        (row[0], row[1], row[2], row[3].split(":")[-1][:12], human_size(row[4]))
        for row in rows]
    _table(table)
    return 0


def _table(table):
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        sys.stdout.write("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def _ls(parsed, opts):
    import json
    from ..compose.project import projects
    from ..ops import containers as container_ops
    from ..ops.storage import open_store
    store = open_store()
    rows = []
    for name, (records, files) in sorted(projects(store).items()):
        states = {}
        for r in records:
            status = container_ops.refresh_state(store, r)["State"].get("Status", "")
            states[status] = states.get(status, 0) + 1
        if not opts.all and not states.get("running"):
            continue
        text = ", ".join("%s(%d)" % kv for kv in sorted(states.items()))
        rows.append((name, text, files))
    if opts.quiet:
        sys.stdout.write("".join(r[0] + "\n" for r in rows))
    elif opts.format == "json":
        sys.stdout.write(json.dumps([{"Name": n, "Status": s, "ConfigFiles": f}
                                     for n, s, f in rows]) + "\n")
    else:
        _table([("NAME", "STATUS", "CONFIG FILES")] + rows)
    return 0


def _build(parsed, opts):
    p = _load(parsed, opts.args, with_deps=False) if opts.args else _load(parsed)
    extra = dict(a.partition("=")[::2] for a in opts.build_arg)
    for name in sorted(p.services):
        if p.services[name].get("build"):
            _build_one(p, name, p.services[name], opts.no_cache, opts.pull, extra)
    return 0


def _pull(parsed, opts):
    from ..ops.storage import open_store
    from ..userns import idmap as idmaps
    from .pull import pull_one
    p = _load(parsed, opts.args, with_deps=False) if opts.args else _load(parsed)
    idmap = idmaps.plan()
    store = open_store(idmap)
    failed = None
    for name in sorted(p.services):
        svc = p.services[name]
        if not svc.get("image") or (svc.get("build") and svc.get("pull_policy") == "build"):
            continue
        _report("Image", svc["image"], "Pulling")
        try:
            pull_one(store, idmap, svc["image"], None if opts.quiet else sys.stderr)
        except BoxError as exc:
            if not opts.ignore_pull_failures:
                raise
            failed = exc
            _warn(exc.message)
            continue
        _report("Image", svc["image"], "Pulled")
    return 0 if failed is None or opts.ignore_pull_failures else 1


def _cp(parsed, opts):
    from ..ops import cp as cp_ops
    if len(opts.args) != 2:
        raise UsageError('"compose cp" requires exactly 2 arguments', exit_code=1)
    p = _load(parsed)
    words = list(opts.args)
    found = False
    for i, word in enumerate(words):
        service, colon, path = word.partition(":")
        if colon and service in p.loaded.model["services"]:
            record = _one(p, service, _int(opts.index, "--index") or 1)
            words[i] = "%s:%s" % (record["Id"], path)
            found = True
    if not found:
        raise UsageError("one of the paths must be SERVICE:PATH, with a service of the "
                         "project", exit_code=1)
    cp_ops.copy(cp_ops.CpOptions(words[0], words[1], archive=opts.archive,
                                 follow_link=opts.follow_link))
    return 0


def _push(parsed, opts):
    from . import push as push_cmd
    p = _load(parsed, opts.args, with_deps=False) if opts.args else _load(parsed)
    failed = 0
    for name in sorted(p.services):
        image = p.services[name].get("image")
        if not image:
            continue
        _report("Image", image, "Pushing")
        try:
            push_cmd.main(parse(push_cmd.command("push", ""), (["-q"] if opts.quiet else [])
                                + [image]))
        except BoxError as exc:
            if not opts.ignore_push_failures:
                raise
            failed += 1
            _warn(exc.message)
            continue
        _report("Image", image, "Pushed")
    return 0


def _version(parsed, opts):
    import json
    from ..config import VERSION as __version__
    from ..compose.project import VERSION
    if opts.short:
        sys.stdout.write(VERSION + "\n")
    elif opts.format == "json":
        sys.stdout.write(json.dumps({"version": "v" + VERSION}) + "\n")
    else:
        sys.stdout.write("Docker Compose version v%s (rootless-box %s)\n"
                         % (VERSION, __version__))
    return 0
