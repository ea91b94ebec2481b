"""Parse attention spec strings ("1111", "0010+deform", "w/o") into a typed description.

One parser, one grammar: every entry point (CLI, configs, sweeps, networks) goes through
`parse_spec`, so a bad spec fails the same way everywhere, before any compute is spent.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NONE_SPECS = ("w/o", "none")
CONV_NAMES = ("deform", "deform2", "dynamic")
_CODE_RE = re.compile(r"^[01]{4}$")

GRAMMAR = (
    "valid specs: 'w/o' (or 'none'); a 4-bit attention code b1b2b3b4 for terms E1..E4 "
    "(one of the 15 non-empty codes, e.g. '1111', '0010'); a convolution 'deform', 'deform2' "
    "or 'dynamic'; or one convolution and one code joined by '+', e.g. '0010+deform'"
)


@dataclass(frozen=True)
class AttentionSpec:
    """A parsed spec: an optional convolution (replacing the 3x3 conv) and an optional code."""

    conv: str | None = None
    code: str | None = None

    @property
    def is_none(self) -> bool:
        return self.conv is None and self.code is None

    @property
    def terms(self) -> tuple[bool, bool, bool, bool]:
        """(E1, E2, E3, E4) switches; all off when there is no attention code."""
        code = self.code or "0000"
        return tuple(c == "1" for c in code)  # type: ignore[return-value]

    def __str__(self) -> str:
        if self.is_none:
            return "w/o"
        return "+".join(p for p in (self.code, self.conv) if p)


def all_codes() -> list[str]:
    """The 15 non-empty 4-bit codes, in the study's order (binary ascending)."""
    return [format(i, "04b") for i in range(1, 16)]


def parse_spec(spec: str) -> AttentionSpec:
    """Parse `spec`; raise ValueError naming the bad part and the grammar."""
    if not isinstance(spec, str):
        raise ValueError(f"attention spec must be a string, got {type(spec).__name__}; {GRAMMAR}")
    text = spec.strip().lower()
    if text in NONE_SPECS:
        return AttentionSpec()
    if not text:
        raise ValueError(f"empty attention spec; {GRAMMAR}")
    conv = code = None
    for part in text.split("+"):
        part = part.strip()
        if part in CONV_NAMES:
            if conv is not None:
                raise ValueError(f"attention spec {spec!r} names two convolutions ({conv!r}, {part!r}); {GRAMMAR}")
            conv = part
        elif _CODE_RE.match(part):
            if part == "0000":
                raise ValueError(f"attention spec {spec!r}: code '0000' switches every term off; use 'w/o'. {GRAMMAR}")
            if code is not None:
                raise ValueError(f"attention spec {spec!r} names two codes ({code!r}, {part!r}); {GRAMMAR}")
            code = part
        elif part in NONE_SPECS:
            raise ValueError(f"attention spec {spec!r}: 'w/o' cannot be combined with anything; {GRAMMAR}")
        else:
            raise ValueError(f"attention spec {spec!r}: unknown part {part!r}; {GRAMMAR}")
    return AttentionSpec(conv=conv, code=code)
