"""Shared fixtures: an isolated store per test module, the CLI as a user runs it, and a base
image made from this machine's busybox (or its own binaries), with no download.

Integration tests need real user namespaces and an unprivileged user: as root they skip (CI
runs them as the unprivileged test user; see scripts/ci-root.sh).
"""

import io
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")


def _userns_reason():
    if os.getuid() == 0:
        return "run as an unprivileged user (a rootless tool tested as root proves nothing)"
    unshare = shutil.which("unshare")
    if unshare is None:
        return "util-linux unshare is not installed"
    probe = subprocess.run([unshare, "--user", "--map-root-user", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        return "unprivileged user namespaces are not usable here: %s" % (
            probe.stderr.decode().strip())
    return None


USERNS_SKIP = _userns_reason()
needs_userns = pytest.mark.skipif(USERNS_SKIP is not None, reason=USERNS_SKIP or "")


def has_subuid():
    import pwd
    user = pwd.getpwuid(os.getuid()).pw_name
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as f:
                if not any(line.split(":")[0] in (user, str(os.getuid()))
                           for line in f if line.strip()):
                    return False
        except OSError:
            return False
    return bool(shutil.which("newuidmap") and shutil.which("newgidmap"))


needs_subuid = pytest.mark.skipif(not has_subuid(),
                                  reason="needs /etc/subuid and /etc/subgid ranges and the "
                                         "uidmap package (newuidmap)")


class Cli:
    """Runs `python -m rootless_box` as a user would, against one data root."""

    def __init__(self, data_home, env=None):
        self.data_home = data_home
        self.env = dict(os.environ)
        self.env.update({"XDG_DATA_HOME": data_home, "PYTHONPATH": REPO})
        self.env.pop("RBX_DEBUG", None)
        if env:
            self.env.update(env)

    @property
    def root(self):
        return os.path.join(self.data_home, "rootless-box")

    def argv(self, *args):
        return [sys.executable, "-m", "rootless_box"] + [str(a) for a in args]

    def __call__(self, *args, input=None, env=None, timeout=60, check=None):
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        proc = subprocess.run(self.argv(*args), input=input, capture_output=True,
                              env=full_env, timeout=timeout)
        proc.out = proc.stdout.decode(errors="replace")
        proc.err = proc.stderr.decode(errors="replace")
        if check is not None and proc.returncode != check:
            raise AssertionError("rootless-box %s: exit %d, expected %d\nstdout: %s\n"
                                 "stderr: %s" % (" ".join(map(str, args)), proc.returncode,
                                                 check, proc.out, proc.err))
        return proc

    def ok(self, *args, **kw):
        return self(*args, check=0, **kw)


def busybox_path():
    for path in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(path):
            return path
    return None


def make_rootfs_tar(path):
    """A base rootfs tarball made from host binaries (static busybox when installed)."""
    from rootless_box.ops.fromhost import write_rootfs_tar
    binaries = [busybox_path()] if busybox_path() else [
        p for p in ("/bin/sh", "/bin/ls", "/bin/cat", "/usr/bin/id", "/bin/echo",
                    "/usr/bin/env", "/bin/sleep", "/bin/touch", "/bin/mkdir")
        if os.path.exists(p)]
    with open(path, "wb") as out:
        write_rootfs_tar(binaries, out)
    return path


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory):
    return make_rootfs_tar(str(tmp_path_factory.mktemp("rootfs") / "rootfs.tar"))


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    return Cli(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def image(cli, rootfs_tar):
    """`base:latest`, imported once per module, with CMD ["sh"]."""
    if USERNS_SKIP:
        pytest.skip(USERNS_SKIP)
    cli.ok("import", "-c", 'CMD ["sh"]', rootfs_tar, "base:latest")
    return "base:latest"


def tar_bytes(entries):
    """entries: list of (TarInfo kwargs dict, data bytes or None) -> tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info_kw, data in entries:
            info = tarfile.TarInfo(info_kw.pop("name"))
            for key, value in info_kw.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()
