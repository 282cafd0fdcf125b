"""A create body's HostConfig and Config fields become the keywords `run`'s own flags make,
so ops/ checks them with the CLI's rules and words."""

import pytest

from rootless_box import errors
from rootless_box.api import createbody, jobs
from rootless_box.ops import health, runflags


def test_run_flags_fields_become_the_flags_texts():
    opts = jobs.run_options(None, {
        "Image": "base", "Domainname": "example.org",
        "ExposedPorts": {"80/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2000000000, "Retries": 4},
        "HostConfig": {
            "Privileged": False, "CapAdd": ["NET_ADMIN"], "CapDrop": ["MKNOD"],
            "Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n2",
                         "CgroupPermissions": "rw"}],
            "Sysctls": {"net.ipv4.ip_forward": "1"},
            "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}],
            "ShmSize": 1 << 20, "GroupAdd": ["5"], "OomScoreAdj": 500,
            "PidMode": "host", "IpcMode": "shareable", "UTSMode": "",
            "Mounts": [{"Type": "volume", "Source": "v1", "Target": "/v",
                        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b,c"}}},
                       {"Type": "tmpfs", "Target": "/t",
                        "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}],
            "NetworkMode": "net1",
            "Memory": 0, "MemorySwappiness": -1, "PidsLimit": None}})
    assert opts.cap_add == ["NET_ADMIN"] and opts.cap_drop == ["MKNOD"]
    assert opts.devices == ["/dev/null:/dev/n2:rw"]
    assert opts.sysctls == ["net.ipv4.ip_forward=1"] and opts.ulimits == ["nofile=100:200"]
    assert (opts.shm_size, opts.group_add, opts.oom_score_adj) == ("1048576", ["5"], "500")
    assert (opts.pid, opts.ipc, opts.uts) == ("host", "shareable", None)
    assert opts.expose == ["80/tcp"] and opts.domainname == "example.org"
    assert opts.network == "net1" and opts.memory is None and opts.pids_limit is None
    assert opts.health_test == ["CMD", "true"] and opts.health_interval == "2000000000ns"
    assert health.config(opts, None) == {"Test": ["CMD", "true"], "Interval": 2000000000,
                                         "Retries": 4}
    # each --mount value is what the CLI parses back into the same object
    from rootless_box.ops.mountopts import parse_mount
    first = parse_mount(opts.mounts[0])[1]
    assert first["VolumeOptions"] == {"NoCopy": True, "Labels": {"a": "b,c"}}
    assert parse_mount(opts.mounts[1])[1]["TmpfsOptions"] == {"SizeBytes": 1 << 20,
                                                              "Mode": 0o1777}
    assert runflags.ulimits(opts.ulimits) == [{"Name": "nofile", "Hard": 200, "Soft": 100}]


def test_networking_config_gives_the_endpoint():
    body = {"Image": "base", "HostConfig": {"NetworkMode": "n1"},
            "NetworkingConfig": {"EndpointsConfig": {"n1": {
                "Aliases": ["web"], "IPAMConfig": {"IPv4Address": "10.9.0.5"}}}}}
    opts = jobs.run_options(None, body)
    assert (opts.network, opts.network_aliases, opts.ip) == ("n1", ["web"], "10.9.0.5")
    # docker-py sends the endpoint with no NetworkMode
    body = {"Image": "base", "NetworkingConfig": {"EndpointsConfig": {"n2": {}}}}
    assert jobs.run_options(None, body).network == "n2"
    # several (API 1.44, `docker run --network a --network b`): the others as run's
    # repeated --network gives them
    body = {"Image": "base", "HostConfig": {"NetworkMode": "a"},
            "NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {
                "Aliases": ["x"], "IPAMConfig": {"IPv4Address": "10.9.1.5"}}}}}
    opts = jobs.run_options(None, body)
    assert (opts.network, opts.networks) == ("a", [{"name": "b", "aliases": ["x"],
                                                     "ip": "10.9.1.5", "ip6": None,
                                                     "mac": None, "links": [],
                                                     "driver_opts": None}])
    # the MAC, links and driver options of an endpoint; the legacy Config.MacAddress and
    # HostConfig.Links go to the first network, as --mac-address and --link do
    body = {"Image": "base", "MacAddress": "02:42:ac:11:00:0a",
            "HostConfig": {"NetworkMode": "a", "Links": ["up:db"]},
            "NetworkingConfig": {"EndpointsConfig": {"a": {
                "Links": ["web:w"], "DriverOpts": {"k": "v"}}}}}
    assert jobs.run_options(None, body).endpoint == {
        "mac": "02:42:ac:11:00:0a", "links": ["web:w", "up:db"], "driver_opts": {"k": "v"},
        "ip6": None}
    body["NetworkingConfig"]["EndpointsConfig"]["b"] = {"Aliases": "x"}
    with pytest.raises(errors.UsageError):
        jobs.run_options(None, body)


def test_resources_become_the_limit_flags():
    opts = jobs.run_options(None, {"Image": "base", "HostConfig": {
        "Memory": 64 << 20, "NanoCpus": 1500000000, "CpusetCpus": "0", "PidsLimit": 50}})
    assert (opts.memory, opts.cpus, opts.cpuset_cpus, opts.pids_limit) == (
        str(64 << 20), "1.5", "0", "50")


@pytest.mark.parametrize("host, words", [
    ({"StorageOpt": {"size": "1G"}}, "--storage-opt"),
    ({"Runtime": "runsc"}, "--runtime"),
    ({"CgroupnsMode": "host"}, "--cgroupns is not supported: containers share"),
    ({"DeviceRequests": [{"Count": -1}]}, "--gpus"),
    ({"CapAdd": "NET_ADMIN"}, "CapAdd"),
    ({"Ulimits": ["nofile=1"]}, "Ulimits"),
    ({"Memory": "1g"}, "Memory"),
])
def test_what_the_cli_refuses_is_refused(host, words):
    body = {"Image": "base", "HostConfig": host}
    with pytest.raises(errors.UsageError) as caught:
        jobs.run_options(None, body)
    assert words in caught.value.message + (caught.value.hint or "")


def test_a_healthcheck_test_of_an_unknown_form_is_refused():
    opts = jobs.run_options(None, {"Image": "base", "Healthcheck": {"Test": ["RUN", "x"]}})
    with pytest.raises(errors.UsageError):
        health.config(opts, None)
    assert createbody.healthcheck({"Test": []}) == {
        "health_test": None, "health_interval": None, "health_timeout": None,
        "health_start_period": None, "health_start_interval": None}
