"""`rename CONTAINER NEW_NAME`.

Owns: the verb's grammar and its exit code (1 when the rename is refused, as Docker's daemon
errors are). Must not: check names itself (ops/containers.rename does, under the store lock).
"""

from ..cliparse import Command
from ..ops import containers as container_ops
from ..ops.storage import open_store
from ._common import for_each


def command(verb, summary):
    return Command(verb, "rename CONTAINER NEW_NAME", summary, (), min_args=2, max_args=2)


def main(parsed):
    store = open_store()
    old, new = parsed.args
    return for_each([old], lambda name: container_ops.rename(store, name, new))
