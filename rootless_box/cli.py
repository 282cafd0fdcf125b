"""The command-line entry point: global options, the command table, and error reporting.

Owns: mapping a verb (and Docker's `image ...`/`container ...` group forms) to its module in
commands/, importing only that module (start-up time is a feature), and being the ONE place
that turns a BoxError into `rootless-box: error: ...` + `hint: ...` and an exit code.
Must not: contain command logic.
"""

import os
import sys

from . import cliparse, config
from .commands._common import report
from .errors import BoxError, UsageError

# verb -> (module in commands/, summary shown by --help)
COMMANDS = {
    "run": ("run", "Create and run a new container from an image"),
    "ps": ("ps", "List containers"),
    "rm": ("rm", "Remove one or more containers"),
    "rename": ("rename", "Rename a container"),
    "port": ("port", "List port mappings or a specific mapping for the container"),
    "top": ("top", "Display the running processes of a container"),
    "stats": ("stats", "Display a live stream of container(s) resource usage statistics"),
    "logs": ("logs", "Fetch the logs of a container"),
    "exec": ("exec", "Execute a command in a running container"),
    "cp": ("cp", "Copy files/folders between a container and the local filesystem"),
    "images": ("images", "List images"),
    "import": ("importcmd", "Import the contents from a tarball to create a filesystem image"),
    "rmi": ("rmi", "Remove one or more images"),
    "tag": ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "inspect": ("inspect", "Return low-level information on containers or images"),
    "build": ("build", "Build an image from a Dockerfile"),
    "commit": ("commit", "Create a new image from a container's changes"),
    "export": ("export", "Export a container's filesystem as a tar archive"),
    "diff": ("diff", "Inspect changes to files or directories on a container's filesystem"),
    "update": ("update", "Update configuration of one or more containers"),
    "events": ("events", "Get real time events from the server"),
    "save": ("save", "Save one or more images to a tar archive"),
    "load": ("load", "Load an image from a tar archive or STDIN"),
    "pull": ("pull", "Download an image from a registry"),
    "push": ("push", "Upload an image to a registry"),
    "login": ("login", "Log in to a registry"),
    "logout": ("logout", "Log out from a registry"),
    "history": ("history", "Show the history of an image"),
    "create": ("create", "Create a new container"),
    "start": ("start", "Start one or more stopped containers"),
    "stop": ("stop", "Stop one or more running containers"),
    "restart": ("restart", "Restart one or more containers"),
    "kill": ("kill", "Kill one or more running containers"),
    "wait": ("wait", "Block until one or more containers stop, then print their exit codes"),
    "attach": ("attach", "Attach local standard input, output, and error streams to a running "
                         "container"),
    "pause": ("pause", "Pause all processes within one or more containers"),
    "unpause": ("pause", "Unpause all processes within one or more containers"),
    "info": ("info", "Display what this machine supports and how to fix what it lacks"),
    "version": ("version", "Show the rootless-box version information"),
    "compose": ("compose", "Define and run multi-container applications"),
    "completion": ("completion", "Generate the autocompletion script for the specified shell"),
}
GROUPS = {
    "image": {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi", "tag": "tag",
              "inspect": "inspect", "import": "import", "from-host": "image from-host",
              "save": "save", "load": "load", "history": "history", "prune": "image prune",
              "pull": "pull", "push": "push",
              "build": "build"},
    "container": {"ls": "ps", "list": "ps", "rm": "rm", "remove": "rm", "run": "run",
                  "rename": "rename", "port": "port", "top": "top", "stats": "stats",
                  "prune": "container prune",
                  "logs": "logs",
                  "exec": "exec",
                  "cp": "cp",
                  "inspect": "inspect", "commit": "commit", "export": "export",
                  "diff": "diff", "update": "update",
                  "create": "create", "start": "start", "stop": "stop", "restart": "restart",
                  "kill": "kill", "wait": "wait", "pause": "pause", "unpause": "unpause",
                  "attach": "attach"},
    "system": {"df": "system df", "prune": "system prune", "info": "info",
               "events": "events", "service": "system service"},
    "builder": {"prune": "builder prune", "build": "build"},
    "generate": {"systemd": "generate systemd", "kube": "generate kube"},
    "kube": {"play": "kube play", "generate": "generate kube", "down": "kube down"},
    "volume": {"create": "volume create", "ls": "volume ls", "list": "volume ls",
               "inspect": "volume inspect", "rm": "volume rm", "remove": "volume rm",
               "prune": "volume prune"},
    "network": {"create": "network create", "ls": "network ls", "list": "network ls",
                "inspect": "network inspect", "rm": "network rm", "remove": "network rm",
                "prune": "network prune", "connect": "network connect",
                "disconnect": "network disconnect"},
}
EXTRA = {"image from-host": ("fromhost", "Make a base image from host binaries and the "
                                         "shared libraries they need (no download)"),
         "image prune": ("imageprune", "Remove unused images"),
         "builder prune": ("builderprune", "Remove build cache"),
         "container prune": ("containerprune", "Remove all stopped containers"),
         "generate systemd": ("generate", "Generate a systemd user unit for a container"),
         "generate kube": ("generatekube", "Generate Kubernetes YAML from containers"),
         "kube play": ("kube", "Run the Pods and Deployments of a Kubernetes YAML file"),
         "kube down": ("kube", "Remove what kube play made from a Kubernetes YAML file"),
         "system df": ("systemdf", "Show disk usage"),
         "system prune": ("systemprune", "Remove unused data"),
         "system service": ("service", "Serve Docker's Engine API on a unix socket"),
         "volume create": ("volume", "Create a volume"),
         "volume ls": ("volume", "List volumes"),
         "volume inspect": ("volume", "Display detailed information on one or more volumes"),
         "volume rm": ("volume", "Remove one or more volumes"),
         "volume prune": ("volume", "Remove unused local volumes"),
         "network create": ("network", "Create a network"),
         "network ls": ("network", "List networks"),
         "network inspect": ("network", "Display detailed information on one or more "
                                        "networks"),
         "network rm": ("network", "Remove one or more networks"),
         "network prune": ("network", "Remove all unused networks"),
         "network connect": ("network", "Connect a container to a network"),
         "network disconnect": ("network", "Disconnect a container from a network")}
GROUP_SUMMARIES = {"image": "Manage images", "container": "Manage containers",
                   "system": "Manage rootless-box", "builder": "Manage builds",
                   "generate": "Generate systemd units and Kubernetes YAML",
                   "kube": "Play and generate Kubernetes YAML", "volume": "Manage volumes",
                   "network": "Manage networks"}


def table():
    """Every command line the tables accept: (words, verb key, module, summary); a group
    alone is a row with no key or module."""
    rows = [((verb,), verb, mod, summary) for verb, (mod, summary) in COMMANDS.items()]
    for group, subs in GROUPS.items():
        rows.append(((group,), None, None, GROUP_SUMMARIES[group]))
        for sub, target in subs.items():
            rows.append(((group, sub), target) + (EXTRA.get(target) or COMMANDS[target]))
    return rows


def _group_usage(group):
    lines = ["", "Usage:  rootless-box %s COMMAND" % group, "", GROUP_SUMMARIES[group], "",
             "Commands:"]
    for words, _key, _mod, summary in table():
        if words[0] == group and len(words) == 2:
            lines.append("  %-10s %s" % (words[1], summary))
    lines += ["", "Run 'rootless-box %s COMMAND --help' for more information on a command."
              % group]
    return "\n".join(lines) + "\n"


def _usage():
    lines = ["", "Usage:  rootless-box [OPTIONS] COMMAND", "",
             "A daemonless, rootless, Docker-compatible container tool", "", "Commands:"]
    width = max(map(len, list(COMMANDS) + list(GROUPS))) + 2
    for verb, (_mod, summary) in COMMANDS.items():
        lines.append("  %s%s" % (verb.ljust(width), summary))
    lines += ["", "Management commands:"]
    for group, subs in GROUPS.items():
        # aliases (ls/list, rm/remove) named once: the first spelling of each target
        firsts = {}
        for sub, target in subs.items():
            firsts.setdefault(target, sub)
        text = "%s (%s)" % (GROUP_SUMMARIES[group], ", ".join(firsts.values()))
        while len(text) > 78 - width:
            cut = text.rfind(" ", 0, 78 - width)
            lines.append("  %s%s" % (group.ljust(width), text[:cut]))
            group, text = "", text[cut + 1:]
        lines.append("  %s%s" % (group.ljust(width), text))
    lines += ["", "Global options:", "  -D, --debug     Show tracebacks of internal errors",
              "  -v, --version   Print version information and quit",
              "  -h, --help      Print usage", "",
              "Run 'rootless-box COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _resolve(argv):
    """-> (verb key, module, summary, remaining args)."""
    verb = argv[0]
    if verb in GROUPS:
        if len(argv) < 2 or argv[1] in ("-h", "--help"):
            return (verb, None, None, argv[1:])
        target = GROUPS[verb].get(argv[1])
        if target is None:
            raise UsageError('unknown command "%s %s"' % (verb, argv[1]),
                             "run 'rootless-box --help'")
        if target in EXTRA:
            return (target,) + EXTRA[target] + (argv[2:],)
        return (target,) + COMMANDS[target] + (argv[2:],)
    if verb not in COMMANDS:
        raise UsageError('unknown command "%s" for "rootless-box"' % verb,
                         "run 'rootless-box --help'")
    return (verb,) + COMMANDS[verb] + (argv[1:],)


def dispatch(argv):
    while argv and argv[0].startswith("-"):
        flag = argv.pop(0)
        if flag in ("-D", "--debug"):
            os.environ["RBX_DEBUG"] = "1"
        elif flag in ("-v", "--version"):
            sys.stdout.write("rootless-box version %s\n" % config.VERSION)
            return 0
        elif flag in ("-h", "--help"):
            sys.stdout.write(_usage())
            return 0
        else:
            raise UsageError("unknown flag: %s" % flag, "run 'rootless-box --help'")
    if not argv:
        sys.stdout.write(_usage())
        return 0
    verb, module_name, summary, rest = _resolve(argv)
    if module_name is None:  # a group alone, as Docker: its subcommands
        sys.stdout.write(_group_usage(verb))
        return 0
    # what a command imports is kept for the process's life: collections meanwhile (a dozen
    # for `run`) would find no garbage in it
    import gc
    gc.disable()
    try:
        module = __import__("rootless_box.commands." + module_name, fromlist=["main"])
    finally:
        gc.enable()
    command = module.command(verb, summary)
    parsed = cliparse.parse(command, rest)
    parsed.table = table  # for `completion`, as cobra commands reach their root
    if parsed.help:
        sys.stdout.write(command.help_text())
        return 0
    try:
        cliparse.check_arity(command, parsed)
        return module.main(parsed) or 0
    except BoxError as exc:
        # Docker's CLI: 125 is run's and create's "the tool failed" (and every command's
        # bad flag, above); any other command that fails, a wrong count of arguments
        # included, exits 1
        if exc.exit_code == 125 and module_name not in _EXIT_125:
            exc.exit_code = 1
        raise


_EXIT_125 = ("run", "create")


def _hidden(argv):
    """The monitor's own modes (ops/monitor.py) and completion's callback: never typed by
    users. A frozen binary is re-executed with `__watch` and `__monitor` (it has no
    `python -c`): `__watch` becomes the watcher and imports no more than ops/watch.py does
    (it stays resident, one per container); `__monitor` restarts or removes a container."""
    if argv[0] == "__complete":  # the completion scripts' callback (commands/completion.py)
        from .commands.completion import names
        return names(argv[1:])
    if argv[0] == "__health":  # a container's health checker (ops/health.py)
        from .ops.health import main as health
        return health(argv[1:])
    if argv[0] == "__watch":  # a frozen binary's watcher (ops/monitor.watcher_argv)
        from .ops.watch import main as watch
        return watch(argv[1:])
    from .ops.monitor import serve_again
    return serve_again(argv[2], argv[1])


def leave(code):
    """The command's end, for the entry scripts: exit with code without the interpreter's
    finalization, which frees every object of every module one by one (~2 ms of CPU after
    a `run`, 5% of a `run --rm true`: issue 19) where the kernel frees the process at once.
    What that finalization does that matters still happens: atexit handlers, the standard
    streams flushed. Not with another thread alive (a normal exit waits for it), nor when a
    flush fails (the normal exit reports it as Python does) or code is not a status."""
    import atexit
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code <= 255 and \
            ("threading" not in sys.modules or sys.modules["threading"].active_count() == 1):
        atexit._run_exitfuncs()
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
        except Exception:
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if getattr(sys, "frozen", False):
        # before anything: every child, host helper and `-e NAME` copies from os.environ
        config.unbundle_environ()
    try:
        if argv and argv[0] in ("__watch", "__monitor", "__complete", "__health"):
            return _hidden(argv)
        return dispatch(argv)
    except BoxError as exc:
        if config.debug():
            import traceback
            traceback.print_exc()
        report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head`: not an error (Docker exits quietly too).
        try:
            sys.stdout = None
        except Exception:
            pass
        return 0
    except Exception as exc:  # an internal bug: one line, traceback only on request
        if config.debug():
            import traceback
            traceback.print_exc()
        report(BoxError("internal error: %s: %s" % (type(exc).__name__, exc),
                        "run again with --debug (or RBX_DEBUG=1) and report the traceback"))
        return 125
