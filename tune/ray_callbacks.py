"""Lightning callbacks that run inside a trial (a Ray Train worker, or the Tune trial's own process
for a one-worker trial): report to Ray, and (for chaos tests) fail once."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import lightning as L
import ray.train
import ray.tune

CHECKPOINT_NAME = "checkpoint.ckpt"


class ReportEpoch(L.Callback):
    """Each epoch: Lightning checkpoint + metrics (with a 1-based `epoch` and a task-neutral `score`),
    to Ray Train (`in_tune` False: a worker of a TorchTrainer) or to Tune (the trial's own process)."""

    def __init__(self, metric: str, in_tune: bool = False):
        self.metric = metric
        self.report, self.checkpoint_type = (
            (ray.tune.report, ray.tune.Checkpoint) if in_tune else (ray.train.report, ray.train.Checkpoint)
        )

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics["epoch"] = trainer.current_epoch + 1
        if self.metric in metrics:
            metrics["score"] = metrics[self.metric]
        with tempfile.TemporaryDirectory(prefix="attnlab-ckpt-") as tmp:
            trainer.save_checkpoint(Path(tmp, CHECKPOINT_NAME), weights_only=False)
            checkpoint = self.checkpoint_type.from_directory(tmp) if trainer.is_global_zero else None
            self.report(metrics, checkpoint=checkpoint)


class FailOnce(L.Callback):
    """Chaos testing: ATTNLAB_FAIL_ONCE='<trial_key>:<epoch>' crashes that trial once at that epoch's end.

    A marker file under the sweep's storage makes it once per trial, across retries.
    """

    def __init__(self, trial_key: str, marker_dir: str):
        spec = os.environ.get("ATTNLAB_FAIL_ONCE", "")
        key, _, epoch = spec.rpartition(":")
        self.epoch = int(epoch) if key == trial_key and epoch.isdigit() else None
        self.marker = Path(marker_dir) / f"failed-once-{trial_key}"

    def on_train_epoch_end(self, trainer, pl_module):
        if self.epoch is not None and trainer.current_epoch + 1 == self.epoch and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text("injected")
            raise RuntimeError(f"ATTNLAB_FAIL_ONCE: injected crash at epoch {self.epoch}")


class SayResumed(L.Callback):
    """A trial restored from a checkpoint says after which epoch it goes on (once Lightning has
    restored it), so a resume after a fault is visible in MLflow, not only in the epoch numbers."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say

    def on_train_start(self, trainer, pl_module):
        if trainer.ckpt_path and trainer.is_global_zero:
            self.say(f"resumed after epoch {trainer.current_epoch}")
