"""Racing seeds (`seeds: {policy: race}`): a Ray Tune Searcher that proposes each next (configuration,
seed) trial, so seeds go where the answer is still open.

Per task, round 1 gives every configuration `seeds.min` seeds. A round is decided once every one of
its trials has finished (or failed), so its outcome does not depend on the order they came in; then
pipeline/analysis/racing.py's `standings` settles configurations (dominated with confidence, or on
the front with P(front) >= 0.95), and each open one below `seeds.max` gets one more seed next round,
until none is open or the task's share of `seeds.budget` (trials) is spent. Under a budget that cannot cover
a round, the most open configurations (P(front) nearest 1/2) come first.

With early stopping on, each round's trials share rungs of their own (`schedulers.cohort_of`), where
the interval rule cuts only what is dominated with confidence (`ParetoASHA._decide_on_intervals`); a
cut trial (`Cut`) settles its configuration for the race.

`plan` replays the rounds from the finished trials' values alone. The Searcher keeps no state of its
own worth saving: on a restore (Tune saves a Searcher only with its periodic experiment checkpoint)
it reads the sweep's finished trials back from MLflow (`RaceHistory`), so the race continues exactly
where the values say, and it never proposes a trial Tune already holds or one that finished.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ray.tune.search import Searcher

from attnlab.pipeline.analysis.racing import RaceRules, Standing, standings, wanted
from attnlab.pipeline.costs.axes import COSTS

from .pareto_asha import BUDGET, cut_by
from .schedulers import COHORT, ROUND
from .sweep_config import SeedPolicy, SweepConfig

COST_PREFIX = "cost/"


@dataclass(frozen=True)
class Cut:
    """A trial early stopping cut at a rung of its round (the interval rule): its configuration is
    settled for the race, dominated there, and gets no more seeds."""

    epoch: int
    by: str | None
    p: float | None


Results = dict[str, "float | Cut | None"]  # trial key -> its full-budget score; a Cut; None: it failed
Costs = dict[str, dict[str, float]]  # trial key -> its cost metrics (cost/added_flops, cost/flops, ...)


@dataclass(frozen=True)
class Question:
    """A finding's comparison in one round: its verdict and the configurations that would get its
    next seed while it is open."""

    label: str  # "finding 1, 0011 vs 1100"
    verdict: str  # reproduced, contradicted, inconclusive
    reason: str
    members: frozenset[str]

    def describe(self) -> str:
        return f"{self.label}: {self.verdict} ({self.reason})"


# What a round asks of the findings: (the finished trials' configurations, seeds, scores and costs)
# -> each comparison with its verdict. tune/race.py's `FindingQuestions` asks `attnlab findings`.
Questions = Callable[[list[tuple[str, int, float, dict[str, float]]]], list[Question]]


@dataclass
class RaceState:
    """One task's race as its finished trials have it."""

    rounds: list[list[str]] = field(default_factory=list)  # trial keys given in each round
    standings: list[dict[str, Standing]] = field(default_factory=list)  # after each decided round
    questions: list[list[Question]] = field(default_factory=list)  # the findings after each round
    proposals: list[str] = field(default_factory=list)  # the current round's trials not yet done
    done: bool = False  # nothing is open, or no seed or budget is left

    @property
    def spent(self) -> int:
        return sum(map(len, self.rounds))

    @property
    def latest(self) -> dict[str, Standing]:
        return self.standings[-1] if self.standings else {}


def rules_of(seeds: SeedPolicy) -> RaceRules:
    return RaceRules(min_seeds=seeds.min, max_seeds=seeds.max)


def plan(
    configs: dict[str, list[str]],
    results: Results,
    costs: Costs,
    seeds: SeedPolicy,
    cost_key: str = COSTS["added_flops"],
    questions: Questions | None = None,
    memo: dict | None = None,
) -> RaceState:
    """The race of one task's `configs` (configuration -> its trial keys, in seed order) given the
    `results` and `costs` of the trials that ended: a pure function of them. The front decides on
    `cost_key`; `questions`, where given, keep the findings' open comparisons racing too. `memo`
    keeps each decided round's tests (a finished trial's result never changes), so replaying the
    race after every trial costs the new round's tests only."""
    memo = {} if memo is None else memo
    rules, state = rules_of(seeds), RaceState()
    budget = seeds.budget or seeds.max * len(configs)
    given, settled = dict.fromkeys(configs, 0), {}
    answered: dict[str, Question] = {}  # comparisons decided in an earlier round, as they were
    targets, order = dict.fromkeys(configs, seeds.min), sorted(configs)
    while True:
        keys: list[str] = []
        for config in order:
            room = budget - state.spent - len(keys)
            take = configs[config][given[config] : targets[config]][: max(room, 0)]
            keys += take
            given[config] += len(take)
        if not keys:
            state.done = True
            return state
        state.rounds.append(keys)
        state.proposals = [k for k in keys if k not in results]
        if state.proposals:
            return state
        given_keys = {c: configs[c][: given[c]] for c in configs}
        ran = {c: [k for k in ks if _scored(results[k])] for c, ks in given_keys.items()}
        for c, ks in given_keys.items():
            cut = next((results[k] for k in ks if isinstance(results[k], Cut)), None)
            if cut is not None and c not in settled:
                settled[c] = Standing(c, len(ran[c]), "dominated", None, cut.p, cut.by, stopped_at=cut.epoch)
        decided = (tuple((c, tuple(ks)) for c, ks in sorted(ran.items())), tuple(sorted(settled)), cost_key)
        if decided not in memo:
            memo[decided] = _decide(configs, ran, results, costs, cost_key, settled, rules, questions)
        standing, asked = memo[decided]
        state.standings.append(standing)
        settled = {c: s for c, s in standing.items() if s.settled}
        # Settled is final for a comparison too: once reproduced or contradicted, it stays so and
        # gets no more seeds.
        asked = [answered.get(q.label, q) for q in asked]
        for q in asked:
            if q.verdict != "inconclusive" and q.label not in answered:
                answered[q.label] = replace(q, reason=f"{q.reason}; settled in round {len(state.standings)}")
        asked = [answered.get(q.label, q) for q in asked]
        state.questions.append(asked)
        targets = {c: given[c] + 1 for c in wanted(standing, rules)}
        stopped = {c for c, s in standing.items() if s.stopped_at is not None}
        for q in asked:
            if q.label not in answered and q.members:
                # Every code of its design gets the same next seed: the laggards catch up to it (not
                # one early stopping cut: it is settled for the race, and the comparison stays open).
                level = max(given[c] for c in q.members) + 1
                targets.update({c: max(targets.get(c, 0), level) for c in q.members - stopped})
        targets = {c: min(t, len(configs[c])) for c, t in targets.items() if c in configs}
        order = sorted(
            targets, key=lambda c: (c not in standing or standing[c].settled, _openness(standing.get(c)), c)
        )
        targets = {c: targets.get(c, given[c]) for c in configs}


def _decide(configs, ran, results, costs, cost_key, settled, rules, questions):
    """One round's standings and findings, on the trials that ran (`ran`: configuration -> its
    finished trial keys)."""
    values = {c: [results[k] for k in ks] for c, ks in ran.items() if ks}  # every seed failed: out
    cost = {c: statistics.fmean(costs[k][cost_key] for k in ran[c]) for c in values}
    standing = standings(values, cost, settled, rules) if values else {}
    standing.update({c: s for c, s in settled.items() if c not in standing})  # cut before any value
    finished = [(c, configs[c].index(k), results[k], costs[k]) for c in ran for k in ran[c]]
    return standing, questions(finished) if questions else []


def _scored(result) -> bool:
    """A trial that ended at its budget with a score (not failed, not cut)."""
    return result is not None and not isinstance(result, Cut)


def _openness(standing: Standing | None) -> float:
    """How far from a coin toss its P(front) is: the most open configuration first."""
    p_front = None if standing is None else standing.p_front
    return abs((0.5 if p_front is None else p_front) - 0.5)


@dataclass(frozen=True)
class FindingQuestions:
    """The findings' comparisons of one task, judged as `attnlab findings` judges them, on a
    round's finished trials (their seed: the position in the race's seed order, which every
    configuration of a grid entry shares, so pairs and designs line up)."""

    task: str

    def __call__(self, finished: list[tuple[str, int, float, dict[str, float]]]) -> list[Question]:
        from types import SimpleNamespace

        from attnlab.pipeline.analysis.findings import comparison_needs
        from attnlab.pipeline.tasks.registry import TASKS
        from attnlab.pipeline.tracking import tags

        metric = TASKS[self.task].metric
        runs = [
            SimpleNamespace(
                info=SimpleNamespace(status="FINISHED"),
                data=SimpleNamespace(
                    tags={tags.TASK: self.task, tags.ATTENTION: spec, tags.SEED: str(seed)},
                    metrics={metric: value, **cost},
                ),
            )
            for spec, seed, value, cost in finished
        ]
        specs = sorted({spec for spec, *_ in finished})
        return [
            Question(f"finding {v.finding}, {v.comparison}", v.verdict, v.reason, frozenset(members))
            for v, members in comparison_needs(runs, {self.task: specs})
        ]


@dataclass(frozen=True)
class RaceHistory:
    """Reads a sweep's finished trials back from MLflow: the values a restored race replays."""

    uri: str
    experiment: str
    sweep: str
    cost_key: str
    metrics: dict[str, str]  # task -> the metric its trials report as `score`
    decisions: Callable[[], dict[str, list[dict]]] | None = None  # early stopping's (SweepStore.decisions)

    def __call__(self) -> tuple[Results, Costs]:
        from attnlab.pipeline.analysis.ranking import full_budget
        from attnlab.pipeline.tracking import tags
        from attnlab.pipeline.tracking.runs import stopped_early
        from attnlab.pipeline.tracking.store import find_runs

        results, costs = {}, {}
        decided = self.decisions() if self.decisions else {}
        for run in find_runs(self.uri, self.experiment, {tags.KIND: tags.KIND_TRIAL, tags.SWEEP: self.sweep}):
            key, metrics = run.data.tags.get(tags.TRIAL), run.data.metrics
            cut = cut_by(decided.get(key, []))
            if cut is not None and stopped_early(run):
                results[key] = Cut(cut["rung"], cut.get("dominated_by"), cut.get("p_dominated"))
                continue
            metric = self.metrics.get(run.data.tags.get(tags.TASK, ""))
            if key and full_budget(run) and metric in metrics and self.cost_key in metrics:
                results[key] = float(metrics[metric])
                costs[key] = {k: float(v) for k, v in metrics.items() if k.startswith(COST_PREFIX)}
        return results, costs


class RaceSearcher(Searcher):
    """Proposes the race's trials to Tune, at most `limit` training at once (the scheduler's count:
    it sees every trial Tune holds, restored ones too). `told(task, round, standing, questions)` hears each
    decided round once per driver (the sweep tags the trials and says it)."""

    def __init__(
        self,
        sweep: SweepConfig,
        scheduler,
        limit: int | None,
        history: Callable[[], tuple[Results, Costs]] | None = None,
        told: Callable[[str, int, dict[str, Standing], list[Question]], None] | None = None,
    ):
        super().__init__(metric="score", mode="max")
        races = sweep.race_configurations()
        self._configs = {
            task: {c: [t.trial_key for t in ts] for c, ts in cs.items()} for task, cs in races.items()
        }
        self._params = {t.trial_key: t.param() for cs in races.values() for ts in cs.values() for t in ts}
        # Each task races on its own share of the budget.
        self._seeds = {
            task: sweep.seeds.model_copy(update={"budget": sweep.race_budget(task)}) for task in races
        }
        self._cost_key = COSTS[sweep.early_stopping.cost]
        self._questions = {task: FindingQuestions(task) if sweep.seeds.findings else None for task in races}
        self._scheduler, self._limit, self._history, self._told = scheduler, limit, history, told
        self._results: Results | None = None
        self._costs: Costs = {}
        self._plans: dict[str, RaceState] = {}
        self._memo: dict = {}  # each decided round's tests (`plan`)
        self._announced: dict[str, int] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the race's trials are the sweep's; Tune's param_space is empty

    def plans(self) -> dict[str, RaceState]:
        """Each task's race as the values known now have it."""
        if self._results is None:
            self._results, self._costs = self._history() if self._history else ({}, {})
        for task, configs in self._configs.items():
            if task not in self._plans:
                self._plans[task] = plan(
                    configs,
                    self._results,
                    self._costs,
                    self._seeds[task],
                    self._cost_key,
                    self._questions[task],
                    self._memo,
                )
                self._announce(task, self._plans[task])
        return self._plans

    def finished(self) -> bool:
        return all(state.done for state in self.plans().values())

    def suggest(self, trial_id: str):
        plans = self.plans()
        if all(state.done for state in plans.values()):
            return Searcher.FINISHED
        if self._limit and self._scheduler.live_count() >= self._limit:
            return None
        held = self._scheduler.known_keys()
        for task in sorted(plans):
            for key in plans[task].proposals:
                if key not in held and key not in self._results:
                    # Its round and the round's trials: early stopping decides a round's rungs alone.
                    cohort = {ROUND: len(plans[task].rounds), COHORT: plans[task].rounds[-1]}
                    return {"trial": {**self._params[key], **cohort}}
        return None  # the round's trials are all out: its decision waits for them

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self._scheduler.key_of(trial_id)
        if key is None or key not in self._params:
            return
        self.plans()
        cut = self._scheduler.cut(key)
        if cut is not None:
            self._results[key] = Cut(cut.rung, cut.dominated_by, cut.p_dominated)
        elif error:
            self._results[key] = None
        elif result and result.get("score") is not None and result.get("epoch", 0) >= result.get(BUDGET, 0):
            self._results[key] = float(result["score"])
            self._costs[key] = {k: float(v) for k, v in result.items() if k.startswith(COST_PREFIX)}
        else:
            return  # stopped before its budget (the driver is stopping): a resume trains it on
        self._plans.pop(self._params[key]["task"], None)

    def _announce(self, task: str, state: RaceState) -> None:
        for number in range(self._announced.get(task, 0), len(state.standings)):
            if self._told is not None:
                self._told(task, number + 1, state.standings[number], state.questions[number])
        self._announced[task] = len(state.standings)

    # Nothing to save: a restored race is rebuilt from MLflow (`RaceHistory`).
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        pass

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        pass
