"""Rankings compare equal budgets: full-budget rows ranked with a 95% interval over seeds (from the
residual variance pooled over the task's configurations under four seeds; none when no configuration
has two), early-stopped rows listed after with the epoch they stopped at, never on the front; each
full-budget row's probability of being on the front."""

import json

import pytest
from cli_probe import probe
from logged_runs import log_curve, log_trial
from mlflow.tracking import MlflowClient

from attnlab.pipeline.analysis.ranking import fetch_runs, rank, render, rungs


def _log(client, exp, spec, seed, miou, cost, epochs, stopped=False):
    metrics = {
        "val/mIoU": miou,
        "cost/attention_flops": cost,
        "epoch": epochs - 1,
    }  # Lightning's 0-based epoch
    log_trial(client, exp, "segmentation", spec, seed, metrics, stopped)


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
    # pooled over 4 runs of 3 configurations (df 1): 0010's own spread, sd 0.0283 / sqrt(2) = 0.02
    assert top.ci_low == pytest.approx(0.42 - 12.7062 * 0.02, rel=1e-4) and top.ci_pooled
    # one seed borrows the pooled variance: half-width t(1) x 0.0283 / sqrt(1)
    assert rows[1].ci_low == pytest.approx(0.35 - 12.7062 * 0.0008**0.5, abs=1e-4)


def test_best_ranks_without_torch_or_lightning(runs, tmp_path):
    """Importing them cost `attnlab best` about 4 of its 6.5 CPU-seconds; only --register needs them."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result, err = probe(tmp_path, ["best", "--experiment", "r", "--format", "json"], MLFLOW_TRACKING_URI=uri)
    assert result["code"] == 0, err[-2000:]
    assert not {"torch", "lightning", "torchvision"} & set(result["heavy"]), result["heavy"]


def test_table_shows_epochs_pooled_intervals_and_p_front(runs):
    text = render(rank(runs, None, None, "attention_flops"), None, "attention_flops", "table")
    lines = text.splitlines()
    assert "epochs" in lines[2] and "95% CI" in lines[2] and "P(front)" in lines[2]
    wo = next(line for line in lines if line.split()[1:2] == ["w/o"])
    assert "]p" in wo  # a pooled interval, marked
    assert "1.00" in wo.split() and wo.rstrip().endswith("open at 1 seed")  # cheapest: always on the front
    deform = next(line for line in lines if "deform" in line)
    assert deform.split()[0] == "-" and "early" in deform


def test_epochs_count_what_trained_not_the_epoch_lightning_moved_on_to(tmp_path):
    """A trial cut right after its third evaluation has Lightning's `epoch` at 3 (the fourth epoch
    began) but `epochs_done` at 3: it trained three epochs."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    metrics = {"val/mIoU": 0.5, "cost/attention_flops": 1.0, "epoch": 3, "epochs_done": 3}
    log_trial(client, exp, "segmentation", "0010", 0, metrics, stopped=True)
    (row,) = rank(fetch_runs(uri, "e"), None, None, "attention_flops")["segmentation"]
    assert row.epochs == 3 and row.stopped_early


def test_every_rung_ranks_the_trials_that_reached_it_at_their_metric_then(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("g", artifact_location=(tmp_path / "a").as_uri())
    log_curve(client, exp, "1111", 0, [0.20, 0.30, 0.40], 9.0, False)
    log_curve(client, exp, "0010", 0, [0.25], 1.0, True)  # cut at its first rung
    log_curve(client, exp, "0010", 1, [0.27], 1.0, True)
    log_curve(client, exp, "deform", 0, [0.10, 0.35], 0.5, True, retrained=(2, 0.33))
    runs = fetch_runs(uri, "g")
    ranking = rank(runs, None, None, "added_flops")
    (full_one, *cut) = ranking["segmentation"]
    assert full_one.attention == "1111" and full_one.rank == 1 and all(r.rank is None for r in cut)
    got = rungs(uri, runs, ranking, None, "added_flops")["segmentation"]
    assert [g.epochs for g in got] == [1, 2]  # epoch 3: one configuration, nothing to compare
    backward = rungs(uri, list(reversed(runs)), ranking, None, "added_flops")["segmentation"]
    assert [[(r.runs, r.values) for r in g.ranking] for g in backward] == [
        [(r.runs, r.values) for r in g.ranking] for g in got
    ]  # by seed, whatever order the store returns the runs in
    one = {r.attention: r for r in got[0].ranking}
    assert [r.attention for r in got[0].ranking] == ["0010", "1111", "deform"]
    assert one["0010"].metric == pytest.approx(0.26) and one["0010"].seeds == 2 and one["0010"].stopped_early
    assert one["0010"].ci_low is not None and [r.rank for r in got[0].ranking] == [1, 2, 3]
    assert {r.attention for r in got[0].ranking if r.pareto} == {"0010", "deform"}  # best; cheapest
    two = {r.attention: r.metric for r in got[1].ranking}
    assert two == {"1111": pytest.approx(0.30), "deform": pytest.approx(0.33)}  # the retrained value
    assert {r.attention for r in got[1].ranking if r.pareto} == {"deform"}
    doc = json.loads(
        render(rank(runs, None, None, "added_flops"), None, "added_flops", "json", {"segmentation": got})
    )
    assert [g["epochs"] for g in doc["segmentation"]["rungs"]] == [1, 2]
    assert doc["segmentation"]["ranking"][0]["attention"] == "1111"  # the full budget stays first
    table = render(rank(runs, None, None, "added_flops"), None, "added_flops", "table", {"segmentation": got})
    assert table.index("segmentation at 2 epoch(s)") < table.index("segmentation at 1 epoch(s)")


def test_a_small_cost_keeps_three_significant_digits_where_fixed_decimals_would_show_zero():
    """A small Transformer adds about 0.0003 GFLOPs: '0.000' for every row would hide the front."""
    from attnlab.pipeline.costs.axes import UNITS

    flops = UNITS["added_flops"]
    assert flops.show(3.79e5) == "0.000379" and flops.show(1.95e8) == "0.195" and flops.show(0) == "0.000"
    assert UNITS["flops"].show(2.5e12) == "2,500.00" and UNITS["latency"].show(0.04) == "0.04"


def _p(tmp_path, planted: dict[str, tuple[list[float], float]]):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("p", artifact_location=(tmp_path / "a").as_uri())
    for spec, (values, cost) in planted.items():
        for seed, value in enumerate(values):
            _log(client, exp, spec, seed, value, cost, 4)
    rows = rank(fetch_runs(uri, "p"), None, None, "attention_flops")["segmentation"]
    return {r.attention: r.p_front for r in rows}


def test_p_front_is_sure_where_the_seeds_agree_and_unsure_where_they_overlap(tmp_path):
    """w/o is cheapest (always on the front); 1111 is far better at a higher cost (on it); 0010 is
    dominated by w/o by ten seed spreads (off it); 0100 sits within the seed spread of 0001, which
    is as costly, so each is on the front in about half the draws."""
    p = _p(
        tmp_path,
        {
            "w/o": ([0.50, 0.51], 0.0),
            "1111": ([0.70, 0.71], 9.0),
            "0010": ([0.30, 0.31], 1.0),
            "0001": ([0.600, 0.612], 2.0),
            "0100": ([0.604, 0.608], 2.0),
        },
    )
    assert p["w/o"] == 1.0 and p["1111"] > 0.99 and p["0010"] < 0.01
    assert 0.2 < p["0001"] < 0.8 and 0.2 < p["0100"] < 0.8


def test_the_table_says_what_the_seeds_settle(tmp_path):
    """0010 is far below w/o at more cost: dominated; two seeds never settle a front member (it needs
    four); 0100 and 0001, as costly and within the seed spread, stay open."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "a").as_uri())
    planted = {
        "w/o": ([0.50, 0.51], 0.0),
        "0010": ([0.30, 0.31], 1.0),
        "0001": ([0.600, 0.612], 2.0),
        "0100": ([0.604, 0.608], 2.0),
    }
    for spec, (values, cost) in planted.items():
        for seed, value in enumerate(values):
            _log(client, exp, spec, seed, value, cost, 4)
    rows = {r.attention: r for r in rank(fetch_runs(uri, "s"), None, None, "attention_flops")["segmentation"]}
    assert rows["0010"].standing.startswith("settled: dominated by w/o, p = ")
    assert rows["0100"].standing == rows["0001"].standing == rows["w/o"].standing == "open at 2 seeds"
    text = render(rank(fetch_runs(uri, "s"), None, None, "attention_flops"), None, "attention_flops", "table")
    assert "the seeds settle" in text.splitlines()[2] and "settled: dominated by w/o" in text


def test_p_front_repeats_to_the_digit_and_needs_two_seeds_somewhere(tmp_path):
    planted = {"w/o": ([0.50, 0.52], 0.0), "0010": ([0.51, 0.53], 1.0), "1111": ([0.52, 0.49], 9.0)}
    first = _p(tmp_path / "a", planted)
    assert first == _p(tmp_path / "b", planted)  # a fixed bootstrap seed: the same runs, the same P
    one_seed = _p(tmp_path / "c", {k: (v[:1], c) for k, (v, c) in planted.items()})
    assert set(one_seed.values()) == {None}  # never a bare 0 or 1 from one seed


def test_p_front_bootstraps_four_seeds_or_more(tmp_path):
    """With four seeds a configuration's own seeds are resampled (scipy.stats.bootstrap): a spread
    of its own, however small the others' is."""
    p = _p(
        tmp_path,
        {
            "w/o": ([0.50, 0.50, 0.50, 0.50], 0.0),
            "0010": ([0.40, 0.60, 0.45, 0.55], 1.0),
        },
    )
    assert 0.2 < p["0010"] < 0.8


def test_a_configurations_runs_are_listed_by_seed_whatever_order_the_store_returns(runs):
    """Found by the chaos soak: after a resume MLflow returned a configuration's runs in another
    order, and `attnlab best --format json` listed its runs and reruns in it."""
    forward = rank(runs, None, None, "attention_flops")["segmentation"]
    backward = rank(list(reversed(runs)), None, None, "attention_flops")["segmentation"]
    assert [(r.runs, r.reruns, r.values) for r in forward] == [(r.runs, r.reruns, r.values) for r in backward]
    (both,) = [r for r in forward if r.attention == "0010"]
    assert both.values == [0.40, 0.44]  # seed 0, then seed 1
