"""Every spatial attention mechanism of the study behind one spec string (see README: spec grammar)."""
from .factory import REGISTRY, AttentionStack, build_attention, build_attention_parts, known_options, options_for, placed_modules
from .flops import count_parameters, efficiency, measure_flops
from .generalized1d import GeneralizedAttention1d
from .generalized2d import GeneralizedAttention2d
from .mmcv_interop import from_mmcv
from .spec import GRAMMAR, AttentionSpec, all_codes, parse_spec

__all__ = [
    "REGISTRY", "AttentionStack", "AttentionSpec", "GRAMMAR", "GeneralizedAttention1d", "GeneralizedAttention2d",
    "all_codes", "build_attention", "build_attention_parts", "count_parameters", "efficiency", "from_mmcv",
    "known_options", "measure_flops", "options_for", "parse_spec", "placed_modules",
]
