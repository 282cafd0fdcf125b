"""`version`: the tool's version, Python, kernel."""

import os
import sys

from .. import config
from ..cliparse import Command


def command(verb, summary):
    return Command(verb, "version", summary, (), max_args=0)


def main(parsed):
    uname = os.uname()
    sys.stdout.write("rootless-box version %s\nPython:  %s\nKernel:  %s\nOS/Arch: linux/%s\n"
                     % (config.VERSION, sys.version.split()[0], uname.release, uname.machine))
    return 0
