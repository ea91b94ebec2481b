"""Racing seeds: a clearly dominated configuration stops getting seeds after the first round, an
uncertain one gets them up to `max`, the rounds do not depend on the order results came in, and a
race rebuilt from part of its finished trials (a resume) proposes exactly the trials left, none
that finished. The Tune tests run the real Searcher and scheduler over planted scores."""

import random

import pytest
from ray import tune

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.validation import validate
from attnlab.tune.experiment import search
from attnlab.tune.race import Cut, FindingQuestions, Question, plan
from attnlab.tune.sweep_config import SweepConfig

# seed -> its offset from the configuration's mean (sd about 0.014, as CamVid's seeds spread)
OFFSET = [0.02, -0.02, 0.01, -0.01, 0.015, -0.015, 0.005, -0.005]
# spec -> (mean score, added FLOPs): 1111 costs most and is far below 0010; 0100 is 0010's near tie
PLANTED = {"w/o": (0.30, 0.0), "0010": (0.50, 1.0), "0100": (0.49, 5.0), "1111": (0.20, 10.0)}


def _sweep(
    early_stopping: str = "none", max_epochs: int = 1, eta: int = 2, specs=tuple(PLANTED), **seeds
) -> SweepConfig:
    return validate(
        SweepConfig,
        {
            "name": "race",
            "max_epochs": max_epochs,
            "grid": [{"task": "segmentation", "specs": list(specs), "preset": "tiny"}],
            "seeds": {"policy": "race", "min": 2, "max": 6, "findings": False, **seeds},
            "early_stopping": {"policy": early_stopping, "grace_period": 1, "reduction_factor": eta},
            "max_concurrent_trials": 2,
        },
        "sweep",
    )


def _value(key: str, planted: dict = PLANTED) -> tuple[float, float]:
    spec = next(s for s in planted if key.startswith(f"segmentation-{s.replace('/', '')}-s"))
    mean, cost = planted[spec]
    return mean + OFFSET[int(key.rsplit("-s", 1)[1])], cost


def _costs(key: str) -> dict[str, float]:
    return {"cost/added_flops": _value(key)[1]}


def _configs(sweep: SweepConfig) -> dict[str, list[str]]:
    return {c: [t.trial_key for t in ts] for c, ts in sweep.race_configurations()["segmentation"].items()}


def _race(sweep, order=None, questions=None):
    """The whole race with results coming in `order` (a shuffle of each round's trials)."""
    results, costs, rng, memo = {}, {}, random.Random(order), {}
    while not (
        state := plan(_configs(sweep), results, costs, sweep.seeds, questions=questions, memo=memo)
    ).done:
        keys = list(state.proposals)
        if order is not None:
            rng.shuffle(keys)
        for key in keys[: 1 + len(keys) // 2]:  # part of the round, then plan again
            results[key], costs[key] = _value(key)[0], _costs(key)
    return state, results


def test_the_dominated_configuration_stops_and_the_uncertain_one_gets_seeds():
    state, results = _race(_sweep())
    seeds = {c: len([k for k in keys if k in results]) for c, keys in _configs(_sweep()).items()}
    assert seeds == {"1111": 2, "0010": 4, "w/o": 4, "0100": 6}
    final = state.latest
    assert final["1111"].state == "dominated" and final["1111"].dominated_by == "0010"
    assert final["0010"].state == final["w/o"].state == "front"
    assert final["0100"].describe() == "open at 6 seeds"
    assert state.standings[0]["1111"].settled  # after round 1, on two seeds (pooled variance)


def test_the_rounds_do_not_depend_on_the_order_results_come_in():
    first, _ = _race(_sweep())
    for order in range(3):
        other, _ = _race(_sweep(), order)
        assert other.rounds == first.rounds or [sorted(r) for r in other.rounds] == [
            sorted(r) for r in first.rounds
        ]
        assert {c: s.describe() for c, s in other.latest.items()} == {
            c: s.describe() for c, s in first.latest.items()
        }


def test_an_open_finding_keeps_its_configurations_racing_each_on_the_same_next_seed():
    """1111 is settled (dominated) after round 1 and w/o on the front after round 3; a planted
    finding comparing the two opens then: 1111 catches up with w/o's seeds and both get the same
    next one; answered, it gives no more seeds (settled is final)."""

    def questions(finished):
        seeds = sum(1 for spec, *_ in finished if spec == "w/o")
        if seeds < 4:
            return []
        verdict = "reproduced" if seeds >= 5 else "inconclusive"
        return [Question("finding 9, 1111 vs w/o", verdict, "planted", frozenset({"w/o", "1111"}))]

    state, results = _race(_sweep(), questions=questions)
    seeds = {c: len([k for k in keys if k in results]) for c, keys in _configs(_sweep()).items()}
    assert state.latest["1111"].state == "dominated"  # its standing stays what round 1 settled
    assert seeds == {"1111": 5, "0010": 4, "w/o": 5, "0100": 6}
    caught_up = {f"segmentation-1111-s{i}" for i in (2, 3, 4)} | {"segmentation-wo-s4"}
    assert caught_up <= set(state.rounds[3])
    assert [q.verdict for q in state.questions[3]] == ["reproduced"]


def test_the_findings_judge_a_round_as_attnlab_findings_does():
    """The on-par claim 1000 vs w/o: open on two noisy seeds, with both sides to get the next seed;
    answered on eight seeds that agree closely."""
    ask = FindingQuestions("segmentation")

    def finished(spread, seeds):
        return [
            (spec, i, 0.30 + spread * OFFSET[i], {"cost/flops": 1.0})
            for spec in ("w/o", "1000")
            for i in range(seeds)
        ]

    noisy = {q.label: q for q in ask(finished(1.0, 2)) + []}
    # Noise differing between the two sides: two seeds cannot bound the difference.
    noisy = {
        q.label: q
        for q in ask(
            [(s, i, v + (0.02 * OFFSET[i] * 50 if s == "1000" else 0), c) for s, i, v, c in finished(1, 2)]
        )
    }
    (on_par,) = [q for q in noisy.values() if "1000" in q.members]
    assert on_par.verdict == "inconclusive" and on_par.members == {"w/o", "1000"}
    (settled,) = [q for q in ask(finished(0.01, 8)) if "1000" in q.members]
    assert settled.verdict == "reproduced", settled.describe()


def test_a_budget_that_cannot_cover_a_round_gives_the_most_open_first():
    state, results = _race(_sweep(budget=11))
    assert len(results) == 11 and state.done
    # round 2 has room for three; round 3 for none: 1111 is settled, the three open get one each
    assert sorted(state.rounds[1]) == sorted(
        ["segmentation-wo-s2", "segmentation-0010-s2", "segmentation-0100-s2"]
    )


def test_race_settings_are_checked_before_anything_runs():
    with pytest.raises(ConfigError, match="less than 2 seeds each.*at least 8"):
        _sweep(budget=5)
    with pytest.raises(ConfigError, match="below seeds.min"):
        _sweep(min=4, max=3)
    sweep = validate(
        SweepConfig,
        {
            **_sweep().model_dump(mode="json"),
            "grid": [{"task": "segmentation", "specs": ["0010"], "seeds": [7, 3]}],
        },
        "sweep",
    )
    assert sweep.seed_pool(sweep.grid[0]) == [7, 3, 8, 9, 10, 11]


def test_a_budget_is_shared_among_tasks_by_their_configurations():
    sweep = validate(
        SweepConfig,
        {
            **_sweep(budget=15).model_dump(mode="json"),
            "grid": [
                {"task": "segmentation", "specs": ["w/o", "0010"], "preset": "tiny"},
                {"task": "translation", "specs": ["w/o", "0010", "1000"], "preset": "tiny"},
            ],
        },
        "sweep",
    )
    assert (sweep.race_budget("segmentation"), sweep.race_budget("translation")) == (6, 9)


def _planted(config):
    value, cost = _value(config["trial"]["trial_key"])
    tune.report({"epoch": 1, "budget": 1, "score": value, "cost/added_flops": cost})


CURVE_EPOCHS = 4


def _planted_curves(config, planted: dict = PLANTED):
    """Each epoch a step from half the planted value to all of it: a configuration's seeds keep
    their offsets (halved at epoch 1), so the first rung already tells 1111 from 0010."""
    value, cost = _value(config["trial"]["trial_key"], planted)
    for epoch in range(1, CURVE_EPOCHS + 1):
        score = value * (0.5 + 0.5 * (epoch - 1) / (CURVE_EPOCHS - 1))
        tune.report({"epoch": epoch, "budget": CURVE_EPOCHS, "score": score, "cost/added_flops": cost})


def _tune_race(sweep, storage, name, history=None, fn=_planted, parts=None) -> dict[str, int]:
    """The trials Tune ran with the real race Searcher: trial key -> the epochs it trained."""
    parts = parts or search(sweep, None, history)
    tuner = tune.Tuner(
        tune.with_resources(fn, {"cpu": 1}),
        param_space={},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=parts.scheduler,
            search_alg=parts.algorithm,
            num_samples=-1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=storage, name=name, verbose=0),
    )
    results = tuner.fit()
    assert parts.race.finished()
    return {r.config["trial"]["trial_key"]: int(r.metrics["epoch"]) for r in results}


def test_tune_runs_the_race_and_a_resumed_race_reruns_no_seed(local_ray, tmp_path):
    sweep = _sweep()
    expected, results = _race(sweep)
    ran = _tune_race(sweep, str(tmp_path), "whole")
    assert sorted(ran) == sorted(results)  # Tune ran exactly the race's trials, each once

    # A resume after round 2 and half of round 3: the Searcher, rebuilt from those finished trials
    # (as from MLflow), proposes the rest of the race and nothing that finished.
    done = [k for r in expected.rounds[:2] for k in r] + expected.rounds[2][:1]
    history = {k: _value(k)[0] for k in done}, {k: _costs(k) for k in done}
    rest = _tune_race(sweep, str(tmp_path), "resumed", lambda: history)
    assert not set(rest) & set(done)
    assert sorted([*rest, *done]) == sorted(results)


def test_a_cut_configuration_is_settled_for_the_race_and_gets_no_more_seeds():
    """A trial early stopping cut (a `Cut`, as RaceHistory reads it back) settles its configuration,
    dominated, at the epoch it was cut; the race never gives it another seed."""
    sweep = _sweep()
    results, costs = {}, {}
    state = plan(_configs(sweep), results, costs, sweep.seeds)
    for key in state.proposals:
        if key.startswith("segmentation-1111-"):
            results[key] = Cut(1, "0010", 0.001)
        else:
            results[key], costs[key] = _value(key)[0], _costs(key)
    state = plan(_configs(sweep), results, costs, sweep.seeds)
    cut = state.standings[0]["1111"]
    assert cut.settled and cut.stopped_at == 1 and cut.dominated_by == "0010"
    assert cut.describe() == "settled: stopped at epoch 1, dominated by 0010, p = 0.001"
    assert not any(k.startswith("segmentation-1111-") for r in state.rounds[1:] for k in r)


def test_early_stopping_in_a_race_cuts_a_dominated_configuration_at_its_first_rung_whatever_the_order(
    local_ray, tmp_path
):
    """pareto-asha inside a race: each round's rungs wait for the round's trials and cut only what the
    race's own test says is dominated with confidence there: 1111 (far below 0010 and dearer) at epoch
    1 of round 1, never 0100 (0010's near tie, within the seeds' spread: the rung's means alone, below
    the top 1/4 and dominated, would cut it) nor w/o (the cheapest). The same trials and epochs at one
    trial at a time and two, and the race settles 1111 as cut (budget: about 60 s here)."""
    runs = {}
    for limit in (1, 2):
        sweep = _sweep("pareto-asha", CURVE_EPOCHS, eta=4)
        sweep = sweep.model_copy(update={"max_concurrent_trials": limit})
        parts = search(sweep, None)
        runs[limit] = _tune_race(sweep, str(tmp_path), f"es{limit}", fn=_planted_curves, parts=parts)
        standing = parts.race.plans()["segmentation"].standings[0]
        assert standing["1111"].stopped_at == 1 and standing["1111"].dominated_by == "0010", standing
        assert not any(s.stopped_at for c, s in standing.items() if c != "1111")
    assert runs[1] == runs[2]
    epochs = runs[1]
    assert {k: e for k, e in epochs.items() if k.startswith("segmentation-1111-")} == {
        "segmentation-1111-s0": 1,
        "segmentation-1111-s1": 1,
    }
    assert all(e == CURVE_EPOCHS for k, e in epochs.items() if not k.startswith("segmentation-1111-"))


def test_a_resumed_race_reads_its_cut_trials_back_as_cuts(tmp_path):
    """RaceHistory, what a restored race replays: a trial early stopping cut (KILLED, tagged stopped
    early, its decision in the sweep's decisions file) comes back as the same Cut, a finished one as
    its value, so the replayed race settles the cut configuration as the first driver did."""
    from mlflow.tracking import MlflowClient

    from attnlab.pipeline.tracking import runs, store, tags
    from attnlab.tune.race import RaceHistory

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store.ensure_experiment(MlflowClient(uri), "race", uri)
    for key, status in (("segmentation-1111-s0", "KILLED"), ("segmentation-0010-s0", "FINISHED")):
        trial = {tags.KIND: tags.KIND_TRIAL, tags.SWEEP: "race", tags.TRIAL: key, tags.TASK: "segmentation"}
        run_id, _ = runs.open_run(uri, "race", name=key, params={}, tags=trial)
        for name, value in {"val/mIoU": 0.4, "cost/added_flops": 1.0}.items():
            MlflowClient(uri).log_metric(run_id, name, value)
        runs.finish_run(uri, run_id, status, {tags.STOPPED_EARLY: "true"} if status == "KILLED" else None)
    decided = {
        "segmentation-1111-s0": [
            {"rung": 1, "rule": "stopped", "dominated_by": "0010", "p_dominated": 0.002},
        ]
    }
    history = RaceHistory(
        uri, "race", "race", "cost/added_flops", {"segmentation": "val/mIoU"}, lambda: decided
    )
    results, costs = history()
    assert results == {"segmentation-1111-s0": Cut(1, "0010", 0.002), "segmentation-0010-s0": 0.4}
    assert set(costs) == {"segmentation-0010-s0"}


# 0001 is below 0010 and dearer, by more than two seeds can tell (one-sided p 0.06, 0.19 after Holm)
# and less than three (p 0.006, 0.018 after Holm), at the first rung as at full budget.
NEAR = {"w/o": (0.30, 0.0), "0010": (0.50, 1.0), "0001": (0.44, 2.0)}


def _near_curves(config):
    _planted_curves(config, NEAR)


def test_a_later_rounds_rung_pools_the_earlier_rounds_seeds(local_ray, tmp_path):
    """Round 2 gives each configuration one seed, which alone leaves a rung no variance to test on:
    the rung pools the earlier round's seeds at the same epoch, so 0001's third seed is cut at epoch
    1, where round 1's two seeds could not cut it, and the race settles it as stopped there."""
    sweep = _sweep("pareto-asha", CURVE_EPOCHS, eta=4, specs=NEAR)
    parts = search(sweep, None)
    epochs = _tune_race(sweep, str(tmp_path), "pooled", fn=_near_curves, parts=parts)
    assert {k: e for k, e in epochs.items() if k.startswith("segmentation-0001-")} == {
        "segmentation-0001-s0": CURVE_EPOCHS,
        "segmentation-0001-s1": CURVE_EPOCHS,
        "segmentation-0001-s2": 1,
    }, epochs
    standing = parts.race.plans()["segmentation"].standings[-1]["0001"]
    assert standing.stopped_at == 1 and standing.dominated_by == "0010", standing


def test_a_resumed_driver_pools_the_earlier_rounds_it_did_not_run(tmp_path):
    """A driver that resumes a race in round 2 never saw round 1's rungs: it reads them from the
    sweep's store, where the driver that ran them saved them."""
    from types import SimpleNamespace

    from attnlab.tune.schedulers import COHORT, ROUND, early_stopping
    from attnlab.tune.storage import SweepStore

    def trial(key: str, round_number: int):
        param = {"task": "segmentation", "trial_key": key, ROUND: round_number, COHORT: [key]}
        return SimpleNamespace(config={"trial": param})

    sweep = _sweep("pareto-asha", CURVE_EPOCHS, eta=4, specs=NEAR)
    first = early_stopping(sweep, SweepStore.from_folder(str(tmp_path)))
    ran = trial("segmentation-0001-s0", 1)
    first.scheduler_of(ran).rungs[1.0]["segmentation-0001-s0"] = ("0001", 0.23, 2.0)
    first._save_rungs(ran)
    resumed = early_stopping(sweep, SweepStore.from_folder(str(tmp_path)))
    round_two = resumed.scheduler_of(trial("segmentation-0001-s2", 2))
    assert round_two.earlier == {1.0: {"segmentation-0001-s0": ("0001", 0.23, 2.0)}}
    assert resumed.scheduler_of(trial("segmentation-0010-s2", 2)) is round_two
