"""The module layout of DESIGN.md holds: dependencies point downward only, syscalls (ctypes, ioctl)
live in userns/ alone, and the `run` path imports nothing heavy."""

import ast
import os
import subprocess
import sys

import pytest

PKG = os.path.join(os.path.dirname(__file__), "..", "..", "rootless_box")
# Lower layers may not import higher ones.
LEVEL = {"cli": 7, "cliparse": 1, "commands": 6, "api": 6, "ui": 6, "dockerfile": 5, "compose": 5, "ops": 4, "registry": 3,
         "store": 3, "layers": 3, "userns": 3, "oci": 2, "securepath": 1, "fastjson": 1,
         "config": 1, "fscopy": 1, "errors": 0, "__main__": 8}
SIBLINGS = {"registry", "store", "layers", "userns"}


def modules():
    for top, _dirs, files in os.walk(PKG):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(top, name)
                rel = os.path.relpath(path, PKG)
                yield rel, path


def imported(path, rel):
    tree = ast.parse(open(path).read())
    parts = rel[:-3].split(os.sep)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = parts[:len(parts) - node.level]
            target = base + (node.module.split(".") if node.module else [])
            if not target:
                names = [a.name for a in node.names]
                for n in names:
                    yield n
            else:
                yield target[0]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module]
            for n in names:
                if n and n.startswith("rootless_box."):
                    yield n.split(".")[1]
                elif n:
                    yield "ext:" + n


def test_dependencies_point_downward():
    bad = []
    for rel, path in modules():
        owner = rel.split(os.sep)[0].replace(".py", "")
        for target in imported(path, rel):
            if target.startswith("ext:") or target not in LEVEL or target == owner:
                continue
            if LEVEL[target] > LEVEL[owner] or (owner in SIBLINGS and target in SIBLINGS):
                bad.append("%s imports %s" % (rel, target))
    assert bad == [], "\n".join(bad)


def test_the_api_front_end_does_not_reach_into_commands():
    """Two front ends over one core: what the Engine API shares with the CLI lives in ops/."""
    bad = ["%s imports commands" % rel for rel, path in modules()
           if rel.startswith("api" + os.sep) and "commands" in set(imported(path, rel))]
    assert bad == []


def test_ctypes_only_in_userns():
    users = [rel for rel, path in modules() if "ext:ctypes" in set(imported(path, rel))]
    assert users and all(rel.startswith("userns") for rel in users)


def _calls_ioctl(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "ioctl" and \
                isinstance(node.value, ast.Name) and node.value.id == "fcntl":
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "fcntl" and \
                any(a.name == "ioctl" for a in node.names):
            return True
    return False


def test_ioctls_only_in_userns():
    """ioctl(2) is a syscall as much as what ctypes calls: userns/ alone issues it
    (as fcntl.ioctl or `from fcntl import ioctl`)."""
    users = [rel for rel, path in modules() if _calls_ioctl(ast.parse(open(path).read()))]
    assert users and all(rel.startswith("userns") for rel in users), users


def test_every_module_has_a_docstring():
    missing = [rel for rel, path in modules()
               if os.path.getsize(path) and ast.get_docstring(ast.parse(open(path).read()))
               is None]
    assert missing == []


@pytest.mark.parametrize("heavy", ["rich", "elftools", "zstandard", "urllib", "http",
                                   "requests", "json", "re", "shutil", "hashlib",
                                   "socketserver", "rootless_box.api"])
def test_run_path_imports_nothing_heavy(heavy):
    code = ("import sys; from rootless_box.commands import run; "
            "from rootless_box.ops import run as r; from rootless_box.userns import launcher; "
            "print(' '.join(sorted(sys.modules)))")
    # -S: what our code imports, not what a machine's site-packages .pth files import at
    # start-up (some import certifi, and with it pathlib, shutil, re)
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=os.path.join(PKG, ".."), check=True).stdout.split()
    assert heavy not in out


@pytest.mark.parametrize("heavy", ["hashlib", "tarfile", "ssl", "rootless_box.ops.archive"])
def test_the_idle_services_processes_keep_no_archive_code(heavy):
    """What an idle `system service` holds: the server with its endpoints, the fork server
    with the hot jobs (api/forkserver._serve). hashlib's OpenSSL library alone is 3.4 MiB
    resident per process (bench/api.py's idle RSS goal is 30 MiB for both)."""
    code = ("import sys; from rootless_box.api import service, jobs, build, routes; "
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         cwd=os.path.join(PKG, ".."), check=True).stdout.split()
    assert heavy not in out
