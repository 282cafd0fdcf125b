"""ops/lifecycle.NextExit: the next exit of a container as an attached client waits for it
(Docker's next-exit), whatever a restart policy does after it."""

import os
import time

import pytest

from rootless_box.ops import containers, events, lifecycle
from rootless_box.store import Store

CID = "c" * 64


@pytest.fixture
def store(tmp_path, monkeypatch):
    store = Store(str(tmp_path)).ensure()
    os.mkdir(store.container_dir(CID))
    # the keeper's liveness is refresh_state's business (its own tests); here it lives
    monkeypatch.setattr(containers, "refresh_state", lambda _store, record: record)
    return store


def _record(store, status, code=0):
    store.write_container({"Id": CID, "State": {"Status": status, "ExitCode": code}})


def test_the_first_die_ends_it_with_its_status_even_once_restarted(store):
    _record(store, "running")
    events.emit(store, "container", "die", CID, {"exitCode": "1"})  # before: not this run
    run = lifecycle.NextExit(store, CID)
    assert not run.ended()
    before = time.time_ns()
    assert run.owns(before)
    events.emit(store, "container", "die", "d" * 64, {"exitCode": "5"})  # another's
    assert not run.ended()
    events.emit(store, "container", "die", CID, {"exitCode": "3"})
    after = time.time_ns()
    _record(store, "running")  # the policy started it again: the record says 0 now
    events.emit(store, "container", "die", CID, {"exitCode": "4"})  # the restart's exit
    assert run.ended() and run.code() == 3
    assert run.owns(before) and not run.owns(after)  # the restart's log lines are not its


def test_a_record_gone_or_not_running_ends_it(store):
    _record(store, "running")
    run = lifecycle.NextExit(store, CID)
    assert not run.ended()
    _record(store, "exited", 137)  # a keeper killed writes no die event
    assert run.ended() and run.code() == 137 and run.owns(time.time_ns())
    gone = lifecycle.NextExit(store, CID)
    store.remove(store.container_dir(CID))
    assert gone.ended() and gone.code() == 0


# -- lifecycle.wait_condition: the Engine API's wait, as dockerd's State.Wait answers it -------

def _script(*steps):
    """A gone() for wait_condition that changes the world between two of its polls, one step
    a poll, and fails if the wait is still polling once the steps are done."""
    steps = list(steps)

    def gone():
        assert steps, "still waiting after the last step"
        steps.pop(0)()
        return False
    return gone


def _die(store, code):
    return lambda: events.emit(store, "container", "die", CID, {"exitCode": str(code)})


@pytest.fixture
def waits(store):
    def wait(condition, *steps):
        return lifecycle.wait_condition(store, store.read_container(CID), condition,
                                        _script(*steps))
    return wait


def test_next_exit_is_the_first_exit_even_with_a_restart_and_another_exit_in_one_poll(
        store, waits):
    _record(store, "running")

    def exit_restart_exit():
        for code in (7, 8):  # the policy's restart and its exit, all before the next poll
            _die(store, code)()
            _record(store, "running")
    assert waits("next-exit", exit_restart_exit) == 7


def test_next_exit_waits_for_a_start_and_past_a_restarting_state(store, waits):
    _record(store, "created")
    assert waits("next-exit", lambda: None, lambda: _record(store, "running"), _die(store, 5)) == 5
    _record(store, "exited", 3)  # a stopped container: its next run's exit, not its last
    assert waits("next-exit", lambda: None, lambda: _record(store, "running"), _die(store, 6)) == 6
    _record(store, "restarting", 6)
    assert waits("next-exit", lambda: _record(store, "running"), _die(store, 2)) == 2


def test_not_running_answers_at_once_unless_running_and_a_restarting_one_runs(store, waits):
    for status, code in (("created", 0), ("exited", 9)):
        _record(store, status, code)
        assert waits("not-running") == code  # no step: no poll
    _record(store, "restarting", 4)  # dockerd: Running stays true while restarting
    assert waits("not-running", lambda: None, lambda: _record(store, "running"),
                 _die(store, 1)) == 1
    _record(store, "running")
    assert waits("not-running", lambda: _record(store, "exited", 137)) == 137  # no event


def test_removed_outlives_exits_and_keeps_the_last_status(store, waits):
    _record(store, "running")
    assert waits("removed", _die(store, 3), lambda: _record(store, "exited", 3), lambda: None,
                 lambda: store.remove(store.container_dir(CID))) == 3


def test_a_removal_ends_every_condition(store, waits):
    for condition in ("not-running", "next-exit", "removed"):
        os.makedirs(store.container_dir(CID), exist_ok=True)
        _record(store, "running")
        # rm -f kills a running container with SIGKILL, and its watcher, finding no record,
        # writes no die event
        assert waits(condition, lambda: store.remove(store.container_dir(CID))) == 137


def test_a_client_gone_ends_the_wait_with_nothing(store):
    _record(store, "running")
    assert lifecycle.wait_condition(store, store.read_container(CID), "next-exit",
                                    lambda: True) is None


# -- NextExit.connect: the attach socket of the run attached to, never a restart's ------------

@pytest.fixture
def listener(tmp_path, monkeypatch):
    """A watcher's attach socket, listening for the container."""
    import socket
    from rootless_box.ops import monitor
    path = str(tmp_path / "attach.sock")
    monkeypatch.setattr(monitor, "attach_socket", lambda cid: path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    sock.settimeout(10)
    yield sock
    sock.close()


def test_connect_reaches_the_live_runs_socket(store, listener):
    _record(store, "running")
    conn = lifecycle.NextExit(store, CID).connect(timeout=0)
    with conn, listener.accept()[0] as watcher:
        conn.sendall(b"in")
        assert watcher.recv(2) == b"in"


def test_the_api_feeder_of_an_ended_run_gives_a_restarts_socket_nothing(store, listener):
    # the run exited before the client's feeder connected, and the restart's watcher listens
    # at the same path: the client's input is not the restarted container's
    import socket
    from rootless_box.api import routes
    _record(store, "running")
    run = lifecycle.NextExit(store, CID)
    events.emit(store, "container", "die", CID, {"exitCode": "0"})
    client, ours = socket.socketpair()
    with client, ours:
        client.sendall(b"first client's input")
        client.shutdown(socket.SHUT_WR)
        feeder = routes._Feeder(ours, run, True, False, lambda: True)
        assert feeder.conn is None  # no copying thread: nothing of the input can go
        feeder.close()
        listener.setblocking(False)
        try:
            restarted = listener.accept()[0]
        except BlockingIOError:
            pass
        else:
            with restarted:  # a connect made and closed at once, as the run had ended
                restarted.settimeout(10)
                assert restarted.recv(64) == b""
        listener.settimeout(10)
    assert lifecycle.NextExit(store, CID).connect(timeout=0) is not None  # a new client's


def test_an_exit_before_the_wait_began_is_not_its_next_one(store):
    stale = {"Id": CID, "State": {"Status": "running", "ExitCode": 0}}  # read before it
    _record(store, "exited", 3)
    steps = _script(lambda: None, lambda: _record(store, "running"), _die(store, 4))
    assert lifecycle.wait_condition(store, stale, "next-exit", steps) == 4
