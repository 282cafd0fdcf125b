"""bin/rootless-box starts Python with -S (issue 19: a machine's .pth import hooks cost 5-70 ms
on every `run`) and still finds what site would: the site-packages directories and the path
lines of their .pth files; the import lines of .pth files are not run."""

import os
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(TOP, "bin", "rootless-box")


def _preamble():
    with open(SCRIPT) as f:
        text = f.read()
    return text, text.split("from rootless_box.cli import main")[0]


def test_the_script_asks_for_no_site():
    text, _pre = _preamble()
    # pip and setuptools keep the flag when they rewrite `#!python` to the venv's interpreter
    assert text.splitlines()[0] == "#!python -S"


def test_search_path_as_site_makes_it_without_pth_imports(tmp_path):
    base = tmp_path / "userbase"
    site_dir = base / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    extra = tmp_path / "extra-dir"
    site_dir.mkdir(parents=True)
    extra.mkdir()
    marker = tmp_path / "hook-ran"
    (site_dir / "zz-test.pth").write_text(
        "# a comment\n%s\nimport os; open(%r, 'w').close()\n\n/no/such/dir\n"
        % (extra, str(marker)))
    env = dict(os.environ, PYTHONUSERBASE=str(base))
    env.pop("PYTHONPATH", None)
    _text, pre = _preamble()
    show = "import sys; print(repr(sys.path[1:]))"
    # from a directory no .pth names: with -c the working directory is sys.path[0] before
    # our site.main() runs (site itself runs before it is added), so a .pth line naming it
    # (an editable install run from its source tree) would be a known path for us alone
    ours = subprocess.run([sys.executable, "-S", "-c", pre + "\n" + show], env=env,
                          capture_output=True, text=True, check=True, cwd=str(tmp_path))
    theirs = subprocess.run([sys.executable, "-c", show], env=env, capture_output=True,
                            text=True, check=True, cwd=str(tmp_path))
    # the user's site (the test's PYTHONUSERBASE), the venv's and the system's, in site's order
    assert ours.stdout == theirs.stdout
    assert str(extra) in ours.stdout and str(site_dir) in ours.stdout
    assert "/no/such/dir" not in ours.stdout
    os.unlink(marker)  # site itself ran the import line above
    subprocess.run([sys.executable, "-S", "-c", pre], env=env, check=True)
    assert not marker.exists()


def _leave(body, tmp_path):
    code = ("import atexit, sys; sys.path.insert(0, %r)\n"
            "from rootless_box.cli import leave\n"
            "atexit.register(lambda: print('atexit ran'))\n" % TOP) + body
    return subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=str(tmp_path))


def test_leave_exits_with_the_status_after_atexit_and_buffered_output(tmp_path):
    """The entry scripts end with leave() (issue 19: no interpreter finalization): what a
    normal exit does that a caller sees still happens."""
    proc = _leave("sys.stdout.write('partial line, buffered'); sys.stderr.write('err')\n"
                  "leave(3)\n", tmp_path)
    assert proc.returncode == 3
    assert proc.stdout == "partial line, bufferedatexit ran\n"
    assert proc.stderr == "err"


def test_leave_waits_for_a_running_thread_as_a_normal_exit(tmp_path):
    # the thread ends only once leave() has looked for threads (a condition, not a delay:
    # on a busy machine a sleeping thread may be done before leave() runs)
    proc = _leave("import threading\n"
                  "looked = threading.Event()\n"
                  "count = threading.active_count\n"
                  "def counted():\n"
                  "    n = count()\n"
                  "    looked.set()\n"
                  "    return n\n"
                  "threading.active_count = counted\n"
                  "def late():\n"
                  "    looked.wait()\n"
                  "    print('thread done', flush=True)\n"
                  "threading.Thread(target=late).start()\n"
                  "leave(4)\n", tmp_path)
    assert proc.returncode == 4
    assert proc.stdout.splitlines() == ["thread done", "atexit ran"]


def test_leave_passes_a_message_on_as_sys_exit(tmp_path):
    proc = _leave("leave('rootless-box: bye')\n", tmp_path)
    assert proc.returncode == 1 and proc.stderr == "rootless-box: bye\n"
