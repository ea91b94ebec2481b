"""One driver per sweep: a lock file in the sweep's own storage, so two `attnlab sweep` (or
`resume`) commands on any machines that share that storage (a local disk, NFS, s3://) never drive
one sweep at once.

The lock names its owner (host, pid, start) and carries a heartbeat the owner rewrites every
HEARTBEAT_S seconds. A lock is stale, and taken over, when its owner is on this host and its
process is gone (a SIGKILL, a crash), or when its heartbeat is older than STALE_AFTER_S (an owner
on a machine that died). On a local path the lock is created atomically (O_EXCL); object stores
have no such call, so there a driver writes its lock, waits SETTLE_S and reads it back: of two
drivers that start within that window, the one whose lock was written last runs.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.tracking.owners import process_gone, this_host

from .storage import SweepStore, is_uri

HEARTBEAT_S = 30.0
STALE_AFTER_S = 180.0
SETTLE_S = 2.0


class SweepBusy(ConfigError):
    """Another driver holds the sweep."""


class SweepLock:
    def __init__(self, store: SweepStore):
        self.store = store
        self.token = uuid.uuid4().hex
        self.recovered: dict | None = None  # the stale lock this driver took over, if any
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _record(self) -> dict:
        return {
            "host": this_host(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "beat": time.time(),
            "token": self.token,
        }

    def held(self) -> dict | None:
        text = self.store.read_text(self.store.LOCK)
        try:
            return json.loads(text) if text else None
        except json.JSONDecodeError:  # a torn lock is no lock
            return None

    @staticmethod
    def stale(lock: dict) -> bool:
        if lock.get("host") == this_host():
            return process_gone(lock.get("pid", -1))
        return time.time() - float(lock.get("beat", 0)) > STALE_AFTER_S

    def _busy(self, lock: dict) -> SweepBusy:
        return SweepBusy(
            f"sweep {self.store.name!r} is already being run by pid {lock.get('pid')} on "
            f"{lock.get('host')} (since {lock.get('started')}); wait for it, or stop that process "
            f"first (its lock: {self.store.location}/{self.store.LOCK})"
        )

    def check(self) -> None:
        """Refuse now, writing nothing, if a live driver holds the sweep."""
        lock = self.held()
        if lock is not None and not self.stale(lock):
            raise self._busy(lock)

    def acquire(self) -> None:
        lock = self.held()
        if lock is not None:
            if not self.stale(lock):
                raise self._busy(lock)
            self.recovered = lock
            self.store.delete(self.store.LOCK)
        record = json.dumps(self._record())
        if is_uri(self.store.location):
            self.store.write_text(self.store.LOCK, record)
            time.sleep(SETTLE_S)
            mine = self.held()
            if mine is None or mine.get("token") != self.token:
                raise self._busy(mine or {})
        else:
            self.store.fs.create_dir(self.store.path, recursive=True)
            try:
                fd = os.open(
                    Path(self.store.path, self.store.LOCK), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644
                )
            except FileExistsError:  # another driver got there between our read and our create
                raise self._busy(self.held() or {}) from None
            with os.fdopen(fd, "w") as f:
                f.write(record)
        self._beat = threading.Thread(target=self._heartbeat, name="attnlab-sweep-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            lock = self.held()
            if lock is None or lock.get("token") != self.token:
                return  # taken over (we were presumed dead): never write over the new owner
            self.store.write_text(self.store.LOCK, json.dumps({**lock, "beat": time.time()}))

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        lock = self.held()
        if lock is not None and lock.get("token") == self.token:
            self.store.delete(self.store.LOCK)

    def __enter__(self) -> "SweepLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
