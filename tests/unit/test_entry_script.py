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
