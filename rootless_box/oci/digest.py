"""Content digests as OCI writes them: `sha256:<64 hex>`.

Owns: validating and splitting digest strings, and hashing bytes. Must not: touch files.
"""


from ..errors import BadArchive

_HEX = frozenset("0123456789abcdef")


def sha256_bytes(data):
    try:
        from _sha256 import sha256  # builtin; hashlib loads OpenSSL (~3 ms)
    except ImportError:  # pragma: no cover
        from hashlib import sha256
    return "sha256:" + sha256(data).hexdigest()


def is_hex(text, length=None):
    return bool(text) and (length is None or len(text) == length) and set(text) <= _HEX


def split(digest):
    """`sha256:abc...` -> ('sha256', 'abc...'); anything else is refused, since a digest
    from a hostile archive or registry ends up in a file name."""
    algo, sep, hexpart = (digest or "").partition(":")
    if sep and algo == "sha256" and is_hex(hexpart, 64):
        return algo, hexpart
    raise BadArchive("invalid digest: %r" % (digest,))


def short_id(digest, length=12):
    return digest.partition(":")[2][:length] if ":" in digest else digest[:length]
