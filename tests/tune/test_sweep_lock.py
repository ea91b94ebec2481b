"""One driver per sweep: the lock in the sweep's storage refuses a second driver by name, and a
lock whose owner is gone (or whose heartbeat stopped) is taken over, on a path and on a URI."""

import json
import subprocess
import time

import pytest

from attnlab.pipeline.tracking.owners import this_host
from attnlab.tune import sweep_lock
from attnlab.tune.storage import SweepStore
from attnlab.tune.sweep_lock import SweepBusy, SweepLock


@pytest.fixture
def store(sweep_store, monkeypatch):
    monkeypatch.setattr(sweep_lock, "SETTLE_S", 0.0)  # no wait to read back a lock on a URI
    return sweep_store


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_second_driver_is_refused_with_the_first_ones_host_and_pid(store):
    first = SweepLock(store)
    first.acquire()
    try:
        with pytest.raises(SweepBusy) as busy:
            SweepLock(store).check()
        message = str(busy.value)
        assert f"on {this_host()}" in message and "pid " in message and SweepStore.LOCK in message
        with pytest.raises(SweepBusy):
            SweepLock(store).acquire()
    finally:
        first.release()
    assert store.read_text(SweepStore.LOCK) is None  # released: gone from the storage
    with SweepLock(store) as second:
        assert second.recovered is None


def test_a_lock_whose_process_is_gone_is_taken_over(store):
    dead = {"host": this_host(), "pid": _dead_pid(), "started": "then", "beat": time.time(), "token": "x"}
    store.write_text(SweepStore.LOCK, json.dumps(dead))
    with SweepLock(store) as lock:
        assert lock.recovered["pid"] == dead["pid"]
        assert json.loads(store.read_text(SweepStore.LOCK))["token"] == lock.token


def test_an_other_hosts_lock_is_stale_only_once_its_heartbeat_stopped(store):
    alive = {"host": "elsewhere", "pid": 1, "started": "now", "beat": time.time(), "token": "x"}
    store.write_text(SweepStore.LOCK, json.dumps(alive))
    with pytest.raises(SweepBusy, match="on elsewhere"):
        SweepLock(store).check()
    store.write_text(
        SweepStore.LOCK, json.dumps({**alive, "beat": time.time() - sweep_lock.STALE_AFTER_S - 1})
    )
    with SweepLock(store) as lock:
        assert lock.recovered["host"] == "elsewhere"


def test_the_owner_keeps_its_heartbeat_fresh(store, monkeypatch):
    monkeypatch.setattr(sweep_lock, "HEARTBEAT_S", 0.2)
    with SweepLock(store):
        first = json.loads(store.read_text(SweepStore.LOCK))["beat"]
        time.sleep(1.0)
        assert json.loads(store.read_text(SweepStore.LOCK))["beat"] > first
