"""How attnlab times a step: the median of `reps` runs after `warmup` untimed ones. On a GPU,
either CUDA events (the GPU's own time for the work between them, what the benchmarks compare)
or wall time between two synchronisations (what a caller waits, the recorded latency)."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


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
