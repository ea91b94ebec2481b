"""The one public way to get a mechanism: `build_attention(spec, channels, dim, **options)`.

A registry (a dict, not an if-chain) maps (mechanism, dim) to a builder and the options it
honours. Combined specs ("0010+deform") build the convolution, which replaces the 3x3 conv,
and the attention module that follows it; each option goes to every part that honours it, and
an option no part honours is an error.
"""

from __future__ import annotations

import torch
from torch import nn

from .options import parts, resolve_options
from .registry import mechanism
from .spec import AttentionSpec, parse_spec

PLACED = "attnlab_mechanism"  # attribute the factory sets on what it builds: what counts as attention cost


class NoAttention1d(nn.Module):
    """'w/o' at a sequence site: contributes nothing, so the layer's residual passes x through."""

    incremental = True
    reads_input = False  # a pre-norm in front of it would get no gradient (DDP refuses that)

    def forward(
        self, x: torch.Tensor, memory=None, key_padding_mask=None, query_offset: int = 0
    ) -> torch.Tensor:
        return torch.zeros_like(x)

    def flops(self, shape, memory_length=None) -> int:
        return 0


class Identity2d(nn.Identity):
    """'w/o' on a feature map: the identity, at no cost."""

    def flops(self, shape) -> int:
        return 0


class AttentionStack(nn.Module):
    """A convolution (replacing the 3x3 conv) followed by an attention module, as in the study.

    2-D attention carries its own residual (x + gamma * attn); 1-D modules return a sublayer
    output, so the 1-D stack adds the convolution's output back: y + attn(y).
    """

    def __init__(self, conv: nn.Module, attn: nn.Module, dim: int):
        super().__init__()
        self.conv, self.attn, self.dim = conv, attn, dim

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        y = self.conv(x, **kwargs) if self.dim == 1 else self.conv(x)
        return self.attn(y) if self.dim == 2 else y + self.attn(y, **kwargs)

    def flops(self, shape) -> int:
        out_shape = self.conv.output_shape(shape) if self.dim == 2 else shape
        return self.conv.flops(shape) + self.attn.flops(out_shape)


def build_attention_parts(
    spec: str | AttentionSpec, channels: int, dim: int = 2, **options
) -> tuple[nn.Module | None, nn.Module | None]:
    """(convolution or None, attention or None) for `spec`; what a network slots in separately."""
    parsed = spec if isinstance(spec, AttentionSpec) else parse_spec(spec)
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    named = parts(parsed)
    mechanisms = {key: mechanism(key, dim) for _, key in named}
    honoured = set().union(*(m.defaults for m in mechanisms.values()))
    stray = sorted(set(options) - honoured)
    if stray:
        accepted = ", ".join(sorted(honoured)) or "none"
        raise ValueError(
            f"attention spec {str(parsed)!r} (dim={dim}) cannot honour option(s) "
            f"{', '.join(stray)}; it accepts: {accepted}"
        )
    built: dict[str, nn.Module] = {}
    for name, key in named:
        mech = mechanisms[key]
        mine = {k: v for k, v in options.items() if k in mech.defaults}
        module = mech.build(channels, name, **resolve_options(f"{name} (dim={dim})", mine, mech.defaults))
        setattr(module, PLACED, name)
        built[name] = module
    return built.get(parsed.conv), built.get(parsed.code)


def build_attention(spec: str | AttentionSpec, channels: int, dim: int = 2, **options) -> nn.Module:
    """Build the mechanism named by `spec` for `channels` channels.

    dim=2: (N, C, H, W) -> (N, C, H', W') (H' = H unless a convolution is given a stride).
    dim=1: (N, T, C) -> (N, T, C) sublayer output; forward(x, memory=None, key_padding_mask=None).
    """
    conv, attn = build_attention_parts(spec, channels, dim, **options)
    if conv is not None and attn is not None:
        stack = AttentionStack(conv, attn, dim)
        setattr(stack, PLACED, str(spec))
        return stack
    if conv is not None or attn is not None:
        return conv if conv is not None else attn
    return Identity2d() if dim == 2 else NoAttention1d()


def placed_modules(model: nn.Module) -> list[str]:
    """Names of the outermost modules the factory built inside `model` (what costs 'attention')."""
    names: list[str] = []
    for name, module in model.named_modules():
        if hasattr(module, PLACED) and not any(name.startswith(f"{n}.") for n in names):
            names.append(name)
    return names
