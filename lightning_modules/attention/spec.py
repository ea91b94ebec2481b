"""Parse attention spec strings ("1111", "0010+deform", "w/o") into a typed description.

One parser, one grammar: every entry point (CLI, configs, sweeps, networks) goes through
`parse_spec`, so a bad spec fails the same way everywhere, before any compute is spent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import registry

NONE_SPECS = ("w/o", "none")
_CODE_RE = re.compile(r"^[01]{4}$")


def grammar() -> str:
    """The grammar, naming the mechanisms registered now."""
    convs = ", ".join(repr(n) for n in registry.names("conv"))
    extra = ", ".join(repr(n) for n in registry.names("attention"))
    modules = (
        "a 4-bit attention code b1b2b3b4 for terms E1..E4 (one of the 15 non-empty codes, e.g. '1111', "
        "'0010')" + (f" or an attention module {extra}" if extra else "")
    )
    return (
        f"valid specs: 'w/o' (or 'none'); {modules}; a convolution {convs}; or one convolution and one "
        "attention part joined by '+', e.g. '0010+deform'"
    )


GRAMMAR = grammar()  # the built-in grammar, for documentation; errors call grammar()


@dataclass(frozen=True)
class AttentionSpec:
    """A parsed spec: an optional convolution (replacing the 3x3 conv) and an optional attention part.

    `code` is a 4-bit code, or the name of a registered attention module.
    """

    conv: str | None = None
    code: str | None = None

    @property
    def is_none(self) -> bool:
        return self.conv is None and self.code is None

    @property
    def is_code(self) -> bool:
        return self.code is not None and bool(_CODE_RE.match(self.code))

    @property
    def terms(self) -> tuple[bool, bool, bool, bool]:
        """(E1, E2, E3, E4) switches; all off when there is no attention code."""
        code = self.code if self.is_code else "0000"
        return tuple(c == "1" for c in code)  # type: ignore[return-value]

    def __str__(self) -> str:
        if self.is_none:
            return "w/o"
        return "+".join(p for p in (self.code, self.conv) if p)


def all_codes() -> list[str]:
    """The 15 non-empty 4-bit codes, in the study's order (binary ascending)."""
    return [format(i, "04b") for i in range(1, 16)]


# The study's grid: no attention, the 15 codes, both convolutions, and the combinations it reports.
STUDY_SPECS = ("w/o", *all_codes(), "deform", "dynamic", "0010+deform", "1111+deform", "0010+dynamic")


def parse_spec(spec: str) -> AttentionSpec:
    """Parse `spec`; raise ValueError naming the bad part and the grammar (built only on error)."""
    if not isinstance(spec, str):
        raise ValueError(f"attention spec must be a string, got {type(spec).__name__}; {grammar()}")
    text = spec.strip().lower()
    if text in NONE_SPECS:
        return AttentionSpec()
    if not text:
        raise ValueError(f"empty attention spec; {grammar()}")
    conv = code = None
    for part in text.split("+"):
        part = part.strip()
        kind = registry.kind_of(part) if part != registry.CODE else None
        if kind == "conv":
            if conv is not None:
                raise ValueError(
                    f"attention spec {spec!r} names two convolutions ({conv!r}, {part!r}); {grammar()}"
                )
            conv = part
        elif _CODE_RE.match(part) or kind == "attention":
            if part == "0000":
                raise ValueError(
                    f"attention spec {spec!r}: code '0000' switches every term off; use 'w/o'. {grammar()}"
                )
            if code is not None:
                raise ValueError(
                    f"attention spec {spec!r} names two attention parts ({code!r}, {part!r}); {grammar()}"
                )
            code = part
        elif part in NONE_SPECS:
            raise ValueError(f"attention spec {spec!r}: 'w/o' cannot be combined with anything; {grammar()}")
        else:
            raise ValueError(f"attention spec {spec!r}: unknown part {part!r}; {grammar()}")
    return AttentionSpec(conv=conv, code=code)
