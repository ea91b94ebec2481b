"""Option checking shared by every mechanism: an option a mechanism cannot honour is an error."""

from __future__ import annotations

from typing import Any, Mapping


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
