"""A run's checkpoint files: whether one reads whole, and a trial's best epoch kept once.

`torn`: a checkpoint is a zip (torch.save's format); reading it with its CRCs checked finds one torn
by a crash mid-write or mid-upload, a full disk or a storage fault, before anything loads it.

`BestCheckpointToMlflow`: Ray already holds a trial's latest full checkpoints for resuming, so a
trial keeps no Lightning checkpoints of its own on disk. Each time the task's metric improves, the
weights (no optimizer state) are written to a temporary folder, uploaded as the MLflow artifact
`checkpoints/best.ckpt` over the previous best, and deleted; trials that early stopping cuts still
leave their best epoch in MLflow.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import zipfile
from pathlib import Path

import lightning as L

from attnlab.pipeline.tracking.spool import Spool


def torn(path: str | Path) -> str | None:
    """Why the checkpoint file at `path` cannot be read whole, or None when it can."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return None if bad is None else f"{bad} fails its CRC check"


ARTIFACT_DIR = "checkpoints"
BEST_NAME = "best.ckpt"


class BestCheckpointToMlflow(L.Callback):
    """Upload the weights of each new best epoch (by `monitor`, higher is better) to the run."""

    def __init__(self, monitor: str, spool: Spool, run_id: str):
        self.monitor, self.spool, self.run_id = monitor, spool, run_id
        self.best: float | None = None

    def state_dict(self) -> dict:  # rides in Ray's checkpoint, so a resumed trial keeps its best
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best = state_dict.get("best")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        value = float(value) if value is not None else math.nan
        # Rank 0 decides for everyone: saving a checkpoint is a collective call under DDP.
        improved = trainer.strategy.broadcast(
            not math.isnan(value) and (self.best is None or value > self.best), src=0
        )
        if not improved:
            return
        self.best = trainer.strategy.broadcast(value, src=0)
        folder = tempfile.mkdtemp(prefix="attnlab-best-") if trainer.is_global_zero else None
        folder = trainer.strategy.broadcast(folder, src=0)
        try:
            trainer.save_checkpoint(Path(folder, BEST_NAME), weights_only=True)
            if trainer.is_global_zero:
                self.spool.log_artifact(self.run_id, Path(folder, BEST_NAME), ARTIFACT_DIR)
        finally:
            if trainer.is_global_zero:
                shutil.rmtree(folder, ignore_errors=True)
