"""Users' own Lightning callbacks on every run and trial: `callbacks: ["package.module:Class", ...]`
in an `attnlab train` config or a sweep config.

Each entry is checked (format, import, a Lightning Callback) before anything starts, so a typo is
one clear error, not a crash after Ray and MLflow are up. Each class is built once per run with
the keyword arguments its `__init__` names among `run_id`, `trial_key` (None for a standalone
run) and `scratch_dir` (a folder of the run's or sweep's own for files it keeps).
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

from attnlab.pipeline.config.errors import ConfigError

ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
CONTEXT = ("run_id", "trial_key", "scratch_dir")


def check_format(entries: list[str]) -> list[str]:
    bad = [e for e in entries if not ENTRY.match(e)]
    if bad:
        raise ValueError(f"{bad}: each callback is 'package.module:Class' (a Lightning Callback class)")
    return entries


def resolve(entry: str) -> type:
    """The class `entry` names, or a ConfigError saying what is wrong and how to fix it."""
    import lightning as L

    module_name, _, name = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"callback {entry!r}: cannot import {module_name!r} ({exc}); install it, or put its folder "
            "on PYTHONPATH (for a sweep, on every Ray node too)"
        ) from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, L.Callback)):
        raise ConfigError(f"callback {entry!r}: {module_name} has no Lightning Callback class {name!r}")
    return found


def check(entries: list[str]) -> None:
    for entry in entries:
        resolve(entry)


def build(entries: list[str], **context: Any) -> list:
    """One instance of each class, given the context keys its __init__ takes."""
    built = []
    for entry in entries:
        cls = resolve(entry)
        params = inspect.signature(cls.__init__).parameters
        built.append(cls(**{k: v for k, v in context.items() if k in params}))
    return built
