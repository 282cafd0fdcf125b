"""Paths and the tool's own environment knobs.

Owns: where state and configuration live (XDG data and config dirs, runtime dir, the credential
and registries.conf files other tools share) and every environment variable that names them or
is an RBX_* knob; they are read here and nowhere else. Must not: touch the filesystem beyond
computing and creating the runtime directory, or import anything but errors.
"""

import os

from .errors import UsageError

VERSION = "0.1.0"

# Docker's default for containers whose image sets no PATH (moby: oci/defaults.go).
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def data_root():
    """$XDG_DATA_HOME/rootless-box, default ~/.local/share/rootless-box."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    # absolute: the keepers, which leave the caller's directory, use the paths made from it
    return os.path.join(os.path.abspath(base), "rootless-box")


def config_home():
    """$XDG_CONFIG_HOME, default ~/.config."""
    return os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def config_root():
    """$XDG_CONFIG_HOME/rootless-box, default ~/.config/rootless-box."""
    return os.path.join(config_home(), "rootless-box")


def auth_file():
    """Where registry credentials are written: $REGISTRY_AUTH_FILE (Podman's knob), else
    <config_root>/auth.json."""
    return os.environ.get("REGISTRY_AUTH_FILE") or os.path.join(config_root(), "auth.json")


def auth_read_files():
    """Credential files in lookup order, first match wins: $REGISTRY_AUTH_FILE when set, our
    auth.json, then Docker's ($DOCKER_CONFIG/config.json, default ~/.docker/config.json)."""
    files = []
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        files.append(env)
    files.append(os.path.join(config_root(), "auth.json"))
    docker_dir = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"),
                                                                 ".docker")
    files.append(os.path.join(docker_dir, "config.json"))
    seen = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def registries_conf_files():
    """registries.conf candidates; the first that exists is read. $RBX_REGISTRIES_CONF alone
    when set (a file that must exist)."""
    env = os.environ.get("RBX_REGISTRIES_CONF")
    if env:
        return [env]
    return [os.path.join(config_root(), "registries.conf"),
            os.path.join(config_home(), "containers", "registries.conf"),
            "/etc/containers/registries.conf"]


def certs_dirs():
    """certs.d directories (per-host CA and client certificates), all of them consulted."""
    return [os.path.join(config_root(), "certs.d"),
            os.path.join(config_home(), "containers", "certs.d"),
            "/etc/containers/certs.d", "/etc/docker/certs.d"]


def runtime_root():
    """$XDG_RUNTIME_DIR/rootless-box, else a private 0700 directory under /tmp.

    Runtime state must not depend on a systemd login session (su/sudo leave XDG_RUNTIME_DIR
    unset), so the fallback is always usable.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base) and os.access(base, os.W_OK):
        path = os.path.join(os.path.abspath(base), "rootless-box")  # as data_root
    else:
        path = "/tmp/rootless-box-%d" % os.getuid()
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        st = os.lstat(path)
        if st.st_uid != os.getuid() or (st.st_mode & 0o077) or not os.path.isdir(path):
            from .errors import StoreError
            raise StoreError("runtime directory is not private to this user: %s" % path,
                             "remove it, or set XDG_RUNTIME_DIR to a directory of your own")
    return path


def debug():
    return os.environ.get("RBX_DEBUG", "") not in ("", "0")


def zygote():
    """RBX_ZYGOTE=0: detached keepers are never forked from a warm zygote (ops/zygote.py)."""
    return os.environ.get("RBX_ZYGOTE", "1") != "0"


def init_path():
    """RBX_INIT_PATH: the program `--init` runs as the container's pid 1 (a statically linked
    catatonit or tini), instead of the first one found (ops/runflags.init_binary)."""
    return os.environ.get("RBX_INIT_PATH") or None


def _choice(name, allowed, default):
    value = os.environ.get(name, "") or default
    if value not in allowed:
        raise UsageError("invalid %s: %r" % (name, value),
                         "use one of: %s" % ", ".join(allowed))
    return value


def idmap_mode():
    """RBX_USERNS: auto (subuid range when the user has one), subuid, or single."""
    return _choice("RBX_USERNS", ("auto", "subuid", "single"), "auto")


def storage_driver():
    """RBX_STORAGE_DRIVER: auto (probed), overlay, fuse-overlayfs or copy."""
    return _choice("RBX_STORAGE_DRIVER", ("auto", "overlay", "fuse-overlayfs", "copy"), "auto")


def upload_chunk_size():
    """RBX_UPLOAD_CHUNK_SIZE: bytes per PATCH when pushing a blob in chunks; 0 (the default)
    sends each blob in one PUT, as Docker does. Registries that cap request bodies (a proxy's
    limit) need chunks."""
    return _bytes("RBX_UPLOAD_CHUNK_SIZE", 0, "e.g. 5242880, or 0 for one request")


def _bytes(name, default, example):
    """A knob holding a number of bytes (0 or more)."""
    text = os.environ.get(name, "") or str(default)
    try:
        value = int(text)
        if value < 0:
            raise ValueError
    except ValueError:
        raise UsageError("invalid %s: %r" % (name, text),
                         "give a number of bytes, %s" % example) from None
    return value


# ADD <url>'s default limit: far above any file a build means to download, far below what
# fills a disk (a hostile or broken server can send forever)
ADD_MAX_BYTES = 8 << 30


def add_max_bytes():
    """RBX_ADD_MAX_BYTES: the largest download ADD <url> accepts (default 8 GiB; 0: none)."""
    return _bytes("RBX_ADD_MAX_BYTES", ADD_MAX_BYTES, "e.g. 1073741824, or 0 for no limit")


def subid_files():
    """The subordinate id files (overridable for tests of the detection logic)."""
    return (os.environ.get("RBX_SUBUID_FILE", "/etc/subuid"),
            os.environ.get("RBX_SUBGID_FILE", "/etc/subgid"))


# What a PyInstaller bootloader adds to its process's environment (bootloader/src/pyi_main.c,
# pyi_utils.c): the bundle's library directory prepended to LD_LIBRARY_PATH (the user's value
# kept in LD_LIBRARY_PATH_ORIG), and its own bookkeeping. A second bootloader started with them
# (a detached container's watcher re-executing the binary) would take itself for a child.
_BUNDLER_PREFIXES = ("_PYI_", "_MEIPASS")


def unbundled_env(environ, bundle_dir=None):
    """environ without a bundler's additions: LD_LIBRARY_PATH back to the user's own value
    (LD_LIBRARY_PATH_ORIG); no _PYI_* or _MEIPASS* variables; and in every other variable
    (LD_LIBRARY_PATH when the bootloader kept no original, OPENSSL_MODULES that PyInstaller's
    OpenSSL hook points into the bundle, ...) no path entry inside bundle_dir
    (sys._MEIPASS), the variable dropped when nothing else is left in it."""
    env = {k: v for k, v in environ.items() if not k.startswith(_BUNDLER_PREFIXES)}
    orig = env.pop("LD_LIBRARY_PATH_ORIG", None)
    if orig is not None:
        env["LD_LIBRARY_PATH"] = orig
    if bundle_dir:
        bundle = os.path.realpath(bundle_dir)

        def inside(path):
            real = os.path.realpath(path)
            return real == bundle or real.startswith(bundle + os.sep)
        for key, value in list(env.items()):
            if bundle_dir not in value and bundle not in value:
                continue
            kept = [p for p in value.split(":") if p and not inside(p)]
            if kept:
                env[key] = ":".join(kept)
            else:
                del env[key]
    return env


def launcher_path():
    """RBX_LAUNCHER: the one-file binary's own path (its launcher sets it), where a frozen tool
    must name itself for later (sys.executable is the unpacked cache copy); None otherwise."""
    path = os.environ.get("RBX_LAUNCHER")
    return path if path and os.path.isabs(path) else None


def unbundle_environ():
    """In a frozen binary, before anything runs: this process's own environment as the user
    gave it. Every child inherits os.environ (host helpers such as newuidmap and
    fuse-overlayfs, `ps`, credential helpers, the watcher) and `-e NAME` copies from it into a
    container; the bundle's libraries were already loaded, so the process itself needs none
    of it (ld.so reads LD_LIBRARY_PATH once, at exec)."""
    import sys
    if not getattr(sys, "frozen", False):
        return
    clean = unbundled_env(os.environ, getattr(sys, "_MEIPASS", None))
    for key in list(os.environ):
        if key not in clean:
            del os.environ[key]
    os.environ.update(clean)


def host_env_for_helpers():
    """The environment for host helpers (newuidmap, fuse-overlayfs, credential helpers): the
    user's, without a PyInstaller bootloader's LD_LIBRARY_PATH, which would load the bundle's
    libraries into them (pyinstaller#1759). unbundle_environ already did this for a frozen
    binary; this also covers a caller whose own parent was one."""
    import sys
    return unbundled_env(os.environ, getattr(sys, "_MEIPASS", None))
