"""Compose's project model as compose-go builds it: YAML typing, interpolation, .env, merge,
extends, include, !reset/!override, profiles, project names, schema and consistency errors,
and `config`'s canonical output. Our own cases (situations from compose-go's tests)."""

import json
import os

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")

from rootless_box.compose import canonical, loader, merge, template, yamlread  # noqa: E402
from rootless_box.errors import BoxError  # noqa: E402


# -- YAML read as go-yaml reads it ---------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("restart: no", {"restart": "no"}),
    ("a: yes", {"a": "yes"}),
    ("on: off", {"on": "off"}),
    ("mode: 0440", {"mode": 288}),
    ("mode: 0o440", {"mode": 288}),
    ("x: 0x1F", {"x": 31}),
    ("p: 2122:22", {"p": "2122:22"}),
    ("d: 2024-01-01", {"d": "2024-01-01"}),
    ("t: 2024-01-01T10:00:00Z", {"t": "2024-01-01T10:00:00Z"}),
    ("b: true\nc: False\nd: TRUE", {"b": True, "c": False, "d": True}),
    ("n: ~\nm: null\ne:", {"n": None, "m": None, "e": None}),
    ("f: 1.5\ng: 1e3", {"f": 1.5, "g": 1000.0}),
    # not octal, not an int: go-yaml v3's float pattern takes it
    ("v: 08", {"v": 8.0}),
    ("b: &b {x: 1}\nc:\n  <<: *b\n  y: 2", {"b": {"x": 1}, "c": {"x": 1, "y": 2}}),
])
def test_yaml_typing_is_go_yamls(text, expected):
    assert yamlread.load_all(text, "f.yaml") == [expected]


def test_yaml_duplicate_key_names_file_line_and_column():
    with pytest.raises(BoxError) as info:
        yamlread.load_all("services:\n  a: {}\n  a: {}\n", "x/compose.yaml")
    assert str(info.value) == ('failed to parse x/compose.yaml:3:3: mapping key "a" already '
                               'defined at line 2')


def test_yaml_syntax_error_names_the_place():
    with pytest.raises(BoxError) as info:
        yamlread.load_all("a: [1\n", "c.yaml")
    assert str(info.value).startswith("failed to parse c.yaml:2:1: ")


def test_yaml_reset_and_override_tags():
    doc, = yamlread.load_all("a: !reset []\nb: !override {x: 1}\nc: !reset 8080", "f")
    assert doc == {"a": yamlread.Reset([]), "b": yamlread.Override({"x": 1}),
                   "c": yamlread.Reset(8080)}


# -- interpolation -----------------------------------------------------------------------

ENV = {"SET": "v", "EMPTY": "", "N": "3"}


@pytest.mark.parametrize("text, expected", [
    ("$SET", "v"), ("${SET}", "v"), ("x${SET}y", "xvy"), ("$SET-x", "v-x"),
    ("$$SET", "$SET"), ("$$", "$"), ("a$$b", "a$b"),
    ("${UNSET:-d}", "d"), ("${EMPTY:-d}", "d"), ("${SET:-d}", "v"),
    ("${UNSET-d}", "d"), ("${EMPTY-d}", ""), ("${SET-d}", "v"),
    ("${SET:+r}", "r"), ("${EMPTY:+r}", ""), ("${UNSET:+r}", ""),
    ("${SET+r}", "r"), ("${EMPTY+r}", "r"), ("${UNSET+r}", ""),
    ("${UNSET:-${SET}}", "v"), ("${UNSET:-${UNSET2:-deep}}", "deep"),
    ("${UNSET:-a-b}", "a-b"), ("${UNSET:-x:y}", "x:y"), ("${UNSET:-}", ""),
    ("${UNSET:-${SET}}-${N}", "v-3"), ("${UNSET}", ""), ("$UNSET", ""),
    ("no vars", "no vars"), ("a $ b", "a $ b"), ("$1", "$1"), ("${SET:?must}", "v"), ("${EMPTY?must}", ""),
])
def test_substitute(text, expected):
    assert template.substitute(text, ENV.get) == expected


@pytest.mark.parametrize("text, message", [
    ("${UNSET:?need it}", "required variable UNSET is missing a value: need it"),
    ("${EMPTY:?need it}", "required variable EMPTY is missing a value: need it"),
    ("${UNSET?}", "required variable UNSET is missing a value"),
    ("${UNSET:?${SET} missing}", "required variable UNSET is missing a value: v missing"),
])
def test_substitute_required(text, message):
    with pytest.raises(template.MissingRequired) as info:
        template.substitute(text, ENV.get)
    assert str(info.value) == message


@pytest.mark.parametrize("text", ["${ foo}", "${}", "${foo bar}", "${9x}"])
def test_substitute_invalid(text):
    with pytest.raises(template.InvalidTemplate):
        template.substitute(text, ENV.get)


def test_unset_variable_warns_as_compose():
    warnings = []
    assert template.substitute("a${NOPE}", ENV.get, warnings) == "a"
    assert warnings == ['The "NOPE" variable is not set. Defaulting to a blank string.']


def test_interpolation_errors_name_the_path():
    with pytest.raises(BoxError) as info:
        template.interpolate({"services": {"web": {"image": "${IMG:?set the image}"}}},
                             ENV.get, [])
    assert str(info.value) == ("error while interpolating services.web.image: required "
                               "variable IMG is missing a value: set the image")
    with pytest.raises(BoxError) as info:
        template.interpolate({"services": {"web": {"image": "${ x}"}}}, ENV.get, [])
    assert str(info.value) == "invalid interpolation format for services.web.image: ${ x}"


def test_interpolation_cast_failure_is_composes_words():
    with pytest.raises(BoxError) as info:
        template.interpolate({"services": {"a": {"ports": [{"target": "$P"}]}}},
                             {"P": "x"}.get, [])
    assert str(info.value) == ('error while interpolating services.a.ports.0.target: failed '
                               'to cast to expected type: strconv.Atoi: parsing "x": invalid '
                               'syntax')


def test_interpolation_values_not_keys_and_typed_casts():
    data = {"services": {"$SET": {"read_only": "${T}", "scale": "${N}",
                                  "ports": [{"target": "${N}"}], "image": "$N"}}}
    out = template.interpolate(data, {"T": "yes", "N": "3", "SET": "v"}.get, [])
    assert out == {"services": {"$SET": {"read_only": True, "scale": 3,
                                         "ports": [{"target": 3}], "image": "3"}}}


# -- .env ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("A=1\nB=2", {"A": "1", "B": "2"}),
    ("export A=1", {"A": "1"}),
    ("A: 1", {"A": "1"}),
    ("# comment\n\nA=1 # trailing\nB=x#y", {"A": "1", "B": "x#y"}),
    ("A='$B \\n'", {"A": "$B \\n"}),
    ('A="a\\nb"', {"A": "a\nb"}),
    ('A="q\\"q"', {"A": 'q"q'}),
    ('A="multi\nline"', {"A": "multi\nline"}),
    ("A=1\nB=${A}2\nC=$A$B", {"A": "1", "B": "12", "C": "112"}),
    ('A=1\nB="${A:-x} ${Z:-z}"', {"A": "1", "B": "1 z"}),
    ("A=\nB=", {"A": "", "B": ""}),
    ("A = spaced ", {"A": "spaced"}),
    ("\ufeffA=bom", {"A": "bom"}),
    ('A="\\$HOME"', {"A": "$HOME"}),
    ("FROMENV\nA=1", {"FROMENV": "host", "A": "1"}),
    ("MISSING\nA=1", {"A": "1"}),
])
def test_dotenv(text, expected):
    env = {"FROMENV": "host"}
    assert template.parse_dotenv(text, ".env", env.get) == expected


def test_dotenv_environment_wins_in_expansion():
    # compose-go looks a name up in the environment before the file's own keys
    assert template.parse_dotenv("A=file\nB=$A", ".env", {"A": "env"}.get)["B"] == "env"


@pytest.mark.parametrize("text, message", [
    ('A="open', 'failed to read .env: line 1: unterminated quoted value "open'),
    ("A B=1", "failed to read .env: line 1: key cannot contain a space"),
    ("A$=1", 'failed to read .env: line 1: unexpected character "$" in variable name "A$=1"'),
])
def test_dotenv_errors(text, message):
    with pytest.raises(BoxError) as info:
        template.parse_dotenv(text, ".env")
    assert str(info.value) == message


# -- merge ---------------------------------------------------------------------------------

def _svc(base, over):
    return merge.unique(merge.merge({"services": {"s": base}}, {"services": {"s": over}}))[
        "services"]["s"]


@pytest.mark.parametrize("base, over, expected", [
    ({"image": "a"}, {"image": "b"}, {"image": "b"}),
    ({"command": ["a", "b"]}, {"command": ["c"]}, {"command": ["c"]}),
    ({"entrypoint": "a"}, {"entrypoint": ["b"]}, {"entrypoint": ["b"]}),
    ({"healthcheck": {"test": ["CMD", "a"], "retries": 2}},
     {"healthcheck": {"test": ["CMD", "b"]}},
     {"healthcheck": {"test": ["CMD", "b"], "retries": 2}}),
    ({"environment": {"A": "1", "B": "2"}}, {"environment": ["B=3", "C"]},
     {"environment": ["A=1", "B=3", "C"]}),
    ({"labels": ["a=1"]}, {"labels": {"a": "2"}}, {"labels": ["a=2"]}),
    ({"ports": ["80:80", "443:443"]}, {"ports": ["80:80", "8080:8080"]},
     {"ports": ["80:80", "443:443", "8080:8080"]}),
    ({"volumes": ["./a:/data", "v:/x"]}, {"volumes": ["./b:/data"]},
     {"volumes": ["./b:/data", "v:/x"]}),
    ({"volumes": [{"type": "bind", "source": "./a", "target": "/d"}]},
     {"volumes": ["./c:/d:ro"]}, {"volumes": ["./c:/d:ro"]}),
    ({"depends_on": ["db"]}, {"depends_on": {"cache": {"condition": "service_healthy"}}},
     {"depends_on": {"db": {"condition": "service_started", "required": True},
                     "cache": {"condition": "service_healthy"}}}),
    ({"networks": ["front"]}, {"networks": {"back": {"aliases": ["b"]}}},
     {"networks": {"front": None, "back": {"aliases": ["b"]}}}),
    ({"build": "."}, {"build": {"target": "dev"}}, {"build": {"context": ".",
                                                              "target": "dev"}}),
    ({"dns": "1.1.1.1"}, {"dns": ["8.8.8.8", "1.1.1.1"]}, {"dns": ["1.1.1.1", "8.8.8.8"]}),
    ({"cap_add": ["NET_ADMIN"]}, {"cap_add": ["SYS_ADMIN", "NET_ADMIN"]},
     {"cap_add": ["NET_ADMIN", "SYS_ADMIN"]}),
    ({"extra_hosts": ["a:1"]}, {"extra_hosts": ["a:1", "b:2"]},
     {"extra_hosts": ["a:1", "b:2"]}),
    ({"logging": {"driver": "json-file", "options": {"max-size": "1m"}}},
     {"logging": {"options": {"max-file": "2"}}},
     {"logging": {"driver": "json-file", "options": {"max-size": "1m", "max-file": "2"}}}),
    ({"logging": {"driver": "json-file", "options": {"max-size": "1m"}}},
     {"logging": {"driver": "syslog"}}, {"logging": {"driver": "syslog"}}),
    ({"secrets": ["a", {"source": "b", "target": "/x"}]}, {"secrets": ["a"]},
     {"secrets": ["a", {"source": "b", "target": "/x"}]}),
    ({"expose": [80, "81"]}, {"expose": ["80"]}, {"expose": ["80", "81"]}),
])
def test_merge_rules(base, over, expected):
    assert _svc(base, over) == expected


@pytest.mark.parametrize("over, expected", [
    ("ports: !reset []", {"image": "a", "environment": {"A": "1"}}),
    ("environment: !reset {}", {"image": "a", "ports": ["80:80"]}),
    ("ports: !override ['9:9']",
     {"image": "a", "environment": {"A": "1"}, "ports": ["9:9"]}),
    ("environment: !override {B: 2}",
     {"image": "a", "ports": ["80:80"], "environment": {"B": 2}}),
    ("image: !reset null", {"environment": {"A": "1"}, "ports": ["80:80"]}),
])
def test_reset_and_override(over, expected):
    base = {"image": "a", "environment": {"A": "1"}, "ports": ["80:80"]}
    doc, = yamlread.load_all("services:\n  s:\n    %s\n" % over, "o.yaml")
    assert merge.merge({"services": {"s": base}}, doc)["services"]["s"] == expected


# -- whole projects through the loader -----------------------------------------------------

def _write(tmp_path, layout):
    for name, text in layout.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _load(tmp_path, layout, environ=None, **kw):
    _write(tmp_path, layout)
    kw.setdefault("cache_dir", None)
    return loader.load(loader.Options(cwd=str(tmp_path), environ=environ or {}, **kw))


def _error(tmp_path, layout, environ=None, **kw):
    with pytest.raises(BoxError) as info:
        _load(tmp_path, layout, environ, **kw)
    return str(info.value).replace(str(tmp_path), "DIR")


def test_files_found_upward_with_their_override(tmp_path):
    _write(tmp_path, {"compose.yaml": "services: {web: {image: a}}\n",
                      "compose.override.yaml": "services: {web: {image: b}}\n",
                      "sub/deeper/.keep": ""})
    project = loader.load(loader.Options(cwd=str(tmp_path / "sub" / "deeper"), environ={}))
    assert project.model["services"]["web"]["image"] == "b"
    assert project.files == [str(tmp_path / "compose.yaml"),
                             str(tmp_path / "compose.override.yaml")]
    assert project.name == tmp_path.name.lower().lstrip("_-") or project.name


def test_obsolete_version_warned_once_per_file_that_has_it(tmp_path):
    p = _load(tmp_path, {"a.yaml": "version: '3'\nservices: {a: {image: x}}\n",
                         "b.yaml": "services: {a: {image: y}}\n"}, None,
              files=["a.yaml", "b.yaml"])
    assert [w for w in p.warnings if "version" in w] == [
        "%s: the attribute `version` is obsolete, it will be ignored, please remove it to "
        "avoid potential confusion" % (tmp_path / "a.yaml")]
    assert "version" not in p.model


def test_compose_yaml_preferred_over_docker_compose_yml(tmp_path):
    project = _load(tmp_path, {"docker-compose.yml": "services: {a: {image: old}}\n",
                               "compose.yaml": "services: {a: {image: new}}\n"})
    assert project.model["services"]["a"]["image"] == "new"


def test_no_file_is_compose_words(tmp_path):
    assert _error(tmp_path, {}) == "no configuration file provided: not found"


def test_several_files_and_compose_file_variable(tmp_path):
    files = {"a.yaml": "services: {web: {image: a, environment: [X=1]}}\n",
             "b.yml": "services: {web: {environment: [Y=2]}}\n"}
    p = _load(tmp_path, files, None, files=["a.yaml", "b.yml"])
    assert p.model["services"]["web"]["environment"] == {"X": "1", "Y": "2"}
    p = _load(tmp_path, {}, {"COMPOSE_FILE": "a.yaml;b.yml", "COMPOSE_PATH_SEPARATOR": ";"})
    assert p.model["services"]["web"]["environment"] == {"X": "1", "Y": "2"}


@pytest.mark.parametrize("flag, environ, top, dirname, expected", [
    ("given", {"COMPOSE_PROJECT_NAME": "fromenv"}, "fromfile", "Dir", "given"),
    (None, {"COMPOSE_PROJECT_NAME": "fromenv"}, "fromfile", "Dir", "fromenv"),
    (None, {}, "fromfile", "Dir", "fromfile"),
    (None, {"N": "interp"}, "${N}", "Dir", "interp"),
    (None, {}, None, "My.App_1", "myapp_1"),
    (None, {}, None, "-_x", "x"),
])
def test_project_name_precedence(tmp_path, flag, environ, top, dirname, expected):
    d = tmp_path / dirname
    text = ("name: %s\n" % top if top else "") + "services: {a: {image: x}}\n"
    p = _load(d, {"compose.yaml": text}, environ, project_name=flag)
    assert p.name == expected
    assert p.model["name"] == expected
    assert p.model["networks"]["default"]["name"] == expected + "_default"


@pytest.mark.parametrize("bad", ["My", "-x", "a.b"])
def test_explicit_bad_project_name_refused(tmp_path, bad):
    message = _error(tmp_path, {"compose.yaml": "services: {a: {image: x}}\n"},
                     project_name=bad)
    assert message.startswith('invalid project name "%s": must consist only of' % bad)


def test_dotenv_feeds_interpolation_and_environment_wins(tmp_path):
    files = {"compose.yaml": "services: {a: {image: '${IMG}:${TAG}'}}\n",
             ".env": "IMG=fromdotenv\nTAG=1\n"}
    assert _load(tmp_path, files, {"TAG": "2"}).model["services"]["a"]["image"] == \
        "fromdotenv:2"
    _write(tmp_path, {"other.env": "IMG=other\nTAG=3\n"})
    p = _load(tmp_path, {}, env_files=["other.env"])
    assert p.model["services"]["a"]["image"] == "other:3"
    p = _load(tmp_path, {}, {"COMPOSE_DISABLE_ENV_FILE": "1"})
    assert p.model["services"]["a"]["image"] == ":"
    assert 'The "IMG" variable is not set. Defaulting to a blank string.' in p.warnings


def test_extends_same_file_and_other_file(tmp_path):
    p = _load(tmp_path, {
        "compose.yaml": "services:\n"
                        "  base: {image: b, environment: {A: '1'}, ports: ['80:80']}\n"
                        "  web: {extends: base, environment: {B: '2'}}\n"
                        "  other: {extends: {file: lib/common.yaml, service: common}}\n",
        "lib/common.yaml": "services:\n"
                           "  root: {image: r, command: [a]}\n"
                           "  common: {extends: root, build: ./ctx, command: [b]}\n"})
    web = p.model["services"]["web"]
    assert web["environment"] == {"A": "1", "B": "2"} and web["image"] == "b"
    assert "extends" not in web
    other = p.model["services"]["other"]
    assert other["command"] == ["b"] and other["image"] == "r"
    assert other["build"]["context"] == str(tmp_path / "lib" / "ctx")


@pytest.mark.parametrize("services, message", [
    ("a: {extends: a, image: x}", "Circular reference with extends"),
    ("a: {extends: b, image: x}\n  b: {extends: a, image: y}", "Circular reference with "
                                                                "extends"),
    ("a: {extends: nope, image: x}", 'cannot extend service "a" in DIR/compose.yaml: '
                                     'service "nope" not found'),
])
def test_extends_errors(tmp_path, services, message):
    assert message in _error(tmp_path, {"compose.yaml": "services:\n  %s\n" % services})


def test_include_loads_a_project_with_its_own_directory_and_env(tmp_path):
    p = _load(tmp_path, {
        "compose.yaml": "include: [sub/compose.yaml]\nservices: {web: {image: w, "
                        "depends_on: [db]}}\n",
        "sub/compose.yaml": "services: {db: {image: '${DB}', volumes: ['./data:/d']}}\n",
        "sub/.env": "DB=postgres\n"})
    db = p.model["services"]["db"]
    assert db["image"] == "postgres"
    assert db["volumes"][0]["source"] == str(tmp_path / "sub" / "data")


def test_include_long_form_and_cycle(tmp_path):
    p = _load(tmp_path, {
        "compose.yaml": "include:\n  - path: [lib/a.yaml, lib/b.yaml]\n"
                        "    project_directory: lib\n    env_file: lib/vars.env\n"
                        "services: {web: {image: w}}\n",
        "lib/a.yaml": "services: {a: {image: '${A_IMAGE}', build: ./src}}\n",
        "lib/b.yaml": "services: {a: {environment: [B=1]}}\n",
        "lib/vars.env": "A_IMAGE=from-vars\n"})
    a = p.model["services"]["a"]
    assert a["image"] == "from-vars" and a["environment"] == {"B": "1"}
    assert a["build"]["context"] == str(tmp_path / "lib" / "src")
    message = _error(tmp_path, {"compose.yaml": "include: [x.yaml]\nservices: {w: {image: "
                                                "w}}\n",
                                "x.yaml": "include: [compose.yaml]\n"})
    assert message == ("include cycle detected: DIR/compose.yaml include DIR/x.yaml include "
                       "DIR/compose.yaml")


def test_include_conflict_is_an_error(tmp_path):
    message = _error(tmp_path, {
        "compose.yaml": "include: [sub.yaml]\nservices: {db: {image: mine}}\n",
        "sub.yaml": "services: {db: {image: theirs}}\n"})
    assert message == "services.db conflicts with imported resource"


def test_profiles_select_services(tmp_path):
    files = {"compose.yaml": "services:\n  web: {image: w}\n"
                             "  debug: {image: d, profiles: [dev]}\n"
                             "  tools: {image: t, profiles: [ops, dev]}\n"}
    p = _load(tmp_path, files)
    assert list(loader.select(p)) == ["web"]
    assert p.all_profiles == ["dev", "ops"]
    p = _load(tmp_path, files, profiles=["dev"])
    assert list(loader.select(p)) == ["debug", "tools", "web"]
    p = _load(tmp_path, files, {"COMPOSE_PROFILES": "ops"})
    assert list(loader.select(p)) == ["tools", "web"]
    p = _load(tmp_path, files, profiles=["*"])
    assert len(loader.select(p)) == 3
    # a service named on the command line enables its own profiles
    assert list(loader.select(_load(tmp_path, files), ["debug"])) == ["debug"]


def test_dependency_on_a_disabled_service_is_an_error(tmp_path):
    p = _load(tmp_path, {"compose.yaml": "services:\n  web: {image: w, depends_on: [db]}\n"
                                         "  db: {image: d, profiles: [x]}\n"})
    with pytest.raises(BoxError) as info:
        loader.select(p)
    assert str(info.value) == ('service "web" depends on undefined service "db": invalid '
                               'compose project')


@pytest.mark.parametrize("services, top, message", [
    ("a: {image: x, depends_on: [b]}\n  b: {image: y, depends_on: [a]}", "",
     "dependency cycle detected: a -> b -> a"),
    ("a: {image: x, depends_on: [nope]}", "",
     'service "a" depends on undefined service "nope": invalid compose project'),
    ("a: {image: x, networks: [back]}", "",
     'service "a" refers to undefined network back: invalid compose project'),
    ("a: {image: x, volumes: ['data:/d']}", "",
     'service "a" refers to undefined volume data: invalid compose project'),
    ("a: {image: x, secrets: [s]}", "",
     'service "a" refers to undefined secret s: invalid compose project'),
    ("a: {command: [x]}", "",
     'service "a" has neither an image nor a build context specified: invalid compose '
     'project'),
    ("a: {image: x, scale: -1}", "", "services.a.scale: must be greater than or equal to 0"),
    ("a: {image: x, scale: 2, deploy: {replicas: 3}}", "",
     "services.a: can't set distinct values on 'scale' and 'deploy.replicas': invalid "
     "compose project"),
    ("a: {image: x, container_name: cc, scale: 2}", "",
     "services.a: can't set container_name and scale as container name must be unique: "
     "invalid compose project"),
    ("a: {image: x, network_mode: 'service:b'}", "",
     "service \"b\" not found for network_mode 'service:b'"),
])
def test_consistency_errors(tmp_path, services, top, message):
    assert _error(tmp_path, {"compose.yaml": "services:\n  %s\n%s" % (services, top)}) == \
        message


@pytest.mark.parametrize("service, message", [
    ("imagee: x", "services.a additional properties 'imagee' not allowed"),
    ("image: x\n    ports: [{target: 80, mode: 5}]", "services.a.ports.0.mode must be a string"),
    ("image: x\n    ports: [[80]]", "services.a.ports.0 must be a number"),
    ("image: [x]", "services.a.image must be a string"),
    ("image: x\n    container_name: c", "services.a.container_name 'c' does not match "
                                       "pattern '[a-zA-Z0-9][a-zA-Z0-9_.-]+'"),
    ("image: x\n    restart: false", "services.a.restart must be a string"),
])
def test_schema_errors_name_file_and_path(tmp_path, service, message):
    assert _error(tmp_path, {"compose.yaml": "services:\n  a:\n    %s\n" % service}) == \
        "validating DIR/compose.yaml: " + message


def test_schema_error_names_the_file_that_brought_it(tmp_path):
    message = _error(tmp_path, {"compose.yaml": "services: {a: {image: x}}\n",
                                "compose.override.yaml": "services: {a: {cpus: [1]}}\n"})
    assert message.startswith("validating DIR/compose.override.yaml: services.a.cpus ")


def test_validation_cache_skips_a_validated_model(tmp_path):
    cache = tmp_path / "cache"
    files = {"compose.yaml": "services: {a: {image: x}}\n"}
    _load(tmp_path, files, cache_dir=str(cache))
    markers = os.listdir(cache / "compose-valid")
    assert len(markers) == 1
    _load(tmp_path, files, cache_dir=str(cache))
    assert os.listdir(cache / "compose-valid") == markers
    # a changed model is validated again
    _load(tmp_path, {"compose.yaml": "services: {a: {image: y}}\n"}, cache_dir=str(cache))
    assert len(os.listdir(cache / "compose-valid")) == 2


# -- canonical form ------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("80", [{"mode": "ingress", "target": 80, "protocol": "tcp"}]),
    ("8080:80", [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]),
    ("127.0.0.1:8080:80/udp", [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80,
                                "published": "8080", "protocol": "udp"}]),
    ("127.0.0.1::80", [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80,
                        "protocol": "tcp"}]),
    ("[::1]:8080:80", [{"mode": "ingress", "host_ip": "::1", "target": 80,
                        "published": "8080", "protocol": "tcp"}]),
    ("9000-9001:80-81", [{"mode": "ingress", "target": 80, "published": "9000",
                          "protocol": "tcp"},
                         {"mode": "ingress", "target": 81, "published": "9001",
                          "protocol": "tcp"}]),
    ("9000-9010:80", [{"mode": "ingress", "target": 80, "published": "9000-9010",
                       "protocol": "tcp"}]),
])
def test_ports_long_form(spec, expected):
    assert canonical.parse_ports(spec, "p") == expected


@pytest.mark.parametrize("spec, expected", [
    ("/data", {"type": "volume", "target": "/data"}),
    ("db:/data", {"type": "volume", "source": "db", "target": "/data", "volume": {}}),
    ("./d:/data:ro", {"type": "bind", "source": "./d", "target": "/data", "read_only": True,
                      "bind": {"create_host_path": True}}),
    ("/h:/c:rw,z", {"type": "bind", "source": "/h", "target": "/c", "read_only": False,
                    "bind": {"selinux": "z", "create_host_path": True}}),
    ("db:/d:nocopy", {"type": "volume", "source": "db", "target": "/d",
                      "volume": {"nocopy": True}}),
])
def test_volumes_long_form(spec, expected):
    assert canonical.parse_volume(spec) == expected


CONFIG_YAML = """\
name: demo
services:
  web:
    build:
      context: DIR/app
      dockerfile: Dockerfile
    command:
      - sh
      - -c
      - echo hi
    depends_on:
      db:
        condition: service_started
        required: true
    environment:
      A: "1"
      EMPTY: null
    networks:
      default: null
    ports:
      - mode: ingress
        target: 80
        published: "8080"
        protocol: tcp
    restart: "no"
    volumes:
      - type: bind
        source: DIR/data
        target: /data
        bind:
          create_host_path: true
      - type: volume
        source: db
        target: /var/lib/db
        volume: {}
  db:
    image: postgres:16
    networks:
      default: null
networks:
  default:
    name: demo_default
volumes:
  db:
    name: demo_db
"""


def test_config_output_shape(tmp_path):
    p = _load(tmp_path, {"compose.yaml": """
name: demo
services:
  web:
    build: ./app
    command: sh -c "echo hi"
    restart: no
    ports: ["${PORT:-8080}:80"]
    environment: [A=1, EMPTY]
    volumes: [./data:/data, db:/var/lib/db]
    depends_on: [db]
  db:
    image: postgres:16
volumes:
  db:
"""})
    text = canonical.to_yaml(p.model).replace(str(tmp_path), "DIR")
    # services are a Go map (sorted); compare as parsed, and the field order of web itself
    assert yamlread.load_all(text, "out") == yamlread.load_all(CONFIG_YAML, "want")
    assert text.index("  db:\n    image") < text.index("  web:")
    web = text[text.index("  web:"):]
    web = web[:web.index("\nnetworks:")]
    assert [line.split(":")[0].strip() for line in web.splitlines()[1:]
            if line.startswith("    ") and not line.startswith("     ")] == [
        "build", "command", "depends_on", "environment", "networks", "ports", "restart",
        "volumes"]
    as_json = json.loads(canonical.to_json(p.model))
    assert as_json["services"]["web"]["ports"][0]["published"] == "8080"
    assert canonical.to_json(p.model).startswith('{\n    "name": "demo",')
