"""Labels as Docker's CLI takes them: `-l/--label KEY[=VALUE]`, `--label-file`, and a
container's labels over its image's.

Owns: docker/cli's ConvertKVStringsToMap (`KEY` alone is KEY=""), its key=value file format
(opts/file.go parseKeyValueFile: a BOM at the start dropped, blank lines and `#` lines
skipped, a value kept as written, a name with a blank or no name refused with Docker's
words, invalid UTF-8 refused) with files read first and -l after (later wins), and Config.Labels as the daemon
makes it (the image's labels, then the container's over them).
Must not: print, or import `re` (`run`'s import path).
"""

from .. import errors


def to_map(items):
    """["a=1", "b"] -> {"a": "1", "b": ""} (later wins)."""
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def read_file(path):
    """One --label-file (or --env-file style) file -> its KEY[=VALUE] lines."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise errors.UsageError("open %s: %s" % (path, (exc.strerror or str(exc)).lower()),
                                "give the path of an existing file") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw  # bufio.ScanLines drops a \r
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.UsageError("env file %s contains invalid utf8 bytes at line %d"
                                    % (path, number)) from None
        line = text.lstrip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if " " in name or "\t" in name:
            raise errors.UsageError("poorly formatted environment: variable '%s' contains "
                                    "whitespaces" % name, "in %s, line %d" % (path, number))
        if not name:
            raise errors.UsageError("poorly formatted environment: no variable name on line "
                                    "'%s'" % line, "in %s, line %d" % (path, number))
        lines.append(name + "=" + value if eq else line.strip())
    return lines


def from_options(labels, label_files):
    """-l values and --label-file paths -> the container's own labels (files first)."""
    items = []
    for path in label_files:
        items += read_file(path)
    return to_map(items + list(labels))


def merged(image_labels, own):
    """Config.Labels: the image's labels with the container's over them (moby's merge)."""
    result = dict(image_labels or {})
    result.update(own or {})
    return result
