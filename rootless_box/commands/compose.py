"""`compose`: Docker Compose v2's grammar over rootless_box/compose/.

Owns: the global flags (`-f` repeated, `-p`, `--profile` repeated, `--env-file` repeated,
`--project-directory`, and the accepted-but-inert `--ansi`, `--progress`, `--parallel`,
`--compatibility`, `--dry-run`, `--all-resources`), the environment variables Compose reads
for them (COMPOSE_FILE, COMPOSE_PROJECT_NAME, COMPOSE_PROFILES, COMPOSE_PATH_SEPARATOR,
COMPOSE_DISABLE_ENV_FILE: read by the loader), the subcommand table, and `config`'s options
and output (also `convert`'s, Compose v2's alias; its `--format kube` is
compose/convert.py's). Warnings go to stderr, data to stdout.
The other verbs (up, down, ps, logs, exec, run, create, start, stop, restart, kill, rm,
pause, unpause, top, port, images, ls, cp, build, pull, push, version) are in
commands/composeverbs.py: their options, output and the attached `up`'s log printer; the
work is compose/project.py's.
Must not: load or validate files itself (compose/loader.py does).
"""

import os
import sys

from ..cliparse import FLAG, LIST, VALUE, Command, Opt, check_arity, parse
from ..errors import UsageError

GLOBAL = (
    Opt("-f,--file", LIST, "Compose configuration files", metavar="stringArray"),
    Opt("-p,--project-name", VALUE, "Project name"),
    Opt("--profile", LIST, "Specify a profile to enable", metavar="stringArray"),
    Opt("--env-file", LIST, "Specify an alternate environment file", metavar="stringArray"),
    Opt("--project-directory", VALUE, "Specify an alternate working directory\n(default: the "
                                      "path of the, first specified, Compose file)"),
    Opt("--ansi", VALUE, "Control when to print ANSI control characters "
                         "(\"never\"|\"always\"|\"auto\")", default="auto"),
    Opt("--progress", VALUE, "Set type of progress output (auto, tty, plain, json, quiet)"),
    Opt("--parallel", VALUE, "Control max parallelism, -1 for unlimited", default="-1",
        metavar="int"),
    Opt("--compatibility", FLAG, "Run compose in backward compatibility mode"),
    Opt("--dry-run", FLAG, "Execute command in dry run mode"),
    Opt("--all-resources", FLAG, "Include all resources, even those not used by services"),
)

# the verbs of Compose v2; those not built yet say so
SUBCOMMANDS = {
    "config": "Parse, resolve and render compose file in canonical format",
    "convert": "Alias of config; with --format kube, Kubernetes YAML for the services",
    "up": "Create and start containers", "down": "Stop and remove containers, networks",
    "ps": "List containers", "logs": "View output from containers",
    "exec": "Execute a command in a running container",
    "run": "Run a one-off command on a service", "build": "Build or rebuild services",
    "pull": "Pull service images", "push": "Push service images",
    "create": "Creates containers for a service", "start": "Start services",
    "stop": "Stop services", "restart": "Restart service containers",
    "kill": "Force stop service containers", "rm": "Removes stopped service containers",
    "pause": "Pause services", "unpause": "Unpause services",
    "top": "Display the running processes", "port": "Print the public port for a port binding",
    "images": "List images used by the created containers", "ls": "List running compose projects",
    "cp": "Copy files/folders between a service container and the local filesystem",
    "version": "Show the Docker Compose version information",
}


class _Compose(Command):
    __slots__ = ()

    def help_text(self, prog="rootless-box"):
        return _usage()


def command(verb, summary):
    return _Compose(verb, "compose [OPTIONS] COMMAND", summary, GLOBAL, interspersed=False)


def _usage():
    lines = ["", "Usage:  rootless-box compose [OPTIONS] COMMAND", "",
             "Define and run multi-container applications", "", "Options:"]
    options = Command("compose", "", "", GLOBAL).help_text()
    lines += [line for line in options.splitlines() if line.startswith("  ")]
    lines += ["", "Commands:"]
    lines += ["  %-10s %s" % (k, v) for k, v in sorted(SUBCOMMANDS.items())]
    lines += ["", "Run 'rootless-box compose COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _config_command(verb="config"):
    formats = "[yaml | json | kube]" if verb == "convert" else "[yaml | json]"
    return Command("compose " + verb, "compose %s [OPTIONS] [SERVICE...]" % verb,
                   SUBCOMMANDS[verb], (
                       Opt("--format", VALUE, "Format the output. Values: " + formats,
                           default="yaml"),
                       Opt("--images", FLAG, "Print the image names, one per line."),
                       Opt("--no-consistency", FLAG, "Don't check model consistency - "
                                                     "warning: may produce invalid Compose "
                                                     "output"),
                       Opt("--no-interpolate", FLAG, "Don't interpolate environment "
                                                     "variables"),
                       Opt("--networks", FLAG, "Print the network names, one per line."),
                       Opt("-o,--output", VALUE, "Save to file (default to stdout)"),
                       Opt("--profiles", FLAG, "Print the profile names, one per line."),
                       Opt("-q,--quiet", FLAG, "Only validate the configuration, don't print "
                                               "anything"),
                       Opt("--services", FLAG, "Print the service names, one per line."),
                       Opt("--volumes", FLAG, "Print the volume names, one per line."),
                   ))


def main(parsed):
    if not parsed.args:
        sys.stdout.write(_usage())
        return 0
    sub, rest = parsed.args[0], parsed.args[1:]
    if sub not in SUBCOMMANDS:
        raise UsageError('unknown docker command: "compose %s"' % sub,
                         "run 'rootless-box compose --help'", exit_code=1)
    if sub not in ("config", "convert"):
        return _verb(parsed, sub, rest)
    cmd = _config_command(sub)
    sub_parsed = parse(cmd, rest)
    if sub_parsed.help:
        sys.stdout.write(cmd.help_text())
        return 0
    check_arity(cmd, sub_parsed)
    if sub == "convert" and sub_parsed.format == "kube":
        return _kube(parsed, sub_parsed)
    return _config(parsed, sub_parsed)


def _kube(parsed, opts):
    """`convert --format kube`: compose/convert.py's documents, to stdout or -o FILE."""
    from ..compose import convert
    from .composeverbs import _load, _warn
    text, warnings = convert.to_yaml(_load(parsed, opts.args))
    for warning in warnings:
        _warn(warning)
    if opts.output:
        from ..store import atomic_write
        atomic_write(os.path.abspath(opts.output), text.encode(), 0o644)
        return 0
    sys.stdout.write(text)
    return 0


def _verb(parsed, sub, rest):
    from . import composeverbs
    return composeverbs.main(parsed, sub, rest)


def _options(parsed, interpolate=True, consistency=True):
    from .. import config
    if "-" in parsed.file:
        raise UsageError("a Compose file on standard input (-f -) is not supported yet",
                         "write it to a file and name that with -f", exit_code=1)
    from ..compose.loader import Options
    return Options(files=parsed.file, project_name=parsed.project_name,
                   profiles=parsed.profile, env_files=parsed.env_file,
                   project_directory=parsed.project_directory, interpolate=interpolate,
                   cache_dir=config.data_root(), consistency=consistency)


def _config(parsed, opts):
    from ..compose import canonical, loader
    if opts.format not in ("yaml", "json"):
        raise UsageError('unsupported format "%s"' % opts.format, exit_code=1)
    project = loader.load(_options(parsed, interpolate=not opts.no_interpolate,
                                   consistency=not (opts.no_consistency or
                                                    opts.no_interpolate)))
    for warning in project.warnings:
        sys.stderr.write("WARN[0000] %s\n" % warning)
    model = project.model
    if opts.no_interpolate:
        if opts.args:
            sys.stderr.write("WARN[0000] service filtering is not applied when "
                             "--no-interpolate is set\n")
    else:
        selected = loader.select(project, opts.args)
        model = dict(model, services=loader.resolve_environment(project, selected))
        _drop_unused(model)
    if opts.profiles:
        return _lines(project.all_profiles)
    if opts.services:
        return _lines(sorted(model["services"]))
    if opts.volumes:
        return _lines(sorted(model.get("volumes") or {}))
    if opts.networks:
        return _lines(sorted(model.get("networks") or {}))
    if opts.images:
        return _lines(s.get("image") or "%s-%s" % (project.name, n)
                      for n, s in sorted(model["services"].items()))
    if opts.quiet:
        return 0
    text = canonical.to_json(model) if opts.format == "json" else canonical.to_yaml(model)
    if opts.output:
        from ..store import atomic_write
        atomic_write(os.path.abspath(opts.output), text.encode(), 0o644)
        return 0
    sys.stdout.write(text)
    return 0


def _drop_unused(model):
    """compose-go's WithoutUnnecessaryResources: networks and volumes no selected service
    uses are left out."""
    services = model["services"].values()
    used_nets = {n for s in services for n in (s.get("networks") or {})}
    used_vols = {v.get("source") for s in services for v in (s.get("volumes") or ())
                 if v.get("type") == "volume"}
    for kind, used in (("networks", used_nets), ("volumes", used_vols)):
        table = model.get(kind)
        if table is not None:
            kept = {k: v for k, v in table.items() if k in used}
            if kept:
                model[kind] = kept
            else:
                model.pop(kind)


def _lines(items):
    for item in items:
        sys.stdout.write("%s\n" % item)
    return 0
