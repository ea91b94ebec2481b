"""The one registry of attention mechanisms: the spec grammar, the factory and the cost accounting read it.

A mechanism is either a `conv` (it replaces a network's 3x3 convolution, like `deform`) or an
`attention` module (it follows that convolution, like the 4-bit codes). `register_mechanism` is
the public way to add one; built-ins are registered below with the same call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from .defaults import (
    DEFAULTS_1D,
    DEFAULTS_2D,
    DEFAULTS_DEFORM_1D,
    DEFAULTS_DEFORM_2D,
    DEFAULTS_DYNAMIC_1D,
    DEFAULTS_DYNAMIC_2D,
)

if TYPE_CHECKING:
    from torch import nn

Kind = Literal["conv", "attention"]
CODE = "code"  # the registry key every 4-bit code builds through
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED = ("w/o", "none", CODE)


@dataclass(frozen=True)
class Mechanism:
    """How to build one part at one dim, and the options (with defaults) it honours.

    `build(channels, name, **options)`: `name` is the spec part (the code, for codes).
    """

    kind: Kind
    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any]


MECHANISMS: dict[tuple[str, int], Mechanism] = {}


def register_mechanism(
    name: str,
    build: Callable[..., nn.Module],
    *,
    kind: Kind = "attention",
    dims: tuple[int, ...] = (2,),
    defaults: Mapping[str, Any] | None = None,
    replace: bool = False,
) -> None:
    """Add a mechanism to the spec grammar, the factory and the cost accounting in one call.

    `build(channels, **options)` returns the module; for dim 2 it maps (N, C, H, W) to the same
    shape, for dim 1 it maps (N, T, C) to a sublayer output. `defaults` lists every option it
    honours. Afterwards `name` parses as a spec (alone, or `code+name` for a conv), networks place
    it where the study places modules of its kind, and its FLOPs count as attention cost.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED:
        raise ValueError(
            f"mechanism name {name!r} must be lower-case letters, digits or '_', start with a "
            f"letter, and not be one of {', '.join(RESERVED)}"
        )
    if kind not in ("conv", "attention"):
        raise ValueError(
            f"mechanism kind {kind!r} must be 'conv' (replaces the 3x3 convolution) or 'attention' "
            "(follows it)"
        )
    bad_dims = [d for d in dims if d not in (1, 2)]
    if not dims or bad_dims:
        raise ValueError(f"dims {dims!r} must name 1 (sequences) and/or 2 (feature maps)")
    taken = [d for d in dims if (name, d) in MECHANISMS]
    if taken and not replace:
        raise ValueError(
            f"mechanism {name!r} is already registered for dim {taken}; pass replace=True to swap it"
        )
    for d in dims:
        MECHANISMS[(name, d)] = Mechanism(kind, lambda c, _name, **o: build(c, **o), dict(defaults or {}))


def names(kind: Kind) -> tuple[str, ...]:
    """Registered mechanism names of `kind`, in registration order (codes excluded)."""
    seen = dict.fromkeys(n for (n, _), m in MECHANISMS.items() if m.kind == kind and n != CODE)
    return tuple(seen)


def kind_of(name: str) -> Kind | None:
    found = [m.kind for (n, _), m in MECHANISMS.items() if n == name]
    return found[0] if found else None


def mechanism(name: str, dim: int) -> Mechanism:
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 (sequences, (N, T, C)) or 2 (feature maps, (N, C, H, W)), got {dim}")
    if (name, dim) not in MECHANISMS:
        have = sorted(d for (n, d) in MECHANISMS if n == name)
        raise ValueError(f"mechanism {name!r} has no dim={dim} version (it is registered for dim {have})")
    return MECHANISMS[(name, dim)]


def known_options(dim: int) -> set[str]:
    """Every option some mechanism at `dim` honours."""
    return set().union(*(m.defaults for (_, d), m in MECHANISMS.items() if d == dim))


def _lazy(module: str, cls: str, takes_code: bool = False, **fixed: Any) -> Callable[..., nn.Module]:
    """A builder that imports its (torch) module on first use: parsing a spec stays torch-free."""

    def build(channels: int, name: str, **options: Any) -> nn.Module:
        made = getattr(import_module(f"{__package__}.{module}"), cls)
        return made(channels, *([name] if takes_code else []), **fixed, **options)

    return build


def _builtin(name: str, kind: Kind, dim: int, build: Callable[..., nn.Module], defaults: Mapping[str, Any]):
    MECHANISMS[(name, dim)] = Mechanism(kind, build, defaults)


_builtin(CODE, "attention", 2, _lazy("generalized2d", "GeneralizedAttention2d", takes_code=True), DEFAULTS_2D)
_builtin(CODE, "attention", 1, _lazy("generalized1d", "GeneralizedAttention1d", takes_code=True), DEFAULTS_1D)
_builtin("deform", "conv", 2, _lazy("deformable", "DeformConv2d", modulated=False), DEFAULTS_DEFORM_2D)
_builtin("deform", "conv", 1, _lazy("deformable", "DeformConv1d", modulated=False), DEFAULTS_DEFORM_1D)
_builtin("deform2", "conv", 2, _lazy("deformable", "DeformConv2d", modulated=True), DEFAULTS_DEFORM_2D)
_builtin("deform2", "conv", 1, _lazy("deformable", "DeformConv1d", modulated=True), DEFAULTS_DEFORM_1D)
_builtin("dynamic", "conv", 2, _lazy("dynamic", "DynamicConv2d"), DEFAULTS_DYNAMIC_2D)
_builtin("dynamic", "conv", 1, _lazy("dynamic", "DynamicConv1d"), DEFAULTS_DYNAMIC_1D)
