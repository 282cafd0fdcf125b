"""The option table of `run`/`create` for the flags ops/runflags.py owns (capabilities,
--privileged, devices, limits, shared namespaces), and their values as RunOptions keywords.
Owns nothing but that wiring: the rules live in ops/runflags.py."""

from ..cliparse import FLAG, LIST, Opt

OPTS = (
    Opt("--cap-add", LIST, "Add Linux capabilities", metavar="list", dest="cap_add"),
    Opt("--cap-drop", LIST, "Drop Linux capabilities", metavar="list", dest="cap_drop"),
    Opt("--privileged", FLAG, "Give extended privileges to this container (every capability "
                              "in its user namespace, no seccomp filter, no masked paths, "
                              "the host devices the user may open)"),
)


def kwargs(parsed):
    """RunOptions keywords from the parsed command line."""
    return {"cap_add": parsed.cap_add, "cap_drop": parsed.cap_drop,
            "privileged": parsed.privileged}
