"""registry/regconf: where a pull goes (mirrors, location rewrites, blocked registries), how much
TLS it insists on (configured insecure, loopback by default, --tls-verify), which registries.conf
is read, and the certs.d files for a host."""

import os

import pytest

from rootless_box.errors import RegistryError, UsageError
from rootless_box.registry import regconf
from rootless_box.registry.regconf import Endpoint


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("RBX_REGISTRIES_CONF", raising=False)
    return home


def conf_file(tmp_path, monkeypatch, text):
    path = tmp_path / "registries.conf"
    path.write_text(text)
    monkeypatch.setenv("RBX_REGISTRIES_CONF", str(path))
    return path


MIRRORS = """
unqualified-search-registries = ["quay.io"]

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "mirror.example.com/dockerhub"

[[registry.mirror]]
location = "localhost:5000"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.com:8443/bar"

[[registry]]
prefix = "example.com/foo/special"
location = "special.example.com"
"""


def test_mirrors_first_then_the_registry(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, MIRRORS)
    assert regconf.endpoints("docker.io", "library/busybox") == [
        Endpoint("mirror.example.com", "dockerhub/library/busybox", "dockerhub", False, True),
        Endpoint("localhost:5000", "library/busybox", "", True, True),
        Endpoint("registry-1.docker.io", "library/busybox", "", False, False)]


def test_unqualified_search_registries_does_not_change_docker_io(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, MIRRORS)
    assert regconf.endpoints("docker.io", "library/alpine")[-1].host == "registry-1.docker.io"


def test_prefix_rewrite_and_longest_prefix(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, MIRRORS)
    assert regconf.endpoints("example.com", "foo/app") == [
        Endpoint("internal.example.com:8443", "bar/app", "bar", False, False)]
    assert regconf.endpoints("example.com", "foo/special/x") == [
        Endpoint("special.example.com", "x", "", False, False)]
    # a prefix matches whole path components only
    assert regconf.endpoints("example.com", "foobar/app") == [
        Endpoint("example.com", "foobar/app", "", False, False)]


def test_unconfigured_registry_is_itself(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, "")
    assert regconf.endpoints("quay.io", "a/b") == [Endpoint("quay.io", "a/b", "", False, False)]
    assert regconf.endpoints("docker.io", "library/x") == [
        Endpoint("registry-1.docker.io", "library/x", "", False, False)]


def test_blocked_registry_refused(home, tmp_path, monkeypatch):
    path = conf_file(tmp_path, monkeypatch, '[[registry]]\nprefix = "evil.io"\nblocked = true\n'
                     '[registries.block]\nregistries = ["old.io"]\n')
    for host in ("evil.io", "old.io"):
        with pytest.raises(RegistryError) as err:
            regconf.endpoints(host, "x/y")
        assert host in err.value.message and str(path) in err.value.message
    assert regconf.endpoints("good.io", "x/y")[0].host == "good.io"


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:5000",
                                  "127.3.2.1", "[::1]:5000", "::1"])
def test_loopback_is_insecure_by_default(home, tmp_path, monkeypatch, host):
    conf_file(tmp_path, monkeypatch, "")
    assert regconf.endpoints(host, "x").pop().insecure is True


@pytest.mark.parametrize("host", ["example.com", "128.0.0.1:5000", "localhost.example.com",
                                  "10.0.0.1"])
def test_other_hosts_are_secure_by_default(home, tmp_path, monkeypatch, host):
    conf_file(tmp_path, monkeypatch, "")
    assert regconf.endpoints(host, "x").pop().insecure is False


def test_tls_verify_overrides_the_registry_but_not_its_mirrors(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, MIRRORS + '\n[[registry]]\nprefix = "lab.io"\n'
              'insecure = true\n')
    eps = regconf.endpoints("docker.io", "library/busybox", tls_verify=False)
    assert [e.insecure for e in eps] == [False, True, True]
    assert regconf.endpoints("localhost:5000", "x", tls_verify=True)[0].insecure is False
    assert regconf.endpoints("lab.io", "x")[0].insecure is True
    assert regconf.endpoints("lab.io", "x", tls_verify=True)[0].insecure is False


def test_configured_secure_loopback(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, '[[registry]]\nlocation = "localhost:5000"\n'
              'insecure = false\n')
    assert regconf.endpoints("localhost:5000", "x")[0].insecure is False


def test_v1_insecure_list(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, '[registries.insecure]\nregistries = ["lab.local:5000"]\n')
    assert regconf.endpoints("lab.local:5000", "x")[0].insecure is True


def test_wildcard_prefix(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, '[[registry]]\nprefix = "*.corp.example"\n'
              'insecure = true\n')
    assert regconf.endpoints("reg.corp.example:5000", "a")[0].insecure is True
    assert regconf.endpoints("corp.example", "a")[0].insecure is False


def test_mirror_by_digest_only_and_push(home, tmp_path, monkeypatch):
    conf_file(tmp_path, monkeypatch, '[[registry]]\nprefix = "quay.io"\n'
              'mirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.example"\n')
    assert [e.host for e in regconf.endpoints("quay.io", "a/b")] == ["quay.io"]
    assert [e.host for e in regconf.endpoints("quay.io", "a/b", by_digest=True)] == \
        ["m.example", "quay.io"]
    assert [e.host for e in regconf.endpoints("quay.io", "a/b", by_digest=True, push=True)] \
        == ["quay.io"]


# --- which file, and bad files ----------------------------------------------------------------

def test_file_precedence(home):
    ours = home / ".config" / "rootless-box" / "registries.conf"
    containers = home / ".config" / "containers" / "registries.conf"
    containers.parent.mkdir(parents=True)
    containers.write_text('[[registry]]\nprefix = "a.io"\nblocked = true\n')
    with pytest.raises(RegistryError):
        regconf.endpoints("a.io", "x")
    ours.parent.mkdir(parents=True)
    ours.write_text('[[registry]]\nprefix = "b.io"\nblocked = true\n')
    # the first file that exists is the whole configuration
    assert regconf.endpoints("a.io", "x")[0].host == "a.io"
    with pytest.raises(RegistryError):
        regconf.endpoints("b.io", "x")


def test_explicit_file_must_exist(home, tmp_path, monkeypatch):
    monkeypatch.setenv("RBX_REGISTRIES_CONF", str(tmp_path / "missing.conf"))
    with pytest.raises(UsageError) as err:
        regconf.endpoints("quay.io", "x")
    assert "missing.conf" in err.value.message


def test_bad_toml_names_file_and_line(home, tmp_path, monkeypatch):
    path = conf_file(tmp_path, monkeypatch, '[[registry]]\nprefix = "a.io"\ninsecure = yes\n')
    with pytest.raises(UsageError) as err:
        regconf.endpoints("a.io", "x")
    message = err.value.message
    assert message.startswith(str(path) + ": ") and "line 3" in message
    assert "\n" not in message


@pytest.mark.parametrize("text, fragment", [
    ('[[registry]]\nprefix = "a.io"\ninsecure = "yes"\n', "'insecure' must be true or false"),
    ('[[registry]]\ninsecure = true\n', "neither prefix nor location"),
    ('[[registry]]\nlocation = "https://a.io"\n', "no scheme"),
    ('[[registry]]\nprefix = "a.io"\n[[registry]]\nprefix = "a.io"\n', "defined twice"),
    ('[[registry]]\nprefix = "*.a.io"\nlocation = "b.io"\n', "wildcard"),
    ('[[registry]]\nprefix = "a.io"\n[[registry.mirror]]\ninsecure = true\n', "no location"),
])
def test_invalid_settings_name_the_file(home, tmp_path, monkeypatch, text, fragment):
    path = conf_file(tmp_path, monkeypatch, text)
    with pytest.raises(UsageError) as err:
        regconf.endpoints("a.io", "x")
    assert str(path) in err.value.message and fragment in err.value.message


# --- certs.d ----------------------------------------------------------------------------------

def test_ca_files_from_every_certs_dir(home, monkeypatch):
    ours = home / ".config" / "rootless-box" / "certs.d" / "reg.local:5000"
    containers = home / ".config" / "containers" / "certs.d" / "reg.local:5000"
    for d in (ours, containers):
        d.mkdir(parents=True)
    (ours / "ca.crt").write_text("x")
    (containers / "other.crt").write_text("x")
    (containers / "notes.txt").write_text("x")
    assert regconf.ca_files("reg.local:5000")[:2] == [str(ours / "ca.crt"),
                                                      str(containers / "other.crt")]
    # the port is part of the directory name: another port's CA is not trusted
    (ours.parent / "reg.local").mkdir()
    (ours.parent / "reg.local" / "noport.crt").write_text("x")
    assert str(ours.parent / "reg.local" / "noport.crt") not in \
        regconf.ca_files("reg.local:5000")


def test_unreadable_ca_file_skipped(home):
    if os.getuid() == 0:
        pytest.skip("root reads any file")
    d = home / ".config" / "rootless-box" / "certs.d" / "reg.local"
    d.mkdir(parents=True)
    (d / "a.crt").write_text("x")
    (d / "b.crt").write_text("x")
    (d / "b.crt").chmod(0)
    assert str(d / "b.crt") not in regconf.ca_files("reg.local")
    assert str(d / "a.crt") in regconf.ca_files("reg.local")


def test_client_cert_pairs(home):
    d = home / ".config" / "rootless-box" / "certs.d" / "reg.local"
    d.mkdir(parents=True)
    (d / "client.cert").write_text("c")
    (d / "client.key").write_text("k")
    assert (str(d / "client.cert"), str(d / "client.key")) in regconf.client_certs("reg.local")
    (d / "lonely.cert").write_text("c")
    with pytest.raises(UsageError) as err:
        regconf.client_certs("reg.local")
    assert "lonely.key" in err.value.message


def test_host_cannot_escape_certs_dir(home):
    with pytest.raises(UsageError):
        regconf.ca_files("../../etc")
