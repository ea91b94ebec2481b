"""More seeds for a finished sweep: a sweep of only the new seeds into the same MLflow experiment
trains only them; a seed the experiment already holds is refused before anything starts."""

import pytest
from drill_sweep import attnlab, drill_sweep
from mlflow.tracking import MlflowClient
from services import clean_env
from store_probe import live_runs

pytestmark = pytest.mark.slow


def test_a_sweep_of_new_seeds_joins_the_experiment_and_trains_only_them(tmp_path):
    (tmp_path / "s.yaml").write_text(drill_sweep("seeds", specs='"0010"', max_epochs=1))
    env = clean_env()
    first = attnlab(["sweep", "--config", "s.yaml"], tmp_path, env)
    assert first.returncode == 0, first.stderr[-3000:]
    before = {
        r["tags"]["attnlab.trial_key"]: r
        for r in live_runs(tmp_path / "mlflow.db", "seeds")
        if r["tags"].get("attnlab.kind") == "trial"
    }
    assert sorted(before) == ["segmentation-0010-s0"]
    ended = {
        k: MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(r["run_id"]).info.end_time
        for k, r in before.items()
    }

    again = attnlab(
        ["sweep", "--config", "s.yaml", "--seeds", "0-1", "--name", "x", "--experiment", "seeds"],
        tmp_path,
        env,
    )
    assert again.returncode == 2 and again.stdout.count("\n") <= 1, again.stdout + again.stderr
    assert (
        "already ran in experiment 'seeds' (sweep seeds)" in again.stderr
        and "seed(s) 0 are taken" in again.stderr
    )

    more = attnlab(
        ["sweep", "--config", "s.yaml", "--seeds", "1", "--name", "seeds-s1", "--experiment", "seeds"],
        tmp_path,
        env,
    )
    assert more.returncode == 0, more.stderr[-3000:]
    runs = live_runs(tmp_path / "mlflow.db", "seeds")
    trials = {r["tags"]["attnlab.trial_key"]: r for r in runs if r["tags"].get("attnlab.kind") == "trial"}
    assert sorted(trials) == ["segmentation-0010-s0", "segmentation-0010-s1"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for key, run in before.items():  # the first sweep's trials: untouched
        assert trials[key]["run_id"] == run["run_id"] and trials[key]["tags"]["attnlab.sweep"] == "seeds"
        assert client.get_run(run["run_id"]).info.end_time == ended[key]
    assert {trials[k]["tags"]["attnlab.sweep"] for k in trials if k.endswith("-s1")} == {"seeds-s1"}
    parents = sorted(r["tags"]["attnlab.sweep"] for r in runs if r["tags"].get("attnlab.kind") == "sweep")
    assert parents == ["seeds", "seeds-s1"]
    assert not list(tmp_path.glob("mlruns"))  # one store
    best = attnlab(["best", "--experiment", "seeds", "--format", "json"], tmp_path, env)
    assert best.returncode == 0 and '"seeds": 2' in best.stdout  # both sweeps' seeds, ranked together
