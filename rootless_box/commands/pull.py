"""`pull [-a] [--platform P] [-q] [--tls-verify=false] NAME[:TAG|@DIGEST]`.

Owns: the options and Docker's output (`Using default tag`, `TAG: Pulling from REPO`, a line or
bar per layer, `Digest:`, `Status:`, the full name), also for `run` and `build`, which pull what
is missing through `pull_missing`. Must not: talk to the registry itself (ops/pull.py does).
"""

import sys

from ..cliparse import FLAG, VALUE, Command, Opt
from ..errors import UsageError
from ..oci import reference
from ._common import given, warn, warn_unpack


def command(verb, summary):
    return Command(verb, "pull [OPTIONS] NAME[:TAG|@DIGEST]", summary, (
        Opt("-a,--all-tags", FLAG, "Download all tagged images in the repository"),
        Opt("--platform", VALUE, "Set platform if server is multi-platform capable"),
        Opt("-q,--quiet", FLAG, "Suppress verbose output"),
        Opt("--tls-verify", FLAG, "Require HTTPS and verify certificates (default true)"),
        # Docker's content trust (Notary v1) is not offered; accepting the flag keeps scripts
        Opt("--disable-content-trust", FLAG, ""),
    ), min_args=1, max_args=1)


def pull_one(store, idmap, name, out, quiet=False, platform=None, tls_verify=None):
    """Pull name, writing Docker's lines to out (None: nothing). -> the ops result."""
    from ..ops import pull as pull_ops
    from ..ui.pullprogress import layers_display
    ref = reference.parse(name)
    if platform:
        pull_ops.parse_platform(platform)  # a bad --platform before any line is printed
    display = layers_display(out, quiet) if out is not None else None
    if display:
        if "@" not in name and ":" not in name.rpartition("/")[2]:
            display.line("Using default tag: latest")
        # Docker names the repository without its registry: `latest: Pulling from x/y`
        display.line("%s: Pulling from %s" % (ref.tag if ref.tag and not ref.digest else
                                              ref.digest, ref.path))
    try:
        result = pull_ops.pull(store, idmap, name, platform=platform, tls_verify=tls_verify,
                               progress=display)
    finally:
        if display:
            display.close()
    if display:
        shown = ref.familiar() if ref.tag and not ref.digest else \
            "%s@%s" % (ref.familiar_repository(), ref.digest)
        display.line("Digest: %s" % result["digest"])
        display.line("Status: %s for %s" % ("Downloaded newer image" if result["updated"]
                                             else "Image is up to date", shown))
    for report in result["reports"]:
        warn_unpack(report)
    return result


def pull_missing(store, idmap, name, notice=True, platform=None, quiet=False):
    """`run`/`build` with an image that is not here: Docker's notice, then a pull whose
    progress goes to stderr (stdout belongs to the container); nothing with quiet (run -q)."""
    if notice and not quiet:
        sys.stderr.write("Unable to find image '%s' locally\n" % name)
        sys.stderr.flush()
    pull_one(store, idmap, name, None if quiet else sys.stderr, platform=platform)


def main(parsed):
    from ..ops.storage import open_store
    from ..userns import idmap as idmaps
    name = parsed.args[0]
    ref = reference.parse(name)
    idmap = idmaps.plan()
    if idmap.warning:
        warn(idmap.warning)
    store = open_store(idmap)
    out = None if parsed.quiet else sys.stdout
    if parsed.all_tags:
        if ref.digest or ":" in name.rpartition("/")[2]:
            raise UsageError("tag can't be used with --all-tags/-a")
        from ..ops import pull as pull_ops
        registry, repo, _mirror = pull_ops.connect(ref, given(parsed, "tls_verify"))[-1]
        try:
            tags = registry.tags(repo)
        finally:
            registry.close()
        for tag in sorted(tags):
            pull_one(store, idmap, "%s:%s" % (ref.repository, tag), out, platform=
                     parsed.platform, tls_verify=given(parsed, "tls_verify"))
        sys.stdout.write("%s\n" % ref.repository)
        return 0
    result = pull_one(store, idmap, name, out, platform=parsed.platform,
                      tls_verify=given(parsed, "tls_verify"))
    sys.stdout.write("%s\n" % (str(result["ref"]) if not result["ref"].digest else
                               "%s@%s" % (result["ref"].repository, result["ref"].digest)))
    return 0
