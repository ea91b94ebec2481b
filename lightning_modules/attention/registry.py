"""The one registry of attention mechanisms: the spec grammar, the factory and the cost accounting read it.

A mechanism is either a `conv` (it replaces a network's 3x3 convolution, like `deform`) or an
`attention` module (it follows that convolution, like the 4-bit codes). `register_mechanism` is
the public way to add one. A built-in is marked beside its class (`@builtin("deform", ...)` in
deformable.py) and its options are its constructor's keyword defaults, declared there once; the
registry reads both from the source without importing the module (`_builtins`), so a spec or an
option is checked before torch loads, and registers them through the same checks. Every entry says
where it comes from (`Mechanism.source`).
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

if TYPE_CHECKING:
    from torch import nn

Kind = Literal["conv", "attention"]
CODE = "code"  # the registry key every 4-bit code builds through
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED = ("w/o", "none", CODE)
BUILTIN_MODULES = ("generalized2d", "generalized1d", "deformable", "dynamic")  # their order: the names'


@dataclass(frozen=True)
class Mechanism:
    """How to build one part at one dim, the options (with defaults) it honours, and where it comes
    from (`module:Class` of a built-in, the module that called `register_mechanism` otherwise).

    `build(channels, name, **options)`: `name` is the spec part (the code, for codes).
    """

    kind: Kind
    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any]
    source: str = ""


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
    caller = inspect.currentframe().f_back.f_globals.get("__name__", "?")  # one frame, not the stack
    source = f"{caller}:{getattr(build, '__qualname__', repr(build))}"
    _register(name, lambda c, _name, **o: build(c, **o), kind, dims, defaults or {}, replace, source)


def _register(
    name: str,
    build: Callable[..., nn.Module],
    kind: Kind,
    dims: tuple[int, ...],
    defaults: Mapping[str, Any],
    replace: bool,
    source: str,
    builtin: bool = False,
) -> None:
    """The checks every mechanism passes, built-in or not (a built-in may take the codes' key)."""
    if not isinstance(name, str) or not _NAME.match(name) or (name in RESERVED and not builtin):
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
        MECHANISMS[(name, d)] = Mechanism(kind, build, dict(defaults), source)


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


# Built-ins.


def builtin(name: str, *, kind: Kind, dim: int, **fixed: Any):
    """Marks the class below as the built-in mechanism `name` at `dim`, built with `fixed` keyword
    arguments; its other keyword defaults are the options it honours. The registry reads the mark
    from the source (torch-free), so at run time it only returns the class."""

    def mark(cls):
        return cls

    return mark


@dataclass(frozen=True)
class Builtin:
    """A built-in as its source declares it (`_builtins`)."""

    name: str
    kind: Kind
    dim: int
    module: str
    cls: str
    fixed: Mapping[str, Any]
    defaults: Mapping[str, Any]
    takes_code: bool  # the constructor's second positional argument is the 4-bit code


def _declared(module: str) -> list[Builtin]:
    """The `@builtin(...)` classes of one module of this package, read from its source."""
    tree = ast.parse(Path(__file__).with_name(f"{module}.py").read_text())
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        init = next((f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"), None)
        for mark in node.decorator_list:
            if not (isinstance(mark, ast.Call) and getattr(mark.func, "id", None) == "builtin"):
                continue
            options = {k.arg: ast.literal_eval(k.value) for k in mark.keywords}
            kind, dim = options.pop("kind"), options.pop("dim")
            args = init.args
            positional = [a.arg for a in args.args[1:]]  # without self
            with_default = positional[len(positional) - len(args.defaults) :]
            defaults = dict(zip(with_default, map(ast.literal_eval, args.defaults)))
            defaults.update(
                {a.arg: ast.literal_eval(d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d}
            )
            required = positional[: len(positional) - len(args.defaults)]
            found.append(
                Builtin(
                    ast.literal_eval(mark.args[0]),
                    kind,
                    dim,
                    module,
                    node.name,
                    options,
                    {k: v for k, v in defaults.items() if k not in options},
                    takes_code=required[1:2] == ["code"],
                )
            )
    return found


def _lazy(b: Builtin) -> Callable[..., nn.Module]:
    """A builder that imports its (torch) module on first use: parsing a spec stays torch-free."""

    def build(channels: int, name: str, **options: Any) -> nn.Module:
        made = getattr(import_module(f"{__package__}.{b.module}"), b.cls)
        return made(channels, *([name] if b.takes_code else []), **b.fixed, **options)

    return build


def _builtins() -> list[Builtin]:
    return [b for module in BUILTIN_MODULES for b in _declared(module)]


for _b in _builtins():
    _register(
        _b.name,
        _lazy(_b),
        _b.kind,
        (_b.dim,),
        _b.defaults,
        False,
        f"{__package__}.{_b.module}:{_b.cls}",
        True,
    )
