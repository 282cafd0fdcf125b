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
