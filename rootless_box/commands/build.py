"""`build [OPTIONS] PATH | -`: an image from a Dockerfile, with plain progress lines."""

import os
import sys
import tempfile

from ..dockerfile.executor import BuildOptions, build, build_times, parse_epoch
from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import UsageError
from ..ops.storage import empty_trash, open_store
from ..userns import idmap as idmaps
from ._common import warn


def command(verb, summary):
    return Command(verb, "build [OPTIONS] PATH | -", summary, (
        Opt("-t,--tag", LIST, "Name and optionally a tag in the \"name:tag\" format",
            metavar="list"),
        Opt("-f,--file", VALUE, "Name of the Dockerfile (default: \"PATH/Dockerfile\")"),
        Opt("--build-arg", LIST, "Set build-time variables", metavar="list"),
        Opt("--target", VALUE, "Set the target build stage to build"),
        Opt("--no-cache", FLAG, "Do not use cache when building the image"),
        Opt("--pull", FLAG, "Always attempt to pull a newer version of the image"),
        Opt("--label", LIST, "Set metadata for an image", metavar="list"),
        Opt("--platform", VALUE, "Set platform if server is multi-platform capable"),
        Opt("-q,--quiet", FLAG, "Suppress the build output and print image ID on success"),
        Opt("--iidfile", VALUE, "Write the image ID to the file"),
        Opt("--network", VALUE, "Set the networking mode for the RUN instructions during "
                                "build (host, none)"),
        Opt("--progress", VALUE, "Set type of progress output (auto, plain)"),
        Opt("--secret", LIST, "Secret to expose to the build (format: "
                              "\"id=mysecret[,src=/local/secret|,env=VAR]\")",
            metavar="stringArray"),
        Opt("--ssh", LIST, "SSH agent socket to expose to the build (format: "
                           "\"default|<id>[=<socket>]\")", metavar="stringArray"),
        Opt("--cache-from", LIST, "External cache sources "
                                  "(e.g., \"type=local,src=path/to/dir\")",
            metavar="stringArray"),
        Opt("--cache-to", LIST, "Cache export destinations "
                                "(e.g., \"type=local,dest=path/to/dir\")",
            metavar="stringArray"),
        Opt("--source-date-epoch", VALUE, "Time of the image's config and history, and the "
                                          "latest mtime in its new layers, in seconds since "
                                          "1970 (default $SOURCE_DATE_EPOCH, else 1980-01-01)",
            metavar="seconds"),
        Opt("--timestamp", VALUE, "Set the image's time and every mtime in its new layers "
                                  "to this many seconds since 1970", metavar="seconds"),
        Opt("-o,--output", LIST, "Output destination (format: \"type=local,dest=path\"; "
                                 "types local, tar, oci, docker, image, registry)",
            metavar="stringArray"),
        Opt("--push", FLAG, "Shorthand for \"--output=type=registry\""),
        Opt("--load", FLAG, "Shorthand for \"--output=type=docker\""),
        Opt("--metadata-file", VALUE, "Write build result metadata to a file"),
        Opt("--add-host", LIST, "Add a custom host-to-IP mapping (format: \"host:ip\")",
            metavar="list"),
        Opt("--no-cache-filter", LIST, "Do not cache specified stages", metavar="stringArray"),
        Opt("--build-context", LIST, "Additional build contexts (e.g., name=path, "
                                     "name=docker-image://REF, name=oci-layout://PATH)",
            metavar="stringArray"),
    ), min_args=1, max_args=1)


def _pairs(items, what):
    result = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise UsageError("invalid %s: %r" % (what, item), "use KEY=VALUE")
        if not eq and what == "--build-arg":
            if key not in os.environ:
                continue
            value = os.environ[key]
        result[key] = value
    return result


def _secrets(items):
    """--secret id=X,src=FILE | id=X,env=VAR (buildx's forms) -> {id: bytes}. Read now, so
    a file that changes later does not change the build halfway."""
    result = {}
    for item in items:
        fields = dict(f.partition("=")[::2] for f in item.split(",") if f)
        ident = fields.pop("id", "")
        kind = fields.pop("type", "")
        src = fields.pop("src", None) or fields.pop("source", None)
        env = fields.pop("env", None)
        if not ident or fields or kind not in ("", "file", "env") or (src and env):
            raise UsageError("invalid --secret %r" % item,
                             "use id=NAME,src=FILE or id=NAME,env=VARIABLE")
        if kind == "env" and src:
            src, env = None, src
        if not src and not env:
            env = ident if ident in os.environ else None
            src = None if env else ident
        if env:
            if env not in os.environ:
                raise UsageError("--secret %s: the environment variable %s is not set"
                                 % (ident, env))
            result[ident] = os.environ[env].encode("utf-8", "surrogateescape")
            continue
        try:
            with open(src, "rb") as f:
                result[ident] = f.read()
        except OSError as exc:
            raise UsageError("--secret %s: cannot read %s: %s" % (ident, src, exc.strerror)) \
                from None
    return result


def _ssh(items):
    """--ssh default | ID=SOCKET (buildx's; `default` and a bare ID mean $SSH_AUTH_SOCK) ->
    {id: socket path}. Key files (which BuildKit loads into an agent of its own) are refused:
    give an agent's socket (`ssh-agent` + `ssh-add KEY`)."""
    import stat
    result = {}
    for item in items:
        ident, eq, paths = item.partition("=")
        path = paths if eq else os.environ.get("SSH_AUTH_SOCK", "")
        if not ident or (eq and not path) or "," in paths:
            raise UsageError("invalid --ssh %r" % item, "use default or ID=SOCKET")
        if not path:
            raise UsageError("--ssh %s: SSH_AUTH_SOCK is not set" % item,
                             "start an agent (eval $(ssh-agent); ssh-add) or give "
                             "ID=SOCKET")
        try:
            is_socket = stat.S_ISSOCK(os.stat(path).st_mode)
        except OSError as exc:
            raise UsageError("--ssh %s: %s: %s" % (ident, path, exc.strerror)) from None
        if not is_socket:
            raise UsageError("--ssh %s: %s is not an agent's socket" % (ident, path),
                             "key files are not supported: load the key into an agent "
                             "(ssh-add) and give its socket")
        result[ident] = os.path.abspath(path)
    return result


def _build_contexts(items):
    if not items:
        return {}
    from ..ops.buildcontexts import parse
    return parse(items)


def _caches(items, to):
    if not items:
        return []
    from ..ops.buildcache import parse
    return [parse(item, to) for item in items]


def _pull_missing(store, idmap, name, missing):
    from .pull import pull_missing
    pull_missing(store, idmap, name, notice=missing)


def main(parsed):
    if parsed.args[0] != "-":
        return _main(parsed, parsed.args[0])
    # `build -`: the Dockerfile comes on stdin and the context is an empty directory
    empty = tempfile.mkdtemp(prefix="rootless-box-build-")
    try:
        return _main(parsed, empty)
    finally:
        try:
            os.rmdir(empty)
        except OSError:
            pass


def _main(parsed, context):
    dockerfile_text = None
    if parsed.args[0] == "-":
        dockerfile_text = sys.stdin.buffer.read()
    elif not os.path.isdir(context):
        raise UsageError("unable to prepare context: path %r not found" % context)
    dockerfile = parsed.file
    if dockerfile == "-":
        dockerfile_text, dockerfile = sys.stdin.buffer.read(), None
    elif dockerfile and not os.path.isabs(dockerfile):
        dockerfile = os.path.join(os.getcwd(), dockerfile) if os.path.exists(dockerfile) \
            else os.path.join(context, dockerfile)
    if parsed.network not in (None, "host", "none", "default"):
        raise UsageError("unsupported network mode for build: %s" % parsed.network)
    build_args = _pairs(parsed.build_arg, "--build-arg")
    epoch = parsed.source_date_epoch
    # buildx's order: the flag (Podman's), a --build-arg (read by the executor), the variable
    if epoch is None and os.environ.get("SOURCE_DATE_EPOCH") and \
            "SOURCE_DATE_EPOCH" not in build_args:
        epoch = os.environ["SOURCE_DATE_EPOCH"]
        what = "SOURCE_DATE_EPOCH"
    else:
        what = "--source-date-epoch"
    if parsed.timestamp is not None and parsed.source_date_epoch is not None:
        raise UsageError("--timestamp and --source-date-epoch cannot be used together",
                         "--timestamp sets every mtime; --source-date-epoch clamps them")
    opts = BuildOptions(context, dockerfile, dockerfile_text, parsed.tag,
                        build_args, parsed.target,
                        parsed.no_cache, _pairs(parsed.label, "--label"), parsed.quiet,
                        "none" if parsed.network == "none" else "host",
                        _secrets(parsed.secret), pull=_pull_missing,
                        pull_always=parsed.pull,
                        source_date_epoch=None if epoch is None else parse_epoch(epoch, what),
                        timestamp=None if parsed.timestamp is None else parse_epoch(
                            parsed.timestamp, "--timestamp"),
                        add_hosts=parsed.add_host,
                        build_contexts=_build_contexts(parsed.build_context),
                        cache_from=_caches(parsed.cache_from, False),
                        cache_to=_caches(parsed.cache_to, True),
                        no_cache_filter=[n for item in parsed.no_cache_filter
                                         for n in item.split(",") if n])
    if parsed.add_host:
        from ..ops.ports import parse_add_hosts
        parse_add_hosts(parsed.add_host)  # a bad one is one line before anything runs
    buildoutput = None
    outputs = []
    if parsed.output or parsed.push or parsed.metadata_file:
        from ..ops import buildoutput
        outputs = buildoutput.plan(parsed.output, parsed.push, parsed.load, parsed.tag)
    result_out = None
    if any(o["dest"] == "-" for o in outputs):
        if os.isatty(1):
            raise UsageError("refusing to write the output to a terminal",
                             "redirect it, or give dest=FILE")
        # the tar owns standard output: progress and the steps' own output go to stderr
        sys.stdout.flush()
        result_out = os.fdopen(os.dup(1), "wb")
        os.dup2(2, 1)
    opts.ssh = _ssh(parsed.ssh)
    idmap = idmaps.plan()
    if idmap.warning:
        warn(idmap.warning)
    store = open_store(idmap)

    def emit(kind, text):
        if kind == "warning":
            warn(text)
        elif not parsed.quiet:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    if not parsed.quiet and parsed.progress not in ("plain", None, "auto"):
        raise UsageError("unknown --progress %r" % parsed.progress, "use auto or plain")
    if not parsed.quiet and parsed.progress != "plain" and sys.stdout.isatty():
        from ..ui.buildprogress import RichSteps
        emit = RichSteps()

    try:
        image_id = build(store, idmap, opts, emit)
    finally:
        # the steps' directories it set aside (a rebuild's duplicate layers: thousands of
        # files) are deleted by a process of their own, after this answers
        empty_trash(store, detach=True)
    names = buildoutput.export(store, idmap, image_id, outputs, parsed.tag,
                               build_times(opts)[0], stdout=result_out) \
        if buildoutput else parsed.tag
    if result_out is not None:
        result_out.close()
    if parsed.metadata_file:
        from .. import fastjson
        with open(parsed.metadata_file, "wb") as f:
            f.write(fastjson.dumps(buildoutput.metadata(store, image_id, names)))
    if parsed.iidfile:
        with open(parsed.iidfile, "w") as f:
            f.write(image_id)
    if parsed.quiet:
        sys.stdout.write(image_id + "\n")
    else:
        for tag in parsed.tag:
            sys.stdout.write("Successfully tagged %s\n" % tag)
        sys.stdout.write(image_id + "\n")
    return 0
