"""Efficiency statistics of a trained network at its evaluation resolution.

FLOPs are counted by torch's FlopCounterMode (2 per multiply-add; deform_conv2d taught to it),
in total and inside the modules the attention factory placed (attention modules and the
convolutions that replaced 3x3 convs). `added_flops` is what the mechanism adds to the whole
network over `w/o`: the placed modules' FLOPs less what `w/o` spends in their place, which is
nothing for an attention module or a sequence site and the plain 3x3 convolution for a
convolution that replaced one (so deform is charged its offsets and sampling, not its whole
convolution). Latency is the median of timed eval forwards; peak memory is that of one eval
forward (pipeline.memory).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from attnlab.lightning_modules.attention.factory import PLACED
from attnlab.lightning_modules.attention.flops import EXTRA_FORMULAS, count_parameters
from attnlab.lightning_modules.attention.registry import kind_of
from attnlab.pipeline.costs.timing import median_seconds, peak_memory_bytes


def measure_efficiency(
    model: nn.Module, inputs: tuple, sites: Sequence[str], items: int = 1, repeats: int = 5
) -> dict[str, float]:
    """{'flops', 'attention_flops', 'added_flops', 'params', 'attention_params', 'latency_ms',
    'items_per_second', 'peak_memory_mb'}; FLOPs and latency per item (an image, or a target token
    in translation)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    root = type(model).__name__
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    replaced: list[int] = []
    hooks = [m.register_forward_hook(_plain_conv_flops(replaced)) for m in _replacing_3x3(model)]
    try:
        with counter, torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    counts = counter.get_flop_counts()
    attention = sum(sum(counts.get(f"{root}.{site}", {}).values()) for site in sites)
    modules = dict(model.named_modules())
    attention_params = sum(count_parameters(modules[s]) for s in sites)

    def forward():
        with torch.no_grad():
            model(*inputs)

    seconds = median_seconds(forward, device, repeats, warmup=1, events=False)
    peak = peak_memory_bytes(forward, device, [model])
    model.train(was_training)
    return {
        "flops": counter.get_total_flops() / items,
        "attention_flops": attention / items,
        "added_flops": (attention - sum(replaced)) / items,
        "params": float(count_parameters(model)),
        "attention_params": float(attention_params),
        "latency_ms": 1000 * seconds / items,
        "items_per_second": items / seconds,
        "peak_memory_mb": peak / 2**20,
    }


def _replacing_3x3(model: nn.Module) -> list[nn.Module]:
    """Placed convolution mechanisms on feature maps: each stands where `w/o` has a 3x3 conv."""
    return [m for m in model.modules() if kind_of(getattr(m, PLACED, "")) == "conv"]


def _plain_conv_flops(into: list[int]):
    """A forward hook adding the FLOPs of the dense 3x3 convolution (same channels in and out, the
    module's output size) that `w/o` runs in the hooked module's place; sequence sites add none."""

    def hook(module, args, output):
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() == 4 and isinstance(output, torch.Tensor):
            n, c_in = x.shape[:2]
            c_out, h, w = output.shape[1:]
            into.append(2 * n * h * w * c_out * c_in * 9)

    return hook
