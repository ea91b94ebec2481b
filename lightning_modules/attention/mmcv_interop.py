"""Convert an mmcv GeneralizedAttention into GeneralizedAttention2d with the same weights.

mmcv stays optional: the instance is read by attribute, never imported here.
"""

from __future__ import annotations

import torch
from torch import nn

from .generalized2d import GeneralizedAttention2d

# (our attribute, mmcv attribute) pairs; missing ones are absent for that code on both sides.
_PARAMS = [
    ("query", "query_conv"),
    ("key", "key_conv"),
    ("value", "value_conv"),
    ("pos_x", "appr_geom_fc_x"),
    ("pos_y", "appr_geom_fc_y"),
    ("proj", "proj_conv"),
]
_TENSORS = [("content_bias", "appr_bias"), ("position_bias", "geom_bias"), ("gamma", "gamma")]


def from_mmcv(module: nn.Module) -> GeneralizedAttention2d:
    """Return the equivalent GeneralizedAttention2d (same code, strides, heads, weights).

    Codes 0100, 0110, 1100 and 1110 give the mathematically correct result here, which differs
    from mmcv's (its E2-without-E4 branch uses a transposed query). mmcv's spatial_range window
    is defined differently (and only for 256/512 channels), so such modules are refused.
    """
    code = "".join("1" if t else "0" for t in module.attention_type)
    if module.spatial_range >= 0:
        raise ValueError(
            f"from_mmcv: spatial_range={module.spatial_range} is not convertible: mmcv's window is "
            "asymmetric and tied to 84x84 maps; build GeneralizedAttention2d with spatial_range instead"
        )
    if module.in_channels % module.num_heads:
        raise ValueError(
            f"from_mmcv: {module.in_channels} channels are not divisible by {module.num_heads} heads"
        )
    ours = GeneralizedAttention2d(
        module.in_channels,
        code,
        num_heads=module.num_heads,
        kv_stride=module.kv_stride,
        q_stride=module.q_stride,
        position_embedding_dim=module.position_embedding_dim,
        position_magnitude=module.position_magnitude,
    )
    with torch.no_grad():
        for mine, theirs in _PARAMS:
            dst, src = getattr(ours, mine), getattr(module, theirs, None)
            if (dst is None) != (src is None):
                raise ValueError(f"from_mmcv: {theirs} presence does not match code {code}")
            if dst is not None:
                dst.load_state_dict(src.state_dict())
        for mine, theirs in _TENSORS:
            dst, src = getattr(ours, mine), getattr(module, theirs, None)
            if dst is not None:
                dst.copy_(src.detach())
    return ours.to(next(module.parameters()).device)
