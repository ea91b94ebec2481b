"""Rankings compare equal budgets: full-budget rows ranked with a 95% interval over seeds (none with
one seed), early-stopped rows listed after with the epoch they stopped at, never on the front."""

import pytest
from mlflow.tracking import MlflowClient

from pipeline.queries import fetch_runs, rank, render


def _log(client, exp, spec, seed, miou, cost, epochs, stopped=False):
    tags = {"attnlab.kind": "trial", "task": "segmentation", "attention": spec, "seed": str(seed)}
    if stopped:
        tags["attnlab.stopped_early"] = "true"
    run = client.create_run(exp, tags=tags)
    client.log_metric(run.info.run_id, "val/mIoU", miou)
    client.log_metric(run.info.run_id, "cost/attention_flops", cost)
    client.log_metric(run.info.run_id, "epoch", epochs - 1)
    client.set_terminated(run.info.run_id, "KILLED" if stopped else "FINISHED")


@pytest.fixture
def runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("r", artifact_location=(tmp_path / "a").as_uri())
    _log(client, exp, "0010", 0, 0.40, 1.0, 4)
    _log(client, exp, "0010", 1, 0.44, 1.0, 4)
    _log(client, exp, "1111", 0, 0.30, 9.0, 4)
    _log(client, exp, "w/o", 0, 0.35, 0.0, 4)
    _log(client, exp, "deform", 0, 0.90, 0.5, 1, stopped=True)  # best metric, cheap, but cut at epoch 1
    return fetch_runs(uri, "r")


def test_only_full_budgets_are_ranked_and_on_the_front(runs):
    rows = rank(runs, None, None, "attention_flops")["segmentation"]
    assert [(r.attention, r.rank, r.epochs, r.stopped_early) for r in rows] == [
        ("0010", 1, 4, False),
        ("w/o", 2, 4, False),
        ("1111", 3, 4, False),
        ("deform", None, 1, True),
    ]
    assert {r.attention for r in rows if r.pareto} == {"0010", "w/o"}
    top = rows[0]
    assert top.seeds == 2 and top.metric == pytest.approx(0.42)
    assert top.ci_low == pytest.approx(0.42 - 12.7062 * 0.02, rel=1e-4)  # sd 0.0283 / sqrt(2) = 0.02
    assert rows[1].ci_low is None and rows[1].ci_high is None  # one seed: no spread


def test_table_shows_epochs_interval_and_no_spread_for_one_seed(runs):
    text = render(rank(runs, None, None, "attention_flops"), None, "attention_flops", "table")
    lines = text.splitlines()
    assert "epochs" in lines[2] and "95% CI" in lines[2]
    wo = next(line for line in lines if line.split()[1:2] == ["w/o"])
    assert "[" not in wo and "±" not in text
    deform = next(line for line in lines if "deform" in line)
    assert deform.split()[0] == "-" and "early" in deform
