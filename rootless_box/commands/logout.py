"""`logout [REGISTRY]`: forget the saved login (Docker's `Removing login credentials for X`, or `Not logged in to X`).

Owns: the command's lines and exit status. Must not: edit credential files itself.
"""

import sys

from ..cliparse import Command


def command(verb, summary):
    return Command(verb, "logout [SERVER]", summary, (), max_args=1)


def main(parsed):
    from ..registry import credentials
    server = parsed.args[0] if parsed.args else "docker.io"
    key = credentials.normalize(server)
    if not credentials.erase(key):
        sys.stdout.write("Not logged in to %s\n" % key)  # Docker's answer, and exit 0
        return 0
    sys.stdout.write("Removing login credentials for %s\n" % key)
    return 0
