"""A run's best checkpoint as an MLflow pytorch model, and the best configurations in MLflow's
Model Registry.

Models are made on request (`attnlab best --register`), not per trial: a sweep's trials already
keep their best weights as `checkpoints/best.ckpt`, and turning one into a model costs an export.
A run gets at most one model (its id is tagged on the run) and a registered model at most one
version per run, so registering again changes nothing.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from attnlab.pipeline.analysis.ranking import Row
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.costs.axes import COSTS
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking.tags import MODEL_FORMAT, MODEL_URI, TASK
from attnlab.pipeline.training.checkpoints import ARTIFACT_DIR, BEST_NAME, torn

MODEL_NAME = "model"
PICKLE_OPT_IN = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
EXPERIMENT_ID = "MLFLOW_EXPERIMENT_ID"  # where MLflow puts a logged model when no run is active


def portable(config: dict) -> dict:
    """The module config without the local path of pretrained weights (the checkpoint holds every
    weight); the norm those weights implied stays."""
    backbone = dict(config.get("backbone") or {})
    if backbone.get("pretrained"):
        backbone["norm"] = backbone.get("norm") or "frozen_bn"
        backbone["pretrained"] = None
    return {**config, "backbone": backbone}


def restore_module(task: str, checkpoint: str | Path):
    """The task's LightningModule with the checkpoint's weights, in eval mode, on CPU."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cls = TASKS[task].module_class()
    wanted = inspect.signature(cls.__init__).parameters
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if k in wanted}
    hparams["config"] = portable(hparams["config"])
    module = cls(**hparams)
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def _no_checkpoint(run, why: str) -> ConfigError:
    return ConfigError(
        f"run {run.info.run_name} ({run.info.run_id}) has no {ARTIFACT_DIR}/{BEST_NAME} artifact "
        f"({why}); it did not finish an evaluation, or was logged before attnlab kept one. "
        "Pick another row with --rank; nothing was registered"
    )


def check_checkpoint(uri: str, run) -> None:
    """Fail before any export when the run kept no best checkpoint."""
    try:
        names = [a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, ARTIFACT_DIR)]
    except (MlflowException, OSError) as error:
        raise _no_checkpoint(run, str(error)) from None
    if f"{ARTIFACT_DIR}/{BEST_NAME}" not in names:
        raise _no_checkpoint(run, f"its {ARTIFACT_DIR}/ holds {', '.join(names) or 'nothing'}")


def download_checkpoint(uri: str, run, into: str) -> str:
    """The run's `checkpoints/best.ckpt`, downloaded and checked whole (MLflow's upload is not atomic:
    a crash mid-upload leaves a torn file until the run's next best epoch replaces it)."""
    Path(into).mkdir(parents=True, exist_ok=True)
    try:
        path = MlflowClient(uri).download_artifacts(run.info.run_id, f"{ARTIFACT_DIR}/{BEST_NAME}", into)
    except (MlflowException, OSError) as error:
        raise _no_checkpoint(run, str(error)) from None
    why = torn(path)
    if why is not None:
        raise ConfigError(
            f"run {run.info.run_name} ({run.info.run_id}): its {ARTIFACT_DIR}/{BEST_NAME} is torn ({why}), "
            "as an upload cut short leaves it. Train the configuration again or pick another row with "
            "--rank; nothing was registered"
        )
    return path


def _signature(serving) -> ModelSignature:
    def spec(name, dtype, shape):
        return TensorSpec(np.dtype(str(dtype).removeprefix("torch.")), shape, name)

    return ModelSignature(
        inputs=Schema([spec(*i) for i in serving.inputs]), outputs=Schema([spec(*serving.output)])
    )


def _requirements() -> list[str]:
    """The libraries a loader needs, as installed (stated, so MLflow does not load the model again
    in a subprocess to guess them)."""

    return [f"{name}=={version(name)}" for name in ("torch", "torchvision", "mlflow")]


def model_arguments(task: str, module) -> dict:
    """What `mlflow.pytorch.log_model` takes for the module's serving form, beside name and run."""
    serving = module.serving()
    example = [t.numpy() for t in serving.example]
    metadata = {"task": task, "io": serving.describes}
    if len(example) > 1:  # MLflow saves no input example of several tensors; the metadata keeps it
        metadata["input_example"] = {name: a.tolist() for (name, *_), a in zip(serving.inputs, example)}
    return {
        "pytorch_model": serving.model,
        "signature": _signature(serving),
        "input_example": example[0] if len(example) == 1 else tuple(example),
        "serialization_format": serving.format,
        "pip_requirements": _requirements(),
        "metadata": metadata,
    }


def log_models(
    uri: str, experiment_id: str, checkpoints: list[tuple[Any, str]]
) -> dict[str, tuple[str, str]]:
    """Each run of `checkpoints` ((run, its downloaded best checkpoint), runs of one experiment) as a
    pytorch-flavour model of the run, tagged on it: run id -> (models:/ URI, format). The exports run
    in one child process (`model_process`): MLflow's log_model reads the tracking URI and experiment
    only from the process, and this one keeps its own. A failed export keeps the models before it."""
    if not checkpoints:
        return {}
    requests = [
        {"run_id": run.info.run_id, "task": run.data.tags[TASK], "checkpoint": str(path)}
        for run, path in checkpoints
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, EXPERIMENT_ID: experiment_id}
    done = subprocess.run(
        [sys.executable, "-m", "attnlab.pipeline.export.model_process", json.dumps(requests)],
        env=env,
        capture_output=True,
        text=True,
    )
    client = MlflowClient(uri)
    made = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"run_id"')]
    for model in made:
        client.set_tag(model["run_id"], MODEL_FORMAT, model["format"])
        client.set_tag(model["run_id"], MODEL_URI, model["model_uri"])  # last: it marks the model complete
    if done.returncode != 0:
        failed = requests[len(made)]["run_id"] if len(made) < len(requests) else "?"
        raise RuntimeError(f"exporting run {failed} as a model failed:\n{done.stderr[-3000:]}")
    return {m["run_id"]: (m["model_uri"], m["format"]) for m in made}


def model_of(run) -> tuple[str, str] | None:
    """(models:/ URI, format) of the run's model, if an earlier export made it."""
    if not run.data.tags.get(MODEL_URI):
        return None
    return run.data.tags[MODEL_URI], run.data.tags.get(MODEL_FORMAT, "pt2")


def how_to_load(name: str, version: str, fmt: str) -> str:
    """The line a user runs to get the model back."""
    load = f"mlflow.pytorch.load_model('models:/{name}/{version}')"
    if fmt == "pickle":
        return (
            f"{PICKLE_OPT_IN}=true then {load} (saved with pickle: torch.export cannot capture this "
            "network, and MLflow loads pickles only when allowed)"
        )
    return load


@dataclass
class Registered:
    task: str
    attention: str
    run_id: str
    name: str
    version: str
    model_uri: str
    format: str
    new: bool


def chosen_rows(ranking: dict[str, list[Row]], rank: int | None) -> list[Row]:
    """The top row of each task, or the row ranked `rank` of the one task; errors name what exists."""
    if rank is not None and len(ranking) != 1:
        raise ConfigError(
            f"--rank picks a row of one task, and this ranking has {len(ranking)}: "
            f"{', '.join(ranking) or 'none'}; add --task"
        )
    rows = []
    for task, ranked in ranking.items():
        want = rank or 1
        row = next((r for r in ranked if r.rank == want), None)
        if row is None:
            have = [str(r.rank) for r in ranked if r.rank]
            raise ConfigError(
                f"{task} has no row ranked {want}; ranked rows: {', '.join(have) or 'none'} "
                "(trials that early stopping cut are not ranked and cannot be registered)"
            )
        rows.append(row)
    return rows


def registered_name(name: str, task: str, tasks: int) -> str:
    """One registered model per task: NAME alone for one task, NAME-<task> for several."""
    return name if tasks == 1 else f"{name}-{task}"


def best_run(row: Row, runs_by_id: dict, metric: str):
    """The row's seed with the highest metric: the one whose weights stand for the configuration."""
    return max((runs_by_id[i] for i in row.runs), key=lambda r: r.data.metrics.get(metric, -np.inf))


def version_tags(row: Row, run, metric: str, experiment: str) -> dict[str, str]:
    """What a registry user compares versions by: the spec, its metric over seeds, its costs."""
    tags = {
        "task": row.task,
        "attention": row.attention,
        "experiment": experiment,
        "metric": metric,
        metric: f"{row.metric:.6g}",
        f"{metric} of this run": f"{run.data.metrics.get(metric, float('nan')):.6g}",
        "seeds": str(row.seeds),
        "epochs": str(row.epochs),
        "rank": str(row.rank),
    }
    if row.ci_low is not None:
        tags["ci95"] = f"[{row.ci_low:.6g}, {row.ci_high:.6g}]"
    for key in COSTS.values():
        if key in run.data.metrics:
            tags[key] = f"{run.data.metrics[key]:.6g}"
    return tags


def _new_version(client: MlflowClient, name: str, model_uri: str, run_id: str, tags: dict) -> str:
    """A new version of registered model `name` (made if missing) from `model_uri`, through the
    client of the store at hand (mlflow.register_model reads the process's registry URI)."""
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    model_id = model_uri.removeprefix("models:/")
    return client.create_model_version(name, model_uri, run_id=run_id, tags=tags, model_id=model_id).version


def register(
    uri: str, name: str, row: Row, run, model: tuple[str, str], metric: str, experiment: str
) -> Registered:
    """Register the row's best seed (`run`, its `model`: models:/ URI and format) under `name`,
    unless a version of `name` already comes from it."""
    client = MlflowClient(uri)
    model_uri, fmt = model
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'")
    if found:
        version, new = found[0].version, False
    else:
        tags = {**version_tags(row, run, metric, experiment), "format": fmt}
        version, new = _new_version(client, name, model_uri, run.info.run_id, tags), True
        client.update_model_version(
            name,
            version,
            f"{row.task} with attention {row.attention}, from run {run.info.run_id}. "
            f"Load: {how_to_load(name, version, fmt)}",
        )
    return Registered(row.task, row.attention, run.info.run_id, name, version, model_uri, fmt, new)


def register_rows(
    uri: str, experiment: str, runs: list, rows: list[Row], name: str, metric: str | None, tasks: int
) -> list[Registered]:
    """Register each chosen row (`chosen_rows`) under NAME, or NAME-<task> when `tasks` > 1."""
    by_id = {r.info.run_id: r for r in runs}
    metrics = [metric or TASKS[row.task].metric for row in rows]
    chosen = [best_run(row, by_id, key) for row, key in zip(rows, metrics)]
    # Every row's checkpoint first, there and then whole: one missing or torn registers none.
    models = {run.info.run_id: model_of(run) for run in chosen}
    new = [run for run in chosen if models[run.info.run_id] is None]
    for run in new:
        check_checkpoint(uri, run)
    with tempfile.TemporaryDirectory(prefix="attnlab-model-") as tmp:
        checkpoints = [(r, download_checkpoint(uri, r, f"{tmp}/{r.info.run_id}")) for r in new]
        if checkpoints:  # one export process for them all
            models.update(log_models(uri, new[0].info.experiment_id, checkpoints))
    return [
        register(
            uri, registered_name(name, row.task, tasks), row, run, models[run.info.run_id], key, experiment
        )
        for row, run, key in zip(rows, chosen, metrics)
    ]
