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
from attnlab.tune.race import FindingQuestions, Question, plan
from attnlab.tune.sweep_config import SweepConfig

# seed -> its offset from the configuration's mean (sd about 0.014, as CamVid's seeds spread)
OFFSET = [0.02, -0.02, 0.01, -0.01, 0.015, -0.015, 0.005, -0.005]
# spec -> (mean score, added FLOPs): 1111 costs most and is far below 0010; 0100 is 0010's near tie
PLANTED = {"w/o": (0.30, 0.0), "0010": (0.50, 1.0), "0100": (0.49, 5.0), "1111": (0.20, 10.0)}


def _sweep(**seeds) -> SweepConfig:
    return validate(
        SweepConfig,
        {
            "name": "race",
            "max_epochs": 1,
            "grid": [{"task": "segmentation", "specs": list(PLANTED), "preset": "tiny"}],
            "seeds": {"policy": "race", "min": 2, "max": 6, "findings": False, **seeds},
            "early_stopping": {"policy": "none"},
            "max_concurrent_trials": 2,
        },
        "sweep",
    )


def _value(key: str) -> tuple[float, float]:
    spec = next(s for s in PLANTED if key.startswith(f"segmentation-{s.replace('/', '')}-s"))
    mean, cost = PLANTED[spec]
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
    with pytest.raises(ConfigError, match="early_stopping.policy: none"):
        validate(
            SweepConfig,
            {**_sweep().model_dump(mode="json"), "early_stopping": {"policy": "asha"}},
            "sweep",
        )
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


def _tune_race(sweep, storage, name, history=None) -> list[str]:
    """The trial keys Tune ran, in the order they started, with the real race Searcher."""
    parts = search(sweep, None, history)
    tuner = tune.Tuner(
        tune.with_resources(_planted, {"cpu": 1}),
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
    return [r.config["trial"]["trial_key"] for r in results]


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
    assert sorted(rest + done) == sorted(results)
