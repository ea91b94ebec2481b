"""Trial runs logged straight into a real MLflow store with chosen metrics, for the tests of
rankings, findings and the report, whose right answers are then known in advance."""

from __future__ import annotations


def log_trial(client, exp: str, task: str, spec: str, seed: int, metrics: dict, stopped=False, status=None):
    tags = {"attnlab.kind": "trial", "task": task, "attention": spec, "seed": str(seed)}
    if stopped:
        tags["attnlab.stopped_early"] = "true"
    run = client.create_run(exp, tags=tags)
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, status or ("KILLED" if stopped else "FINISHED"))
    return run
