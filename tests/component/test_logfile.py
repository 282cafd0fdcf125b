"""The json-file log writer and readers on real files: Docker's bytes, line splitting,
rotation, tail across rotated files, since/until, following (also across rotations), and a
full disk (a real RLIMIT_FSIZE and /dev/full, never a mock)."""

import datetime
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from rootless_box.commands.logs import parse_duration, parse_timestamp
from rootless_box.ops import logfile, logwriter
from rootless_box.ops.logwriter import LogWriter

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = 1546341071111111111  # 2019-01-01T11:11:11.111111111Z


class Clock:
    """Deterministic timestamps: T0, then one millisecond later each call."""

    def __init__(self, start=T0, step=1000000):
        self.now, self.step = start, step

    def __call__(self):
        value = self.now
        self.now += self.step
        return value


def lines(path):
    with open(path, "rb") as f:
        return f.read().splitlines(keepends=True)


def logs_of(path):
    return [(e.stream, e.log) for e in logfile.read_entries(path)]


# -- the bytes ---------------------------------------------------------------------------------

def test_docker_sample_line_byte_exact(tmp_path):
    # Docker's json-file documentation sample line
    path = str(tmp_path / "json.log")
    with LogWriter(path, clock=Clock(step=0)) as w:
        w.write("stdout", b"Log line is here\n")
    assert lines(path) == [b'{"log":"Log line is here\\n","stream":"stdout",'
                           b'"time":"2019-01-01T11:11:11.111111111Z"}\n']


@pytest.mark.parametrize("raw, encoded", [
    # moby jsonlogbytes_test.go cases
    (b'"A log line with \\"', b'\\"A log line with \\\\\\"'),
    (b"A log line with \r", b"A log line with \\r"),
    (b"A log line with & < >", b"A log line with \\u0026 \\u003c \\u003e"),
    ("A log line with utf8 : \U0001F680 \u03c8 \u03c9 \u03b2".encode(),
     "A log line with utf8 : \U0001F680 \u03c8 \u03c9 \u03b2".encode()),
    ("\u2028 \u2029".encode(), b"\\u2028 \\u2029"),
    (b"\xaf", b"\\ufffd"),
    (b"\x7f", b"\x7f"),
    # Go's DecodeRune: one RuneError per invalid byte (a cut 3-byte sequence gives two)
    (b"\xe2\x82A", b"\\ufffd\\ufffdA"),
    (b"\xed\xa0\x80", b"\\ufffd\\ufffd\\ufffd"),  # an encoded surrogate
    (b"\xc0\xaf", b"\\ufffd\\ufffd"),  # overlong
    (b"tab\there\x1b[0m\x00", b"tab\\u0009here\\u001b[0m\\u0000"),
])
def test_escaping_as_moby(raw, encoded):
    line = logwriter.encode_entry("stderr", raw, T0)
    assert line == b'{"log":"' + encoded + b'","stream":"stderr","time":' \
                   b'"2019-01-01T11:11:11.111111111Z"}\n'
    assert json.loads(line)["stream"] == "stderr"  # valid JSON, whatever the bytes were


@pytest.mark.parametrize("ns, text", [
    (T0, "2019-01-01T11:11:11.111111111Z"),
    (1546341071000000000, "2019-01-01T11:11:11Z"),  # Go's RFC3339Nano drops a zero fraction
    (1546341071120000000, "2019-01-01T11:11:11.12Z"),
    (1504227661000000001, "2017-09-01T01:01:01.000000001Z"),
])
def test_time_format_and_parse(ns, text):
    assert logwriter.format_time(ns) == text
    assert logfile.parse_time(text) == ns
    assert logwriter.format_time(ns, fixed=True)[19:] == ".%09dZ" % (ns % 10 ** 9)


def test_parse_time_against_datetime():
    for text in ("1970-01-01T00:00:00Z", "2000-02-29T23:59:59+05:30", "2100-03-01T00:00:00-08:00",
                 "1969-12-31T23:59:59.5Z", "2038-01-19T03:14:08.000001Z"):
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert logfile.parse_time(text) == round(dt.timestamp() * 10 ** 6) * 1000
    for bad in ("2019-01-01 11:11:11Z", "2019-01-01T11:11:11", "2019-13-01T00:00:00Z",
                "2019-01-01T11:11:11.Z", "x"):
        with pytest.raises(ValueError):
            logfile.parse_time(bad)


# -- lines -------------------------------------------------------------------------------------

def test_partial_lines_wait_for_their_newline_per_stream(tmp_path):
    path = str(tmp_path / "json.log")
    w = LogWriter(path, clock=Clock())
    w.write("stdout", b"hel")
    w.write("stderr", b"err1\nerr")
    assert logs_of(path) == [("stderr", "err1\n")]  # written at once, the rest waits
    w.write("stdout", b"lo\nworld\n\n")
    assert logs_of(path)[1:] == [("stdout", "hello\n"), ("stdout", "world\n"), ("stdout", "\n")]
    w.write("stdout", b"no newline at the end")
    w.close()
    assert logs_of(path)[4:] == [("stderr", "err"), ("stdout", "no newline at the end")]
    w.close()  # twice is harmless
    w.write("stdout", b"after close\n")
    assert len(logs_of(path)) == 6


def test_long_lines_split_at_16k_as_docker(tmp_path):
    path = str(tmp_path / "json.log")
    with LogWriter(path, clock=Clock()) as w:
        w.write("stdout", b"a" * 40000 + b"\n")
        w.write("stdout", b"b" * 16384 + b"\n")  # exactly the buffer: partial, then "\n"
        w.write("stdout", b"c" * 16383 + b"\n")  # fits with its newline
        for _ in range(20):  # a long line arriving in small reads
            w.write("stdout", b"d" * 1000)
        w.write("stdout", b"\n")
    got = logs_of(path)
    assert [len(log) for _s, log in got] == [16384, 16384, 7233, 16384, 1, 16384, 16384, 3617]
    assert got[2][1].endswith("\n") and not got[0][1].endswith("\n")
    assert got[4][1] == "\n" and got[5][1] == "c" * 16383 + "\n"


def test_utf8_cut_by_the_16k_split_becomes_replacement_chars(tmp_path):
    path = str(tmp_path / "json.log")
    with LogWriter(path, clock=Clock()) as w:
        w.write("stdout", b"x" * 16383 + "\u00e9".encode() + b"\n")
    assert [log for _s, log in logs_of(path)] == ["x" * 16383 + "\ufffd", "\ufffd\n"]


# -- rotation ----------------------------------------------------------------------------------

def test_rotation_names_sizes_and_reading_across(tmp_path):
    path = str(tmp_path / "json.log")
    with LogWriter(path, max_size=1000, max_files=3, clock=Clock()) as w:
        for i in range(100):
            w.write("stdout" if i % 3 else "stderr", b"line %03d\n" % i)
    assert sorted(os.listdir(tmp_path)) == ["json.log", "json.log.1", "json.log.2"]
    per_line = len(logwriter.encode_entry("stdout", b"line 000\n", T0))
    for name in ("json.log.1", "json.log.2"):
        size = os.path.getsize(tmp_path / name)
        # rotated before the entry that would start past max_size: >= 1000, < 1000 + one line
        assert 1000 <= size < 1000 + per_line
    entries = list(logfile.read_entries(path))
    numbers = [int(e.log.split()[1]) for e in entries]
    assert numbers == list(range(100 - len(numbers), 100))  # oldest files were dropped
    assert [e.ns for e in entries] == sorted(e.ns for e in entries)


def test_max_files_1_starts_again_and_reopen_appends(tmp_path):
    path = str(tmp_path / "json.log")
    with LogWriter(path, max_size=300, max_files=1, clock=Clock()) as w:
        for i in range(10):
            w.write("stdout", b"%d\n" % i)
    assert os.listdir(tmp_path) == ["json.log"]
    assert os.path.getsize(path) < 300 + 100
    before = logs_of(path)
    with LogWriter(path, clock=Clock(T0 + 10 ** 12)) as w:  # a restarted container appends
        w.write("stdout", b"again\n")
    assert logs_of(path) == before + [("stdout", "again\n")]


def test_unlimited_size_never_rotates(tmp_path):
    path = str(tmp_path / "json.log")
    with LogWriter(path, max_size=None, max_files=3, clock=Clock()) as w:
        w.write("stdout", b"x\n" * 50000)
    assert os.listdir(tmp_path) == ["json.log"] and len(logs_of(path)) == 50000


# -- tail, since, until ------------------------------------------------------------------------

def _numbered(tmp_path, count=300, **kw):
    path = str(tmp_path / "json.log")
    with LogWriter(path, clock=Clock(), **kw) as w:
        for i in range(count):
            w.write("stdout", b"%d\n" % i)
    return path


@pytest.mark.parametrize("n", [0, 1, 7, 25, 26, 60, 299, 300, 1000])
def test_tail_across_rotated_files(tmp_path, n):
    path = _numbered(tmp_path, max_size=1500, max_files=20)
    assert len(os.listdir(tmp_path)) > 5
    every = [e.log for e in logfile.read_entries(path)]
    assert len(every) == 300
    assert [e.log for e in logfile.tail(path, n)] == (every[-n:] if n else [])


def test_tail_of_a_big_log_reads_backwards(tmp_path):
    path = str(tmp_path / "json.log")
    with open(path, "wb") as f:  # ~60 MB, written directly: the writer is not under test
        block = b"".join(logwriter.encode_entry("stdout", b"%09d\n" % i, T0 + i)
                         for i in range(10000))
        for _ in range(60):
            f.write(block)
        f.write(logwriter.encode_entry("stderr", b"last\n", T0 + 10 ** 9))
    started = time.monotonic()
    got = logfile.tail(path, 3)
    assert time.monotonic() - started < 0.5
    assert [(e.stream, e.log) for e in got] == [("stdout", "000009998\n"),
                                               ("stdout", "000009999\n"), ("stderr", "last\n")]


def test_torn_and_foreign_lines_are_skipped(tmp_path):
    path = str(tmp_path / "json.log")
    good = logwriter.encode_entry("stdout", b"ok\n", T0)
    with open(path, "wb") as f:
        f.write(good + b"not json\n" + b'{"log":"x\\n","stream":"stdout","time":"bad"}\n' +
                good + b'{"log":"half')  # a line still being written
    assert logs_of(path) == [("stdout", "ok\n"), ("stdout", "ok\n")]
    assert [e.log for e in logfile.tail(path, 1)] == ["ok\n"]


def test_since_until_inclusive(tmp_path):
    path = _numbered(tmp_path, count=10)  # entry i at T0 + i ms
    ms = 1000000
    got = [e.log for e in logfile.read_entries(path, since=T0 + 3 * ms, until=T0 + 6 * ms)]
    assert got == ["3\n", "4\n", "5\n", "6\n"]
    assert list(logfile.read_entries(path, since=T0 + 10 * ms)) == []
    assert list(logfile.read_entries(str(tmp_path / "missing.log"))) == []
    assert logfile.tail(str(tmp_path / "missing.log"), 5) == []


def test_docker_time_arguments():
    now = 1700000000123456789
    assert parse_duration("1h30m") == 90 * 60 * 10 ** 9
    assert parse_duration("1.5h") == parse_duration("90m") == parse_duration("5400s")
    assert parse_duration("300ms") == 300 * 10 ** 6 and parse_duration("-2us") == -2000
    assert parse_duration("0") == 0
    for bad in ("", "5", "1x", "h", "1h30", ".s", "--1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    # a duration: that long before now, in whole seconds (Docker sends Unix seconds)
    assert parse_timestamp("10m", now) == (1700000000 - 600) * 10 ** 9
    assert parse_timestamp("1h30m", now) == (1700000000 - 5400) * 10 ** 9
    assert parse_timestamp("1700000000", now) == 1700000000 * 10 ** 9
    assert parse_timestamp("1700000000.25", now) == 1700000000250000000
    assert parse_timestamp("0", now) == 0  # "0" is a Unix time, not a duration
    assert parse_timestamp("2013-01-02T13:23:37Z", now) == 1357133017 * 10 ** 9
    assert parse_timestamp("2013-01-02T13:23:37.5+01:00", now) == 1357129417500000000
    assert parse_timestamp("2013-01-02T13:23:37-02:00", now) == 1357140217 * 10 ** 9
    assert parse_timestamp("2013-01-02Z", now) == 1357084800 * 10 ** 9
    assert parse_timestamp("2013-01-02T13:23Z", now) == 1357132980 * 10 ** 9
    from rootless_box import errors
    for bad in ("2013-13-02T00:00:00Z", "yesterday", "1h2x", "-5"):
        with pytest.raises(errors.UsageError):
            parse_timestamp(bad, now)


def test_local_time_arguments_use_the_local_zone():
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from rootless_box.commands.logs import parse_timestamp as p\n"
            "now = 1700000000 * 10**9\n"
            "print(p('2013-01-02', now), p('2013-01-02T13', now), p('2013-01-02T13:23:37', now),"
            " p('2013-01-02T13:23:37.25', now))" % REPO)
    for tz, offset in (("UTC", 0), ("Etc/GMT-2", 7200)):
        out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, TZ=tz),
                             capture_output=True, text=True, check=True).stdout.split()
        base = 1357084800 - offset
        assert [int(v) for v in out] == [base * 10 ** 9, (base + 13 * 3600) * 10 ** 9,
                                         (base + 13 * 3600 + 23 * 60 + 37) * 10 ** 9,
                                         (base + 13 * 3600 + 23 * 60 + 37) * 10 ** 9 + 25 * 10 ** 7]


# -- follow ------------------------------------------------------------------------------------

class Follower:
    """follow() in a thread, collecting what it yields."""

    def __init__(self, path, **kw):
        self.running = True
        self.got = []
        asked = threading.Event()

        def is_running():
            asked.set()  # follow has opened the files it starts from
            return self.running

        self.thread = threading.Thread(
            target=lambda: self.got.extend(
                e.log for e in logfile.follow(path, is_running, interval=0.01, **kw)))
        self.thread.start()
        assert asked.wait(5)

    def wait_for(self, count, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return list(self.got)

    def stop(self, timeout=5):
        self.running = False
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "follow did not stop"
        return list(self.got)


def test_follow_sees_appends_and_stops_when_not_running(tmp_path):
    path = str(tmp_path / "json.log")
    w = LogWriter(path, clock=Clock())
    w.write("stdout", b"old 1\nold 2\n")
    f = Follower(path, tail=1)
    assert f.wait_for(1) == ["old 2\n"]
    w.write("stdout", b"new 1\n")
    w.write("stderr", b"new 2\n")
    assert f.wait_for(3) == ["old 2\n", "new 1\n", "new 2\n"]
    w.write("stdout", b"last words\n")
    w.close()
    assert f.stop() == ["old 2\n", "new 1\n", "new 2\n", "last words\n"]


def test_follow_across_rotations(tmp_path):
    # Driven in one thread, so exactly known: between two polls the writer rotates up to
    # max_files times (the followed file itself already deleted, held open): nothing is lost
    path = str(tmp_path / "json.log")
    w = LogWriter(path, max_size=400, max_files=3, clock=Clock())
    w.write("stdout", b"0\n")
    entries = logfile.follow(path, lambda: True, interval=0.01)
    assert next(entries).log == "0\n"
    expected, n = ["0\n"], 1
    for burst in (1, 5, 6, 7, 12, 15, 17, 3):
        names = []
        for _ in range(burst):
            w.write("stdout", b"%d\n" % n)
            names.append("%d\n" % n)
            n += 1
        expected += names
        assert [next(entries).log for _ in names] == names, burst
    w.close()
    assert sorted(os.listdir(tmp_path)) == ["json.log", "json.log.1", "json.log.2"]
    assert len(expected) == 67


def test_follow_in_a_thread_while_the_writer_rotates(tmp_path):
    path = str(tmp_path / "json.log")
    w = LogWriter(path, max_size=400, max_files=50, clock=Clock())
    f = Follower(path, tail=0)
    for i in range(200):
        w.write("stdout", b"%d\n" % i)
        if i % 10 == 0:
            time.sleep(0.01)  # some rotations seen one by one, some several at once
    w.close()
    f.wait_for(200)
    assert f.stop() == ["%d\n" % i for i in range(200)]


def _rotate_during_open(monkeypatch, w, name, lines_):
    """Make the writer write `lines_` (rotating as it goes) the moment a reader opens `name`
    the first time: a rotation landing in the middle of a reader's directory walk, exactly."""
    real_open, fired = os.open, []

    def open_(path, flags, *rest):
        if path == name and not fired:
            fired.append(path)
            for line in lines_:
                w.write("stdout", line)
        return real_open(path, flags, *rest)
    monkeypatch.setattr(logfile.os, "open", open_)
    return fired


def test_read_while_the_writer_rotates_twice_mid_walk(tmp_path, monkeypatch):
    # The reader opened json.log, then two rotations moved it to json.log.2 and a newer file
    # to json.log.1 before the reader got there: the files must still come out oldest first
    path = str(tmp_path / "json.log")
    w = LogWriter(path, max_size=200, max_files=20, clock=Clock())
    for i in range(10):
        w.write("stdout", b"%d\n" % i)
    fired = _rotate_during_open(monkeypatch, w, path + ".1",
                                [b"%d\n" % i for i in range(10, 22)])
    got = [e.log for e in logfile.read_entries(path)]
    assert fired
    w.close()
    assert got[:10] == ["%d\n" % i for i in range(10)]
    assert got == sorted(got, key=int) and len(set(got)) == len(got), got


def test_follow_while_the_writer_rotates_twice_mid_walk(tmp_path, monkeypatch):
    path = str(tmp_path / "json.log")
    w = LogWriter(path, max_size=200, max_files=20, clock=Clock())
    w.write("stdout", b"0\n")
    entries = logfile.follow(path, lambda: True, interval=0.01)
    assert next(entries).log == "0\n"
    for i in range(1, 8):
        w.write("stdout", b"%d\n" % i)  # the followed file rotates away: json.log.1
    fired = _rotate_during_open(monkeypatch, w, path + ".1",
                                [b"%d\n" % i for i in range(8, 30)])
    got = [next(entries).log for _ in range(1, 30)]
    assert fired
    assert got == ["%d\n" % i for i in range(1, 30)]


def test_follow_waits_for_a_log_not_yet_created(tmp_path):
    path = str(tmp_path / "json.log")
    f = Follower(path)
    time.sleep(0.05)
    with LogWriter(path, clock=Clock()) as w:
        w.write("stdout", b"late\n")
    assert f.wait_for(1) == ["late\n"]
    assert f.stop() == ["late\n"]
    # no log and not running: nothing, at once
    assert list(logfile.follow(str(tmp_path / "none.log"), lambda: False)) == []


def test_follow_stops_at_until_and_skips_before_since(tmp_path):
    path = _numbered(tmp_path, count=10)
    ms = 1000000
    got = [e.log for e in logfile.follow(path, lambda: True, since=T0 + 2 * ms,
                                         until=T0 + 4 * ms)]
    assert got == ["2\n", "3\n", "4\n"]


# -- a full disk -------------------------------------------------------------------------------

_FSIZE_CHILD = r"""
import os, resource, sys
sys.path.insert(0, %(repo)r)
from rootless_box.ops.logwriter import LogWriter
path = sys.argv[1]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
w = LogWriter(path)
for i in range(40):
    w.write("stdout", b"line %%02d of the full disk\n" %% i)
w.write("stderr", b"one write of several lines\n" * 3)
print(w.dropped, os.path.getsize(path), flush=True)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # space again
w.write("stdout", b"after\n")
w.close()
print("alive")
"""


def test_file_size_limit_drops_entries_never_the_monitor(tmp_path):
    # RLIMIT_FSIZE is the kernel refusing writes past a size, as a full disk does: the first
    # write past it is short (part of a line lands), then EFBIG (Python ignores SIGXFSZ).
    path = str(tmp_path / "json.log")
    proc = subprocess.run([sys.executable, "-c", _FSIZE_CHILD % {"repo": REPO}, path],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    dropped, size = map(int, proc.stdout.split()[:2])
    assert proc.stdout.split()[2] == "alive"
    assert dropped > 30 and size <= 1000
    raw = open(path, "rb").read()
    # the torn line was cut off again: every line is a whole entry, the later one readable
    assert all(json.loads(line) for line in raw.splitlines())
    got = logs_of(path)
    assert got[-1] == ("stdout", "after\n") and len(got) == 43 - dropped + 1
    assert [log for _s, log in got[:-1]] == ["line %02d of the full disk\n" % i
                                             for i in range(len(got) - 1)]


def test_enospc_on_dev_full():
    with LogWriter("/dev/full", max_size=None) as w:  # every write(2) fails with ENOSPC
        w.write("stdout", b"a\nb\n")
        w.write("stderr", b"c")
    assert w.dropped == 3


def test_unwritable_path_drops_and_retries(tmp_path):
    target = tmp_path / "later"
    w = LogWriter(str(target / "json.log"), clock=Clock())  # directory missing: no crash
    w.write("stdout", b"lost\n")
    assert w.dropped == 1
    target.mkdir()
    w.write("stdout", b"kept\n")
    w.close()
    assert logs_of(str(target / "json.log")) == [("stdout", "kept\n")]


def test_the_watchers_imports_stay_small():
    """The watcher stays resident per container: it imports the writer, never the readers."""
    code = ("import sys, os, time; sys.path.insert(0, %r); before = set(sys.modules); "
            "import rootless_box.ops.watch, rootless_box.ops.logwriter; "
            "print(' '.join(sorted(set(sys.modules) - before)))" % REPO)
    new = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert set(new) <= {"rootless_box", "rootless_box.ops", "rootless_box.ops.watch",
                        "rootless_box.ops.logwriter", "rootless_box.fastjson", "_json",
                        "time", "select"}, new
