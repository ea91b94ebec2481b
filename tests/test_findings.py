"""The study's findings as verdicts with 95% intervals, computed from runs in a real MLflow store.

The runs here are logged with chosen metrics so each verdict is known in advance: a clear win,
a clear loss, a spread that spans 0, a single seed, a missing spec, an on-par pair, a costlier A.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from logged_runs import log_trial
from mlflow.tracking import MlflowClient
from services import clean_env

from attnlab.pipeline.findings import enc_dec, findings, mean_ci, self_sites
from attnlab.pipeline.ranking import fetch_runs

ATTNLAB = str(Path(sys.executable).with_name("attnlab"))


def _log(client, exp_id, task, spec, seed, metric, value, cost=1.0, status="FINISHED", stopped=False):
    log_trial(client, exp_id, task, spec, seed, {metric: value, "cost/flops": cost}, stopped, status)


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("study", artifact_location=(tmp_path / "a").as_uri())

    def seg(spec, values, cost=1.0):
        for s, v in enumerate(values):
            _log(client, exp, "segmentation", spec, s, "val/mIoU", v, cost)

    seg("0011", [0.50, 0.52, 0.51])
    seg("1100", [0.40, 0.41, 0.43])  # finding 1: 0011 > 1100 clearly -> reproduced
    seg("1000", [0.300, 0.301, 0.299])
    seg("w/o", [0.300, 0.300, 0.300])  # E1 alone on par with w/o -> reproduced
    seg("0110", [0.30, 0.45, 0.35])
    seg("1001", [0.40, 0.35, 0.36])  # finding 3: spans 0 -> inconclusive
    seg("deform", [0.30, 0.31, 0.29], cost=0.0)
    seg("0100", [0.40, 0.41, 0.42], cost=5.0)  # finding 4: deform clearly worse -> contradicted
    seg("0010+deform", [0.6], cost=1.0)
    seg("1111", [0.5], cost=9.0)  # finding 5: one seed -> inconclusive
    _log(
        client, exp, "segmentation", "1100", 0, "val/mIoU", 0.99, stopped=True, status="KILLED"
    )  # not counted

    def tr(spec, values):
        for s, v in enumerate(values):
            _log(client, exp, "translation", spec, s, "val/bleu", v)

    tr(enc_dec("1000"), [20.0, 21.0])
    tr(enc_dec("0010"), [5.0, 6.0])
    tr(enc_dec("0011"), [7.0, 6.5])  # finding 2: enc-dec 1000 >> no-E1 codes -> reproduced
    tr(self_sites("deform"), [20.0, 21.0])  # finding 4 (translation): no 0100 -> inconclusive, names it
    return uri


def _by(verdicts):
    return {(v.finding, v.task, v.comparison): v for v in verdicts}


def test_verdicts_follow_the_intervals(store):
    v = _by(findings(fetch_runs(store, "study")))
    win = v[(1, "segmentation", "0011 vs 1100")]
    assert win.verdict == "reproduced" and win.seeds == 3 and win.ci_low > 0
    assert win.difference == pytest.approx((0.10 + 0.11 + 0.08) / 3)
    assert v[(1, "segmentation", "1000 vs w/o")].verdict == "reproduced"
    assert v[(3, "segmentation", "0110 vs 1001")].verdict == "inconclusive"
    assert "spans 0" in v[(3, "segmentation", "0110 vs 1001")].reason
    assert v[(4, "segmentation", "deform vs 0100")].verdict == "contradicted"
    one_seed = v[(5, "segmentation", "0010+deform vs 1111")]
    assert one_seed.verdict == "inconclusive" and "needs 2" in one_seed.reason
    assert v[(2, "translation", "enc-dec 1000 vs codes without E1")].verdict == "reproduced"
    missing = v[(4, "translation", "deform vs 0100")]
    assert missing.verdict == "inconclusive" and "0100" in missing.reason
    assert not any(t == "detection" for _, t, _ in v)  # no detection runs, no detection verdicts


def test_a_costlier_a_contradicts_a_cost_claim(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("c", artifact_location=(tmp_path / "a").as_uri())
    for seed in range(3):
        _log(client, exp, "segmentation", "deform", seed, "val/mIoU", 0.5 + seed / 100, cost=9.0)
        _log(client, exp, "segmentation", "0100", seed, "val/mIoU", 0.3, cost=1.0)
    v = _by(findings(fetch_runs(uri, "c")))[(4, "segmentation", "deform vs 0100")]
    assert v.verdict == "contradicted" and "cost" in v.reason


def test_student_t_interval():
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 * 1.0 / 3**0.5, rel=1e-5)


def test_findings_and_report_json_commands_agree(store, tmp_path):
    env = clean_env()
    out = subprocess.run(
        [ATTNLAB, "findings", "--experiment", "study", "--tracking-uri", store, "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rep = subprocess.run(
        [ATTNLAB, "report", "--experiment", "study", "--tracking-uri", store, "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rep.returncode == 0, rep.stderr
    assert json.loads(out.stdout) == json.loads(rep.stdout)
    assert {"finding", "verdict", "ci_low", "ci_high", "difference", "seeds"} <= set(
        json.loads(out.stdout)[0]
    )
    table = subprocess.run(
        [ATTNLAB, "findings", "--experiment", "study", "--tracking-uri", store],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "reproduced" in table.stdout and "inconclusive" in table.stdout and "contradicted" in table.stdout
