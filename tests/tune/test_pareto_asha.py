"""Cost-aware early stopping with real Ray Tune: a trainable reports planted curves and costs (and a
checkpoint each epoch, so a paused trial continues where it was), one trial at a time. A cheap
configuration a little less accurate than the best survives pareto-asha and is stopped by plain
ASHA; a dominated one is stopped by both; a second Tuner over the same sweep store starts from the
saved rungs."""

import json
import tempfile
from pathlib import Path

import numpy as np
from one_at_a_time import one_at_a_time
from ray import tune

from attnlab.pipeline.config.validation import validate
from attnlab.tune.pareto_asha import crowding_distance
from attnlab.tune.schedulers import early_stopping
from attnlab.tune.storage import SweepStore
from attnlab.tune.sweep_config import SweepConfig

EPOCHS = 4
# spec: (final score, cost); the score grows linearly to it
PLANTED = {"1111": (0.50, 10.0), "0010": (0.45, 1.0), "0100": (0.40, 5.0)}


def _planted(config):
    trial = config["trial"]
    final, cost = trial["final"], trial["cost"]
    with Path(trial["starts"], trial["trial_key"]).open("a") as starts:  # one line per (re)start
        starts.write("start\n")
    done = 0
    if (checkpoint := tune.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            done = json.loads(Path(folder, "epoch.json").read_text())
    for epoch in range(done + 1, EPOCHS + 1):
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "epoch.json").write_text(json.dumps(epoch))
            metrics = {
                "epoch": epoch,
                "score": final * epoch / EPOCHS,
                "cost/added_flops": cost,
                "budget": EPOCHS,
            }
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _starts(tmp_path) -> dict[str, int]:
    return {p.name.split("-")[1]: len(p.read_text().splitlines()) for p in (tmp_path / "starts").iterdir()}


def _sweep(policy: str, specs=PLANTED, workers: int = 1, **settings) -> SweepConfig:
    if policy == "pareto-asha":  # plain dominance and the bound below, unless a test says otherwise
        settings = {"front_fraction": 0.25, "tolerance": 0.0, **settings}
    return validate(
        SweepConfig,
        {
            "name": "front",
            "max_epochs": EPOCHS,
            "grid": [{"task": "segmentation", "specs": list(specs), "preset": "tiny"}],
            "early_stopping": {
                "policy": policy,
                "grace_period": 1,
                "reduction_factor": 2,
                "cost": "added_flops",
                **settings,
            },
            "resources": {"workers_per_trial": workers},
        },
        "sweep",
    )


def _epochs(scheduler, tmp_path, specs, name="front", planted=PLANTED, workers=None) -> dict[str, int]:
    trials = [
        {
            "task": "segmentation",
            "attention": s,
            "trial_key": f"segmentation-{s}-s0",
            "final": planted[s][0],
            "cost": planted[s][1],
            "starts": str(tmp_path / "starts"),
            **({"resources": {"workers_per_trial": workers[s]}} if workers else {}),
        }
        for s in specs
    ]
    (tmp_path / "starts").mkdir(parents=True, exist_ok=True)
    results = one_at_a_time(_planted, trials, scheduler, str(tmp_path), name)
    return {r.config["trial"]["attention"]: int(r.metrics["epoch"]) for r in results}


def test_the_cheap_configuration_survives_the_front_rule_and_not_asha(local_ray, tmp_path):
    asha = _epochs(early_stopping(_sweep("asha")), tmp_path / "a", PLANTED)
    # ASHA keeps the top half by the metric (the median included, as Ray's ASHA): 0010 until epoch 2
    assert asha == {"1111": EPOCHS, "0010": 2, "0100": 1}
    scheduler = early_stopping(_sweep("pareto-asha"))
    front = _epochs(scheduler, tmp_path / "p", PLANTED)
    assert front == {"1111": EPOCHS, "0010": EPOCHS, "0100": 1}  # 0100: dominated by 0010
    (task,) = scheduler._schedulers.values()
    rules = {k: [(d.rung, d.rule) for d in ds] for k, ds in task.decisions.items()}
    assert rules["segmentation-0010-s0"] == [(1, "metric"), (2, "front")]
    assert rules["segmentation-1111-s0"] == [(1, "metric"), (2, "metric")]
    (cut,) = task.decisions["segmentation-0100-s0"]
    assert cut.rule == "stopped" and cut.dominated_by == "0010" and cut.cost == 5.0 and cut.rung == 1


def _rules(scheduler) -> dict[str, list[tuple[int, str]]]:
    (task,) = scheduler._schedulers.values()
    return {k: [(d.rung, d.rule) for d in ds] for k, ds in task.decisions.items()}


def test_multi_worker_trials_train_on_while_their_rung_waits_and_get_the_same_decisions(local_ray, tmp_path):
    """Multi-worker trials are not paused (a paused Ray Train run does not stop cleanly): one at a
    time, 1111 and 0010 train to the end before 0100 arrives and completes the first rung; the
    decisions are the one-worker sweep's, and 0100 is still cut there."""
    paused = early_stopping(_sweep("pareto-asha"))
    assert _epochs(paused, tmp_path / "p", PLANTED) == {"1111": EPOCHS, "0010": EPOCHS, "0100": 1}
    # one-worker trials: paused at both rungs (the first waiting for its cohort), then continued
    assert _starts(tmp_path / "p") == {"1111": 3, "0010": 3, "0100": 1}
    on = early_stopping(_sweep("pareto-asha", workers=2))
    assert _epochs(on, tmp_path / "w", PLANTED) == {"1111": EPOCHS, "0010": EPOCHS, "0100": 1}
    assert _starts(tmp_path / "w") == {"1111": 1, "0010": 1, "0100": 1}  # never paused
    assert _rules(on) == _rules(paused)


def test_in_a_sweep_of_both_only_one_worker_trials_are_paused(local_ray, tmp_path):
    """Grid entries with resources of their own: a trial's own workers say whether it waits paused."""
    mixed = early_stopping(_sweep("pareto-asha"))
    workers = {"1111": 2, "0010": 1, "0100": 1}
    assert _epochs(mixed, tmp_path, PLANTED, workers=workers) == {"1111": EPOCHS, "0010": EPOCHS, "0100": 1}
    assert _starts(tmp_path) == {"1111": 1, "0010": 3, "0100": 1}


def test_a_second_tuner_starts_from_the_saved_rungs(local_ray, tmp_path):
    """0100 alone would pass its rung (nothing to compare with); after the rungs of 1111 and 0010
    are restored from the store it is cut, dominated by 0010."""
    store = SweepStore(str(tmp_path / "sweeps"), "front")
    assert _epochs(early_stopping(_sweep("pareto-asha"), store), tmp_path / "t1", ["1111", "0010"]) == {
        "1111": EPOCHS,
        "0010": EPOCHS,
    }
    assert _epochs(early_stopping(_sweep("pareto-asha")), tmp_path / "t0", ["0100"], "alone") == {
        "0100": EPOCHS
    }
    assert _epochs(early_stopping(_sweep("pareto-asha"), store), tmp_path / "t2", ["0100"]) == {"0100": 1}


def test_crowding_distance_favours_the_extremes_then_the_most_room():
    points = np.array([[0.50, 10.0], [0.49, 9.0], [0.40, 5.0], [0.30, 1.0]])
    d = crowding_distance(points)
    assert np.isinf(d[0]) and np.isinf(d[3]) and d[2] > d[1]


def test_the_bound_caps_promotions_by_the_front(local_ray, tmp_path):
    """Five configurations, each a little cheaper and less accurate than the one before: all on
    the front. At each rung the front rule promotes at most max(1, floor(0.25 x configurations))
    of them beyond the metric's top half, the extremes first (0001, the cheapest); the rest are
    stopped."""
    planted = {
        "1111": (0.50, 10.0),
        "1100": (0.48, 8.0),
        "0011": (0.46, 6.0),
        "0010": (0.44, 4.0),
        "0001": (0.42, 2.0),
    }
    scheduler = early_stopping(_sweep("pareto-asha", specs=planted))
    epochs = _epochs(scheduler, tmp_path, planted, planted=planted)
    (task,) = scheduler._schedulers.values()
    first = {k.split("-")[1]: ds[0] for k, ds in task.decisions.items()}
    assert {k for k, d in first.items() if d.rule == "metric"} == {"1111", "1100", "0011"}
    assert [k for k, d in first.items() if d.rule == "front"] == ["0001"]  # the one slot: an extreme
    assert {k for k, d in first.items() if d.rule == "stopped"} == {"0010"}
    assert "promotes at most 1 of the rung's 5" in first["0010"].why
    assert epochs == {"1111": EPOCHS, "1100": EPOCHS, "0011": 2, "0010": 1, "0001": EPOCHS}


def test_a_tolerance_lets_a_cheaper_configuration_within_it_survive(local_ray, tmp_path):
    """0100 costs what 0010 costs and is a hair less accurate: plainly dominated, kept with a
    tolerance of 20% of the rung's metric range (1111 best and dearest keeps the range wide). No
    bound here (front_fraction 1): only dominance decides."""
    planted = {"1111": (0.60, 10.0), "0010": (0.50, 2.0), "0100": (0.49, 2.0)}
    plain = _epochs(
        early_stopping(_sweep("pareto-asha", front_fraction=1.0)),
        tmp_path / "plain",
        planted,
        planted=planted,
    )
    assert plain["0100"] == 1  # 0010 is as cheap and more accurate: dominated
    tolerant = early_stopping(_sweep("pareto-asha", front_fraction=1.0, tolerance=0.2))
    kept = _epochs(tolerant, tmp_path / "tolerant", planted, planted=planted)
    assert kept["0100"] == EPOCHS  # at rung 1, 0.0025 behind: within 20% of the range 0.0275


def test_a_trial_resumed_past_a_rung_its_driver_never_saw_arrives_at_every_rung_it_passed():
    """A sweep resumed after a crash (or from an older attnlab) can hand the rungs a trial whose first
    result is already past two of them: it arrives at both, waits for both, and is decided at both
    (before, it waited at the first only and its next result, at the budget, passed the second)."""
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from attnlab.tune.pareto_asha import ParetoASHA

    rungs = ParetoASHA("cost/added_flops", 3, 1, 2, 0.25, 0.0, metric="score", mode="max", cohort=["a", "b"])

    def trial(key, spec):
        config = {"trial": {"trial_key": key, "attention": spec, "task": "segmentation"}}
        return SimpleNamespace(trial_id=key, status="RUNNING", config=config)

    def result(epoch, score):
        return {"epoch": epoch, "score": score, "budget": 3, "cost/added_flops": 1.0}

    a, b = trial("a", "0010"), trial("b", "1111")
    assert rungs.on_trial_result(None, a, result(2, 0.3)) == TrialScheduler.PAUSE
    assert "a" in rungs.rungs[1.0] and "a" in rungs.rungs[2.0]
    assert rungs.on_trial_result(None, b, result(1, 0.1)) == TrialScheduler.STOP  # as costly, less accurate
    rungs.on_trial_remove(None, b)  # Tune ends the stopped trial: rung 2 waited for a alone
    assert [(d.rung, d.rule) for d in rungs.decisions["a"]] == [(1, "metric"), (2, "metric")]
    assert not rungs.holds(a) and rungs.on_trial_result(None, a, result(3, 0.5)) == TrialScheduler.CONTINUE


def test_a_trial_tune_retries_after_a_failure_is_waited_for_and_one_that_fails_for_good_is_not():
    """Tune calls `on_trial_error` for a failure it retries as well (then queues the trial again):
    the rung its round waits at is decided once the retried trial arrives, on both trials' values,
    as without the failure. A trial that fails for good no longer holds the rung (the chaos soak's
    storm decided a rung without the killed trial)."""
    from types import SimpleNamespace

    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from attnlab.tune.pareto_asha import ParetoASHA

    def trial(key, spec, status="RUNNING", retried=True):
        config = {"trial": {"trial_key": key, "attention": spec, "task": "segmentation"}}
        return SimpleNamespace(trial_id=key, status=status, config=config, should_recover=lambda: retried)

    def result(epoch, score):
        return {"epoch": epoch, "score": score, "budget": 3, "cost/added_flops": 1.0}

    rungs = ParetoASHA("cost/added_flops", 3, 1, 2, 0.25, 0.0, metric="score", mode="max", cohort=["a", "b"])
    a = trial("a", "0010")
    assert rungs.on_trial_result(None, a, result(1, 0.3)) == TrialScheduler.PAUSE
    rungs.on_trial_error(None, trial("b", "0010", Trial.ERROR))  # killed before its rung; Tune retries it
    rungs.on_trial_add(None, trial("b", "0010", Trial.PENDING))
    assert 1.0 not in rungs.closed and rungs.holds(a)  # the rung waits for the retried trial
    assert rungs.on_trial_result(None, trial("b", "0010"), result(1, 0.5)) == TrialScheduler.PAUSE
    assert [d.metric for d in rungs.decisions["a"]] == [0.4]  # decided on both seeds

    rungs = ParetoASHA("cost/added_flops", 3, 1, 2, 0.25, 0.0, metric="score", mode="max", cohort=["a", "b"])
    assert rungs.on_trial_result(None, a, result(1, 0.3)) == TrialScheduler.PAUSE
    rungs.on_trial_error(None, trial("b", "0010", "RUNNING", retried=False))  # out of retries
    assert 1.0 in rungs.closed and [d.metric for d in rungs.decisions["a"]] == [0.3]
