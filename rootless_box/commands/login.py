"""`login [-u USER] [-p PASS | --password-stdin] [--tls-verify=false] [REGISTRY]`.

Owns: asking for what is missing (username on the terminal, password without echo), checking
the credentials against the registry before saving them (as Docker does: a wrong password is
never stored), and Docker's lines (`Login Succeeded`, the warning about -p). Must not: write
credential files itself (registry/credentials.py does) or print a secret.
"""

import os
import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import UsageError
from ._common import given, warn


def command(verb, summary):
    return Command(verb, "login [OPTIONS] [SERVER]", summary, (
        Opt("-u,--username", VALUE, "Username"),
        Opt("-p,--password", VALUE, "Password"),
        Opt("--password-stdin", FLAG, "Take the password from stdin"),
        Opt("--tls-verify", FLAG, "Require HTTPS and verify certificates (default true)"),
    ), max_args=1)


def _read_password(parsed):
    if parsed.password_stdin:
        if parsed.password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        if not parsed.username:
            raise UsageError("Must provide --username with --password-stdin")
        return sys.stdin.read().rstrip("\r\n")
    if parsed.password is not None:
        warn("Using --password via the CLI is insecure. Use --password-stdin.")
        return parsed.password
    if not os.isatty(0):
        raise UsageError("cannot ask for a password: stdin is not a terminal",
                         "use --password-stdin, e.g. echo \"$TOKEN\" | rootless-box login "
                         "-u USER --password-stdin REGISTRY")
    import getpass
    return getpass.getpass("Password: ")


def main(parsed):
    from ..ops import login as login_ops
    server = parsed.args[0] if parsed.args else "docker.io"
    username = parsed.username
    if not username:
        if parsed.password_stdin or not os.isatty(0):
            raise UsageError("Must provide --username with --password-stdin"
                             if parsed.password_stdin else "cannot ask for a username: stdin "
                             "is not a terminal", "give it with -u USER")
        sys.stderr.write("Username: ")
        sys.stderr.flush()
        username = sys.stdin.readline().strip()
    password = _read_password(parsed)
    if not username or not password:
        raise UsageError("username and password are both required")
    login_ops.login(server, username, password,
                    tls_verify=given(parsed, "tls_verify"))
    sys.stdout.write("Login Succeeded\n")
    return 0
