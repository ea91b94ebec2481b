"""Chaos testing, attached only by tests through the `callbacks` config key (product code holds
no fault hook): `FailOnce` crashes one trial once, at the end of one epoch; `HoldOnce` parks one
trial once, at the start of one epoch, until the test kills it (or releases it), so a drill kills a
driver or a node at a known point (every earlier epoch reported and checkpointed) and not in a race
with the trial.

    callbacks: ["fault_injection:FailOnce"]       # the tests folder on PYTHONPATH
    ATTNLAB_FAIL_ONCE=<trial_key>:<epoch>         # which trial, after which epoch
    callbacks: ["fault_injection:HoldOnce"]
    ATTNLAB_HOLD_ONCE=<trial_key>:<epoch>         # which trial ('*': each), before which (0-based) epoch
    ATTNLAB_HOLD_RELEASE=<path>                   # optional: once this file exists, nothing waits
    callbacks: ["fault_injection:InterruptOnce"]
    ATTNLAB_INTERRUPT_ONCE=<epoch>                # Ctrl-C to its own process, before that (0-based) epoch

A marker file in the sweep's scratch folder makes each once per trial, across retries and drivers;
the hold's marker also tells the test the trial is parked.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import lightning as L

ENV = "ATTNLAB_FAIL_ONCE"
SPEC = "fault_injection:FailOnce"
HOLD_ENV = "ATTNLAB_HOLD_ONCE"
HOLD_SPEC = "fault_injection:HoldOnce"
RELEASE_ENV = "ATTNLAB_HOLD_RELEASE"
INTERRUPT_ENV = "ATTNLAB_INTERRUPT_ONCE"
INTERRUPT_SPEC = "fault_injection:InterruptOnce"


def _epoch_for(trial_key: str | None, env: str, wildcard: bool = False) -> int | None:
    key, _, epoch = os.environ.get(env, "").rpartition(":")
    named = key == trial_key or (wildcard and key == "*")
    return int(epoch) if trial_key and named and epoch.isdigit() else None


def held_marker(scratch_dir: Path, trial_key: str) -> Path:
    return Path(scratch_dir) / "faults" / f"held-once-{trial_key}"


class FailOnce(L.Callback):
    def __init__(self, trial_key: str | None, scratch_dir: str):
        self.epoch = _epoch_for(trial_key, ENV)
        self.marker = Path(scratch_dir) / "faults" / f"failed-once-{trial_key}"

    def on_train_epoch_end(self, trainer, pl_module):
        if self.epoch is not None and trainer.current_epoch + 1 == self.epoch and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("injected")
            raise RuntimeError(f"{ENV}: injected crash at epoch {self.epoch}")


class HoldOnce(L.Callback):
    def __init__(self, trial_key: str | None, scratch_dir: str):
        self.epoch = _epoch_for(trial_key, HOLD_ENV, wildcard=True)
        self.marker = held_marker(Path(scratch_dir), trial_key or "")
        self.release = Path(os.environ[RELEASE_ENV]) if os.environ.get(RELEASE_ENV) else None

    def on_train_epoch_start(self, trainer, pl_module):
        if self.epoch is not None and trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("held")
            while not (self.release and self.release.exists()):  # or until the test kills it
                time.sleep(0.5)


class InterruptOnce(L.Callback):
    """A standalone run's Ctrl-C at a known point: SIGINT to its own process at the start of one
    epoch, once per out folder (a resumed run goes on undisturbed)."""

    def __init__(self, trial_key: str | None, scratch_dir: str):
        self.epoch = int(os.environ[INTERRUPT_ENV]) if os.environ.get(INTERRUPT_ENV) else None
        self.marker = Path(scratch_dir) / "faults" / "interrupted-once"

    def on_train_epoch_start(self, trainer, pl_module):
        if self.epoch is not None and trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("interrupted")
            os.kill(os.getpid(), signal.SIGINT)
