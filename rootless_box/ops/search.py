"""Registry search, as Docker's daemon does it: the registry's v1 search endpoint.

Owns: which registry a term names (`HOST[:PORT]/words`, else Docker Hub's index), the request
`GET /v1/search?q=WORDS&n=LIMIT` with the user's credentials for that registry, Docker's
result fields, and its filters (`is-official`, `is-automated`, `stars`). A registry without
that endpoint (a distribution registry has none: its v2 API has no search) is refused, as
Docker refuses it ("Unexpected status code 404"), saying why.
Must not: print, or list a registry's whole catalog in place of a search (Docker does not).
"""

import urllib.parse

from .. import errors, fastjson
from ..oci import reference

_INDEX = "index.docker.io"


def split_term(term):
    """`HOST/words` -> (HOST, words); a term without a registry -> ("docker.io", term)."""
    first, slash, rest = term.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return reference.DEFAULT_DOMAIN, term


def _filters(filters):
    keep = []
    for key, values in (filters or {}).items():
        for value in values:
            if key == "stars":
                try:
                    least = int(value)
                except ValueError:
                    raise errors.UsageError("invalid filter 'stars=%s'" % value) from None
                keep.append(lambda r, n=least: int(r.get("star_count") or 0) >= n)
            elif key in ("is-official", "is-automated"):
                if value not in ("true", "false", "1", "0"):
                    raise errors.UsageError("invalid filter '%s=%s'" % (key, value))
                field, want = key.replace("-", "_"), value in ("true", "1")
                keep.append(lambda r, f=field, w=want: bool(r.get(f)) == w)
            else:
                raise errors.UsageError("invalid filter '%s'" % key)
    return keep


def search(term, limit=25, filters=None):
    """-> [{"name", "description", "star_count", "is_official", "is_automated"}]."""
    from .pull import connect
    if not term:
        raise errors.UsageError("term is required")
    if not 1 <= limit <= 100:
        raise errors.UsageError("limit %d is outside the range of [1, 100]" % limit)
    keep = _filters(filters)
    domain, words = split_term(term)
    ref = reference.parse("%s/search:latest" % domain)
    registry = connect(ref)[-1][0]
    try:
        host = _INDEX if domain == reference.DEFAULT_DOMAIN else registry.host
        base = registry.url("").rpartition("/v2/")[0] if host == registry.host else \
            "https://" + host
        url = "%s/v1/search?%s" % (base, urllib.parse.urlencode({"q": words, "n": limit}))
        resp = registry.request("GET", "", [], url=url)
        body = resp.read_limited(1 << 22, "search results")
    finally:
        registry.close()
    if resp.status == 404:
        raise errors.BoxError("Unexpected status code 404: the registry %s offers no search "
                              "(GET /v1/search; a v2 registry has none)" % domain)
    if resp.status != 200:
        raise errors.RegistryError("search on %s failed: %d" % (domain, resp.status))
    try:
        results = fastjson.loads(body).get("results") or []
    except (ValueError, AttributeError):
        raise errors.RegistryError("search on %s: the answer is not JSON" % domain) from None
    found = []
    for item in results:
        if not isinstance(item, dict):
            continue
        row = {"name": str(item.get("name") or ""),
               "description": str(item.get("description") or ""),
               "star_count": int(item.get("star_count") or 0),
               "is_official": bool(item.get("is_official")),
               "is_automated": bool(item.get("is_automated"))}
        if all(test(row) for test in keep):
            found.append(row)
    return found[:limit]
