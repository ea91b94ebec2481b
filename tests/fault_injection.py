"""Chaos testing, attached only by tests through the `callbacks` config key (product code holds
no fault hook): `FailOnce` crashes one trial once, at the end of one epoch.

    callbacks: ["fault_injection:FailOnce"]       # the tests folder on PYTHONPATH
    ATTNLAB_FAIL_ONCE=<trial_key>:<epoch>         # which trial, after which epoch

A marker file in the sweep's scratch folder makes it once per trial, across retries and drivers.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L

ENV = "ATTNLAB_FAIL_ONCE"
SPEC = "fault_injection:FailOnce"


class FailOnce(L.Callback):
    def __init__(self, trial_key: str | None, scratch_dir: str):
        key, _, epoch = os.environ.get(ENV, "").rpartition(":")
        self.epoch = int(epoch) if trial_key and key == trial_key and epoch.isdigit() else None
        self.marker = Path(scratch_dir) / "faults" / f"failed-once-{trial_key}"

    def on_train_epoch_end(self, trainer, pl_module):
        if self.epoch is not None and trainer.current_epoch + 1 == self.epoch and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("injected")
            raise RuntimeError(f"{ENV}: injected crash at epoch {self.epoch}")
