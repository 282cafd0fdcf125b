"""Registry credentials in Docker's config.json format, and docker-credential-* helpers.

Owns: reading logins from the credential files (their order comes from config.py), the
spellings of an "auths" key (host, host:port, https://host/v1/, docker.io's aliases, Podman's
host/namespace keys), the `credHelpers`/`credsStore` helper protocol, and writing logins back
atomically with mode 0600, keeping every key it does not own.
Must not: talk to a registry, print, or put a secret anywhere but the credential file or a
helper's stdin (never in an error message).
"""

import os
from collections import namedtuple

from .. import config, fastjson
from ..errors import AuthError, UsageError

Credentials = namedtuple("Credentials", "username password identity_token")
Credentials.__doc__ = """A login: username and password, or an identity token (an OAuth2
refresh token for the registry's token endpoint, grant_type=refresh_token) with username and
password then possibly empty."""

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset(("docker.io", "index.docker.io", "registry-1.docker.io"))
# The key `docker login` uses for Docker Hub, in auths and towards helpers.
_HUB_LEGACY_URL = "https://index.docker.io/v1/"
# What a helper returns as Username when the Secret is an identity token (docker/cli).
_TOKEN_USER = "<token>"
_SECRET_FIELDS = ("auth", "username", "password", "identitytoken", "registrytoken")


def _split_key(key):
    """An auths/credHelpers key -> (canonical host, namespace or None).

    With a scheme the path is Docker's API version (https://index.docker.io/v1/), not a
    namespace; without one a path is Podman's per-repository key (quay.io/org)."""
    text = key.strip()
    low = text.lower()
    scheme = False
    for prefix in ("https://", "http://"):
        if low.startswith(prefix):
            text, scheme = text[len(prefix):], True
            break
    host, _, path = text.partition("/")
    host = host.lower()
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
    path = path.strip("/")
    if scheme or path in ("", "v1", "v2"):
        path = None
    return host, path


def normalize(registry):
    """The canonical registry key: "docker.io" for Docker Hub's names, else host[:port]."""
    host, _ = _split_key(str(registry))
    if not host:
        raise UsageError("invalid registry name: %r" % registry)
    return host


def _read(path):
    """A credential file as a dict, None when absent; an unusable file is a UsageError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise UsageError("cannot read credentials file %s: %s" % (path, e.strerror or e),
                         "fix its permissions, or move it away") from None
    if not raw.strip():
        return {}  # Docker accepts an empty config.json
    try:
        data = fastjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError("malformed credentials file %s: %s" % (path, e),
                         "fix the JSON, or remove the file and log in again") from None
    if not isinstance(data, dict):
        raise UsageError("malformed credentials file %s: not a JSON object" % path)
    for name, kind in (("auths", dict), ("credHelpers", dict), ("credsStore", str)):
        if data.get(name) is not None and not isinstance(data[name], kind):
            raise UsageError("malformed credentials file %s: %r must be %s"
                             % (path, name, "an object" if kind is dict else "a string"))
    return data


def _decode_entry(path, key, entry):
    """An auths entry -> Credentials, or None when it holds none (helper-managed `{}`)."""
    where = "credentials file %s, entry %r" % (path, key)
    if not isinstance(entry, dict):
        raise UsageError("malformed %s: not an object" % where)
    fields = {}
    for name in ("auth", "username", "password", "identitytoken"):
        value = entry.get(name)
        if value is not None and not isinstance(value, str):
            raise UsageError("malformed %s: %r must be a string" % (where, name))
        fields[name] = value or ""
    username, password = fields["username"], fields["password"]
    if fields["auth"]:
        import binascii
        try:
            decoded = binascii.a2b_base64(fields["auth"].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = None
        if decoded is None or ":" not in decoded:
            raise UsageError("malformed %s: \"auth\" is not base64 of user:password" % where,
                             "log in again to rewrite it")
        username, password = decoded.split(":", 1)
    token = fields["identitytoken"] or None
    if token or (username and password):
        return Credentials(username, password, token)
    return None


def _from_auths(path, auths, host, repository):
    ranked = []
    for index, (key, entry) in enumerate(auths.items()):
        khost, namespace = _split_key(key)
        if khost != host:
            continue
        if namespace is None:
            # Our own spelling first, so a login we wrote beats an older alias beside it.
            ranked.append(((1, 0 if key == host else 1, index), key, entry))
        elif repository and (repository == namespace or
                             repository.startswith(namespace + "/")):
            ranked.append(((0, -len(namespace), index), key, entry))
    for _rank, key, entry in sorted(ranked, key=lambda r: r[0]):
        creds = _decode_entry(path, key, entry)
        if creds:
            return creds
    return None


def _helper_name(data, host):
    """The helper this file configures for host: credHelpers first, then credsStore."""
    for key, name in (data.get("credHelpers") or {}).items():
        if _split_key(key)[0] == host and name:
            return name, "credHelpers"
    if data.get("credsStore"):
        return data["credsStore"], "credsStore"
    return None, None


def _helper_urls(host):
    # Ours first; then the spellings `docker login` uses, so a Docker login is found too.
    if host == DOCKER_HUB:
        return [DOCKER_HUB, _HUB_LEGACY_URL]
    return [host, "https://" + host]


def _run_helper(path, name, action, stdin):
    import subprocess
    if not isinstance(name, str) or "/" in name:
        raise UsageError("invalid credential helper name %r in %s" % (name, path))
    program = "docker-credential-" + name
    try:
        proc = subprocess.run([program, action], input=stdin.encode(), capture_output=True,
                              env=config.host_env_for_helpers())
    except FileNotFoundError:
        raise AuthError("credential helper %s not found (configured in %s)" % (program, path),
                        "install %s on PATH, or remove \"credsStore\"/\"credHelpers\" from %s"
                        % (program, path)) from None
    except OSError as e:
        raise AuthError("cannot run credential helper %s: %s" % (program, e.strerror or e))
    if proc.returncode == 0:
        return proc.stdout
    message = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
    if "credentials not found" in message.lower():
        return None
    first = message.splitlines()[0][:200] if message else "exit status %d" % proc.returncode
    raise AuthError("credential helper %s %s failed: %s" % (program, action, first))


def _helper_get(path, name, host):
    for url in _helper_urls(host):
        out = _run_helper(path, name, "get", url)
        if out is None:
            continue
        try:
            reply = fastjson.loads(out)
            username, secret = reply.get("Username") or "", reply.get("Secret") or ""
            if not isinstance(username, str) or not isinstance(secret, str):
                raise ValueError
        except (ValueError, AttributeError, UnicodeDecodeError):
            # The output holds the secret: it must not reach the message.
            raise AuthError("credential helper docker-credential-%s returned malformed output"
                            % name) from None
        if not secret:
            continue
        if username == _TOKEN_USER:
            return Credentials("", "", secret)
        return Credentials(username, secret, None)
    return None


def lookup(registry, repository=None):
    """Credentials for registry (any spelling Docker or Podman writes), or None.

    repository (e.g. "library/busybox") lets a Podman per-namespace key ("docker.io/library")
    win over the registry's. Files are tried in config.auth_read_files() order, first match
    wins; within a file a helper configured for the registry (credHelpers) is the only source,
    credsStore is asked before the file's own entries."""
    host = normalize(registry)
    for path in config.auth_read_files():
        data = _read(path)
        if not data:
            continue
        name, kind = _helper_name(data, host)
        if name:
            creds = _helper_get(path, name, host)
            if creds:
                return creds
            if kind == "credHelpers":
                continue
        creds = _from_auths(path, data.get("auths") or {}, host, repository)
        if creds:
            return creds
    return None


def _write(path, data):
    """Replace path with data by rename: mode 0600, parents 0700, never half-written."""
    import json
    if os.path.islink(path):
        path = os.path.realpath(path)  # keep a symlinked auth file a symlink, as docker does
    directory = os.path.dirname(os.path.abspath(path))
    missing = []
    d = directory
    while not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    tmp = None
    try:
        for d in reversed(missing):
            os.mkdir(d, 0o700)
        tmp = os.path.join(directory, ".%s.tmp-%d-%s" % (os.path.basename(path), os.getpid(),
                                                          os.urandom(4).hex()))
        body = (json.dumps(data, indent="\t") + "\n").encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise UsageError("cannot write credentials file %s: %s" % (path, e.strerror or e)) \
            from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def store(registry, username, password):
    """Save a login in config.auth_file() under the canonical key (through the helper that
    file configures for the registry, if any; the file then keeps an empty entry, as docker
    login leaves one). Returns the canonical key."""
    host = normalize(registry)
    if not username or ":" in username:
        raise UsageError("invalid username %r: it must be non-empty and have no ':'"
                         % username)
    if not password:
        raise UsageError("empty password for %s" % host)
    path = config.auth_file()
    data = _read(path) or {}
    auths = data.get("auths")
    if auths is None:
        auths = data["auths"] = {}
    old = auths.get(host)
    entry = {k: v for k, v in old.items() if k not in _SECRET_FIELDS} \
        if isinstance(old, dict) else {}
    name, _kind = _helper_name(data, host)
    if name:
        import json
        _run_helper(path, name, "store", json.dumps(
            {"ServerURL": host, "Username": username, "Secret": password}))
    else:
        import binascii
        entry["auth"] = binascii.b2a_base64(("%s:%s" % (username, password)).encode(),
                                            newline=False).decode()
    auths[host] = entry
    _write(path, data)
    return host


def erase(registry):
    """Remove the login for registry from config.auth_file() (every spelling of the host, and
    from the helper that file configures). True when something was removed. Logins in the
    other files read by lookup() stay: they are Docker's or the user's."""
    host = normalize(registry)
    path = config.auth_file()
    data = _read(path)
    if data is None:
        return False
    removed = False
    name, _kind = _helper_name(data, host)
    if name:
        for url in _helper_urls(host):
            if _run_helper(path, name, "erase", url) is not None:
                removed = True
    auths = data.get("auths") or {}
    keys = [k for k in auths if _split_key(k) == (host, None)]
    for key in keys:
        try:
            had = _decode_entry(path, key, auths[key]) is not None
        except UsageError:
            had = True  # a broken entry is still a login to remove
        removed = removed or had
        del auths[key]
    if keys:
        _write(path, data)
    return removed
