"""A trial's MLflow run across drivers, on a real sqlite store: a trial early stopping ends is
closed the moment Tune ends it, and no later driver trains it again, even one that lost Tune's
record of it; a trial a driver only cut short (Ctrl-C, a kill) is reopened and continued."""

from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from attnlab.pipeline.config.validation import validate
from attnlab.pipeline.tracking import runs, store, tags
from attnlab.tune.ended_trials import EndedTrials, when_a_trial_ends
from attnlab.tune.sweep import close_stopped
from attnlab.tune.sweep_config import SweepConfig, trial_train_config
from attnlab.tune.trainable import trial_tags


@pytest.fixture
def sweep_runs(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = validate(
        SweepConfig,
        {"name": "s", "grid": [{"task": "segmentation", "specs": ["w/o", "0010"], "preset": "tiny"}]},
        "sweep",
    )
    store.ensure_experiment(MlflowClient(uri), "s", uri)
    parent, _ = runs.open_run(uri, "s", name="s", params={}, tags={tags.KIND: tags.KIND_SWEEP})

    def trial_run(n: int):
        param = sweep.trials()[n].param()
        cfg = trial_train_config(param, sweep, uri, str(tmp_path / "runs"))

        def open_trial() -> tuple[str, bool]:  # (run id, ended?)
            key = param["trial_key"]
            run_id, ended = runs.open_trial(
                uri,
                sweep.experiment_name,
                sweep=sweep.name,
                key=key,
                params=store.flatten(cfg.own_settings()),
                tags=trial_tags(cfg, sweep.name, key),
                parent_run_id=parent,
            )
            return run_id, ended is not None

        return param["trial_key"], open_trial

    return uri, trial_run, sweep


def test_a_stopped_trial_is_closed_at_once_and_never_trained_again(sweep_runs):
    uri, trial_run, sweep = sweep_runs
    key, open_trial = trial_run(0)
    run_id, ended = open_trial()
    assert not ended
    close_stopped(uri, sweep, key)  # what the driver does when Tune ends a trial whose run is RUNNING
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags[tags.STOPPED_EARLY] == "true"
    assert open_trial() == (run_id, True)  # a fresh Tune run asking again: ended, not retrained
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"


def test_a_trial_cut_by_its_driver_is_continued_and_a_finished_one_left_alone(sweep_runs):
    uri, trial_run, sweep = sweep_runs
    key, open_trial = trial_run(1)
    run_id, _ = open_trial()
    runs.finish_run(uri, run_id, "KILLED")  # Ctrl-C: KILLED, no early-stopping tag
    assert open_trial() == (run_id, False)
    assert MlflowClient(uri).get_run(run_id).info.status == "RUNNING"  # reopened, same run
    runs.finish_run(uri, run_id, "FINISHED")
    close_stopped(uri, sweep, key)  # Tune ends a trial that finished: nothing to close
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    assert open_trial() == (run_id, True)


def test_the_end_of_a_trial_is_acted_on_and_a_failing_action_never_stops_the_sweep(caplog):
    seen = []
    when_a_trial_ends(seen.append)
    EndedTrials().on_trial_complete(0, [], SimpleNamespace(config={"trial": {"trial_key": "k"}}))
    assert seen == ["k"]

    def broken(key):
        raise ConnectionError("tracking server gone")

    when_a_trial_ends(broken)
    EndedTrials().on_trial_complete(0, [], SimpleNamespace(config={"trial": {"trial_key": "k2"}}))
    assert "k2 ended; acting on it failed: tracking server gone" in caplog.text
    when_a_trial_ends(lambda key: None)
