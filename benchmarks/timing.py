"""How the benchmarks time a step: CUDA events on a GPU (no host sync inside the step), wall
time elsewhere; the median of `reps` after `warmup` untimed runs."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def seconds_of(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_seconds(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(seconds_of(fn, device) for _ in range(reps))
