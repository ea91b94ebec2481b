"""How every data module loads: which share of a data set each DDP rank reads, and the loader
options that keep a GPU fed.

attnlab's trainers run with Lightning's `use_distributed_sampler=False` and every data module
shards itself here. Two reasons: Lightning cannot inject a sampler into a custom batch sampler
(the translation token buckets), and its validation sampler pads the last ranks with repeated
items, which would count an image or a sentence twice in COCO AP, mIoU or BLEU.

- training: torch's DistributedSampler (shuffled per epoch from the seed, padded so every rank
  takes the same number of steps and DDP never waits on a rank that ran out);
- evaluation: Lightning's UnrepeatedDistributedSampler (disjoint shares, no padding; ranks may
  differ by one item, which evaluation tolerates since it syncs no gradients);
- loader options: worker processes that persist across epochs (no re-fork per epoch), and pinned
  host memory when the trainer trains on CUDA, so the batch's copy to the GPU overlaps compute.
"""

from __future__ import annotations

from torch.utils.data import Dataset, DistributedSampler, Sampler


def rank_and_world(trainer) -> tuple[int, int]:
    """(global rank, world size) of the trainer the data module is attached to; (0, 1) when alone."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


def train_sampler(dataset: Dataset, trainer, seed: int) -> Sampler | None:
    """A shuffled, equal-length share per rank, or None (the loader shuffles) on one process."""
    rank, world = rank_and_world(trainer)
    if world == 1:
        return None
    return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)


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
    }
