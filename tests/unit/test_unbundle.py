"""A frozen binary's environment as the user gave it (config.unbundled_env): what the
PyInstaller bootloader and its runtime hooks add must not reach host helpers or containers."""

import os

from rootless_box.config import unbundled_env


def test_bundle_paths_leave_every_variable(tmp_path):
    bundle = str(tmp_path / "cache" / "0.1.0-abc" / "_internal")
    os.makedirs(bundle)
    env = unbundled_env({
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": bundle + ":/opt/user-libs",
        "OPENSSL_MODULES": bundle + "/ossl-modules",  # PyInstaller's OpenSSL hook
        "SOME_LIST": "/opt/a:" + bundle + "/lib:/opt/b",
        "_PYI_APPLICATION_HOME_DIR": bundle,
        "_MEIPASS2": bundle,
        "USER_VALUE": "a=b",
    }, bundle)
    assert env == {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": "/opt/user-libs",
                   "SOME_LIST": "/opt/a:/opt/b", "USER_VALUE": "a=b"}


def test_the_users_own_library_path_comes_back():
    env = unbundled_env({"LD_LIBRARY_PATH": "/bundle", "LD_LIBRARY_PATH_ORIG": "/mine"},
                        "/bundle")
    assert env == {"LD_LIBRARY_PATH": "/mine"}
    assert unbundled_env({"HOME": "/home/u"}) == {"HOME": "/home/u"}
