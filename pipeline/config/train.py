"""The typed config of one training run (`attnlab train`, and every trial of a sweep).

Defaults are the study's recipe; `tiny` presets shrink the model and the schedule so a CPU run
on generated data takes a minute. Layering: preset < --config FILE < command-line flags.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from attnlab.lightning_modules.settings import (
    ModuleConfig,
    OptimConfig,
)
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.validation import StrictModel, merge, read_yaml, validate
from attnlab.pipeline.tasks.registry import TASK_NAMES, TASKS
from attnlab.pipeline.training.user_callbacks import check_format

TaskName = Literal[TASK_NAMES]  # the task registry's names (pipeline/tasks/registry.py)


class DataConfig(StrictModel):
    path: str = Field("tiny", description="'tiny' (generated on the fly) or the data set's folder")
    batch_size: int = Field(2, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)


class TrackingConfig(StrictModel):
    tracking_uri: str | None = Field(
        None, description="default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db here"
    )
    experiment: str = "attnlab"
    run_name: str | None = None
    system_metrics: bool = Field(
        True, description="MLflow's system metrics (CPU, memory; GPU where there is one) every 10 s"
    )


def normalise_attention(task: str | None, text: str) -> str:
    """Vision takes one spec; translation per-site specs (a single spec sets both self sites)."""
    from attnlab.lightning_modules.attention import format_sites, parse_sites, parse_spec

    sited = task in TASKS and TASKS[task].attention_sites
    return format_sites(parse_sites(text)) if sited else str(parse_spec(text))


class TrainConfig(ModuleConfig):
    """One run's whole config: the LightningModule's sections (ModuleConfig: attention, optim,
    backbone and each task's) and the run's own (task, seed, schedule, trainer, data, tracking)."""

    task: TaskName
    seed: int = 0
    max_epochs: int = Field(12, ge=1)
    precision: str = Field("32-true", description="Lightning precision, e.g. 16-mixed on GPU")
    accelerator: str = "auto"
    devices: int | str = "auto"
    out_dir: str = Field("attnlab_runs", description="checkpoints and run files go under it")
    limit_train_batches: int | float | None = None
    accumulate_grad_batches: int = Field(
        1, ge=1, description="gradient accumulation (e.g. for big token batches)"
    )
    callbacks: list[str] = Field(
        default_factory=list,
        description="your Lightning callbacks, 'package.module:Class', added to the run (docs/training.md)",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="before")
    @classmethod
    def _normalise_attention(cls, data):
        if isinstance(data, dict) and isinstance(data.get("attention", "w/o"), str):
            task = data.get("task")
            default = TASKS[task].default_attention if task in TASKS else "w/o"
            text = data.get("attention", default)
            try:
                data = {**data, "attention": normalise_attention(task, text)}
            except ValueError as exc:
                raise ValueError(f"attention: {exc}") from None
        return data

    @field_validator("callbacks")
    @classmethod
    def _callbacks_format(cls, entries: list[str]) -> list[str]:
        return check_format(entries)

    def own_settings(self) -> dict[str, Any]:
        """The config as plain data without the other tasks' sections: what a run logs as params
        (and a trial's rerun command holds), so a segmentation run shows no translation keys."""
        others = {t.section for name, t in TASKS.items() if name != self.task}
        return self.model_dump(mode="json", exclude=others)

    @model_validator(mode="after")
    def _schedule_fits(self):
        late = [s for s in self.optim.lr_steps if s >= self.max_epochs or s < 1]
        if late:
            raise ValueError(
                f"optim.lr_steps {late} must lie in 1..max_epochs-1 (max_epochs={self.max_epochs}); "
                "drop them or train longer"
            )
        return self


PRESETS = ("tiny", "paper")


def _parse_json(text: str) -> dict[str, Any]:

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config-json is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("--config-json must be one JSON object of TrainConfig keys")
    return data


def preset_for(task: str, preset: str) -> dict[str, Any]:
    """The preset's defaults for `task` ('tiny': small model and data; 'paper': the study's recipe)."""

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return dict(getattr(TASKS[task], preset)) if task in TASKS else {}


def _scaled_steps(base: dict[str, Any], max_epochs: Any) -> dict[str, Any]:
    """A preset's lr steps, stretched to a user-chosen max_epochs (like mmdet's 1x -> 2x).

    Steps that land outside 1..max_epochs-1 vanish: a 1-epoch run has no room for a step.
    """
    default_epochs = base.get("max_epochs", TrainConfig.model_fields["max_epochs"].default)
    steps = base.get("optim", {}).get("lr_steps", OptimConfig().lr_steps)
    if not isinstance(max_epochs, int) or max_epochs < 1 or max_epochs == default_epochs:
        return base
    scaled = sorted({round(s * max_epochs / default_epochs) for s in steps} & set(range(1, max_epochs)))
    return merge(base, {"optim": {"lr_steps": scaled}})


def build_train_config(
    flags: dict[str, Any],
    config_file: str | None = None,
    preset: str | None = None,
    config_json: str | None = None,
) -> TrainConfig:
    """preset < config file < flags, validated once. Unless lr_steps are given, they follow max_epochs.

    The preset defaults to 'tiny' for generated data (data.path == 'tiny') and 'paper' otherwise.
    """
    from_file = read_yaml(config_file) if config_file else _parse_json(config_json) if config_json else {}
    merged = merge(from_file, flags)
    task = merged.get("task")
    data_path = merged.get("data", {}).get("path", "tiny") if isinstance(merged.get("data"), dict) else "tiny"
    preset = preset or ("tiny" if data_path == "tiny" else "paper")
    base = preset_for(task, preset) if isinstance(task, str) else {}
    optim = merged.get("optim")
    if not (isinstance(optim, dict) and "lr_steps" in optim):
        base = _scaled_steps(base, merged.get("max_epochs"))
    return validate(TrainConfig, merge(base, merged), "train")
