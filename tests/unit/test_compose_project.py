"""compose/project.py's pure rules: a canonical service as RunOptions (each key to its run
flag), the config hash that decides recreation, dependency order, and the stop order."""

import pytest

pytest.importorskip("yaml")

from rootless_box import errors  # noqa: E402
from rootless_box.compose import loader, project  # noqa: E402


def make(tmp_path, text, env=None):
    (tmp_path / "compose.yaml").write_text(text)
    loaded = loader.load(loader.Options(cwd=str(tmp_path), environ=env or {},
                                        project_name="demo"))
    p = object.__new__(project.Project)  # no store: these rules never read one
    p.loaded, p.name, p.model = loaded, loaded.name, loaded.model
    p.services = loader.resolve_environment(loaded, loaded.model["services"])
    p.warnings = []
    p._warned = set()
    p._warn = p.warnings.append
    p.report = lambda *a: None
    p.made = []
    return p


SERVICE = """\
services:
  web:
    image: base
    command: echo "hello world"
    entrypoint: ["/bin/sh", "-c"]
    environment: {A: "1", UNSET: null}
    ports: ["8080:80", "127.0.0.1:9000:90/udp", "7000"]
    volumes: ["./src:/src:ro", "data:/data", "/anon"]
    tmpfs: /run
    networks:
      front: {aliases: [www], ipv4_address: 10.5.0.9, ipv6_address: "fd00:5::9"}
      back: {}
    healthcheck: {test: ["CMD", "true"], interval: 2s, retries: 4}
    restart: on-failure:3
    user: "1000"
    working_dir: /src
    labels: {own: "x"}
    stop_grace_period: 1m30s
    extra_hosts: {db.example: 10.0.0.2}
    ulimits: {nofile: {soft: 10, hard: 20}, nproc: 5}
    cap_add: [NET_ADMIN]
    init: true
    read_only: true
    mac_address: "02:00:00:00:00:01"
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64M}
        reservations: {memory: 32M}
      placement: {constraints: [node.role==manager]}
networks:
  front: {ipam: {config: [{subnet: 10.5.0.0/24}]}}
  back: {}
volumes:
  data: {}
"""


def test_a_service_is_the_run_flags_a_user_would_give(tmp_path):
    p = make(tmp_path, SERVICE)
    opts, extra = project.run_options(p, "web", p.services["web"], 2)
    assert opts.name == "demo-web-2" and opts.image == "base"
    assert opts.command == ["echo", "hello world"]
    assert opts.entrypoint == ["/bin/sh", "-c"]
    assert opts.env == ["A=1"]  # an unset variable is not passed
    assert opts.publish == ["8080:80/tcp", "127.0.0.1:9000:90/udp", "7000/tcp"]
    assert opts.volumes == ["%s/src:/src:ro" % tmp_path, "demo_data:/data", "/anon"]
    assert opts.tmpfs == ["/run"]
    # the first network by priority, then name (Compose's primary network); the others are
    # connected before the start
    assert opts.network == "demo_back" and opts.network_aliases == ["web"]
    assert opts.ip is None
    assert extra == [("demo_front", ["web", "www"], "10.5.0.9", "fd00:5::9")]
    assert opts.health_test == ["CMD", "true"] and opts.health_interval == "2s"
    assert opts.health_retries == "4"
    assert opts.restart == "on-failure:3" and opts.user == "1000" and opts.workdir == "/src"
    assert opts.stop_timeout == 90
    assert opts.add_hosts == ["db.example:10.0.0.2"]
    assert sorted(opts.ulimits) == ["nofile=10:20", "nproc=5"]
    assert opts.cap_add == ["NET_ADMIN"] and opts.init and opts.read_only
    labels = dict(item.split("=", 1) for item in opts.labels)
    assert labels["own"] == "x"
    assert labels["com.docker.compose.project"] == "demo"
    assert labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.container-number"] == "2"
    assert labels["com.docker.compose.oneoff"] == "False"
    assert labels["com.docker.compose.config-hash"] == project.config_hash(p.services["web"])
    assert opts.cpus == "0.5" and opts.memory == "64M"
    assert sorted(p.warnings) == [
        'service "web": deploy.placement is not supported by rootless-box yet and is ignored',
        'service "web": deploy.resources.reservations is not supported by rootless-box yet '
        'and is ignored',
        'service "web": mac_address is not supported by rootless-box yet and is ignored']


def test_a_one_off_has_no_ports_and_no_service_alias(tmp_path):
    p = make(tmp_path, SERVICE)
    opts, extra = project.run_options(p, "web", p.services["web"],
                                      oneoff="demo-web-run-abc")
    assert opts.name == "demo-web-run-abc" and opts.publish == []
    assert opts.network_aliases == [] and extra[0][1] == ["www"]
    assert dict(i.split("=", 1) for i in opts.labels)["com.docker.compose.oneoff"] == "True"


def test_the_config_hash_ignores_what_does_not_change_the_container(tmp_path):
    base = make(tmp_path, "services:\n  a:\n    image: base\n").services["a"]
    same = dict(base, depends_on={"b": {}}, scale=3, profiles=["x"], build={"context": "."},
                pull_policy="always", deploy={"replicas": 2})
    assert project.config_hash(base) == project.config_hash(same)
    assert project.config_hash(base) != project.config_hash(dict(base, command=["true"]))
    assert project.config_hash(base) != project.config_hash(
        dict(base, environment={"A": "2"}))


def test_dependency_order_and_stop_groups(tmp_path):
    p = make(tmp_path, """\
services:
  web: {image: base, depends_on: [app]}
  app: {image: base, depends_on: {db: {condition: service_healthy}}}
  db: {image: base}
  worker: {image: base, depends_on: [db]}
""")
    order = project.order(p.services)
    assert order.index("db") < order.index("app") < order.index("web")
    assert order.index("db") < order.index("worker")

    def rec(service):
        return {"Name": service, "Config": {"Labels": {
            "com.docker.compose.service": service}}}
    groups = project.stop_groups(p, [rec(n) for n in ("db", "app", "web", "worker", "gone")])
    names = [sorted(r["Name"] for r in g) for g in groups]
    # an orphan first, then what nothing depends on, db last
    assert names == [["gone"], ["web", "worker"], ["app"], ["db"]]


def test_replicas_and_restart_policy(tmp_path):
    assert project.replicas({"deploy": {"replicas": 3}}) == 3
    assert project.replicas({"scale": 2, "deploy": {"replicas": 3}}) == 2
    assert project.replicas({"scale": 2}, scale=5) == 5
    assert project.replicas({}) == 1
    assert project._restart({"deploy": {"restart_policy": {"condition": "on-failure",
                                                           "max_attempts": 2}}}) == \
        "on-failure:2"
    assert project._restart({"deploy": {"restart_policy": {"condition": "none"}}}) == "no"
    assert project._restart({}) == "no"


def test_an_unknown_volume_form_is_an_error(tmp_path):
    p = make(tmp_path, "services:\n  a:\n    image: base\n")
    with pytest.raises(errors.UsageError):
        project.run_options(p, "a", dict(p.services["a"], volumes=["not-a-dict"]), 1)
