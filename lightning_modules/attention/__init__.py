"""Every spatial attention mechanism of the study behind one spec string (docs/study.md; README).

The grammar, the registry and option checks import no torch; the modules and the factory load on
first use, so configs and the CLI can validate specs in a fraction of a second.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "registry": ("MECHANISMS", "register_mechanism", "known_options"),
    "spec": ("GRAMMAR", "STUDY_SPECS", "AttentionSpec", "all_codes", "grammar", "parse_spec"),
    "sites": ("SITES", "format_sites", "parse_sites"),
    "factory": ("AttentionStack", "build_attention", "build_attention_parts", "placed_modules"),
    "options": ("options_for",),
    "flops": ("count_parameters", "efficiency", "measure_flops"),
    "generalized1d": ("GeneralizedAttention1d",),
    "generalized2d": ("GeneralizedAttention2d",),
    "mmcv_interop": ("from_mmcv",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
