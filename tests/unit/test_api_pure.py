"""The Engine API's pure pieces: Docker's create body as run options, the URIs the service
accepts, Docker's status per error class."""

import pytest

from rootless_box import errors
from rootless_box.api import httpserver, jobs


def test_create_body_becomes_the_options_runs_flags_make():
    opts = jobs.run_options("web", {
        "Image": "base", "Cmd": ["sh", "-c", "x"], "Entrypoint": ["/init", "--"],
        "Env": ["A=1"], "WorkingDir": "/w", "User": "1:2", "Tty": True, "OpenStdin": True,
        "Labels": {"k": "v"}, "StopTimeout": 3, "Unknown": "ignored, as dockerd does",
        "HostConfig": {"Binds": ["/h:/c:ro"], "NetworkMode": "default",
                       "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": ""}],
                                        "53/udp": [{"HostIp": "127.0.0.1",
                                                    "HostPort": "5353"}]},
                       "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
                       "Tmpfs": {"/t": "size=1m"}, "Init": True}})
    assert (opts.image, opts.command, opts.entrypoint) == ("base", ["sh", "-c", "x"],
                                                           ["/init", "--"])
    assert (opts.name, opts.env, opts.workdir, opts.user) == ("web", ["A=1"], "/w", "1:2")
    assert opts.tty and opts.interactive and opts.init and not opts.rm
    assert opts.labels == ["k=v"] and opts.volumes == ["/h:/c:ro"]
    assert opts.network is None  # "default" is Docker's name for the default network
    assert sorted(opts.publish) == ["127.0.0.1:5353:53/udp", "80/tcp"]  # "": a random port
    assert opts.restart == "on-failure:2" and opts.tmpfs == ["/t:size=1m"]
    assert opts.stop_timeout == 3
    assert jobs.run_options(None, {"Image": "base", "HostConfig": {"AutoRemove": True}}).rm


@pytest.mark.parametrize("body, words", [
    ({}, "config cannot be empty"),
    ({"Image": "base", "Env": 5}, "Env"),
    ({"Image": "base", "Cmd": [1]}, "Cmd"),
    ({"Image": "base", "HostConfig": []}, "HostConfig"),
    ([], "must be an object"),
    ({"Image": "base", "HostConfig": {"Links": "a:b"}}, "Links"),
    ({"Image": "base", "HostConfig": {"Runtime": "runsc"}}, "--runtime"),
    ({"Image": "base", "HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}},
     "can't create 'AutoRemove' container with restart policy"),
])
def test_a_create_body_of_the_wrong_shape_is_a_usage_error(body, words):
    with pytest.raises(errors.UsageError) as caught:
        jobs.run_options(None, body)
    assert words in caught.value.message


def test_uris_unix_and_loopback_only():
    assert httpserver.parse_uri("unix:///run/x.sock") == ("unix", "/run/x.sock")
    assert httpserver.parse_uri("tcp://127.0.0.1:2375") == ("tcp", ("127.0.0.1", 2375))
    for bad in ("tcp://0.0.0.0:2375", "tcp://192.168.1.2:1", "unix://rel.sock", "http://x",
                "tcp://127.0.0.1:port"):
        with pytest.raises(errors.UsageError):
            httpserver.parse_uri(bad)


def test_errors_become_dockers_status_codes():
    assert httpserver.status_of(errors.NotFound("x")) == 404
    assert httpserver.status_of(errors.Conflict("x")) == 409
    assert httpserver.status_of(errors.UsageError("x")) == 400
    assert httpserver.status_of(errors.SetupError("x")) == 500
