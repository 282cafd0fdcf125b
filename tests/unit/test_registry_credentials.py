"""registry/credentials: Docker's config.json logins as `login`, `pull` and `push` use them:
file precedence, key spellings, docker.io aliases, credential helpers, atomic 0600 writes that
keep what other tools wrote, and malformed files reported without a traceback."""

import base64
import json
import os
import stat
import sys

import pytest

from rootless_box.errors import AuthError, BoxError, UsageError
from rootless_box.registry import credentials
from rootless_box.registry.credentials import Credentials

HELPER = r'''#!%s
"""A docker-credential-* helper that keeps its logins in $FAKE_CRED_STORE."""
import json, os, sys
path = os.environ["FAKE_CRED_STORE"]
with open(os.environ["FAKE_CRED_LOG"], "a") as log:
    log.write(sys.argv[1] + "\n")
db = json.load(open(path)) if os.path.exists(path) else {}
data = sys.stdin.read()
action = sys.argv[1]
if action == "get":
    if data.strip() not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    user, secret = db[data.strip()]
    print(json.dumps({"ServerURL": data.strip(), "Username": user, "Secret": secret}))
elif action == "store":
    req = json.loads(data)
    db[req["ServerURL"]] = [req["Username"], req["Secret"]]
    json.dump(db, open(path, "w"))
elif action == "erase":
    if data.strip() not in db:
        print("credentials not found in native keychain")
        sys.exit(1)
    del db[data.strip()]
    json.dump(db, open(path, "w"))
elif action == "list":
    print(json.dumps({k: v[0] for k, v in db.items()}))
else:
    sys.exit(2)
'''


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A home of our own: nothing from the real user's files leaks in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)

    class Env:
        ours = home / "xdg" / "rootless-box" / "auth.json"
        docker = home / ".docker" / "config.json"
    return Env


@pytest.fixture
def helper(tmp_path, monkeypatch):
    """docker-credential-test on PATH; returns (its store as a dict reader, its call log)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "docker-credential-test"
    script.write_text(HELPER % sys.executable)
    script.chmod(0o755)
    db, log = tmp_path / "helper-db.json", tmp_path / "helper-log"
    log.write_text("")
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    monkeypatch.setenv("FAKE_CRED_STORE", str(db))
    monkeypatch.setenv("FAKE_CRED_LOG", str(log))

    class Helper:
        @staticmethod
        def db():
            return json.loads(db.read_text()) if db.exists() else {}

        @staticmethod
        def seed(entries):
            db.write_text(json.dumps(entries))

        @staticmethod
        def calls():
            return log.read_text().split()
    return Helper


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_store_then_lookup_roundtrip_in_a_private_file(env):
    assert credentials.store("quay.io", "alice", "s3cret") == "quay.io"
    assert credentials.lookup("quay.io") == Credentials("alice", "s3cret", None)
    assert stat.S_IMODE(env.ours.stat().st_mode) == 0o600
    assert stat.S_IMODE(env.ours.parent.stat().st_mode) == 0o700
    data = json.loads(env.ours.read_text())
    assert data == {"auths": {"quay.io": {"auth": b64("alice:s3cret")}}}
    # the write is a rename: no temporary is left beside the file
    assert os.listdir(env.ours.parent) == ["auth.json"]


def test_store_keeps_mode_0600_when_the_file_was_readable(env):
    write(env.ours, {"auths": {}})
    env.ours.chmod(0o644)
    credentials.store("quay.io", "alice", "pw")
    assert stat.S_IMODE(env.ours.stat().st_mode) == 0o600


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io",
                                 "registry-1.docker.io", "https://registry-1.docker.io"])
@pytest.mark.parametrize("asked", ["docker.io", "index.docker.io", "registry-1.docker.io",
                                   "https://index.docker.io/v1/"])
def test_docker_hub_aliases_all_find_the_login(env, key, asked):
    write(env.docker, {"auths": {key: {"auth": b64("bob:pw")}}})
    assert credentials.lookup(asked) == Credentials("bob", "pw", None)


def test_docker_hub_login_is_written_under_docker_io(env):
    credentials.store("https://index.docker.io/v1/", "bob", "pw")
    assert list(json.loads(env.ours.read_text())["auths"]) == ["docker.io"]
    assert credentials.lookup("registry-1.docker.io") == Credentials("bob", "pw", None)


@pytest.mark.parametrize("key", ["localhost:5000", "http://localhost:5000",
                                 "https://localhost:5000/v2/", "LOCALHOST:5000"])
def test_host_port_keys_in_any_spelling(env, key):
    write(env.docker, {"auths": {key: {"auth": b64("u:p")}}})
    assert credentials.lookup("localhost:5000") == Credentials("u", "p", None)


def test_port_is_part_of_the_registry(env):
    write(env.docker, {"auths": {"localhost:5000": {"auth": b64("u:p")}}})
    assert credentials.lookup("localhost") is None
    assert credentials.lookup("localhost:5001") is None


def test_file_precedence(env, tmp_path, monkeypatch):
    write(env.docker, {"auths": {"a.io": {"auth": b64("docker:1")},
                                 "b.io": {"auth": b64("docker:2")},
                                 "c.io": {"auth": b64("docker:3")}}})
    write(env.ours, {"auths": {"a.io": {"auth": b64("ours:1")},
                               "b.io": {"auth": b64("ours:2")}}})
    override = tmp_path / "override.json"
    write(override, {"auths": {"a.io": {"auth": b64("env:1")}}})
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(override))
    assert credentials.lookup("a.io").username == "env"
    assert credentials.lookup("b.io").username == "ours"
    assert credentials.lookup("c.io").username == "docker"
    assert credentials.lookup("d.io") is None


def test_docker_config_env_names_dockers_directory(env, tmp_path, monkeypatch):
    write(tmp_path / "dc" / "config.json", {"auths": {"e.io": {"auth": b64("x:y")}}})
    write(env.docker, {"auths": {"e.io": {"auth": b64("home:y")}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert credentials.lookup("e.io") == Credentials("x", "y", None)


def test_registry_auth_file_is_the_write_target(env, tmp_path, monkeypatch):
    target = tmp_path / "elsewhere" / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(target))
    credentials.store("quay.io", "alice", "pw")
    assert not env.ours.exists()
    assert json.loads(target.read_text())["auths"]["quay.io"]["auth"] == b64("alice:pw")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_rewrite_keeps_what_docker_wrote(env, monkeypatch):
    docker_file = {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")},
                             "quay.io": {"auth": b64("old:pw"), "email": "a@b.c"}},
                   "HttpHeaders": {"User-Agent": "Docker-Client/24"},
                   "psFormat": "table {{.ID}}", "currentContext": "default"}
    write(env.docker, docker_file)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env.docker))
    credentials.store("quay.io", "new", "pw2")
    data = json.loads(env.docker.read_text())
    for key in ("HttpHeaders", "psFormat", "currentContext"):
        assert data[key] == docker_file[key]
    assert data["auths"]["https://index.docker.io/v1/"] == {"auth": b64("hub:pw")}
    assert data["auths"]["quay.io"] == {"auth": b64("new:pw2"), "email": "a@b.c"}
    assert credentials.lookup("docker.io") == Credentials("hub", "pw", None)
    assert credentials.erase("quay.io") is True
    data = json.loads(env.docker.read_text())
    assert "quay.io" not in data["auths"] and data["psFormat"] == "table {{.ID}}"


def test_symlinked_auth_file_stays_a_symlink(env, tmp_path, monkeypatch):
    real = tmp_path / "real.json"
    write(real, {"auths": {}})
    link = tmp_path / "link.json"
    link.symlink_to(real)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(link))
    credentials.store("quay.io", "a", "b")
    assert link.is_symlink()
    assert "quay.io" in json.loads(real.read_text())["auths"]


def test_username_password_fields_and_identity_token(env):
    write(env.docker, {"auths": {
        "plain.io": {"username": "u", "password": "p"},
        "token.io": {"auth": b64("u:"), "identitytoken": "refresh-123"},
        "empty.io": {}}})
    assert credentials.lookup("plain.io") == Credentials("u", "p", None)
    assert credentials.lookup("token.io") == Credentials("u", "", "refresh-123")
    # an empty entry (what docker leaves beside a credsStore) is no login
    assert credentials.lookup("empty.io") is None


def test_namespace_key_wins_for_its_repositories(env):
    write(env.ours, {"auths": {"quay.io": {"auth": b64("any:1")},
                               "quay.io/team": {"auth": b64("team:2")}}})
    assert credentials.lookup("quay.io", "team/app").username == "team"
    assert credentials.lookup("quay.io", "teammate/app").username == "any"
    assert credentials.lookup("quay.io").username == "any"


def test_erase_removes_every_spelling_and_reports_it(env):
    write(env.ours, {"auths": {"docker.io": {"auth": b64("a:b")},
                               "https://index.docker.io/v1/": {"auth": b64("c:d")},
                               "quay.io": {"auth": b64("e:f")}}})
    assert credentials.erase("docker.io") is True
    assert json.loads(env.ours.read_text())["auths"] == {"quay.io": {"auth": b64("e:f")}}
    assert credentials.lookup("docker.io") is None
    assert credentials.erase("docker.io") is False
    assert stat.S_IMODE(env.ours.stat().st_mode) == 0o600


def test_erase_without_a_file_is_false(env):
    assert credentials.erase("quay.io") is False
    assert not env.ours.exists()


def test_erase_leaves_dockers_own_file_alone(env):
    write(env.docker, {"auths": {"quay.io": {"auth": b64("a:b")}}})
    assert credentials.erase("quay.io") is False
    assert credentials.lookup("quay.io") == Credentials("a", "b", None)


@pytest.mark.parametrize("content, fragment", [
    ("{\"auths\": {", "line 1"),
    ("[]", "not a JSON object"),
    ("{\"auths\": []}", "'auths' must be an object"),
    ("{\"auths\": {\"quay.io\": {\"auth\": \"!!!notbase64\"}}}", "'quay.io'"),
    ("{\"auths\": {\"quay.io\": {\"auth\": \"%s\"}}}" % b64("nocolon"), "user:password"),
    ("{\"auths\": {\"quay.io\": \"x\"}}", "not an object"),
])
def test_malformed_file_is_a_clear_error_naming_it(env, content, fragment):
    write(env.ours, content)
    with pytest.raises(UsageError) as err:
        credentials.lookup("quay.io")
    assert str(env.ours) in err.value.message and fragment in err.value.message


def test_malformed_file_is_not_overwritten_by_store(env):
    write(env.ours, "{broken")
    with pytest.raises(UsageError):
        credentials.store("quay.io", "a", "b")
    assert env.ours.read_text() == "{broken"


def test_empty_file_is_accepted_as_docker_does(env):
    write(env.ours, "")
    assert credentials.lookup("quay.io") is None
    credentials.store("quay.io", "a", "b")
    assert credentials.lookup("quay.io") == Credentials("a", "b", None)


def test_unreadable_file_names_it(env):
    if os.getuid() == 0:
        pytest.skip("root reads any file")
    write(env.ours, "{}")
    env.ours.chmod(0)
    with pytest.raises(UsageError) as err:
        credentials.lookup("quay.io")
    assert str(env.ours) in err.value.message


def test_bad_username_refused(env):
    with pytest.raises(UsageError):
        credentials.store("quay.io", "a:b", "pw")
    assert not env.ours.exists()


# --- credential helpers ---------------------------------------------------------------------

def test_cred_helper_get_store_erase(env, helper):
    write(env.ours, {"credHelpers": {"quay.io": "test"}, "auths": {}})
    credentials.store("quay.io", "alice", "topsecret")
    assert helper.db() == {"quay.io": ["alice", "topsecret"]}
    text = env.ours.read_text()
    assert "topsecret" not in text and b64("alice:topsecret") not in text
    assert json.loads(text)["auths"] == {"quay.io": {}}
    assert credentials.lookup("quay.io") == Credentials("alice", "topsecret", None)
    assert credentials.erase("quay.io") is True
    assert helper.db() == {}
    assert credentials.lookup("quay.io") is None
    assert credentials.erase("quay.io") is False


def test_cred_helper_only_for_its_registry(env, helper):
    write(env.ours, {"credHelpers": {"quay.io": "test"},
                     "auths": {"ghcr.io": {"auth": b64("g:h")}}})
    assert credentials.lookup("ghcr.io") == Credentials("g", "h", None)
    assert helper.calls() == []
    credentials.store("ghcr.io", "g2", "h2")
    assert helper.db() == {}
    assert credentials.lookup("ghcr.io") == Credentials("g2", "h2", None)


def test_cred_helper_is_the_only_source_for_its_registry(env, helper):
    # a stale entry in auths must not be used behind the helper's back
    write(env.docker, {"credHelpers": {"quay.io": "test"},
                       "auths": {"quay.io": {"auth": b64("stale:pw")}}})
    assert credentials.lookup("quay.io") is None


def test_creds_store_then_file_entries(env, helper):
    helper.seed({"https://index.docker.io/v1/": ["hub", "hubpw"]})
    write(env.docker, {"credsStore": "test",
                       "auths": {"https://index.docker.io/v1/": {},
                                 "other.io": {"auth": b64("o:p")}}})
    # docker login's spelling for Docker Hub in the keychain is found
    assert credentials.lookup("docker.io") == Credentials("hub", "hubpw", None)
    assert credentials.lookup("other.io") == Credentials("o", "p", None)


def test_helper_identity_token(env, helper):
    helper.seed({"quay.io": ["<token>", "refresh-xyz"]})
    write(env.ours, {"credsStore": "test"})
    assert credentials.lookup("quay.io") == Credentials("", "", "refresh-xyz")


def test_missing_helper_is_an_auth_error_with_a_hint(env, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    write(env.docker, {"credsStore": "desktop"})
    with pytest.raises(AuthError) as err:
        credentials.lookup("quay.io")
    assert "docker-credential-desktop" in err.value.message
    assert str(env.docker) in err.value.hint


def test_helper_malformed_output_never_shows_the_secret(env, tmp_path, monkeypatch):
    bindir = tmp_path / "bin2"
    bindir.mkdir()
    script = bindir / "docker-credential-leaky"
    script.write_text("#!/bin/sh\necho 'Secret: hunter2 {not json'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    write(env.ours, {"credsStore": "leaky"})
    with pytest.raises(AuthError) as err:
        credentials.lookup("quay.io")
    assert "hunter2" not in err.value.message and "hunter2" not in (err.value.hint or "")


def test_failing_helper_is_an_auth_error(env, tmp_path, monkeypatch):
    bindir = tmp_path / "bin3"
    bindir.mkdir()
    script = bindir / "docker-credential-broken"
    script.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ.get("PATH", "")))
    write(env.ours, {"credHelpers": {"quay.io": "broken"}})
    with pytest.raises(AuthError) as err:
        credentials.lookup("quay.io")
    assert "keychain locked" in err.value.message
    assert isinstance(err.value, BoxError)
