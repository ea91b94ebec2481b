"""How attnlab times a step and measures its memory, on CPU or GPU, in the same process.

Time: the median of `reps` runs after `warmup` untimed ones. On a GPU, either CUDA events (the GPU's
own time for the work between them, what the benchmarks compare) or wall time between two
synchronisations (what a caller waits, the recorded latency).

Memory: on a GPU the caching allocator's peak counter. CPU has no such counter, so torch's MemTracker
(a dispatch-mode tracker of every tensor storage alive, autograd's saved tensors included) gives
the peak of live tensor bytes; parameters of `modules` are counted too.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Iterable

import torch
from torch import nn


def seconds_of(fn: Callable[[], object], device: torch.device, events: bool = True) -> float:
    if device.type == "cuda" and events:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def median_seconds(
    fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 1, events: bool = True
) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(seconds_of(fn, device, events) for _ in range(reps))


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
