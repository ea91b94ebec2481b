"""benchmarks/reference_set.py: full-budget curves out of a real MLflow store into the CSV the
replays read, and back, each epoch's value where it was, stopped trials left out."""

import runpy

from logged_runs import log_curve
from mlflow.tracking import MlflowClient
from repo import ROOT

BENCHMARK = ROOT / "benchmarks" / "reference_set.py"


def test_curves_go_out_and_come_back_as_logged(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("ref", artifact_location=(tmp_path / "a").as_uri())
    log_curve(client, exp, "0010", 0, [0.30, 0.40, 0.50], 1e9, False)
    log_curve(client, exp, "0010", 1, [0.31, 0.42, 0.48], 1e9, False)
    log_curve(client, exp, "1111", 0, [0.20, 0.35, 0.55], 9e9, False, retrained=(2, 0.36))
    log_curve(client, exp, "0100", 0, [0.10], 5e9, True)  # stopped early: no full-budget curve
    out = tmp_path / "ref.csv"
    monkeypatch.setattr(
        "sys.argv",
        [str(BENCHMARK), "export", "--tracking-uri", uri, "--experiment", "ref", "--out", str(out)],
    )
    module = runpy.run_path(str(BENCHMARK), run_name="__main__")
    assert capsys.readouterr().out.startswith("9 rows -> ")
    trials = module["load"](out)
    assert sorted(trials) == ["segmentation-0010-s0", "segmentation-0010-s1", "segmentation-1111-s0"]
    assert trials["segmentation-0010-s1"]["curve"] == [0.31, 0.42, 0.48]
    assert trials["segmentation-1111-s0"]["curve"] == [
        0.20,
        0.36,
        0.55,
    ]  # the epoch trained again counts its last
    assert trials["segmentation-1111-s0"]["costs"]["added_flops"] == 9e9
