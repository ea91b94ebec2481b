"""The study's vision schedule: SGD, linear warm-up, 10x drops at given epochs, lr scaled by batch."""

from __future__ import annotations

import torch
from torch import nn


def scaled_lr(base_lr: float, base_batch: int, batch_size: int, world_size: int = 1) -> float:
    """Linear scaling rule: base_lr is for base_batch images; the effective batch is per-device x devices."""
    return base_lr * batch_size * world_size / base_batch


def sgd_with_warmup(module: nn.Module, optim, lr: float, steps_per_epoch: int):
    """Lightning's configure_optimizers answer: SGD plus a per-step LambdaLR."""
    params = [p for p in module.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]  # norms, biases, gammas
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        momentum=optim.momentum,
    )
    steps_per_epoch = max(1, steps_per_epoch)

    def factor(step: int) -> float:
        epoch = step // steps_per_epoch
        f = 0.1 ** sum(epoch >= s for s in optim.lr_steps)
        if step < optim.warmup_iters:
            f *= optim.warmup_ratio + (1 - optim.warmup_ratio) * step / optim.warmup_iters
        return f

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def steps_per_epoch(trainer) -> int:
    return max(1, int(trainer.estimated_stepping_batches // max(1, trainer.max_epochs)))


class SgdRecipe:
    """LightningModule mixin: the study's SGD schedule from `self.cfg` (a ModuleConfig), its lr scaled
    by `self.batch_size` (images per device)."""

    def configure_optimizers(self):
        optim = self.cfg.optim
        lr = scaled_lr(optim.base_lr, optim.base_batch, self.batch_size, self.trainer.world_size)
        return sgd_with_warmup(self, optim, lr, steps_per_epoch(self.trainer))
