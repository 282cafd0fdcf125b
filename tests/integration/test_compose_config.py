"""`rootless-box compose ... config` through the CLI, as a user runs it in a project
directory: Compose v2's global flags and environment variables, config's options and
output, its errors (one line, exit 1), and the validation cache."""

import json
import os
import subprocess

import pytest

pytest.importorskip("yaml")
pytest.importorskip("jsonschema")

COMPOSE = """\
services:
  web:
    build: ./app
    ports:
      - ${PORT:-8080}:80
    restart: no
    environment:
      GREETING: ${GREETING}
    depends_on: [db]
  db:
    image: postgres:16
    volumes: [data:/var/lib/postgresql/data]
  debug:
    image: busybox
    profiles: [dev]
volumes:
  data:
"""


@pytest.fixture
def project(tmp_path):
    d = tmp_path / "My_App"
    (d / "app").mkdir(parents=True)
    (d / "compose.yaml").write_text(COMPOSE)
    (d / ".env").write_text("GREETING='hello world' # from .env\n")
    return d


def compose(cli, cwd, *args, env=None, check=0):
    full_env = dict(cli.env)
    for key in list(full_env):
        if key.startswith("COMPOSE_"):
            del full_env[key]
    full_env.update(env or {})
    proc = subprocess.run(cli.argv("compose", *args), cwd=str(cwd), capture_output=True,
                          text=True, env=full_env, timeout=60)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_config_prints_the_canonical_model(cli, project):
    out = compose(cli, project, "config").stdout
    assert out.startswith("name: my_app\nservices:\n")
    assert """\
    ports:
      - mode: ingress
        target: 80
        published: "8080"
        protocol: tcp
    restart: "no"
""" in out
    assert "      GREETING: hello world\n" in out
    assert "      context: %s\n" % (project / "app") in out
    assert "networks:\n  default:\n    name: my_app_default\n" in out
    assert "volumes:\n  data:\n    name: my_app_data\n" in out
    assert "debug" not in out  # its profile is not active


def test_config_from_a_subdirectory_with_environment_over_dotenv(cli, project):
    out = compose(cli, project / "app", "config", "--format", "json",
                  env={"PORT": "9090", "GREETING": "from env"}).stdout
    model = json.loads(out)
    assert model["services"]["web"]["ports"][0]["published"] == "9090"
    assert model["services"]["web"]["environment"] == {"GREETING": "from env"}


def test_list_options(cli, project):
    assert compose(cli, project, "config", "--services").stdout == "db\nweb\n"
    assert compose(cli, project, "--profile", "dev", "config", "--services").stdout == \
        "db\ndebug\nweb\n"
    assert compose(cli, project, "config", "--services",
                   env={"COMPOSE_PROFILES": "dev"}).stdout == "db\ndebug\nweb\n"
    assert compose(cli, project, "config", "--volumes").stdout == "data\n"
    assert compose(cli, project, "config", "--profiles").stdout == "dev\n"
    assert compose(cli, project, "-p", "shop", "config", "--images").stdout == \
        "postgres:16\nshop-web\n"
    proc = compose(cli, project, "config", "-q")
    assert proc.stdout == "" and proc.stderr == ""


def test_named_service_brings_its_dependencies(cli, project):
    out = compose(cli, project, "config", "web").stdout
    assert "  db:\n" in out and "  web:\n" in out and "debug" not in out


def test_files_name_and_directory_flags(cli, project, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "extra.yaml").write_text("services:\n  web:\n    environment: [EXTRA=1]\n")
    (other / "alt.env").write_text("GREETING=alt\nCOMPOSE_PROJECT_NAME=fromenvfile\n")
    out = compose(cli, other, "-f", project / "compose.yaml", "-f", "extra.yaml",
                  "--env-file", "alt.env", "config").stdout
    assert out.startswith("name: fromenvfile\n")
    assert "      EXTRA: \"1\"\n      GREETING: alt\n" in out
    out = compose(cli, other, "--project-directory", project, "-p", "given", "config").stdout
    assert out.startswith("name: given\n") and "GREETING: hello world" in out
    out = compose(cli, other, "config", "--services",
                  env={"COMPOSE_FILE": "%s:extra.yaml" % (project / "compose.yaml"),
                       "COMPOSE_PROJECT_NAME": "x"}).stdout
    assert out == "db\nweb\n"


def test_no_interpolate_and_output_file(cli, project):
    out = compose(cli, project, "config", "--no-interpolate").stdout
    assert "      - ${PORT:-8080}:80\n" in out
    assert "GREETING: ${GREETING}" in out
    target = project / "out.yaml"
    assert compose(cli, project, "config", "-o", target).stdout == ""
    assert target.read_text() == compose(cli, project, "config").stdout


def test_unset_variable_warns_on_stderr(cli, project):
    (project / ".env").write_text("")
    proc = compose(cli, project, "config")
    assert 'The "GREETING" variable is not set. Defaulting to a blank string.' in proc.stderr
    assert 'GREETING: ""' in proc.stdout


@pytest.mark.parametrize("text, message", [
    ("services:\n  web:\n    imagee: x\n",
     "validating DIR/compose.yaml: services.web additional properties 'imagee' not allowed"),
    ("services:\n  web:\n    image: x\n  web:\n    image: y\n",
     'failed to parse DIR/compose.yaml:4:3: mapping key "web" already defined at line 2'),
    ("services:\n  web:\n    image: ${IMG:?set IMG first}\n",
     "error while interpolating services.web.image: required variable IMG is missing a "
     "value: set IMG first"),
    ("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n",
     "dependency cycle detected: a -> b -> a"),
    ("services:\n  a: {image: x, networks: [nope]}\n",
     'service "a" refers to undefined network nope: invalid compose project'),
])
def test_bad_files_fail_in_one_line(cli, tmp_path, text, message):
    (tmp_path / "compose.yaml").write_text(text)
    proc = compose(cli, tmp_path, "config", check=1)
    assert proc.stdout == ""
    lines = proc.stderr.replace(str(tmp_path), "DIR").splitlines()
    assert lines[0] == "rootless-box: error: " + message
    assert all(line.startswith("hint: ") for line in lines[1:])


def test_grammar_errors(cli, project, tmp_path):
    proc = compose(cli, project, "nosuch", check=1)
    assert 'unknown docker command: "compose nosuch"' in proc.stderr
    proc = compose(cli, project, "watch", check=1)
    assert 'unknown docker command: "compose watch"' in proc.stderr
    proc = compose(cli, project, "-f", "-", "config", check=1)
    assert "(-f -) is not supported yet" in proc.stderr
    proc = compose(cli, project, "-p", "Bad", "config", check=1)
    assert 'invalid project name "Bad"' in proc.stderr
    proc = compose(cli, tmp_path / "..", "config", check=1)
    assert "rootless-box: error: no configuration file provided: not found" in proc.stderr
    assert compose(cli, project, "--help").stdout.startswith(
        "\nUsage:  rootless-box compose [OPTIONS] COMMAND")


def test_an_unchanged_project_is_not_validated_again(cli, project):
    markers = os.path.join(cli.root, "compose-valid")
    compose(cli, project, "config", "-q")
    first = sorted(os.listdir(markers))
    assert first
    # with the marker there, loading must not import jsonschema at all
    code = ("import sys, os; os.chdir(%r); from rootless_box.compose import loader; "
            "loader.load(loader.Options(cache_dir=%r)); "
            "print('jsonschema' in sys.modules)" % (str(project), cli.root))
    env = dict(cli.env, GREETING="hello world")
    env.pop("PORT", None)
    proc = subprocess.run([cli.argv()[0], "-c", code], capture_output=True, text=True,
                          env=env, check=True)
    assert proc.stdout.strip() == "False"
    assert sorted(os.listdir(markers)) == first


def test_environment_resolved_from_env_files_and_the_shell(cli, tmp_path):
    (tmp_path / "compose.yaml").write_text(
        "services:\n  a:\n    image: x\n    env_file: [common.env, {path: opt.env, required: "
        "false}]\n    environment: [FROM_SHELL, OWN=mine, UNSET_HERE]\n")
    (tmp_path / "common.env").write_text("OWN=file\nFROM_FILE=${FROM_SHELL}-f\n")
    out = compose(cli, tmp_path, "config", env={"FROM_SHELL": "sh"}).stdout
    assert """\
    environment:
      FROM_FILE: sh-f
      FROM_SHELL: sh
      OWN: mine
      UNSET_HERE: null
""" in out
    assert "env_file" not in out
    (tmp_path / "common.env").unlink()
    proc = compose(cli, tmp_path, "config", check=1)
    assert "rootless-box: error: env file %s not found" % (tmp_path / "common.env") in \
        proc.stderr
