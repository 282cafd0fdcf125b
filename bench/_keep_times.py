"""A rootless-box build as builds were before issue 20 made them reproducible: the layers keep
every file's mtime, configs and history get the wall clock, no .pyc header is rewritten (RUN
steps are still told an epoch: setting a variable costs nothing). Only bench/reproducible.py uses it, as the baseline that
the issue's speed goal ("a reproducible build costs at most 1.05x") is measured against.

Usage: python bench/_keep_times.py ROOTLESS-BOX-ARGS...   (the same arguments as the command)
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from rootless_box.dockerfile import executor  # noqa: E402
from rootless_box.layers import diff  # noqa: E402


class KeepTimes(diff.Times):
    """Every mtime as it is (whole seconds): no clamp."""

    def __init__(self):
        super().__init__(int(time.time()), clamp=True)

    def __call__(self, mtime):
        return mtime

    def __repr__(self):
        return "keep"


def _wall_clock_times(opts):
    return KeepTimes(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


executor.build_times = _wall_clock_times
diff.fresh_pyc_header = lambda path, times: False

if __name__ == "__main__":
    from rootless_box import cli
    sys.argv[0] = "rootless-box"
    sys.exit(cli.main(sys.argv[1:]))
