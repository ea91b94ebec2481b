"""Option checking shared by every mechanism: an option a mechanism cannot honour is an error.

Torch-free (the registry reads every mechanism's options from source), so configs and the CLI
refuse a bad option before torch loads.
"""

from __future__ import annotations

from typing import Any, Mapping

from .registry import CODE, known_options, mechanism
from .spec import AttentionSpec, parse_spec


def resolve_options(
    mechanism: str, options: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge `options` over `defaults`; raise ValueError on any option the mechanism lacks."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"{mechanism} does not accept option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(sorted(defaults)) or 'none'}"
        )
    merged = dict(defaults)
    merged.update(options)
    return merged


def require(condition: bool, message: str) -> None:
    """Raise ValueError(message) unless condition holds (one-line validation)."""
    if not condition:
        raise ValueError(message)


def reject_memory(mechanism: str, memory, query_offset: int) -> None:
    """Convolutions see one sequence: refuse encoder-decoder use instead of ignoring `memory`."""
    require(
        memory is None,
        f"{mechanism} cannot attend to a separate key/value sequence; "
        "use an attention code (e.g. '1000') at encoder-decoder sites",
    )
    require(query_offset == 0, f"{mechanism} does not support query_offset (incremental decoding) yet")


def parts(parsed: AttentionSpec) -> list[tuple[str, str]]:
    """(spec part, registry key) of each part: a convolution, then the attention (codes share one key)."""
    parts = [(parsed.conv, parsed.conv)] if parsed.conv else []
    if parsed.code:
        parts.append((parsed.code, CODE if parsed.is_code else parsed.code))
    return parts


def options_for(spec: str | AttentionSpec, dim: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of shared `options` that `spec` honours (for one option set over many specs).

    A network or a sweep applies one option set to every spec of a grid; each spec takes the
    options it can honour. An option that no mechanism honours is still an error (a typo).
    """
    unknown = sorted(set(options) - known_options(dim))
    if unknown:
        raise ValueError(
            f"unknown attention option(s) {', '.join(unknown)} for dim={dim}; "
            f"known: {', '.join(sorted(known_options(dim)))}"
        )
    parsed = spec if isinstance(spec, AttentionSpec) else parse_spec(spec)
    honoured = set().union(*(mechanism(key, dim).defaults for _, key in parts(parsed)))
    return {k: v for k, v in options.items() if k in honoured}
