"""MLflow stores: experiments, finding runs by their tags, tags and data inputs on a run.

Default store: a local sqlite file (MLflow's file store is deprecated and refused by servers
since 3.13). Runs are found again by their tags, so a resumed training or trial continues its run
instead of creating a duplicate; opening and ending runs is `pipeline/tracking/runs.py`'s alone.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import mlflow
from mlflow.entities import RunTag
from mlflow.tracking import MlflowClient

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.tracking.tags import (
    EXPERIMENT_KIND,
    KIND_MODEL_TRAINING,
)
from attnlab.pipeline.tracking.uri import is_server

if TYPE_CHECKING:
    from attnlab.pipeline.data.inputs import DataInput


def _artifact_root(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live beside the database; servers choose their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created on first use as a model-training experiment.

    MLflow 3's UI opens an experiment by its `mlflow.experimentKind` tag; without one it guesses
    and may show its GenAI overview. attnlab trains models, so it says so, unless a user already
    chose a kind for the experiment.
    """
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ConfigError(
                f"MLflow experiment {name!r} is deleted; restore it in the UI or pick another name"
            )
        if EXPERIMENT_KIND not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, KIND_MODEL_TRAINING)
        return exp.experiment_id
    root = _artifact_root(uri, name)
    try:
        return client.create_experiment(
            name,
            artifact_location=f"{root}/{name}" if root else None,
            tags={EXPERIMENT_KIND: KIND_MODEL_TRAINING},
        )
    except mlflow.exceptions.MlflowException:  # created concurrently by another trial
        return client.get_experiment_by_name(name).experiment_id


# MLflow 3's UI opens an experiment in its GenAI or its model-training view by this URL parameter
# (or the user's last choice), whatever the experiment's kind tag says; attnlab's links ask for training.
TRAINING_VIEW = "?workflowType=machine_learning"


def experiment_url(uri: str, experiment_id: str) -> str:
    """The experiment's runs table in MLflow's UI: on the tracking server itself, or for a local
    store on the default port of `mlflow ui`."""
    base = uri.rstrip("/") if is_server(uri) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{experiment_id}{TRAINING_VIEW}"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{'backbone': {'depth': 50}} -> {'backbone.depth': '50'} (MLflow params are strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)
    return out


def code_version() -> str:
    """The git commit of the checkout (with '-dirty'), or the package version when not in git."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if sha:
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass

    return version("attnlab")


def find_run(uri: str, experiment: str, match: Mapping[str, str]):
    """The run of `experiment` whose tags equal `match`, or None (also when the experiment is absent)."""
    runs = find_runs(uri, experiment, match, max_results=1)
    return runs[0] if runs else None


def find_runs(uri: str, experiment: str, match: Mapping[str, str], max_results: int = 50000) -> list:
    """Runs of `experiment` whose tags equal `match` (none when the experiment is absent)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in match.items())
    return client.search_runs([exp.experiment_id], filter_string=where, max_results=max_results)


def log_data_inputs(uri: str, run_id: str, inputs: Sequence[DataInput]) -> None:
    """The run's data as MLflow dataset inputs (the UI's Dataset column): source, digest, size."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    datasets = []
    for data in inputs:
        with warnings.catch_warnings():  # file:// matches MLflow's local source twice; it warns so
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(data.source)
        entity = Dataset(
            name=data.name,
            digest=data.digest,
            source_type=source._get_source_type(),
            source=source.to_json(),
            profile=json.dumps({"num_rows": data.items}),
        )
        datasets.append(DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, data.context)]))
    MlflowClient(uri).log_inputs(run_id, datasets=datasets)


def set_tags(uri: str, run_id: str, tags: Mapping[str, str]) -> None:
    MlflowClient(uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
