"""JSON for the start-up path, on CPython's C accelerator (`_json`) alone.

Owns: loads/dumps of the store's records and configs without importing the `json` package,
whose decoder imports `re` and so `enum`: ~10 ms of the ~30 ms budget of `run`. The C scanner
and encoder are the ones `json` itself uses, so the results are the same; `json` is used where
`_json` is missing (other Pythons).
Must not: grow features; anything beyond plain JSON values goes through `json`.
"""

try:
    import _json
except ImportError:  # pragma: no cover - non-CPython
    _json = None


class _DecodeContext:
    """The attributes `_json.make_scanner` reads from a json.JSONDecoder."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = {}

    @staticmethod
    def parse_constant(name):
        return {"NaN": float("nan"), "Infinity": float("inf"),
                "-Infinity": float("-inf")}[name]


_WS = " \t\n\r"


def loads(data):
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8")
    if _json is None:
        import json
        return json.loads(data)
    text = data.strip(_WS)
    scanner = _json.make_scanner(_DecodeContext)
    try:
        value, end = scanner(text, 0)
    except StopIteration:
        raise ValueError("invalid JSON: expecting a value") from None
    if end != len(text):
        raise ValueError("invalid JSON: extra data at offset %d" % end)
    return value


def dumps(obj, compact=False):
    """json.dumps(obj) (or with separators=(',', ':') when compact), as bytes."""
    if _json is None:
        import json
        return json.dumps(obj, separators=(",", ":") if compact else None).encode()
    key_sep, item_sep = (":", ",") if compact else (": ", ", ")
    encoder = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None,
                                 key_sep, item_sep, False, False, True)
    return "".join(encoder(obj, 0)).encode()


def _default(obj):
    raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)
