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


def log_curve(
    client, exp, spec, seed, curve, cost, stopped, retrained=None, task="segmentation", metric="val/mIoU"
):
    """A trial that evaluated `curve` (one value per epoch), as a trial logs it: each evaluation
    and its `epochs_done` at the same step; `retrained` = (epoch, value) logs that epoch again
    later, as a retry from an older checkpoint does."""
    run = log_trial(client, exp, task, spec, seed, {"cost/added_flops": cost, metric: curve[-1]}, stopped)
    rid = run.info.run_id
    history = [(n, v) for n, v in enumerate(curve, 1)] + ([retrained] if retrained else [])
    for i, (n, value) in enumerate(history):
        client.log_metric(rid, metric, value, step=10 * n, timestamp=1000 * (2 * i + 1))
        client.log_metric(rid, "epochs_done", n, step=10 * n, timestamp=1000 * (2 * i + 2))
    return rid
