"""MLflow bookkeeping of a sweep: one parent run, one child per trial, found again by tags.

Runs are looked up by (sweep, trial_key) tags before one is created, so a restarted trial or
a resumed sweep continues its run: never a duplicate.
"""
from __future__ import annotations

from mlflow.tracking import MlflowClient

from pipeline import tracking

SWEEP_TAG, TRIAL_TAG, KIND_TAG = "attnlab.sweep", "attnlab.trial_key", "attnlab.kind"


def _find(client: MlflowClient, experiment_id: str, filters: str):
    runs = client.search_runs([experiment_id], filter_string=filters, max_results=2)
    return runs[0] if runs else None


def parent_run(uri: str, sweep_name: str, config: dict) -> str:
    client = MlflowClient(uri)
    exp_id = tracking.ensure_experiment(client, sweep_name, uri)
    found = _find(client, exp_id, f"tags.`{KIND_TAG}` = 'sweep' and tags.`{SWEEP_TAG}` = '{sweep_name}'")
    if found:
        client.update_run(found.info.run_id, status="RUNNING")
        return found.info.run_id
    return tracking.start_run(uri, sweep_name, sweep_name, tracking.flatten(config),
                              {KIND_TAG: "sweep", SWEEP_TAG: sweep_name, "code_version": tracking.code_version()})


def find_trial_run(uri: str, sweep_name: str, trial_key: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(sweep_name)
    if exp is None:
        return None
    return _find(client, exp.experiment_id, f"tags.`{TRIAL_TAG}` = '{trial_key}'")


def trial_runs(uri: str, sweep_name: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(sweep_name)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = 'trial'", max_results=5000)
