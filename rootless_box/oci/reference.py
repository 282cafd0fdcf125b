"""Image references as Docker normalises them.

Owns: parsing `[DOMAIN[:PORT]/]PATH[:TAG][@DIGEST]`, the docker.io/library defaults, and the short
("familiar") form shown to users. Grammar: distribution/reference (reference.go, normalize.go).
Must not: import `re` (this runs on the `run` path) or do I/O.
"""

from ..errors import UsageError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
DEFAULT_TAG = "latest"

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_TAG_CHARS = _ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-")
_DOMAIN_CHARS = _TAG_CHARS | frozenset(":[]")


def _valid_component(comp):
    # [a-z0-9]+ separated by '.', '_', '__' or one or more '-'
    if not comp or comp[0] not in _ALNUM or comp[-1] not in _ALNUM:
        return False
    prev_sep = ""
    for ch in comp:
        if ch in _ALNUM:
            prev_sep = ""
            continue
        if ch not in "._-":
            return False
        run = prev_sep + ch
        if not (run in (".", "_", "__") or set(run) == {"-"}):
            return False
        prev_sep = run
    return True


def _valid_tag(tag):
    return 0 < len(tag) <= 128 and tag[0] not in ".-" and set(tag) <= _TAG_CHARS


class Reference:
    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain, path, tag=None, digest=None):
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    @property
    def repository(self):
        return "%s/%s" % (self.domain, self.path)

    def __str__(self):
        text = self.repository
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def familiar_repository(self):
        if self.domain == DEFAULT_DOMAIN:
            return self.path[len("library/"):] if self.path.startswith("library/") and \
                self.path.count("/") == 1 else self.path
        return self.repository

    def familiar(self):
        text = self.familiar_repository()
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def parse(text, default_tag=True):
    """Parse and normalise; `busybox` -> docker.io/library/busybox:latest."""
    bad = UsageError("invalid reference format: %r" % text,
                     "repository names are lowercase, e.g. registry.example:5000/team/app:1.0")
    if not text or len(text) > 255 + 129 + 72 or text != text.strip():
        raise bad
    name, _, digest = text.partition("@")
    if digest:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64 or set(hexpart) - set("0123456789abcdef"):
            raise bad
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _valid_tag(tag):
            raise bad
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or
                first != first.lower()):
        domain, path = first, rest
        if not set(domain) <= _DOMAIN_CHARS:
            raise bad
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    comps = path.split("/")
    if not all(_valid_component(c) for c in comps):
        raise bad
    if domain == DEFAULT_DOMAIN and len(comps) == 1:
        path = "library/" + path
    if tag is None and digest == "" and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest or None)


def looks_like_id(text):
    """A (possibly shortened, possibly `sha256:`-prefixed) hex image or container ID."""
    hexpart = text[7:] if text.startswith("sha256:") else text
    return 1 <= len(hexpart) <= 64 and not set(hexpart) - set("0123456789abcdef")
