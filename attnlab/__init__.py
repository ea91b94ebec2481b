"""attnlab: the ICCV 2019 study of spatial attention mechanisms as a training pipeline.

Public API (imported on first use, so `import attnlab` stays fast):
`train`, `resume_train`, `sweep`, `resume`, `run`, `best`, `effects`, `findings`, `report`, `register_best`
(attnlab/api.py: the CLI's commands, as functions), and the attention
factory's `build_attention`, `parse_spec` and `register_mechanism` (lightning_modules/attention).
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "train": "attnlab.api",
    "resume_train": "attnlab.api",
    "sweep": "attnlab.api",
    "resume": "attnlab.api",
    "run": "attnlab.api",
    "best": "attnlab.api",
    "effects": "attnlab.api",
    "findings": "attnlab.api",
    "report": "attnlab.api",
    "register_best": "attnlab.api",
    "build_attention": "attnlab.lightning_modules.attention",
    "parse_spec": "attnlab.lightning_modules.attention",
    "register_mechanism": "attnlab.lightning_modules.attention",
    "STUDY_SPECS": "attnlab.lightning_modules.attention",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'attnlab' has no attribute {name!r}")
