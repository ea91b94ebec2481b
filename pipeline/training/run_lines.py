"""What a standalone run says on the terminal: where it trains (`DeviceLine`: `device: cpu` or
`device: cuda:0 (NVIDIA H200), bf16-mixed`, once Lightning has placed the model) and one line per
epoch (`EpochLine`: loss, the task's metric and the best so far, printed through the progress bar so
the two never tear each other apart). The bar (`EpochBar`) is drawn only on a terminal: piped to
a file, a run writes its epoch lines and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar


def describe_device(device: torch.device, precision: str) -> str:
    name = str(device)
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(device)})"
    return f"device: {name}" if precision in ("32-true", "32") else f"device: {name}, {precision}"


class DeviceLine(L.Callback):
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            line = describe_device(pl_module.device, str(trainer.precision))
            if trainer.world_size > 1:
                line += f" (x{trainer.world_size} processes)"
            # A plain print: no progress bar is drawn yet, and TQDM's bar drops prints made before.
            print(line, flush=True)


class EpochLine(L.Callback):
    def __init__(self, metric: str):
        self.metric = metric
        self.best: float | None = None
        self.started = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        loss = metrics.get("train/loss_epoch", metrics.get("train/loss"))
        if loss is not None:
            parts.append(f"train/loss {float(loss):.4f}")
        if self.metric in metrics:
            value = float(metrics[self.metric])
            self.best = value if self.best is None else max(self.best, value)
            parts.append(f"{self.metric} {value:.4f} (best {self.best:.4f})")
        parts.append(f"{time.monotonic() - self.started:.1f} s")
        note = getattr(pl_module, "epoch_note", lambda _: None)(metrics)  # a task's word on its metric
        if note:
            parts.append(note)
        pl_module.print("  ".join(parts))


class EpochBar(TQDMProgressBar):
    """Lightning's progress bar, counting epochs as the epoch lines do (1-based, of the budget)."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


class SayResumed(L.Callback):
    """A run restored from a checkpoint (a sweep's trial, a resumed `attnlab train`) says after which
    epoch it goes on, once Lightning has restored it (`say(epoch)`): a resume is visible, not only in
    the epoch numbers."""

    def __init__(self, say: Callable[[int], None]):
        self.say = say

    def on_train_start(self, trainer, pl_module):
        if trainer.ckpt_path and trainer.is_global_zero:
            self.say(trainer.current_epoch)
