"""MLflow tracking: where runs go, the experiment, one run per training, params flattened.

Default store: a local sqlite file (MLflow's file store is deprecated and refused by servers
since 3.13). The run id is created here, before training, and travels with every checkpoint,
so a resumed training continues the same run instead of creating a duplicate.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

import mlflow
from mlflow.tracking import MlflowClient

from .errors import ConfigError

DEFAULT_DB = "mlflow.db"


def resolve_tracking_uri(flag: str | None = None) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else sqlite:///<cwd>/mlflow.db."""
    uri = flag or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_DB}"
    if uri.startswith("file:") or "://" not in uri:
        raise ConfigError(f"tracking URI {uri!r} is a plain file store, which MLflow 3 deprecates; use "
                          f"sqlite:///{Path(uri.removeprefix('file://')).resolve()}.db or an http(s):// server")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


def _artifact_root(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live beside the database; servers choose their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


def ensure_experiment(client: MlflowClient, name: str, uri: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ConfigError(f"MLflow experiment {name!r} is deleted; restore it in the UI or pick another name")
        return exp.experiment_id
    root = _artifact_root(uri, name)
    try:
        return client.create_experiment(name, artifact_location=f"{root}/{name}" if root else None)
    except mlflow.exceptions.MlflowException:  # created concurrently by another trial
        return client.get_experiment_by_name(name).experiment_id


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
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        if sha:
            return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return version("attnlab")


def start_run(uri: str, experiment: str, run_name: str | None, params: Mapping[str, str], tags: Mapping[str, str],
              run_id: str | None = None, parent_run_id: str | None = None) -> str:
    """Create the run (or reopen `run_id`), log params and tags; return the run id."""
    client = MlflowClient(uri)
    if run_id is not None:
        client.update_run(run_id, status="RUNNING")
        return run_id
    exp_id = ensure_experiment(client, experiment, uri)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp_id, run_name=run_name, tags=all_tags)
    items = list(params.items())
    for i in range(0, len(items), 100):
        client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v[:6000]) for k, v in items[i:i + 100]])
    return run.info.run_id


def log_artifact(uri: str, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    MlflowClient(uri).log_artifact(run_id, str(path), artifact_path)


def end_run(uri: str, run_id: str, status: str = "FINISHED") -> None:
    MlflowClient(uri).set_terminated(run_id, status=status)
