"""`device: cpu` or `device: cuda:0 (NVIDIA H200), bf16-mixed`: the first thing a run says once
Lightning has placed the model, so a user never wonders where (and in what precision) it trains."""

from __future__ import annotations

import lightning as L
import torch


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
