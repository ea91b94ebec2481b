"""Each training step draws from random streams seeded by (seed, epoch, batch, rank), never from
whatever ran before it.

So a run resumed after epoch k draws epoch k+1's dropout exactly as the uninterrupted run does
(Lightning's resume path creates data iterators and runs hooks in another order than a running
epoch does, and a checkpoint of the streams' state taken at epoch end would replay neither), a
DDP run needs no per-rank state in its checkpoint, and no checkpoint holds random state at all.
The data's order and augmentation follow (seed, epoch, item) the same way
(pipeline/data/loaders.py).
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch

from attnlab.pipeline.data.loaders import stream_seed


class SeededSteps(L.Callback):
    """Seeds torch's (CPU and every CUDA device), numpy's and Python's global streams before each
    training batch."""

    def __init__(self, seed: int):
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        seed = stream_seed(self.seed, trainer.current_epoch, batch_idx, trainer.global_rank)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
