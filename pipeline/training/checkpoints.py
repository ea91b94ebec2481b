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
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from attnlab.pipeline.tracking.spool import Spool
from attnlab.pipeline.training.resume import BEST_NAME, LAST_NAME


def torn(path: str | Path) -> str | None:
    """Why the checkpoint file at `path` cannot be read whole, or None when it can."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return None if bad is None else f"{bad} fails its CRC check"


ARTIFACT_DIR = "checkpoints"


class BestAndLast(ModelCheckpoint):
    """A standalone run's checkpoints: `best.ckpt` by the task's metric and `last.ckpt`, the last
    epoch. Where the last epoch is the best, the two are one file (`one_file`): a run keeps one
    checkpoint on disk and uploads one, not two identical ones."""

    def __init__(self, folder: Path, metric: str):
        super().__init__(
            dirpath=folder,
            filename="best",
            monitor=metric,
            mode="max",
            save_last=True,
            enable_version_counter=False,
        )
        self.best_epoch: int | None = None
        self.last_epoch: int | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._noting(super().on_train_epoch_end, trainer, pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._noting(super().on_validation_end, trainer, pl_module)

    def _noting(self, save, trainer, pl_module) -> None:
        """Lightning saves at one of the two hooks (which depends on the validation schedule). Each
        file's own stamp says whether this save wrote it: Lightning writes nothing for an epoch
        with no optimizer step (one a Ctrl-C cut at its start), so last.ckpt is not always new."""
        before = self._stamp(BEST_NAME), self._stamp(LAST_NAME)
        save(trainer, pl_module)
        if self._stamp(BEST_NAME) != before[0]:
            self.best_epoch = trainer.current_epoch
        if self._stamp(LAST_NAME) != before[1]:
            self.last_epoch = trainer.current_epoch

    def _stamp(self, name: str) -> tuple[int, int, int] | None:
        try:
            found = (Path(self.dirpath) / name).stat()
        except (OSError, TypeError):  # not written yet (or no folder yet)
            return None
        return found.st_ino, found.st_mtime_ns, found.st_size

    def one_file(self) -> list[str]:
        """Make last.ckpt the best's file where they are the same epoch; the names to upload."""
        folder = Path(self.dirpath)
        best, last = folder / BEST_NAME, folder / LAST_NAME
        if not (best.is_file() and last.is_file()) or self.best_epoch != self.last_epoch:
            return [n for n in (BEST_NAME, LAST_NAME) if (folder / n).is_file()]
        linked = folder / f".{LAST_NAME}.link"
        linked.unlink(missing_ok=True)
        os.link(best, linked)
        os.replace(linked, last)
        return [BEST_NAME]


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
