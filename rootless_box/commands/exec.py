"""`exec [OPTIONS] CONTAINER COMMAND [ARG...]`: Docker's flags -> ops.exec.ExecOptions."""

import os

from ..cliparse import FLAG, LIST, VALUE, Command, Opt
from ..errors import BoxError, UsageError
from ..ops import exec as exec_ops

OPTS = (
    Opt("-d,--detach", FLAG, "Detached mode: run command in the background"),
    Opt("--detach-keys", VALUE, "Override the key sequence for detaching a container "
                                "(refused: the exec'd process goes with this process)"),
    Opt("-e,--env", LIST, "Set environment variables", metavar="list"),
    Opt("--env-file", LIST, "Read in a file of environment variables", metavar="list"),
    Opt("-i,--interactive", FLAG, "Keep STDIN open even if not attached"),
    Opt("--privileged", FLAG, "Give extended privileges to the command (not supported)"),
    Opt("-t,--tty", FLAG, "Allocate a pseudo-TTY"),
    Opt("-u,--user", VALUE, 'Username or UID (format: "<name|uid>[:<group|gid>]")'),
    Opt("-w,--workdir", VALUE, "Working directory inside the container"),
)


def command(verb, summary):
    return Command(verb, "exec [OPTIONS] CONTAINER COMMAND [ARG...]", summary, OPTS,
                   min_args=2, interspersed=False)


def main(parsed):
    if parsed.privileged:
        raise UsageError("--privileged is not supported: an exec'd process gets the "
                         "container's own capabilities, as rootless as the container",
                         "leave out --privileged")
    if parsed.detach_keys is not None:
        raise UsageError("--detach-keys is not supported for exec: the exec'd process goes "
                         "with the rootless-box process that keeps its terminal, so it "
                         "cannot be left running", "use exec -d, or attach to the container")
    if parsed.tty and parsed.interactive and not parsed.detach and not os.isatty(0):
        # docker/cli's CheckTty, before anything starts; its CLI exits 1 on this
        raise BoxError("the input device is not a TTY",
                       "leave out -t when stdin is a pipe or a file", exit_code=1)
    opts = exec_ops.ExecOptions(
        parsed.args[0], parsed.args[1:], env=parsed.env, env_file=parsed.env_file,
        workdir=parsed.workdir, user=parsed.user, interactive=parsed.interactive,
        tty=parsed.tty, detach=parsed.detach)
    return exec_ops.exec_in(opts)
