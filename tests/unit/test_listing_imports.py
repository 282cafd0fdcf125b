"""`ps` imports only what a listing uses (issue 19): no ctypes and launcher (the store's opener
used to pull them in), no json/re (templates), no calendar/_strptime (creation times), no socket
(ports of containers that publish none); and creation times are read as UTC as before."""

import calendar
import os
import subprocess
import sys
import time

import pytest

from rootless_box.ops.images import created_epoch
from rootless_box.store import Store

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAVY = ("ctypes", "rootless_box.userns.launcher", "json", "re", "calendar", "_strptime",
         "socket", "rootless_box.ops.ports")


def _record(cid, name, status="exited"):
    return {"Id": cid, "Name": name, "Created": "2024-02-29T23:59:58.5Z", "Path": "sleep",
            "Args": ["300"], "Image": "sha256:" + "a" * 64, "ImageName": "busybox",
            "Config": {"Labels": {}},
            "State": {"Status": status, "Running": False, "ExitCode": 3,
                      "StartedAt": "2024-03-01T00:00:00Z", "FinishedAt": "2024-03-01T00:00:01Z"}}


def test_ps_imports_only_what_a_listing_uses(tmp_path):
    root = tmp_path / "data" / "rootless-box"
    store = Store(str(root)).ensure()
    for i in range(3):
        cid = ("%x" % i) * 64
        os.mkdir(store.container_dir(cid))
        store.write_container(_record(cid, "box%d" % i))
    code = ("import sys, io; from rootless_box.cli import main; sys.stdout = io.StringIO(); "
            "code = main(['ps', '-a']); out = sys.stdout.getvalue(); sys.stdout = sys.__stdout__; "
            "print(code); print(out); print(' '.join(sorted(sys.modules)))")
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), PYTHONPATH=TOP)
    # -S: what our code imports, not what a machine's site-packages .pth files import at
    # start-up (some import certifi, and with it pathlib, shutil, re)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=TOP, env=env, check=True).stdout.split("\n")
    assert out[0] == "0"
    assert sum("Exited (3)" in line for line in out) == 3
    modules = out[-2].split()
    assert "rootless_box.commands.ps" in modules
    assert [m for m in HEAVY if m in modules] == []


@pytest.mark.parametrize("text", ["2026-12-05T04:33:00.123456789Z", "2000-02-29T23:59:59Z",
                                  "1970-01-01T00:00:00Z", "1969-07-20T20:17:40Z",
                                  "2024-03-01T00:00:00+02:00", "2100-03-01T12:00:00Z"])
def test_created_epoch_is_utc_seconds(text):
    assert created_epoch(text) == calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-01-01",
                                  "2024-01-01T25:00:00Z"])
def test_created_epoch_of_nonsense_is_zero(text):
    assert created_epoch(text) == 0
