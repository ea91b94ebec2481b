"""Per-site attention specs of the Transformer: `enc_self=SPEC,dec_self=SPEC,enc_dec=SPEC`.

A single SPEC sets both self-attention sites; encoder-decoder attention then keeps 1000.
Encoder-decoder attention has no 'w/o' point (the decoder would never see the source) and
takes attention codes only (a convolution cannot read another sequence).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, TypeVar

from .spec import parse_spec

T = TypeVar("T")

SITES = ("enc_self", "dec_self", "enc_dec")
DEFAULT_ENC_DEC = "1000"


def parse_sites(text: str) -> dict[str, str]:
    """{'enc_self': spec, 'dec_self': spec, 'enc_dec': spec}, normalised; ValueError naming the problem."""
    if "=" not in text:
        spec = str(parse_spec(text))
        return {"enc_self": spec, "dec_self": spec, "enc_dec": DEFAULT_ENC_DEC}
    sites = {"enc_self": "1000", "dec_self": "1000", "enc_dec": DEFAULT_ENC_DEC}
    for part in text.split(","):
        name, _, spec = part.partition("=")
        name = name.strip()
        if name not in SITES:
            raise ValueError(
                f"unknown attention site {name!r} in {text!r}; sites are {', '.join(SITES)} "
                "(e.g. enc_self=0010,dec_self=1000,enc_dec=1000)"
            )
        sites[name] = str(parse_spec(spec))
    enc_dec = parse_spec(sites["enc_dec"])
    if enc_dec.is_none:
        raise ValueError(
            "encoder-decoder attention cannot be 'w/o': the decoder would never see the source; "
            "use an attention code such as 1000"
        )
    if enc_dec.conv is not None:
        raise ValueError(
            f"encoder-decoder attention takes an attention code, not {sites['enc_dec']!r}: "
            "a convolution cannot read the source sequence"
        )
    return sites


def format_sites(sites: dict[str, str]) -> str:
    return ",".join(f"{k}={sites[k]}" for k in SITES)


def held_at_most_common(
    items: list[T], site: str, sites_of: Callable[[T], dict[str, str]], sites: tuple[str, ...] = SITES
) -> tuple[tuple[str, ...], list[T]] | None:
    """The items where only `site` varies: the other sites held at their most common setting among
    `items`. (that setting, in `sites` order less `site`; the items) or None without items."""
    others = [s for s in sites if s != site]
    held = Counter(tuple(sites_of(i)[o] for o in others) for i in items).most_common(1)
    if not held:
        return None
    fixed = held[0][0]
    return fixed, [i for i in items if tuple(sites_of(i)[o] for o in others) == fixed]
