"""The one public way to get a mechanism: `build_attention(spec, channels, dim, **options)`.

A registry (a dict, not an if-chain) maps (mechanism, dim) to a builder and the options it
honours. Combined specs ("0010+deform") build the convolution, which replaces the 3x3 conv,
and the attention module that follows it; each option goes to every part that honours it, and
an option no part honours is an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .deformable import DEFAULTS_DEFORM_1D, DEFAULTS_DEFORM_2D, DeformConv1d, DeformConv2d
from .dynamic import DEFAULTS_DYNAMIC_1D, DEFAULTS_DYNAMIC_2D, DynamicConv1d, DynamicConv2d
from .generalized1d import DEFAULTS_1D, GeneralizedAttention1d
from .generalized2d import DEFAULTS_2D, GeneralizedAttention2d
from .options import resolve_options
from .spec import AttentionSpec, parse_spec


@dataclass(frozen=True)
class Mechanism:
    """A registry entry: how to build one part and which options (with defaults) it honours."""

    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any]


# Key: (mechanism, dim); mechanism "code" stands for every 4-bit code.
REGISTRY: dict[tuple[str, int], Mechanism] = {
    ("code", 2): Mechanism(lambda c, code, **o: GeneralizedAttention2d(c, code, **o), DEFAULTS_2D),
    ("code", 1): Mechanism(lambda c, code, **o: GeneralizedAttention1d(c, code, **o), DEFAULTS_1D),
    ("deform", 2): Mechanism(lambda c, _, **o: DeformConv2d(c, modulated=False, **o), DEFAULTS_DEFORM_2D),
    ("deform2", 2): Mechanism(lambda c, _, **o: DeformConv2d(c, modulated=True, **o), DEFAULTS_DEFORM_2D),
    ("deform", 1): Mechanism(lambda c, _, **o: DeformConv1d(c, modulated=False, **o), DEFAULTS_DEFORM_1D),
    ("deform2", 1): Mechanism(lambda c, _, **o: DeformConv1d(c, modulated=True, **o), DEFAULTS_DEFORM_1D),
    ("dynamic", 2): Mechanism(lambda c, _, **o: DynamicConv2d(c, **o), DEFAULTS_DYNAMIC_2D),
    ("dynamic", 1): Mechanism(lambda c, _, **o: DynamicConv1d(c, **o), DEFAULTS_DYNAMIC_1D),
}


class NoAttention1d(nn.Module):
    """'w/o' at a sequence site: contributes nothing, so the layer's residual passes x through."""

    incremental = True
    reads_input = False  # a pre-norm in front of it would get no gradient (DDP refuses that)

    def forward(self, x: torch.Tensor, memory=None, key_padding_mask=None, query_offset: int = 0) -> torch.Tensor:
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


def _mechanism(name: str, dim: int) -> Mechanism:
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 (sequences, (N, T, C)) or 2 (feature maps, (N, C, H, W)), got {dim}")
    return REGISTRY[(name, dim)]


def known_options(dim: int) -> set[str]:
    """Every option some mechanism at `dim` honours."""
    return set().union(*(m.defaults for (_, d), m in REGISTRY.items() if d == dim))


def options_for(spec: str | AttentionSpec, dim: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of shared `options` that `spec` honours (for one option set over many specs).

    A network or a sweep applies one option set to every spec of a grid; each spec takes the
    options it can honour. An option that no mechanism honours is still an error (a typo).
    """
    unknown = sorted(set(options) - known_options(dim))
    if unknown:
        raise ValueError(f"unknown attention option(s) {', '.join(unknown)} for dim={dim}; "
                         f"known: {', '.join(sorted(known_options(dim)))}")
    parsed = spec if isinstance(spec, AttentionSpec) else parse_spec(spec)
    keys = [k for k in (parsed.conv, "code" if parsed.code else None) if k]
    honoured = set().union(*(_mechanism(k, dim).defaults for k in keys)) if keys else set()
    return {k: v for k, v in options.items() if k in honoured}


def build_attention_parts(spec: str | AttentionSpec, channels: int, dim: int = 2,
                          **options) -> tuple[nn.Module | None, nn.Module | None]:
    """(convolution or None, attention or None) for `spec`; what a network slots in separately."""
    parsed = spec if isinstance(spec, AttentionSpec) else parse_spec(spec)
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    parts = [(name, key) for name, key in ((parsed.conv, parsed.conv), (parsed.code, "code")) if name]
    mechanisms = {key: _mechanism(key, dim) for _, key in parts}
    honoured = set().union(*(m.defaults for m in mechanisms.values())) if mechanisms else set()
    stray = sorted(set(options) - honoured)
    if stray:
        accepted = ", ".join(sorted(honoured)) or "none"
        raise ValueError(f"attention spec {str(parsed)!r} (dim={dim}) cannot honour option(s) "
                         f"{', '.join(stray)}; it accepts: {accepted}")
    built: dict[str, nn.Module] = {}
    for name, key in parts:
        mech = mechanisms[key]
        mine = {k: v for k, v in options.items() if k in mech.defaults}
        built[key] = mech.build(channels, name, **resolve_options(f"{name} (dim={dim})", mine, mech.defaults))
    conv = built.get(parsed.conv) if parsed.conv else None
    return conv, built.get("code")


def build_attention(spec: str | AttentionSpec, channels: int, dim: int = 2, **options) -> nn.Module:
    """Build the mechanism named by `spec` for `channels` channels.

    dim=2: (N, C, H, W) -> (N, C, H', W') (H' = H unless a convolution is given a stride).
    dim=1: (N, T, C) -> (N, T, C) sublayer output; forward(x, memory=None, key_padding_mask=None).
    """
    conv, attn = build_attention_parts(spec, channels, dim, **options)
    if conv is not None and attn is not None:
        return AttentionStack(conv, attn, dim)
    if conv is not None or attn is not None:
        return conv if conv is not None else attn
    return Identity2d() if dim == 2 else NoAttention1d()


FACTORY_TYPES = (GeneralizedAttention1d, GeneralizedAttention2d, DeformConv1d, DeformConv2d, DynamicConv1d,
                 DynamicConv2d, AttentionStack)


def placed_modules(model: nn.Module) -> list[str]:
    """Names of the outermost modules the factory built inside `model` (what costs 'attention')."""
    names: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, FACTORY_TYPES) and not any(name.startswith(f"{n}.") for n in names):
            names.append(name)
    return names
