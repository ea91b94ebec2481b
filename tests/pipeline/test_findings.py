"""The study's findings as verdicts with 95% intervals, computed from runs in a real MLflow store.

The runs here are logged with chosen metrics so each verdict is known in advance: a clear win,
a clear loss, a spread that spans 0, a single seed, a missing spec, an on-par pair, a costlier A.
"""

import json
import subprocess

import pytest
from logged_runs import log_trial
from mlflow.tracking import MlflowClient
from repo import ATTNLAB
from services import clean_env

from attnlab.pipeline.analysis.estimates import mean_ci
from attnlab.pipeline.analysis.findings import enc_dec, findings, self_sites
from attnlab.pipeline.analysis.ranking import fetch_runs


def _log(client, exp_id, task, spec, seed, metric, value, cost=1.0, status="FINISHED", stopped=False):
    log_trial(client, exp_id, task, spec, seed, {metric: value, "cost/flops": cost}, stopped, status)


@pytest.fixture
def store(store):
    """The shared store (conftest) with the experiment "study" logged; its URI."""
    uri, client, exp = store.uri, store.client, store.experiment("study")

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
    v = _by(findings(fetch_runs(store, "study"), on_effects=False))
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


def test_on_effects_the_term_findings_use_every_codes_runs(store):
    """The same store judged on effects: findings 1 and 3 become contrasts of main effects from
    all 22 full-budget runs of the 8 codes; findings without a contrast keep their pairs."""
    v = _by(findings(fetch_runs(store, "study")))
    first = v[(1, "segmentation", "(E3+E4) - (E1+E2)")]
    assert first.basis == "effects" and first.runs == 22 and first.verdict == "reproduced"
    assert v[(1, "segmentation", "E1")].basis == "effects"
    assert v[(3, "segmentation", "(E2+E3) - (E1+E4)")].basis == "effects"
    assert v[(4, "segmentation", "deform vs 0100")].basis == "pairs"
    # enc-dec 1000, 0010, 0011: E1 is on exactly where E3 is off, so the design cannot separate
    # it; finding 2 keeps its pair
    assert v[(2, "translation", "enc-dec 1000 vs codes without E1")].basis == "pairs"


def test_effects_decide_where_a_pair_of_codes_at_two_seeds_cannot(tmp_path):
    """Planted: switching E3 or E4 on adds 0.02 each, E1 and E2 nothing; noise sd 0.01. Two seeds
    of 0011 against 1100 leave a t interval (12.7 x its error) across 0; the 16-code grid decides."""
    import random

    from attnlab.pipeline.analysis.effects import DESIGN_CODES, terms_of

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("g", artifact_location=(tmp_path / "a").as_uri())
    rng = random.Random(1)  # as 80% of draws do, the pair spans 0 here; the grid decides in all
    for code in DESIGN_CODES:
        e1, e2, e3, e4 = terms_of(code)
        for seed in (0, 1):
            _log(
                client,
                exp,
                "segmentation",
                code,
                seed,
                "val/mIoU",
                0.3 + 0.02 * (e3 + e4) + rng.gauss(0, 0.01),
            )
    runs = fetch_runs(uri, "g")
    pair = _by(findings(runs, on_effects=False))[(1, "segmentation", "0011 vs 1100")]
    assert pair.verdict == "inconclusive" and pair.ci_low < 0 < pair.ci_high
    contrast = _by(findings(runs))[(1, "segmentation", "(E3+E4) - (E1+E2)")]
    assert contrast.verdict == "reproduced" and contrast.ci_low > 0 and contrast.runs == 32


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


def test_an_inconclusive_verdict_says_how_many_seeds_would_decide_it_and_how_to_add_them(tmp_path):
    """Differences 0, 0.02, 0.04 over three seeds: mean 0.02, spread 0.02, an effect size of 1,
    for which a paired t-test needs 10 pairs for 80% power (Cohen's tables); the command adds
    seeds 3-9 as a sweep of its own into the same experiment."""
    from attnlab.pipeline.analysis.findings import more_seeds_command

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "a").as_uri())
    for seed, diff in enumerate([0.0, 0.02, 0.04]):
        _log(client, exp, "segmentation", "0011", seed, "val/mIoU", 0.40 + diff)
        _log(client, exp, "segmentation", "1100", seed, "val/mIoU", 0.40)
    client.set_terminated(
        client.create_run(
            exp,
            tags={
                "attnlab.kind": "sweep",
                "attnlab.sweep": "s",
                "attnlab.source": "--preset mini --size cpu",
            },
        ).info.run_id
    )
    (verdict,) = [
        v for v in findings(fetch_runs(uri, "s"), on_effects=False) if v.comparison == "0011 vs 1100"
    ]
    assert verdict.verdict == "inconclusive" and verdict.seeds_needed == 10
    # on effects (the two codes estimate the contrast, as the pair): the same spread per seed
    (on_effects,) = [v for v in findings(fetch_runs(uri, "s")) if v.comparison == "(E3+E4) - (E1+E2)"]
    assert on_effects.verdict == "inconclusive" and on_effects.seeds_needed == 10
    command = "attnlab sweep --preset mini --size cpu --seeds 3-9 --name s-s3-9 --experiment s"
    assert more_seeds_command([verdict], "s", "--preset mini --size cpu", [0, 1, 2]) == command
    out = subprocess.run(
        [ATTNLAB, "findings", "--experiment", "s", "--tracking-uri", uri],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and command in out.stdout, out.stdout + out.stderr
    assert "seeds to decide" in out.stdout


@pytest.mark.parametrize("margin, seeds", [(1.0, 2), (1e-7, 100)])
def test_seeds_to_decide_where_the_power_solver_finds_no_root(margin, seeds, recwarn):
    """A margin of 1000 spreads needs fewer seeds than any test runs on (statsmodels' solver finds no
    root and returns nan): 2, not a crash; one of 1e-4 spreads needs more than the cap: the cap. No
    warning reaches the user."""
    from attnlab.pipeline.analysis.findings import _seeds_for, comparisons

    greater = next(c for c in comparisons() if c.expect == "greater")
    assert _seeds_for(greater, margin, 0.5, 0.001) == seeds
    assert not [w for w in recwarn if "converge" in str(w.message)]
