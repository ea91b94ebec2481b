"""benchmarks/early_stopping.py on curves logged into a real MLflow store: a cheap configuration
that is a little less accurate throughout is on the full-budget front; ASHA cuts it at its first
rung, pareto-asha trains it to the end; no early stopping trains everything."""

import runpy

import pytest
from logged_runs import log_curve
from mlflow.tracking import MlflowClient
from repo import ROOT

BENCHMARK = ROOT / "benchmarks" / "early_stopping.py"


def test_the_replay_keeps_the_cheap_front_configuration_only_under_pareto_asha(tmp_path, capsys, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("curves", artifact_location=(tmp_path / "a").as_uri())
    log_curve(client, exp, "1111", 0, [0.30, 0.40, 0.50, 0.60], 10e9, False)
    log_curve(client, exp, "0010", 0, [0.28, 0.38, 0.48, 0.58], 1e9, False)  # cheap, a little worse
    log_curve(client, exp, "0100", 0, [0.10, 0.20, 0.25, 0.30], 5e9, False)  # dominated by 0010
    log_curve(client, exp, "1100", 0, [0.12, 0.22, 0.27, 0.32], 9e9, False)  # dominated
    monkeypatch.setattr(
        "sys.argv",
        [
            str(BENCHMARK),
            "--tracking-uri",
            uri,
            "--experiment",
            "curves",
            "--orders",
            "4",
            "--workers",
            "1",
            "--tolerance",
            "0",
        ],
    )
    runpy.run_path(str(BENCHMARK), run_name="__main__")
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert "2 configurations on the full-budget front" in out
    assert rows["none"][1] == "1.00" and rows["none"][4] == "16.0"  # 4 trials x 4 epochs
    assert float(rows["asha"][1]) < 1.0  # ASHA cuts 0010 when 1111 is there before it
    assert rows["pareto-asha"][1] == "1.00" and float(rows["pareto-asha"][4]) < 16.0
    assert rows["bound"][1:3] == ["1.00", "10"]  # 1111 and 0010 to the end, the two others to epoch 1


def test_the_bound_keeps_what_dominates_a_front_configuration_at_a_rung():
    """0001 ends dominated, but at epoch 1 it dominates 0010 (as accurate, as cheap): a rule that
    keeps 0010 there keeps 0001 too, to the next rung (2), where it is dominated no more."""
    bench = runpy.run_path(str(BENCHMARK))

    def trial(spec, curve, cost):
        return {"task": "segmentation", "spec": spec, "curve": curve, "cost": cost}

    data = {
        "a": trial("1111", [0.30, 0.40, 0.50, 0.60], 10e9),
        "b": trial("0010", [0.28, 0.38, 0.48, 0.58], 1e9),
        "c": trial("0001", [0.29, 0.30, 0.31, 0.32], 1e9),
    }
    front = bench["front_of"](data)
    assert front == {("segmentation", "1111"), ("segmentation", "0010")}
    assert bench["front_bound"](data, front, grace=1, eta=2) == 4 + 4 + 2
    assert bench["front_bound"](data, front, grace=2, eta=2) == 4 + 4 + 2  # one rung, at epoch 2


def test_the_rung_signal_is_the_rank_correlation_of_rung_and_final_scores_over_configurations():
    """Two seeds a configuration, decided on their mean: at epoch 1 the order is the final one
    reversed (-1), at epoch 2 it is the final one (+1); rungs are 1 and 2 (grace 1, eta 2, 4 epochs)."""
    bench = runpy.run_path(str(BENCHMARK))
    finals = {"1111": 0.6, "0010": 0.5, "0001": 0.4, "w/o": 0.3}
    data = {}
    for i, (spec, final) in enumerate(finals.items()):
        for seed, noise in enumerate((-0.01, 0.01)):
            data[f"{spec}-{seed}"] = {
                "task": "segmentation",
                "spec": spec,
                "curve": [0.1 + 0.02 * i + noise, final / 2 + noise, final - 0.05, final + noise],
                "cost": 1e9,
            }
    signal = bench["rung_signal"](data, grace=1, eta=2)
    assert [r for r, _ in signal["segmentation"]] == [1, 2]
    assert signal["segmentation"][0][1] == pytest.approx(-1.0)
    assert signal["segmentation"][1][1] == pytest.approx(1.0)
