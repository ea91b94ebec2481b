"""The chaos soak's hands inside a trial (benchmarks/chaos.py), attached by the soak's sweep config
(`callbacks: ["chaos_faults:ChaosFaults"]`, this folder on PYTHONPATH); product code holds no fault
hook. Everything goes through one folder, ATTNLAB_CHAOS_DIR:

- `events.jsonl`: a line per epoch start and end of every rank of every trial (what the checker
  reads to find epochs trained twice);
- `schedule.json`: the faults, each anchored to an event (`trial`, `epoch`, 1-based, `at`: "mid",
  its second training batch, or "end", after its result and checkpoint went to Tune), never to
  a moment, so a seed replays the same storm on a loaded machine. A `kill-trial` fault makes the
  process SIGKILL itself (Tune's trial actor, or a Ray Train worker: `rank`); any other (a
  `kill-trial` with a truncated checkpoint too: the soak truncates, then kills) parks the
  trial at its event, writes `parked-ID`, and waits for the soak to apply the fault and write
  `release-ID` (or to kill it with the driver);
- `fired-ID`: each fault fires once, across retries and drivers.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import lightning as L

DIR_ENV = "ATTNLAB_CHAOS_DIR"


def append_event(folder: Path, **event) -> None:
    """One JSON line, appended in one write (O_APPEND: lines from concurrent processes never mix)."""
    line = (json.dumps({**event, "t": time.time()}) + "\n").encode()
    fd = os.open(folder / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class ChaosFaults(L.Callback):
    def __init__(self, trial_key: str | None = None):
        folder = os.environ.get(DIR_ENV)
        self.folder = Path(folder) if folder and trial_key else None
        self.key = trial_key
        schedule = self.folder / "schedule.json" if self.folder else None
        faults = json.loads(schedule.read_text()) if schedule and schedule.exists() else []
        self.faults = [f for f in faults if f["trial"] == trial_key]

    def _event(self, trainer, what: str, epoch: int) -> None:
        if self.folder:
            append_event(
                self.folder,
                event=what,
                trial=self.key,
                epoch=epoch,
                rank=trainer.global_rank,
                pid=os.getpid(),
            )

    def _fire(self, trainer, epoch: int, at: str) -> None:
        for fault in self.faults:
            fired = self.folder / f"fired-{fault['id']}"
            if fault["epoch"] != epoch or fault["at"] != at or fired.exists():
                continue
            if fault["kind"] == "kill-trial" and not fault.get("truncate"):
                if trainer.global_rank != fault.get("rank", 0):
                    continue
                fired.write_text(json.dumps({"pid": os.getpid(), "t": time.time()}))
                os.kill(os.getpid(), signal.SIGKILL)
            elif trainer.global_rank == 0:
                fired.write_text(json.dumps({"pid": os.getpid(), "t": time.time()}))
                (self.folder / f"parked-{fault['id']}").write_text(str(os.getpid()))
                release = self.folder / f"release-{fault['id']}"
                while not release.exists():  # until the soak applied the fault, or killed us with it
                    time.sleep(0.2)

    def on_train_epoch_start(self, trainer, pl_module):
        self._event(trainer, "start", trainer.current_epoch + 1)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.folder and batch_idx == 1:
            self._fire(trainer, trainer.current_epoch + 1, "mid")

    def on_train_epoch_end(self, trainer, pl_module):
        self._event(trainer, "end", trainer.current_epoch + 1)
        if self.folder:
            self._fire(trainer, trainer.current_epoch + 1, "end")
