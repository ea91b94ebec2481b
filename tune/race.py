"""Racing seeds (`seeds: {policy: race}`): a Ray Tune Searcher that proposes each next (configuration,
seed) trial, so seeds go where the answer is still open.

Per task, round 1 gives every configuration `seeds.min` seeds. A round is decided once every one of
its trials has finished (or failed), so its outcome does not depend on the order they came in; then
pipeline/analysis/racing.py's `standings` settles configurations (dominated with confidence, or on
the front with P(front) >= 0.95), and each open one below `seeds.max` gets one more seed next round,
until none is open or the task's `seeds.budget` (trials) is spent. Under a budget that cannot cover
a round, the most open configurations (P(front) nearest 1/2) come first.

`plan` replays the rounds from the finished trials' values alone. The Searcher keeps no state of its
own worth saving: on a restore (Tune saves a Searcher only with its periodic experiment checkpoint)
it reads the sweep's finished trials back from MLflow (`RaceHistory`), so the race continues exactly
where the values say, and it never proposes a trial Tune already holds or one that finished.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from ray.tune.search import Searcher

from attnlab.pipeline.analysis.racing import RaceRules, Standing, standings, wanted
from attnlab.pipeline.costs.axes import COSTS

from .pareto_asha import BUDGET
from .sweep_config import SeedPolicy, SweepConfig

Results = dict[str, float | None]  # trial key -> its full-budget score; None: it failed


@dataclass
class RaceState:
    """One task's race as its finished trials have it."""

    rounds: list[list[str]] = field(default_factory=list)  # trial keys given in each round
    standings: list[dict[str, Standing]] = field(default_factory=list)  # after each decided round
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
    configs: dict[str, list[str]], results: Results, costs: dict[str, float], seeds: SeedPolicy
) -> RaceState:
    """The race of one task's `configs` (configuration -> its trial keys, in seed order) given the
    `results` and `costs` (trial key -> its cost) of the trials that ended: a pure function of them."""
    rules, state = rules_of(seeds), RaceState()
    budget = seeds.budget or seeds.max * len(configs)
    given, settled = dict.fromkeys(configs, 0), {}
    order, new = sorted(configs), seeds.min
    while True:
        keys: list[str] = []
        for config in order:
            room = budget - state.spent - len(keys)
            take = configs[config][given[config] : given[config] + new][: max(room, 0)]
            keys += take
            given[config] += len(take)
        if not keys:
            state.done = True
            return state
        state.rounds.append(keys)
        state.proposals = [k for k in keys if k not in results]
        if state.proposals:
            return state
        values = {c: [results[k] for k in configs[c][: given[c]] if results[k] is not None] for c in configs}
        values = {c: v for c, v in values.items() if v}  # a configuration whose every seed failed is out
        cost = {c: statistics.fmean(costs[k] for k in configs[c][: given[c]] if k in costs) for c in values}
        standing = standings(values, cost, settled, rules) if values else {}
        state.standings.append(standing)
        settled = {c: s for c, s in standing.items() if s.settled}
        order = sorted(wanted(standing, rules), key=lambda c: (_openness(standing[c]), c))
        new = 1


def _openness(standing: Standing) -> float:
    """How far from a coin toss its P(front) is: the most open configuration first."""
    return abs((0.5 if standing.p_front is None else standing.p_front) - 0.5)


@dataclass(frozen=True)
class RaceHistory:
    """Reads a sweep's finished trials back from MLflow: the values a restored race replays."""

    uri: str
    experiment: str
    sweep: str
    cost_key: str
    metrics: dict[str, str]  # task -> the metric its trials report as `score`

    def __call__(self) -> tuple[Results, dict[str, float]]:
        from attnlab.pipeline.analysis.ranking import full_budget
        from attnlab.pipeline.tracking import tags
        from attnlab.pipeline.tracking.store import find_runs

        results, costs = {}, {}
        for run in find_runs(self.uri, self.experiment, {tags.KIND: tags.KIND_TRIAL, tags.SWEEP: self.sweep}):
            key, metrics = run.data.tags.get(tags.TRIAL), run.data.metrics
            metric = self.metrics.get(run.data.tags.get(tags.TASK, ""))
            if key and full_budget(run) and metric in metrics and self.cost_key in metrics:
                results[key], costs[key] = float(metrics[metric]), float(metrics[self.cost_key])
        return results, costs


class RaceSearcher(Searcher):
    """Proposes the race's trials to Tune, at most `limit` training at once (the scheduler's count:
    it sees every trial Tune holds, restored ones too). `told(task, round, standing)` hears each
    decided round once per driver (the sweep tags the trials and says it)."""

    def __init__(
        self,
        sweep: SweepConfig,
        scheduler,
        limit: int | None,
        history: Callable[[], tuple[Results, dict[str, float]]] | None = None,
        told: Callable[[str, int, dict[str, Standing]], None] | None = None,
    ):
        super().__init__(metric="score", mode="max")
        races = sweep.race_configurations()
        self._configs = {
            task: {c: [t.trial_key for t in ts] for c, ts in cs.items()} for task, cs in races.items()
        }
        self._params = {t.trial_key: t.param() for cs in races.values() for ts in cs.values() for t in ts}
        self._seeds, self._cost_key = sweep.seeds, COSTS[sweep.early_stopping.cost]
        self._scheduler, self._limit, self._history, self._told = scheduler, limit, history, told
        self._results: Results | None = None
        self._costs: dict[str, float] = {}
        self._plans: dict[str, RaceState] = {}
        self._announced: dict[str, int] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the race's trials are the sweep's; Tune's param_space is empty

    def plans(self) -> dict[str, RaceState]:
        """Each task's race as the values known now have it."""
        if self._results is None:
            self._results, self._costs = self._history() if self._history else ({}, {})
        for task, configs in self._configs.items():
            if task not in self._plans:
                self._plans[task] = plan(configs, self._results, self._costs, self._seeds)
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
                    return {"trial": self._params[key]}
        return None  # the round's trials are all out: its decision waits for them

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        key = self._scheduler.key_of(trial_id)
        if key is None or key not in self._params:
            return
        self.plans()
        if error:
            self._results[key] = None
        elif result and result.get("score") is not None and result.get("epoch", 0) >= result.get(BUDGET, 0):
            self._results[key] = float(result["score"])
            if self._cost_key in result:
                self._costs[key] = float(result[self._cost_key])
        else:
            return  # stopped before its budget (the driver is stopping): a resume trains it on
        self._plans.pop(self._params[key]["task"], None)

    def _announce(self, task: str, state: RaceState) -> None:
        for number in range(self._announced.get(task, 0), len(state.standings)):
            if self._told is not None:
                self._told(task, number + 1, state.standings[number])
        self._announced[task] = len(state.standings)

    # Nothing to save: a restored race is rebuilt from MLflow (`RaceHistory`).
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        pass

    def restore_from_dir(self, checkpoint_dir: str) -> None:
        pass
