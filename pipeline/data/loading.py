"""What every data module's loaders share to keep a GPU fed: worker processes that persist across
epochs (no re-fork per epoch), and pinned host memory when the trainer trains on CUDA, so the
batch's copy to the GPU overlaps compute (Lightning moves batches with non_blocking when pinned)."""

from __future__ import annotations


def _trains_on_cuda(trainer) -> bool:
    return trainer is not None and trainer.strategy.root_device.type == "cuda"


def loader_options(trainer, num_workers: int) -> dict:
    """DataLoader keyword arguments for a data module attached to `trainer` (None: not attached)."""
    return {
        "num_workers": num_workers,
        "persistent_workers": num_workers > 0,
        "pin_memory": _trains_on_cuda(trainer),
    }
