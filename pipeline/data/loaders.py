"""How every data module loads: which share of a data set each DDP rank reads, in which order,
with which randomness, and the loader options that keep a GPU fed.

attnlab's trainers run with Lightning's `use_distributed_sampler=False` and every data module
shards itself here. Two reasons: Lightning cannot inject a sampler into a custom batch sampler
(the translation token buckets), and its validation sampler pads the last ranks with repeated
items, which would count an image or a sentence twice in COCO AP, mIoU or BLEU.

A training epoch's randomness is a function of (seed, epoch, item), never of what ran before,
so a run resumed after epoch k, one read by 4 loader workers instead of none, and one sharded
over 2 ranks draw what an uninterrupted one-process run draws (issue 38):

- training order: torch's DistributedSampler, also on one process (shuffled from seed + epoch,
  padded so every rank takes the same number of steps and DDP never waits on a rank that ran
  out); Lightning calls its `set_epoch` before each epoch;
- augmentation: `SeededItems` draws item i of epoch e from torch's generator seeded by
  (seed, e, i), whichever process reads it;
- evaluation: Lightning's UnrepeatedDistributedSampler (disjoint shares, no padding; ranks may
  differ by one item, which evaluation tolerates since it syncs no gradients);
- loader options: a generator of the loader's own (creating an iterator never advances the
  run's global stream, which dropout draws from), worker processes that persist across epochs
  (no re-fork per epoch), and pinned host memory when the trainer trains on CUDA, so the
  batch's copy to the GPU overlaps compute.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler


def rank_and_world(trainer) -> tuple[int, int]:
    """(global rank, world size) of the trainer the data module is attached to; (0, 1) when alone."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


def stream_seed(*key: int) -> int:
    """A 32-bit seed for one independent random stream named by `key` (numpy's SeedSequence
    mixes the key, so nearby keys give unrelated streams)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


class EpochItems(DistributedSampler):
    """This rank's share of an epoch in shuffled order, each index paired with the epoch: the
    (epoch, index) key that `SeededItems` seeds the item's augmentation from."""

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, index) for index in super().__iter__())


class SeededItems(Dataset):
    """`dataset`'s item `index` in epoch `epoch`, drawn with torch's generator seeded from
    (seed, epoch, index) and the caller's stream restored afterwards."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.seed, epoch, index))
            return self.dataset[index]


def train_items(dataset: Dataset, trainer, seed: int) -> tuple[Dataset, Sampler]:
    """(the training set, its sampler) for a loader: a shuffled, equal-length share per rank whose
    order and augmentation follow (seed, epoch, item) alone."""
    rank, world = rank_and_world(trainer)
    sampler = EpochItems(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    return SeededItems(dataset, seed), sampler


def eval_sampler(dataset: Dataset, trainer) -> Sampler | None:
    """Each item on exactly one rank, or None (in order) on one process."""
    rank, world = rank_and_world(trainer)
    if world == 1:
        return None
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=False)


def _trains_on_cuda(trainer) -> bool:
    return trainer is not None and trainer.strategy.root_device.type == "cuda"


def loader_options(trainer, num_workers: int) -> dict:
    """DataLoader keyword arguments for a data module attached to `trainer` (None: not attached)."""
    return {
        "num_workers": num_workers,
        "persistent_workers": num_workers > 0,
        "pin_memory": _trains_on_cuda(trainer),
        "generator": torch.Generator(),
    }
