"""Typed configs, validated in one place.

Every entry point (CLI flags, YAML files, sweep presets) builds one of these models through
`validate`, which turns pydantic's error list into one ConfigError whose message names each
bad field and what it accepts, before anything is trained or written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

from attnlab.lightning_modules.attention.spec import parse_spec
from attnlab.lightning_modules.settings import StrictModel
from attnlab.pipeline.config.errors import ConfigError

__all__ = ["ConfigError", "SpecStr", "StrictModel", "merge", "read_yaml", "validate"]

M = TypeVar("M", bound=BaseModel)


def _check_spec(value: str) -> str:
    return str(parse_spec(value))


# An attention spec string, normalised ("W/O" -> "w/o", "deform+0010" -> "0010+deform").
SpecStr = Annotated[str, AfterValidator(_check_spec)]


def _format_errors(kind: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        lines.append(f"  {where}: {msg}" if where else f"  {msg}")
    return f"invalid {kind} config:\n" + "\n".join(lines)


def validate(model: type[M], data: dict[str, Any], kind: str | None = None) -> M:
    """Build `model` from `data` or raise one ConfigError listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(kind or model.__name__, exc)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or a ConfigError saying what is wrong with the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; pass the path of a YAML file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: `override` wins; nested mappings merge key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
