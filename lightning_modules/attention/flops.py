"""Cost of a module: analytic FLOPs (each mechanism's `flops(shape)`), measured FLOPs, parameters.

Measured FLOPs use torch.utils.flop_counter, taught torchvision's deform_conv2d (counted as the
equivalent dense conv of the sampled values, 2 FLOPs per multiply-add, like every other op).
"""

from __future__ import annotations

import torch
import torchvision  # noqa: F401  (registers torch.ops.torchvision)
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _deform_conv2d_flops(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    c_out, c_in_per_group, kh, kw = weight_shape
    n, _, ho, wo = out_shape
    return 2 * n * ho * wo * c_out * c_in_per_group * kh * kw


def _cpu_flash_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's CPU flash kernel is missing from FlopCounterMode's table; same count as the others."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


EXTRA_FORMULAS = {
    torch.ops.torchvision.deform_conv2d: _deform_conv2d_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_sdpa_flops,
}


def measure_flops(module: nn.Module, *args, **kwargs) -> int:
    """FLOPs of one forward call, counted by torch's FlopCounterMode."""
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with counter, torch.no_grad():
        module(*args, **kwargs)
    return counter.get_total_flops()


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def efficiency(module: nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    """{'flops', 'params'} of a factory-built module at input `shape` (analytic FLOPs)."""
    return {"flops": int(module.flops(tuple(shape))), "params": count_parameters(module)}
