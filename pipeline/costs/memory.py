"""Peak memory of one call, on CPU or GPU, in the same process.

GPU: the caching allocator's peak counter. CPU has no such counter, so torch's MemTracker
(a dispatch-mode tracker of every tensor storage alive, autograd's saved tensors included)
gives the peak of live tensor bytes; parameters of `modules` are counted too.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


def peak_memory_bytes(
    fn: Callable[[], object], device: torch.device | str, modules: Iterable[nn.Module] = ()
) -> int:
    """Peak bytes of tensors alive while `fn()` runs (above what was allocated before, on GPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before + sum(_param_bytes(m) for m in modules)
    from torch.distributed._tools.mem_tracker import MemTracker

    tracker = MemTracker()
    for m in modules:
        tracker.track_external(m)
    with tracker:
        fn()
    peaks = tracker.get_tracker_snapshot("peak")
    return int(sum(v["Total"] for dev, v in peaks.items() if torch.device(dev).type == device.type))


def _param_bytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())
