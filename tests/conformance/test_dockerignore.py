"""Every rule and fact of ../shared/conformance/dockerignore.md, one test case each.

The markdown is prose, so the cases are written here, section by section; test_cases_come_from_
the_spec checks that every pattern used below is spelled in the markdown, so the two cannot drift
apart unnoticed. The only facts not run are the Windows ones (separator `\\`), skipped by name.
"""

import os

import pytest

import rootless_box
from rootless_box.dockerfile.context import load_ignore, walk
from rootless_box.dockerfile.dockerignore import (EXACT, PREFIX, REGEX, SUFFIX, Matcher, Pattern,
                                             PatternError, compile_pattern, read_lines,
                                             read_patterns)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(rootless_box.__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "conformance")
SPEC = os.path.join(SHARED, "dockerignore.md")
INTEGRATION3 = os.path.join(SHARED, "buildah-contexts", "dockerignore", "integration3")
WHEEL = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"


def excluded(patterns, path):
    return Matcher(patterns).matches(path)


# --- §1 reading the file ---------------------------------------------------------------------

def test_ignorefile_fact():
    text = ("test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n"
            "! /inverted/abs/path\n!\n! \n")
    assert read_lines(text) == ["test1", "test2", "a/file/here", "lastfile",
                                "!inverted/abs/path", "!", "!"]


def test_bare_exclamation_makes_the_matcher_fail():
    with pytest.raises(PatternError, match=r'illegal exclusion pattern: "!"'):
        read_patterns("foo\n!\n")


@pytest.mark.parametrize("text, expected", [
    ("foo\r\nbar\r\n", ["foo", "bar"]),                # §1.1 a trailing \r is trimmed
    ("\ufefffoo\n", ["foo"]),                          # §1.1 BOM on the first line
    ("foo\n\ufeffbar\n", ["foo", "\ufeffbar"]),        # §1.1 ... only on the first line
    ("  # x\n", ["# x"]),                              # §1.2 `#` only at column 0
    ("#x\n", []),
    ("foo # bar\n", ["foo # bar"]),                    # §8 no inline comments
    ("foo   \n\t\n", ["foo"]),                         # §1.3 trim, skip empty
    ("! /a/b\n", ["!a/b"]),                            # §1.4 `!` then trim again
    ("/foo\nfoo/\n./foo\nfoo/./\n", ["foo"] * 4),      # §1.5 clean, one leading `/` removed
    ("a//b\n", ["a/b"]),
    ("../a\n", ["../a"]),                              # §1.5 a leading `..` is kept
    ("a/../../b\n", ["../b"]),
    ("/\n", ["/"]),                                    # §1.5 a lone `/` stays
    ("!./foo\n", ["!foo"]),                            # §2 the reader strips `!` before cleaning
    ("x\x1f\n", ["x\x1f"]),                            # Go's TrimSpace keeps \x1f, Python's strip not
])
def test_reading(text, expected):
    assert read_lines(text) == expected


# --- §2 building a matcher --------------------------------------------------------------------

def test_exclamation_after_clean_when_passed_directly():
    pattern = compile_pattern("!./foo")
    assert (pattern.text, pattern.exclusion) == ("./foo", True)
    assert not excluded(["!./foo"], "foo") and not excluded(["!./foo"], "./foo")


@pytest.mark.parametrize("pattern", ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^",
                                     "[^bc", "a["])
def test_syntax_errors(pattern):
    with pytest.raises(PatternError, match="syntax error in pattern"):
        Matcher([pattern])
    with pytest.raises(PatternError, match="syntax error in pattern"):
        read_patterns(pattern + "\n")


@pytest.mark.parametrize("path", ["Local-Only", "x", "a/b"])
def test_local_only_quirk(path):
    matcher = Matcher(["[Local-Only]/"])
    for _ in range(2):  # consistently, not only the first time
        with pytest.raises(PatternError, match="bad pattern|syntax error in pattern"):
            matcher.matches(path)


# --- §3 compiled kinds --------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, kind, regex", [
    ("*", REGEX, "^[^/]*$"),
    ("file*", REGEX, "^file[^/]*$"),
    ("*file", REGEX, "^[^/]*file$"),
    ("a*/b", REGEX, "^a[^/]*/b$"),
    ("**", SUFFIX, None),
    ("**/**", REGEX, "^(.*/)?.*$"),
    ("dir/**", PREFIX, None),
    ("**/dir", SUFFIX, None),
    ("**/dir2/*", REGEX, "^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", REGEX, "^(.*/)?dir2/.*$"),
    ("**file", SUFFIX, None),
    ("**/file*txt", REGEX, "^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", REGEX, "^(.*/)?(.*/)?[^/]*\\.txt$"),
    ("a[b-d]e", REGEX, "^a[b-d]e$"),
    (".*", REGEX, "^\\.[^/]*$"),
    ("abc.def", EXACT, None),
    ("abc?def", REGEX, "^abc[^/]def$"),
    ("**/foo/bar", SUFFIX, None),
    ("a(b)c/def", EXACT, None),
    ("a.|)$(}+{bc", EXACT, None),
    (WHEEL, EXACT, None),
])
def test_compile(pattern, kind, regex):
    compiled = Pattern(pattern)
    assert (compiled.kind, compiled.regex) == (kind, regex)


@pytest.mark.skip(reason="Windows-only fact (separator `\\`, no escapes): this tool is Linux-only")
def test_windows_separator():
    assert Pattern("a*/b").regex == "^a[^\\\\]*\\\\b$"


# --- §6 one pattern against a path ------------------------------------------------------------

def _rows(*table):
    """Expand rows of (patterns, paths, result) into single (pattern, path, result) cases."""
    for patterns, paths, result in table:
        for pattern in patterns.split("  "):
            for path in paths.split("  "):
                yield pytest.param(pattern, path, result, id=f"{pattern} ~ {path}")


TEST_MATCHES = list(_rows(
    ("**", "file  file/  /  dir/file  dir/file/", True),
    ("**/", "file  file/  /  dir/file  dir/file/", True),
    ("**/**", "dir/file  dir/file/", True),
    ("dir/**", "dir/file  dir/file/  dir/dir2/file  dir/dir2/file/", True),
    ("**/dir", "dir  dir/file", True),
    ("**/dir2/*", "dir/dir2/file  dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file  dir/dir2/dir3/file/", True),
    ("**file", "file  dir/file  dir/dir/file", True),
    ("**/file", "dir/file  dir/dir/file", True),
    ("**/file*", "dir/dir/file  dir/dir/file.txt", True),
    ("**/file*txt  **/file*.txt  **/file*.txt*  **/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt  **/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt  a/dir/file.txt  a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae  aae", False),
    ("a[b-d]e", "ace", True),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef  abcZdef", False),
    ("abc.def", "abc.def", True),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    ("**/foo/bar", "foo/bar  dir/foo/bar  dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def  abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    (WHEEL, WHEEL, True),
    ("dist/*.whl", WHEEL, True),
))

TEST_MATCH = list(_rows(
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a  abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f  axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f  axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]  ab[b-d]  ab[^e-g]", "abc", True),
    ("ab[e-g]  ab[^c]  ab[^b-d]", "abc", False),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b  a[^a]b", "a☺b", True),
    ("a???b  a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b  a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x  -", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x  -", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
))


@pytest.mark.parametrize("pattern, path, result", TEST_MATCHES + TEST_MATCH)
def test_single_pattern(pattern, path, result):
    assert excluded([pattern], path) is result


@pytest.mark.parametrize("pattern, path", [("*", "fileutils.go"), ("*.go", "fileutils.go")])
def test_other_single_facts(pattern, path):
    assert excluded([pattern], path)


@pytest.mark.parametrize("pattern", ["**", "*", ".", "**/", "a"])
def test_context_root_is_never_excluded(pattern):
    assert not excluded([pattern], ".")


@pytest.mark.parametrize("path", ["a", "a/b", ".dockerignore"])
def test_no_patterns_exclude_nothing(path):
    assert not excluded([], path)


def test_open_bracket_is_an_error():
    with pytest.raises(PatternError):
        Matcher(["["])


# --- §4 and §7 several patterns ----------------------------------------------------------------

@pytest.mark.parametrize("patterns, path, result", [
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!" + WHEEL], WHEEL, False),
    (["**", "!dist/*.whl"], WHEEL, False),
    # §4: ancestors count; a directory excludes its contents; the last hit decides.
    (["**/dir"], "dir/file", True),
    (["docs"], "docs/a/b/c", True),
    (["docs", "!docs"], "docs/x", False),
    (["docs", "!docs", "docs/x"], "docs/x/y", True),
])
def test_several_patterns(patterns, path, result):
    assert excluded(patterns, path) is result


@pytest.mark.parametrize("patterns, path, result", [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**/dir"], "dir/file", True),
    (["foo*", "!foo/bar2"], "foo/bar2", False),
    (["a", "!a/b", "a/b/c"], "a/b/c/d", True),
])
def test_incremental_matching_agrees(patterns, path, result):
    """MatchesUsingParentResults: each directory's results handed to its children (§4)."""
    matcher = Matcher(patterns)
    info = matcher.match(".")[1]
    parts = path.split("/")
    for n in range(1, len(parts) + 1):
        answer, info = matcher.match("/".join(parts[:n]), info)
    assert answer is result is matcher.matches(path)


def test_empty_patterns_are_dropped():
    assert len(Matcher(["docs", "config", ""]).patterns) == 2


@pytest.mark.parametrize("exception", ["  !docs/README.md", "!docs/README.md  "])
def test_exception_whitespace_is_trimmed(exception):
    matcher = Matcher(["docs", exception])
    assert matcher.exceptions and not matcher.matches("docs/README.md")


# --- §5 walking the context -------------------------------------------------------------------

@pytest.mark.parametrize("exceptions, directory, descend", [
    ([], "foo", False),                               # no exceptions: skip the directory
    (["!foo/bar2"], "foo", True),                     # a plain exception under it
    (["!other/x"], "foo", False),
    (["!foo/bar/*"], "foo/bar", True),                # trailing /* ignored
    (["!foo/bar/**"], "foo/bar", True),               # trailing /** ignored
    (["!x/*.txt"], "foo", True),                      # a wildcard: always descend
    (["!x/a?"], "foo", True),
    (["!x/[ab]"], "foo", True),
    (["!x/a^b"], "foo", True),
    (["!x/a\\b"], "foo", True),
])
def test_descend_into_excluded_directory(exceptions, directory, descend):
    assert Matcher(["*"] + exceptions).may_reinclude_under(directory) is descend


def _tree(root, entries):
    for entry in entries:
        path = os.path.join(root, entry)
        if entry.endswith("/"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(entry)


def _walked(root, patterns):
    return [(path, os.path.isdir(os.path.join(root, path)))
            for path, _ in walk(str(root), Matcher(patterns))]


def test_parents_of_reincluded_files_are_sent(tmp_path):
    _tree(tmp_path, ["bar", "foo/", "foo2", "foo/bar2"])
    assert _walked(tmp_path, ["foo*", "!foo/bar2"]) == [
        ("bar", False), ("foo", True), ("foo/bar2", False)]


@pytest.fixture
def unreadable(tmp_path):
    if os.getuid() == 0:
        pytest.skip("root reads any directory: permission facts need an unprivileged user")
    _tree(tmp_path, ["foo/bar/baz"])
    os.chmod(tmp_path / "foo" / "bar", 0)
    yield tmp_path
    os.chmod(tmp_path / "foo" / "bar", 0o755)


@pytest.mark.parametrize("patterns", [["**/bar"], ["**/bar", "!foo/bar/baz"]])
def test_unreadable_excluded_directory_is_ignored(unreadable, patterns):
    assert _walked(unreadable, patterns) == [("foo", True)]


@pytest.mark.parametrize("patterns", [["**/bar", "!foo/bar"], []])
def test_unreadable_included_directory_fails(unreadable, patterns):
    with pytest.raises(Exception, match="permission denied"):
        _walked(unreadable, patterns)


def test_integration3_manifest():
    """buildah's integration3 fixture: `COPY . /upload/` keeps exactly what `manifest` lists."""
    if not os.path.isdir(INTEGRATION3):
        pytest.skip(f"conformance data not found: {INTEGRATION3}")
    matcher = load_ignore(INTEGRATION3, os.path.join(INTEGRATION3, "Dockerfile"))
    got = [path for path, _ in walk(INTEGRATION3, matcher)]
    with open(os.path.join(INTEGRATION3, "manifest")) as f:
        manifest = [line.strip()[len("/upload/"):] for line in f
                    if line.startswith("/upload/") and not line.startswith("/upload/src2")]
    assert got == manifest == ["README.md", "src", "src/Makefile", "src/cmd", "src/cmd/Makefile",
                               "src/lib", "src/lib/Makefile", "test2.txt", "test3.txt"]


# --- §8 gotchas ------------------------------------------------------------------------------

@pytest.mark.parametrize("patterns, path, result", [
    (["foo   "], "foo", True),                        # trailing spaces trimmed
    (["dir/**"], "dir", False),
    (["dir"], "dir", True),
    (["dir"], "dir/x/y", True),
    (["**file"], "profile", True),                    # plain string ending
    (["**/file"], "profile", False),
    (["[!ab]"], "!", True),                           # `!` is no negation in a class
    (["[!ab]"], "a", True),
    (["[!ab]"], "c", False),
    (["[^ab]"], "c", True),
    (["a^b*"], "a^bc", False),                        # `^` unescaped: an anchor in a regex
    (["a^b"], "a^b", True),                           # ... literal in an exact pattern
    (["Foo"], "foo", False),                          # case-sensitive
    (["*"], "a/b", True),                             # through the ancestor `a`
    (["*.go"], "a/b.go", False),                      # `*` never crosses `/`
    (["foo # bar"], "foo # bar", True),
])
def test_gotchas(patterns, path, result):
    assert excluded(patterns, path) is result


def test_bare_exclamation_in_dockerignore_fails_the_build(tmp_path):
    (tmp_path / ".dockerignore").write_text("foo\n!\n")
    with pytest.raises(PatternError, match="illegal exclusion pattern"):
        load_ignore(str(tmp_path))


# --- the cases above are the spec's ------------------------------------------------------------

def test_cases_come_from_the_spec():
    if not os.path.exists(SPEC):
        pytest.skip(f"conformance data not found: {SPEC}")
    with open(SPEC, encoding="utf-8") as f:
        spec = f.read().replace("\\|", "|")
    used = {case.values[0] for case in TEST_MATCHES + TEST_MATCH}
    missing = sorted(p for p in used if f"`{p}`" not in spec and p not in spec.split())
    assert not missing, f"patterns not in {SPEC}: {missing}"
