"""registries.conf (containers-registries.conf(5), v2 and the v1 insecure/block lists) and
certs.d: where a repository is pulled from and how much TLS to insist on.

Owns: choosing the [[registry]] entry for a repository (longest prefix, `*.domain` wildcards),
the location and mirror rewrites, blocked registries, insecure registries (Docker's rule that
loopback registries are insecure by default), and the per-host CA and client-certificate files
of certs.d directories. Paths come from config.py.
Must not: connect anywhere, resolve names, or apply `unqualified-search-registries`/aliases:
short names are normalised as Docker does (docker.io) by oci/reference.py.
"""

import os
from collections import namedtuple

from .. import config
from ..errors import RegistryError, UsageError

Endpoint = namedtuple("Endpoint", "host repository path_prefix insecure is_mirror")
Endpoint.__doc__ = """One place to try, in order. host: host[:port] to connect to;
repository: the repository name to request there (location rewrite applied); path_prefix: the
path part of the location ("" or e.g. "dockerhub"); insecure: plain HTTP allowed and TLS
verification skipped (try HTTPS first); is_mirror: a mirror, not the registry itself."""

Registry = namedtuple("Registry", "prefix location insecure blocked mirrors "
                      "mirror_by_digest_only pull_from_mirror")
Mirror = namedtuple("Mirror", "location insecure pull_from_mirror")

# Docker Hub's API lives at another name than the one in references (moby: registry/config.go).
_HUB_NAMES = ("docker.io", "index.docker.io")
HUB_ENDPOINT = "registry-1.docker.io"
_PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


class Config:
    """A parsed registries.conf: `registries` in file order, `path` it came from (or None)."""

    def __init__(self, registries=(), path=None):
        self.registries = list(registries)
        self.path = path

    def find(self, reference):
        """The entry whose prefix matches "host/repository" longest, or None."""
        best, best_len = None, -1
        for reg in self.registries:
            n = _prefix_match(reg.prefix, reference)
            if n is not None and len(reg.prefix) > best_len:
                best, best_len = reg, len(reg.prefix)
        return best


def _prefix_match(prefix, reference):
    """Length of reference matched by prefix, or None. Matches stop at a path boundary."""
    if prefix.startswith("*."):
        host = reference.split("/", 1)[0]
        hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return len(host) if hostname.endswith(prefix[1:]) else None
    if reference == prefix or reference.startswith(prefix + "/"):
        return len(prefix)
    return None


def _fail(path, message, hint=None):
    raise UsageError("%s: %s" % (path, message), hint)


def _bool(path, where, table, key):
    value = table.get(key)
    if value is not None and not isinstance(value, bool):
        _fail(path, "%s: %r must be true or false" % (where, key))
    return value


def _str(path, where, table, key):
    value = table.get(key)
    if value is not None and not isinstance(value, str):
        _fail(path, "%s: %r must be a string" % (where, key))
    return value


def _location(path, where, value):
    value = (value or "").strip().rstrip("/")
    if "://" in value:
        _fail(path, "%s: %r is not a location (host[:port][/path], no scheme)" % (where, value))
    return value


def _mode(path, where, table):
    value = _str(path, where, table, "pull-from-mirror")
    if value is not None and value not in _PULL_FROM_MIRROR:
        _fail(path, "%s: pull-from-mirror must be one of %s" % (where,
                                                                  ", ".join(_PULL_FROM_MIRROR)))
    return value


def parse(data, path="registries.conf"):
    """A Config from registries.conf bytes; every mistake is a UsageError naming path."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        _fail(path, "reading it needs Python 3.11 or later (tomllib)",
              "remove the file, or run rootless-box with a newer Python")
    try:
        doc = tomllib.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError:
        _fail(path, "not UTF-8 text")
    except tomllib.TOMLDecodeError as e:
        _fail(path, "invalid TOML: %s" % e)
    registries, seen = [], set()
    entries = doc.get("registry", [])
    if not isinstance(entries, list):
        _fail(path, "\"registry\" must be an array of tables ([[registry]])")
    for number, table in enumerate(entries, 1):
        where = "[[registry]] #%d" % number
        if not isinstance(table, dict):
            _fail(path, "%s is not a table" % where)
        location = _location(path, where, _str(path, where, table, "location"))
        prefix = _location(path, where, _str(path, where, table, "prefix")) or location
        if not prefix:
            _fail(path, "%s has neither prefix nor location" % where)
        if prefix.startswith("*.") and location:
            _fail(path, "%s: a wildcard prefix %r cannot have a location" % (where, prefix))
        if "*" in prefix[1:] or ("*" in prefix and not prefix.startswith("*.")):
            _fail(path, "%s: invalid wildcard in prefix %r" % (where, prefix))
        if prefix in seen:
            _fail(path, "%s: prefix %r is defined twice" % (where, prefix))
        seen.add(prefix)
        mirrors = []
        raw_mirrors = table.get("mirror", [])
        if not isinstance(raw_mirrors, list):
            _fail(path, "%s: \"mirror\" must be an array of tables" % where)
        for m_number, m in enumerate(raw_mirrors, 1):
            m_where = "%s, mirror #%d" % (where, m_number)
            if not isinstance(m, dict):
                _fail(path, "%s is not a table" % m_where)
            m_location = _location(path, m_where, _str(path, m_where, m, "location"))
            if not m_location:
                _fail(path, "%s has no location" % m_where)
            mirrors.append(Mirror(m_location, _bool(path, m_where, m, "insecure"),
                                  _mode(path, m_where, m)))
        registries.append(Registry(prefix, location,
                                   _bool(path, where, table, "insecure"),
                                   bool(_bool(path, where, table, "blocked")), mirrors,
                                   bool(_bool(path, where, table, "mirror-by-digest-only")),
                                   _mode(path, where, table)))
    # v1: [registries.insecure] / [registries.block] registries = [...]
    v1 = doc.get("registries", {})
    if isinstance(v1, dict):
        for kind in ("insecure", "block"):
            section = v1.get(kind) or {}
            names = section.get("registries", []) if isinstance(section, dict) else None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                _fail(path, "[registries.%s] registries must be a list of strings" % kind)
            for name in names:
                name = _location(path, "[registries.%s]" % kind, name)
                if name in seen:
                    _fail(path, "%r is in both v1 and v2 settings" % name)
                seen.add(name)
                registries.append(Registry(name, name, kind == "insecure" or None,
                                           kind == "block", [], False, None))
    return Config(registries, path)


def load():
    """The registries.conf in use (config.registries_conf_files(), first that exists)."""
    candidates = config.registries_conf_files()
    explicit = len(candidates) == 1
    for path in candidates:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            if explicit:
                raise UsageError("registries.conf %s (RBX_REGISTRIES_CONF) does not exist"
                                 % path, "create it, or unset RBX_REGISTRIES_CONF") from None
            continue
        except OSError as e:
            raise UsageError("cannot read %s: %s" % (path, e.strerror or e)) from None
        return parse(data, path)
    return Config()


def is_loopback(host):
    """host[:port] names this machine (localhost, 127.0.0.0/8, ::1): Docker treats such
    registries as insecure by default."""
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    else:
        name = host
    name = name.lower()
    if name == "localhost":
        return True
    import ipaddress
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _split_location(location):
    host, _, path = location.partition("/")
    return (HUB_ENDPOINT if host in _HUB_NAMES else host), path


def _join(*parts):
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def endpoints(registry_host, repository, *, tls_verify=None, by_digest=False, push=False,
              conf=None):
    """Where to pull registry_host/repository from, in order: mirrors, then the registry.

    tls_verify (the command line's --tls-verify) overrides the configured and loopback
    defaults for the registry itself, not for mirrors (as Podman does: a mirror's own
    settings stand). by_digest: the reference has a digest (mirror-by-digest-only and
    pull-from-mirror depend on it). push: only the registry itself, never a mirror.
    A blocked registry raises RegistryError. conf: a Config (default: load())."""
    conf = load() if conf is None else conf
    if registry_host in _HUB_NAMES or registry_host == HUB_ENDPOINT:
        registry_host = "docker.io"  # the name prefixes are written with
    reference = _join(registry_host, repository)
    reg = conf.find(reference)
    if reg is not None and reg.blocked:
        raise RegistryError("registry %s is blocked by %s" % (registry_host, conf.path),
                            "unblock prefix %r there to pull from it" % reg.prefix)
    result = []
    if reg is None:
        location, rest = registry_host, repository
    else:
        if reg.prefix.startswith("*."):
            matched, location = registry_host, registry_host
        else:
            matched, location = reg.prefix, reg.location or reg.prefix
        rest = reference[len(matched):].lstrip("/")
        if not push:
            for m in reg.mirrors:
                mode = m.pull_from_mirror or reg.pull_from_mirror or \
                    ("digest-only" if reg.mirror_by_digest_only else "all")
                if (mode == "digest-only" and not by_digest) or \
                        (mode == "tag-only" and by_digest):
                    continue
                host, prefix = _split_location(m.location)
                insecure = is_loopback(host) if m.insecure is None else m.insecure
                result.append(Endpoint(host, _join(prefix, rest), prefix, insecure, True))
    if push:
        # A push goes to the name the user gave; only its TLS settings come from the file.
        location, rest = registry_host, repository
    host, prefix = _split_location(location)
    if tls_verify is not None:
        insecure = not tls_verify
    elif reg is not None and reg.insecure is not None:
        insecure = reg.insecure
    else:
        insecure = is_loopback(host)
    result.append(Endpoint(host, _join(prefix, rest), prefix, insecure, False))
    return result


def _host_dirs(host):
    if not host or "/" in host or host.startswith(".") or "\0" in host:
        raise UsageError("invalid registry host %r" % host)
    for base in config.certs_dirs():
        d = os.path.join(base, host)
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        yield d, names


def _readable(path):
    return os.path.isfile(path) and os.access(path, os.R_OK)


def ca_files(host):
    """CA certificates (*.crt) to trust for host[:port], from every certs.d directory that has
    a directory for it, readable files only, in config.certs_dirs() order."""
    found = []
    for d, names in _host_dirs(host):
        found.extend(os.path.join(d, n) for n in names
                     if n.endswith(".crt") and _readable(os.path.join(d, n)))
    return found


def client_certs(host):
    """Client certificate/key pairs for host[:port]: (NAME.cert, NAME.key) as Docker's certs.d
    has them. A certificate without its key, or a key without its certificate, is a
    UsageError (Docker refuses them too)."""
    pairs = []
    for d, names in _host_dirs(host):
        present = set(names)
        for n in names:
            if n.endswith(".cert"):
                key = n[:-len(".cert")] + ".key"
                if key not in present:
                    raise UsageError("missing key %s for client certificate %s"
                                     % (os.path.join(d, key), os.path.join(d, n)))
                cert, keyfile = os.path.join(d, n), os.path.join(d, key)
                if _readable(cert) and _readable(keyfile):
                    pairs.append((cert, keyfile))
            elif n.endswith(".key") and n[:-len(".key")] + ".cert" not in present:
                raise UsageError("missing client certificate %s for key %s"
                                 % (os.path.join(d, n[:-len(".key")] + ".cert"),
                                    os.path.join(d, n)))
    return pairs
