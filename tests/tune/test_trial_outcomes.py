"""A trial's outcome is decided in one place (tune/outcomes.py's TrialBook) and acted on by its
sweep's owner (tune/sweep_run.py's SweepRun), on a real sqlite store:

- a trial that trained its own budget (a grid entry's or its preset's, when the sweep sets none)
  finished; one Tune ended before it was stopped by early stopping;
- a stopped trial's run is closed at once (KILLED, tagged) and never trained again, even by a
  driver that lost Tune's record of it; a finished one is left alone; one a driver only cut short
  (Ctrl-C, a kill) is reopened and continued;
- Tune's events reach only the sweep being driven: a sweep's book holds its own trials only, and a
  driver that fails on an event never stops the sweep.
"""

import io
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from attnlab.pipeline.config.validation import validate
from attnlab.pipeline.tracking import runs, store, tags
from attnlab.tune.live_view import LiveView
from attnlab.tune.outcomes import Status, SweepEvents, TrialBook, driving
from attnlab.tune.sweep_config import SweepConfig, trial_train_config
from attnlab.tune.sweep_run import SweepRun
from attnlab.tune.trainable import trial_tags


def _trial(key: str, epoch: int, budget: int | None, task: str = "translation", status: str = "TERMINATED"):
    result = {"epoch": epoch, "score": 0.25, **({"budget": budget} if budget else {})}
    return SimpleNamespace(
        config={"trial": {"trial_key": key, "task": task}}, last_result=result, status=status
    )


@pytest.mark.parametrize(
    "sweep_epochs,epoch,budget,status",
    [
        (None, 2, 2, Status.FINISHED),  # no sweep-wide budget: the trial's own decides
        (None, 1, 2, Status.STOPPED),
        (4, 2, 2, Status.FINISHED),  # the trial's own budget wins over the sweep's
        (4, 2, None, Status.STOPPED),  # a trial that reports none: the sweep's
        (None, 3, None, Status.FINISHED),  # nothing known: it ended on its own
    ],
)
def test_a_trial_ends_finished_at_its_own_budget_and_the_view_says_so(sweep_epochs, epoch, budget, status):
    key = "translation-k-s0"
    book, out = TrialBook([key], {key: "translation"}, sweep_epochs), io.StringIO()
    trial = _trial(key, epoch, budget)
    outcome = book.end(trial)
    assert (outcome.status, outcome.epochs, book.outcomes) == (status, epoch, {key: outcome})
    LiveView(book, out).show([trial], outcome)
    assert out.getvalue().startswith(f"{key}: {status} after epoch {epoch}, val/bleu 0.2500  [1/1 done")


def test_a_failed_trial_is_failed_whatever_its_epoch():
    book = TrialBook(["t"], {"t": "translation"}, 2)
    assert book.end(_trial("t", 2, 2), failed=True).status == Status.FAILED


def test_the_summary_says_what_early_stopping_decided_after_a_trial_ended():
    """A multi-worker trial trains on while its rung waits, and may end before the rung is decided:
    the sweep's summary gives what was decided by the end, not what was known at the trial's end."""
    book = TrialBook(["t"], {"t": "translation"}, 2)
    assert book.end(_trial("t", 2, 2), failed=False, decided={}).early_stopping is None
    result = SimpleNamespace(config={"trial": {"trial_key": "t"}}, error=None, metrics={"epoch": 2})
    (outcome,) = book.settle([result], {}, {"t": "kept by the interval rule at epoch 1 (score 0.5)"})
    assert outcome.status == Status.FINISHED and outcome.early_stopping.startswith("kept by the interval")


def test_a_trial_tune_retried_is_not_failed_by_the_error_its_result_keeps():
    """Tune's result keeps the error of a failure it retried: retried and then cut by the driver's
    end, the trial was interrupted (the next driver finishes it); retried and then finished, it
    finished; one that failed for good is failed (the chaos soak's storm said "1 of 20 trials
    failed" for a trial Tune had retried)."""
    book = TrialBook(["cut", "done", "bad"], {k: "translation" for k in ("cut", "done", "bad")}, 2)

    def result(key, epoch):
        return SimpleNamespace(
            config={"trial": {"trial_key": key}},
            error=RuntimeError("The actor died unexpectedly"),
            metrics={"epoch": epoch},
            path="/tmp/trial",
        )

    book.retry(_trial("cut", 1, 2))
    book.retry(_trial("done", 1, 2))
    book.end(_trial("done", 2, 2))
    book.end(_trial("bad", 1, 2), failed=True)
    outcomes = {
        o.trial: o.status for o in book.settle([result("cut", 1), result("done", 2), result("bad", 1)], {})
    }
    assert outcomes == {"cut": Status.INTERRUPTED, "done": Status.FINISHED, "bad": Status.FAILED}


@pytest.fixture
def sweep_run(tmp_path):
    """A sweep's owner as its driver holds it mid-sweep: a store, a parent run, its book."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = validate(
        SweepConfig,
        {
            "name": "s",
            "max_epochs": 3,
            "grid": [{"task": "segmentation", "specs": ["w/o", "0010"], "preset": "tiny"}],
        },
        "sweep",
    )
    store.ensure_experiment(MlflowClient(uri), "s", uri)
    parent, _ = runs.open_run(uri, "s", name="s", params={}, tags={tags.KIND: tags.KIND_SWEEP})
    owner = SweepRun(sweep, storage=str(tmp_path / "sweeps"))
    owner.uri = owner.served = uri
    owner.parent_id = parent
    keys = [t.trial_key for t in sweep.trials()]
    owner.book = TrialBook(keys, {k: "segmentation" for k in keys}, sweep.max_epochs)
    owner.view = LiveView(owner.book)

    def open_trial(n: int) -> tuple[str, str, bool]:  # (key, run id, ended?) as a trial opens its run
        param = sweep.trials()[n].param()
        cfg = trial_train_config(param, sweep, uri, str(tmp_path / "runs"))
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
        return key, run_id, ended is not None

    return uri, owner, open_trial


def test_a_stopped_trial_is_closed_at_once_and_never_trained_again(sweep_run):
    uri, owner, open_trial = sweep_run
    key, run_id, ended = open_trial(0)
    assert not ended
    trial = _trial(key, 1, 3, task="segmentation")
    with driving(owner):  # what Tune calls when early stopping ends the trial after epoch 1
        SweepEvents().on_trial_complete(0, [trial], trial)
    run = MlflowClient(uri).get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags[tags.STOPPED_EARLY] == "true"
    assert open_trial(0) == (key, run_id, True)  # a fresh Tune run asking again: ended, not retrained
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"


def test_a_trial_cut_by_its_driver_is_continued_and_a_finished_one_left_alone(sweep_run):
    uri, owner, open_trial = sweep_run
    key, run_id, _ = open_trial(1)
    runs.finish_run(uri, run_id, "KILLED")  # Ctrl-C: KILLED, no early-stopping tag
    assert open_trial(1) == (key, run_id, False)
    assert MlflowClient(uri).get_run(run_id).info.status == "RUNNING"  # reopened, same run
    runs.finish_run(uri, run_id, "FINISHED")
    owner.trial_ended(_trial(key, 3, 3, task="segmentation"), [], failed=False)  # Tune ends a finished trial
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"
    assert open_trial(1) == (key, run_id, True)


def test_events_reach_only_the_sweep_being_driven_and_a_failing_driver_never_stops_the_sweep(
    sweep_run, caplog
):
    _, owner, _ = sweep_run
    trial = _trial("segmentation-wo-s0", 3, 3, task="segmentation")
    SweepEvents().on_trial_complete(0, [trial], trial)  # no sweep driven: nobody's book
    assert owner.book.outcomes == {}
    other = TrialBook(["x"], {"x": "segmentation"}, 3)
    with driving(SimpleNamespace(trial_ended=lambda t, ts, failed: other.end(t, failed))):
        SweepEvents().on_trial_complete(0, [trial], trial)
    assert owner.book.outcomes == {} and list(other.outcomes) == ["segmentation-wo-s0"]

    def broken(*args):
        raise ConnectionError("tracking server gone")

    with driving(SimpleNamespace(trial_ended=broken)):
        SweepEvents().on_trial_complete(0, [trial], trial)
    assert "trial_ended failed: tracking server gone" in caplog.text


def test_a_driver_settling_tags_decisions_an_earlier_driver_died_before_tagging(sweep_run):
    """Found by the chaos soak (benchmarks/chaos.py): a trial finished under a driver that was then
    killed; the next driver's Tune restored it as ended and never reported its end, so its
    early-stopping decision was never tagged. And a result Tune restored but never started (no
    config: a driver interrupted during its restore) is left to the book, not a crash."""
    uri, owner, open_trial = sweep_run
    key, run_id, _ = open_trial(0)
    runs.finish_run(uri, run_id, "FINISHED")  # the trial ends its own run; its driver dies then
    decision = {"trial_key": key, "configuration": "w/o", "rung": 1, "rule": "metric", "metric": 0.5}
    decision |= {"cost": 0.0, "dominated_by": None, "dominated_by_trials": None, "dominated_by_point": None}
    owner.store.write_decisions({key: [{**decision, "why": ""}]})
    restored = SimpleNamespace(config=None, error=None, metrics={}, path=None)
    ended = SimpleNamespace(config=_trial(key, 3, 3).config, error=None, metrics={"epoch": 3}, path=None)
    summary = owner._settle([restored, ended])
    said = MlflowClient(uri).get_run(run_id).data.tags.get(tags.EARLY_STOPPING, "")
    assert said.startswith("kept by the metric rule at epoch 1"), said
    assert {o.trial: o.status for o in summary.trials}[key] == Status.FINISHED
