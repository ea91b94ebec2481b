"""Early stopping by synchronous successive halving, ASHA's rule or one that keeps the accuracy-cost
front, decided the same way whatever order trials arrive in.

A rung (an epoch count: grace_period x reduction_factor^k, never a trial's final epoch) is decided
once its whole cohort is there: every trial of the task that can still reach it (its own budget
beyond the rung, not stopped at an earlier rung, not ended). A trial that gets there earlier is
paused (Tune saves its checkpoint and frees its slot for the next trial) and continues from that
checkpoint once the rung is decided, so the decisions depend on the rung's results only: not on the
machine's load, the concurrency or the order of the grid. The trial whose result completes the rung
is paused too when it is kept, so every kept trial continues from its checkpoint, alike (on a CPU a
resumed trial draws what an uninterrupted one would, pipeline/training/randomness.py; on a GPU
neither repeats bitwise, and its training must not depend on whether it had to wait).
Asynchronous ASHA decides each trial against whoever arrived before it; the same sweep could then
stop different trials in two runs (issue #36). The price is the pause: a paused trial restarts from
its checkpoint in a reused process (seconds for a one-worker trial; a multi-worker trial starts its
Ray Train workers again), and a rung's last trial keeps a slot idle while others wait for it.

At a decided rung each configuration (a task's spec), scored by its mean over the seeds there,
continues when it is

- in the top 1/eta of the rung's configurations by the metric (ASHA's rule), or
- (with a cost axis: pareto-asha) on the rung's front: no other configuration there is at least as
  accurate and at most as costly and better in one (non-dominated sorting: `pareto_front`, the
  rankings' own); with `tolerance`, a configuration must be more accurate by more than that share
  of the rung's metric range to dominate another (epsilon-dominance, Laumanns et al. 2002), since
  early rungs are noisy.

The front can hold every configuration (each a little cheaper than the next), which would save
nothing, so the front rule promotes at most `front_fraction` of the rung's configurations (at
least one), those not already kept by the metric, by NSGA-II's crowding distance (the extremes
first, then the points with the most room around them; ties by accuracy, cost, then name), as
MOASHA does. The cost is known before training: a trial reports its `cost/*` from the first epoch
on, so the front is exact from the first rung.

Every decision is recorded (`decisions`): the rule that kept a trial at each rung, or the rung,
metric and cost at which it was cut and the configuration that dominated it. Decisions are final:
a trial a resumed sweep reports again at a decided rung keeps its decision; one that arrives after
its rung was decided (a failed trial retried later) is decided against the whole rung as recorded.
A rung waits only for trials that can still arrive: when nothing runs and nothing is pending, it
is decided on the trials it has (`close_stalled`).
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from attnlab.pipeline.analysis.estimates import pareto_front
from attnlab.pipeline.analysis.racing import RaceRules, holm_dominance
from attnlab.pipeline.costs.axes import Unit

BUDGET = "budget"  # what a trial reports as its epoch budget (tune.ray_callbacks.ReportEpoch)


@dataclass
class Decision:
    """One trial at one rung: kept by "metric" or "front", or "stopped"."""

    trial_key: str
    configuration: str
    rung: int
    rule: str
    metric: float
    cost: float | None
    dominated_by: str | None = None  # a configuration at least as good in both and better in one
    dominated_by_trials: list[str] | None = None  # its trials at the rung
    dominated_by_point: tuple[float, float] | None = None  # its (metric, cost) there
    why: str = ""
    p_dominated: float | None = None  # the interval rule's Holm-adjusted p (a race's rungs)

    def describe(self, unit: Unit) -> str:
        """One line, costs in `unit` (GFLOPs, ms, ...)."""
        cost = "" if self.cost is None else f", {unit.show(self.cost)} {unit.label}"
        if self.rule != "stopped":
            return f"kept by the {self.rule} rule at epoch {self.rung} (score {self.metric:.4g}{cost})"
        why = self.why
        if self.dominated_by:
            score, their_cost = self.dominated_by_point
            trials = ", ".join(self.dominated_by_trials)
            their = f"score {score:.4g}" + (
                "" if their_cost is None else f", {unit.show(their_cost)} {unit.label}"
            )
            why = (
                f"below the top 1/eta and dominated by {self.dominated_by} ({trials}: {their})"
                if self.p_dominated is None
                else f"dominated with confidence by {self.dominated_by} ({trials}: {their}), p = "
                f"{self.p_dominated:.2g}"
            )
        return f"stopped at epoch {self.rung} (score {self.metric:.4g}{cost}): {why}"


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front (rows; columns are objectives):
    the sum over objectives of the gap between its two neighbours, normalised by the objective's
    range; the extremes of each objective get infinity."""
    n = len(points)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for column in points.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[0]] = distance[order[-1]] = math.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


Arrival = tuple  # (configuration, signed score, cost or None): a trial's result at a rung
ENDED = (Trial.TERMINATED, Trial.ERROR)


class ParetoASHA(FIFOScheduler):
    """One task's synchronous rungs. `cohort`: the task's trial keys (the sweep's grid), which a
    rung waits for; `cost_metric` None: the metric alone decides (attnlab's `asha` policy).
    `pauses(trial parameters)` False (a multi-worker trial: a Ray Train run does not stop cleanly
    when Tune pauses its trial; None: every trial pauses): the trial trains on while its rung waits,
    and stops at its next result if the rung cuts it; the decisions are the same, the epochs a cut
    trial trains past its rung are not. `intervals` (a race's round): the interval rule decides
    instead of the top 1/eta and the front (`_decide_on_intervals`), on the round's arrivals and
    `earlier`'s (rung -> the task's earlier rounds' arrivals there, final before this round began)."""

    def __init__(
        self,
        cost_metric: str | None,
        max_epochs: int,
        grace_period: int = 1,
        reduction_factor: float = 2.0,
        front_fraction: float = 0.25,
        tolerance: float = 0.0,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
        cohort: list[str] | tuple[str, ...] = (),
        pauses: Callable[[dict], bool] | None = None,
        intervals: RaceRules | None = None,
    ):
        super().__init__()
        self._metric, self._mode = metric, mode
        self.cost_metric, self.max_epochs, self.eta = cost_metric, max_epochs, reduction_factor
        self.front_fraction, self.tolerance, self.time_attr = front_fraction, tolerance, time_attr
        self.cohort, self.pauses, self.intervals = list(cohort), pauses, intervals
        milestones, m = [], float(grace_period)
        while m < max_epochs:  # never a rung at the final epoch: a trial that gets there ends itself
            milestones.append(m)
            m *= reduction_factor
        self.rungs: dict[float, dict[str, Arrival]] = {r: {} for r in milestones}  # ascending
        self.closed: set[float] = set()  # rungs decided
        self.budgets: dict[str, int] = {}  # trial key -> its epoch budget, once it reported
        self.gone: set[str] = set()  # trials Tune ended (a retried one reports again and is back)
        self.decisions: dict[str, list[Decision]] = {}
        self.earlier: dict[float, dict[str, Arrival]] = {}  # tune.schedulers sets it; not in the rung files

    def set_search_properties(self, metric, mode, **spec) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    # Tune's events

    def on_trial_add(self, tune_controller, trial):
        (self.gone.add if trial.status in ENDED else self.gone.discard)(_key(trial))

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        key = _key(trial)
        self.gone.discard(key)
        epoch, score = result.get(self.time_attr), result.get(self._metric)
        budget = int(result.get(BUDGET, self.max_epochs))  # the trial's own (a preset's when none is set)
        self.budgets[key] = budget
        if epoch is None or score is None or epoch >= budget:
            return TrialScheduler.CONTINUE
        # Every rung this result reaches is recorded, not only the first: a trial resumed from a
        # checkpoint past a rung its driver never saw arrives at all of them at once.
        waits = decided_now = False
        for rung, arrived in self.rungs.items():
            if rung > epoch or rung >= budget:
                break
            earlier = self.decision(key, rung)
            if earlier is None:
                sign = 1.0 if self._mode != "min" else -1.0
                arrived.setdefault(
                    key, (_configuration(trial), sign * float(score), _number(result.get(self.cost_metric)))
                )
                if rung in self.closed:  # late: decided against the rung as recorded
                    self._record(rung, [key])
                elif self._complete(rung):
                    self._close(rung, tune_controller, current=key)
                    decided_now = True
                else:
                    waits = True  # until its cohort is here
                    continue
                earlier = self.decision(key, rung)
            if earlier.rule == "stopped":
                return TrialScheduler.STOP
        # Kept at a rung decided by this very result, it goes on from its checkpoint as the others do.
        if self._pauses(trial) and (waits or decided_now):
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def _pauses(self, trial) -> bool:
        """Whether `trial` waits paused at a rung."""
        return self.pauses is None or self.pauses(trial.config["trial"])

    def on_trial_complete(self, tune_controller, trial, result):
        self._ended(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        # Tune tells a scheduler of every failure, the ones it retries too (it stops the trial, says
        # so here, then queues it again and adds it back): a trial it retries is not gone, and a
        # rung that waits for it must not be decided without it (found by the chaos soak: a trial
        # killed before its first rung, the rest of its round paused there).
        if trial.status == Trial.ERROR and trial.should_recover():
            return
        self._ended(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial):
        self._ended(tune_controller, trial)

    def _ended(self, tune_controller, trial) -> None:
        """A trial left: the rungs that waited only for it are decided now."""
        self.gone.add(_key(trial))
        for rung, arrived in self.rungs.items():
            if rung not in self.closed and arrived and self._complete(rung):
                self._close(rung, tune_controller)

    # Rungs

    def cut(self, key: str) -> Decision | None:
        """The decision that stopped trial `key` at a rung, if one did."""
        return next((d for d in self.decisions.get(key, []) if d.rule == "stopped"), None)

    def decision(self, key: str, rung: float) -> Decision | None:
        return next((d for d in self.decisions.get(key, []) if d.rung == int(rung)), None)

    def holds(self, trial) -> bool:
        """Whether `trial` waits at a rung not decided yet (it must not train on)."""
        key = _key(trial)
        return any(key in arrived and r not in self.closed for r, arrived in self.rungs.items())

    def _complete(self, rung: float) -> bool:
        """Every trial of the cohort that can still reach `rung` is there."""
        arrived = self.rungs[rung]
        for key in self.cohort:
            if key in arrived or key in self.gone or self.budgets.get(key, math.inf) <= rung:
                continue
            if self._cut_before(key, rung):
                continue
            return False
        return True

    def close_stalled(self, tune_controller) -> bool:
        """Decide the lowest undecided rung with trials waiting at it, although trials of its cohort
        are missing: called when nothing runs or is pending, so they can no longer arrive."""
        for rung, arrived in self.rungs.items():
            if rung not in self.closed and arrived:
                self._close(rung, tune_controller)
                return True
        return False

    def _close(self, rung: float, tune_controller, current: str | None = None) -> None:
        """Decide every trial at `rung`; stop the paused ones it cuts (`current`, the trial whose
        result completed the rung, is answered by its caller). Kept ones resume when Tune next
        chooses a trial to run."""
        self.closed.add(rung)
        self._record(rung, list(self.rungs[rung]))
        if tune_controller is None:
            return
        for trial in list(tune_controller.get_trials()):
            key = _key(trial)
            cut = (d := self.decision(key, rung)) is not None and d.rule == "stopped"
            if cut and key != current and (trial.status in (Trial.PAUSED, Trial.PENDING) or trial.is_saving):
                tune_controller.stop_trial(trial)

    def _cut_before(self, key: str, rung: float) -> bool:
        return any(d.rule == "stopped" and d.rung < rung for d in self.decisions.get(key, []))

    def _record(self, rung: float, keys: list[str]) -> None:
        decided = self._decide(rung)
        for key in keys:
            if key in decided and self.decision(key, rung) is None:
                self.decisions.setdefault(key, []).append(decided[key])

    def _decide(self, rung: float) -> dict[str, Decision]:
        """Every trial at `rung`, decided on the configurations' means there: a function of the
        rung's results alone."""
        arrived = {k: a for k, a in self.rungs[rung].items() if not self._cut_before(k, rung)}
        if self.intervals is not None:
            return self._decide_on_intervals(rung, arrived)
        by_config = _by_configuration(arrived)
        names = sorted(by_config)
        means = np.array([np.mean([s for s, _ in by_config[c]]) for c in names])
        costs = [[c for _, c in by_config[n] if c is not None] for n in names]
        cutoff = np.nanpercentile(means, (1 - 1 / self.eta) * 100)
        rules = {n: ("metric", "") for n, m in zip(names, means) if m >= cutoff}
        dominated: dict[str, int] = {}
        if self.cost_metric is None or any(not c for c in costs):  # the metric alone decides
            why = "below the rung's top 1/eta by the metric"
            rules.update({n: ("stopped", why) for n in names if n not in rules})
            points = None
        else:
            points = np.column_stack([means, [np.mean(c) for c in costs]])
            eps = self.tolerance * float(np.ptp(means))
            front = np.array(pareto_front(points, eps))
            for i in np.flatnonzero(~front):
                if names[i] not in rules:
                    better = [
                        j
                        for j in range(len(names))
                        if j != i and points[j, 0] >= points[i, 0] + eps and points[j, 1] <= points[i, 1]
                    ]
                    dominated[names[i]] = max(better, key=lambda j: (points[j, 0], -points[j, 1], names[j]))
                    rules[names[i]] = ("stopped", "")
            # On the front but below the metric's cut: promoted while the front rule's share lasts,
            # ranked by crowding distance.
            slots = max(1, math.floor(self.front_fraction * len(names)))
            members = list(np.flatnonzero(front))
            spread = dict(zip(members, crowding_distance(points[front])))
            extra = sorted(
                (i for i in members if names[i] not in rules),
                key=lambda i: (-spread[i], -points[i, 0], points[i, 1], names[i]),
            )
            why = (
                f"on the front, but the front rule promotes at most {slots} of the rung's "
                f"{len(names)} configurations, and others have more room around them"
            )
            for k, i in enumerate(extra):
                rules[names[i]] = ("front", "") if k < slots else ("stopped", why)
        out = {}
        for key, (config, _, _) in arrived.items():
            i = names.index(config)
            rule, why = rules[config]
            cost = float(np.mean(costs[i])) if costs[i] else None
            decision = Decision(key, config, int(rung), rule, float(means[i]), cost, why=why)
            if config in dominated:
                j = dominated[config]
                decision.dominated_by = names[j]
                decision.dominated_by_trials = sorted(k for k, a in arrived.items() if a[0] == names[j])
                decision.dominated_by_point = (float(points[j, 0]), float(points[j, 1]))
            out[key] = decision
        return out

    def _decide_on_intervals(self, rung: float, arrived: dict[str, Arrival]) -> dict[str, Decision]:
        """A race's rung: a configuration is cut only when another one, at most as costly, is more
        accurate with confidence on the seeds at the rung (the race's own test, racing.dominance_p:
        the variance pooled across the rung's configurations, one-sided t, Holm-adjusted across
        the round's configurations); the others are tied within their seeds' spread (as in PASHA)
        and go on, for the race to settle at full budget. The seeds are the round's and the earlier
        rounds' at the same rung: a later round's one new seed a configuration alone would leave
        no variance to test on. Without a cost (`asha`, or none reported) the metric alone."""
        pooled = {**self.earlier.get(rung, {}), **arrived}
        by_config = _by_configuration(pooled)
        names = sorted(by_config)
        values = {n: [s for s, _ in by_config[n]] for n in names}
        known = {n: [c for _, c in by_config[n] if c is not None] for n in names}
        with_cost = self.cost_metric is not None and all(known.values())
        costs = {n: float(np.mean(known[n])) if with_cost else 0.0 for n in names}
        deciding = sorted({config for config, _, _ in arrived.values()})
        tested = holm_dominance(values, costs, deciding, self.intervals.alpha)
        out = {}
        for key, (config, _, _) in arrived.items():
            p, by = tested[config]
            mean, cost = float(np.mean(values[config])), costs[config] if with_cost else None
            decision = Decision(key, config, int(rung), "interval", mean, cost, p_dominated=p)
            if by is not None and p < self.intervals.alpha:
                decision.rule = "stopped"
                decision.dominated_by = by
                decision.dominated_by_trials = sorted(k for k, a in pooled.items() if a[0] == by)
                decision.dominated_by_point = (float(np.mean(values[by])), costs[by] if with_cost else None)
            out[key] = decision
        return out

    def debug_string(self) -> str:
        kept = sum(d.rule == "front" for ds in self.decisions.values() for d in ds)
        cut = sum(d.rule == "stopped" for ds in self.decisions.values() for d in ds)
        axis = self.cost_metric or "the metric"
        return f"synchronous rungs on {axis}: {cut} stopped, {kept} promotions by the front rule"

    # Saved beside the sweep (tune.schedulers): Tune does not keep a scheduler's state.

    STATE = ("rungs", "closed", "budgets", "decisions")

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump({name: getattr(self, name) for name in self.STATE}, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        if "rungs" not in state:
            raise ValueError("not the state of attnlab's rungs (an older sweep's ASHA)")
        if "closed" not in state:  # attnlab before synchronous rungs: rung -> trial id -> (..., key)
            state["rungs"] = {
                r: {a[3]: a[:3] for a in arrived.values()} for r, arrived in state["rungs"].items()
            }
        for rung, arrived in state["rungs"].items():
            self.rungs.setdefault(rung, {}).update(arrived)
        self.rungs = dict(sorted(self.rungs.items()))
        self.closed |= set(state.get("closed", ()))
        self.budgets.update(state.get("budgets", {}))
        for key, decisions in state["decisions"].items():
            self.decisions.setdefault(key, []).extend(decisions)


def _by_configuration(arrived: dict[str, Arrival]) -> dict[str, list[tuple[float, float | None]]]:
    """A rung's arrivals grouped by configuration: its seeds' (signed score, cost)."""
    by_config: dict[str, list[tuple[float, float | None]]] = {}
    for config, score, cost in arrived.values():
        by_config.setdefault(config, []).append((score, cost))
    return by_config


def _configuration(trial) -> str:
    return trial.config["trial"]["attention"]


def _key(trial) -> str:
    return trial.config["trial"]["trial_key"]


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def cut_by(decisions: list[dict]) -> dict | None:
    """The decision (as saved, a dict) that stopped a trial at a rung, if one did."""
    return next((d for d in decisions if d["rule"] == "stopped"), None)


def kept_at(decisions: list[dict]) -> set[int]:
    """The rungs a trial's decisions (as saved, dicts) kept it at."""
    return {d["rung"] for d in decisions if d["rule"] != "stopped"}


def decisions_text(decisions: list[dict], unit: Unit) -> str:
    """A trial's decisions (as saved, dicts) in one line, for its MLflow tag and the live view."""
    return "; ".join(Decision(**d).describe(unit) for d in decisions)
