"""The Lightning callback that reports a trial's epochs to Ray, from inside the trial (a Ray Train
worker, or the Tune trial's own process for a one-worker trial)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import lightning as L
import ray.train
import ray.tune

from attnlab.pipeline.training.run import measured_costs

from .pareto_asha import BUDGET

CHECKPOINT_NAME = "checkpoint.ckpt"
RESULT_NAME = "result.json"  # the epoch's report, beside its checkpoint: a restored trial says it again


class ReportEpoch(L.Callback):
    """Each epoch: Lightning checkpoint + metrics (with a 1-based `epoch`, a task-neutral `score`,
    the epoch `budget` and the run's `cost/*`, which cost-aware early stopping compares), to Ray
    Train (`in_tune` False: a worker of a TorchTrainer) or to Tune (the trial's own process)."""

    reports = 0  # reports made in this process: a trial restored at its budget trains and reports none

    def __init__(self, metric: str, staging: str, in_tune: bool = False):
        self.metric, self.staging = metric, staging
        self.folder = staging  # this rank's, once Lightning says which rank (`setup`)
        self.report, self.checkpoint_type = (
            (ray.tune.report, ray.tune.Checkpoint) if in_tune else (ray.train.report, ray.train.Checkpoint)
        )

    def setup(self, trainer, pl_module, stage):
        """Each rank stages its epoch's checkpoint in the trial's own folder, never /tmp: a trial
        paused at a rung or killed dies inside `report` and leaves its staged copy (the size of a
        checkpoint) behind. The trial's next process, or the driver once it ends, removes it."""
        self.folder = str(Path(self.staging, f"rank{trainer.global_rank}"))
        shutil.rmtree(self.folder, ignore_errors=True)
        Path(self.folder).mkdir(parents=True, exist_ok=True)

    def on_train_epoch_end(self, trainer, pl_module):
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        # Lightning logs the epoch's training means (`train/loss_epoch`) only after this hook, and
        # a trial paused at a rung, or killed, never gets there: log them now, at Lightning's step
        # (the run's spool drops Lightning's own copy of them).
        epoch_means = {k: v for k, v in metrics.items() if k.endswith("_epoch")}
        if epoch_means and trainer.logger is not None:
            trainer.logger.log_metrics(epoch_means, step=trainer.global_step - 1)
        metrics["epoch"] = trainer.current_epoch + 1
        metrics[BUDGET] = trainer.max_epochs
        metrics.update(measured_costs(trainer))
        if self.metric in metrics:
            metrics["score"] = metrics[self.metric]
        with tempfile.TemporaryDirectory(prefix="epoch-", dir=self.folder) as tmp:
            trainer.save_checkpoint(Path(tmp, CHECKPOINT_NAME), weights_only=False)
            Path(tmp, RESULT_NAME).write_text(json.dumps(metrics))
            checkpoint = self.checkpoint_type.from_directory(tmp) if trainer.is_global_zero else None
            self.report(metrics, checkpoint=checkpoint)
        ReportEpoch.reports += 1
