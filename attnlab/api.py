"""The public Python API, for notebooks and scripts: what the CLI does, as functions.

    import attnlab
    result = attnlab.train("segmentation", attention="0010+deform", max_epochs=2)
    summary = attnlab.sweep(preset="smoke")
    rows = attnlab.best("smoke")["segmentation"]

Every call validates its input the way the CLI does (a ConfigError names the problem and the fix)
and goes through the same code path: `train` is `attnlab train`, `sweep` is `attnlab sweep`.
"""

from __future__ import annotations

from typing import Any


def train(
    task: str,
    attention: str | None = None,
    *,
    data: str = "tiny",
    preset: str | None = None,
    config: str | None = None,
    progress_bar: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train and evaluate one task with one spec; returns run id, metrics, checkpoint folder and costs.

    `overrides` are TrainConfig keys, nested as dicts: `max_epochs=2, optim={"base_lr": 0.01}`.
    """
    from attnlab.pipeline.config.train import build_train_config
    from attnlab.pipeline.config.validation import merge
    from attnlab.pipeline.training.run import run_training

    flags = merge({"task": task, "data": {"path": data}}, overrides)
    if attention is not None:
        flags["attention"] = attention
    return run_training(build_train_config(flags, config, preset), progress_bar=progress_bar)


def sweep(
    preset: str | None = None,
    *,
    config: str | None = None,
    name: str | None = None,
    size: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run (or resume) a sweep from a preset or a YAML file; returns the per-trial summary."""
    from attnlab.tune.sweep import run_sweep
    from attnlab.tune.sweep_config import check_data, load_sweep

    cfg = load_sweep(preset, config, name, None, size)
    check_data(cfg)
    origin = f"preset {preset}" if preset else f"config {config}"
    return run_sweep(cfg, storage, tracking_uri, ray_address, origin=f"{origin} (Python API)")


def best(
    experiment: str,
    *,
    task: str | None = None,
    metric: str | None = None,
    cost: str = "added_flops",
    tracking_uri: str | None = None,
) -> dict[str, list]:
    """Per task, configurations ranked at equal budget, with the accuracy-cost Pareto front marked."""
    from attnlab.pipeline.analysis.ranking import fetch_runs, rank
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri

    return rank(
        fetch_runs(resolve_tracking_uri(tracking_uri, read_only=True), experiment), task, metric, cost
    )


def effects(
    experiment: str,
    *,
    task: str | None = None,
    metric: str | None = None,
    epochs: int | None = None,
    tracking_uri: str | None = None,
) -> list:
    """`attnlab effects`: per task (and translation site), the terms' main effects and two-way
    interactions with 95% intervals (each design's `.effects`; `.contrast({"E3": 1, ...})`)."""
    from attnlab.pipeline.analysis.effects import effects as fit_effects
    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, read_only=True)
    return fit_effects(fetch_runs(uri, experiment), task, metric, epochs, uri)


def register_best(
    experiment: str,
    name: str,
    *,
    task: str | None = None,
    rank: int | None = None,
    metric: str | None = None,
    cost: str = "added_flops",
    tracking_uri: str | None = None,
) -> list:
    """`attnlab best --register NAME`: the top configuration of each task (or the row ranked `rank`)
    as an MLflow model in the Model Registry; returns what was registered, with each version."""
    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.analysis.ranking import rank as rank_runs
    from attnlab.pipeline.export.models import chosen_rows, register_rows
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri, read_only=True)
    runs = fetch_runs(uri, experiment)
    ranking = rank_runs(runs, task, metric, cost)
    return register_rows(uri, experiment, runs, chosen_rows(ranking, rank), name, metric, len(ranking))
