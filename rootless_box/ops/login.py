"""`login`: check credentials against a registry, then save them.

Owns: the check (a ping, then a token or Basic-authenticated GET /v2/ with the credentials,
which must succeed) and handing a verified login to registry/credentials.py. Must not: print,
or save credentials the registry refused.
"""

from .. import errors
from ..oci import reference


def login(server, username, password, tls_verify=None, save=True):
    """Check the credentials against server; save them unless save is false (the Engine
    API's /auth only checks: the client keeps them)."""
    from ..registry import credentials
    from ..registry.client import Registry
    from ..registry import regconf
    key = credentials.normalize(server)
    if "/" in key or not key:
        raise errors.UsageError("invalid registry name: %s" % server)
    ref = reference.parse("%s/login-check" % key if key != "docker.io" else "library/x")
    endpoint = regconf.endpoints(ref.domain, ref.path, tls_verify=tls_verify, push=True)[-1]
    certs = regconf.client_certs(endpoint.host)
    creds = credentials.Credentials(username, password, None)
    registry = Registry(endpoint.host, name=key, insecure=endpoint.insecure,
                        credentials=lambda: creds, ca_files=regconf.ca_files(endpoint.host),
                        client_cert=certs[0] if certs else None)
    try:
        status = registry.ping()
        if status == 401:
            # Docker's check: a token for no scope (or Basic) must be granted to this login
            resp = registry.request("GET", "", [])
            resp.read()
            resp.close()
            if resp.status != 200:
                raise errors.AuthError("login to %s failed: %d %s" % (key, resp.status,
                                                                      resp.reason))
    finally:
        registry.close()
    if save:
        credentials.store(key, username, password)

