"""Cost-aware early stopping: asynchronous successive halving that keeps the accuracy-cost front.

ASHA promotes, at each rung, the top 1/eta of the trials by the metric alone, so a cheap
mechanism a little less accurate than an expensive one is cut at its first rung although it may
be the point of the Pareto front a user looks for. Here a trial continues past a rung when its
configuration is

- in the top 1/eta of the rung's configurations by the metric (ASHA's rule), or
- on the rung's front: no other configuration there is at least as accurate and at most as costly
  and better in one (non-dominated sorting: `pareto_front`, the rankings' own); with `tolerance`, a
  configuration must be more accurate by more than that share of the rung's metric range to
  dominate another (epsilon-dominance, Laumanns et al. 2002), since early rungs are noisy.

The front can hold every configuration (each a little cheaper than the next), which would save
nothing, so the front rule promotes at most `front_fraction` of the rung's configurations (at
least one), those not already kept by the metric, by NSGA-II's crowding distance (the extremes
first, then the points with the most room around them), as MOASHA does. The cost is known before
training: a trial reports its `cost/*` from the first epoch on (measured by the code that logs
them to MLflow), so the front is exact from the first rung. Like ASHA in attnlab it never cuts a
trial at its final epoch.

Seeds: a configuration is a task's spec; a trial is decided on its configuration's mean at the
rung over the seeds that reached it so far (a later seed sees the earlier ones), so one unlucky
seed decides alone only while it is the only one there. Every decision is recorded (`decisions`):
the rule that kept a trial at each rung, or the rung, metric and cost at which it was cut and the
configuration that dominated it. A trial a resumed sweep reports again at a rung it was decided at
keeps that decision (and counts once there).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from attnlab.pipeline.analysis.estimates import pareto_front
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

    def describe(self, unit: Unit) -> str:
        """One line, costs in `unit` (GFLOPs, ms, ...)."""
        cost = "" if self.cost is None else f", {unit.show(self.cost)} {unit.label}"
        if self.rule != "stopped":
            return f"kept by the {self.rule} rule at epoch {self.rung} (score {self.metric:.4g}{cost})"
        why = self.why
        if self.dominated_by:
            score, their_cost = self.dominated_by_point
            trials = ", ".join(self.dominated_by_trials)
            why = (
                f"below the top 1/eta and dominated by {self.dominated_by} ({trials}: "
                f"score {score:.4g}, {unit.show(their_cost)} {unit.label})"
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


class ParetoASHA(FIFOScheduler):
    def __init__(
        self,
        cost_metric: str,
        max_epochs: int,
        grace_period: int = 1,
        reduction_factor: float = 2.0,
        front_fraction: float = 0.25,
        tolerance: float = 0.0,
        time_attr: str = "epoch",
        metric: str | None = None,
        mode: str | None = None,
    ):
        super().__init__()
        self._metric, self._mode = metric, mode
        self.cost_metric, self.max_epochs, self.eta = cost_metric, max_epochs, reduction_factor
        self.front_fraction, self.tolerance, self.time_attr = front_fraction, tolerance, time_attr
        milestones, m = [], float(grace_period)
        while m < max_epochs:  # never a rung at the final epoch: a trial that gets there ends itself
            milestones.append(m)
            m *= reduction_factor
        # rung -> trial id -> (configuration, metric, cost, trial key); descending, as ASHA walks them
        self.rungs: dict[float, dict[str, tuple[str, float, float | None, str]]] = {
            r: {} for r in sorted(milestones, reverse=True)
        }
        self.decisions: dict[str, list[Decision]] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        if (self._metric and metric) or (self._mode and mode):
            return False
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch, score = result.get(self.time_attr), result.get(self._metric)
        budget = result.get(BUDGET, self.max_epochs)  # the trial's own (a preset's when none is set)
        if epoch is None or score is None or epoch >= budget:
            return TrialScheduler.CONTINUE
        for rung, recorded in self.rungs.items():
            if epoch < rung or rung >= budget or trial.trial_id in recorded:
                continue
            earlier = next((d for d in self.decisions.get(_key(trial), []) if d.rung == int(rung)), None)
            if earlier is not None:  # decided under an earlier driver: a resumed trial keeps its decision
                return TrialScheduler.STOP if earlier.rule == "stopped" else TrialScheduler.CONTINUE
            sign = 1.0 if self._mode != "min" else -1.0
            cost = result.get(self.cost_metric)
            recorded[trial.trial_id] = (
                _configuration(trial),
                sign * float(score),
                _number(cost),
                _key(trial),
            )
            decision = self._decide(trial, rung, recorded)
            self.decisions.setdefault(_key(trial), []).append(decision)
            return TrialScheduler.STOP if decision.rule == "stopped" else TrialScheduler.CONTINUE
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result):
        pass

    def _decide(self, trial, rung: float, recorded: dict) -> Decision:
        mine = _configuration(trial)
        by_config: dict[str, list[tuple[float, float | None]]] = {}
        for config, score, cost, _ in recorded.values():
            by_config.setdefault(config, []).append((score, cost))
        names = sorted(by_config)
        means = np.array([np.mean([s for s, _ in by_config[c]]) for c in names])
        costs = [[c for _, c in by_config[n] if c is not None] for n in names]
        me = names.index(mine)
        score, cost = float(means[me]), (float(np.mean(costs[me])) if costs[me] else None)
        decision = Decision(_key(trial), mine, int(rung), "metric", score, cost)
        cutoff = np.nanpercentile(means, (1 - 1 / self.eta) * 100)
        if means[me] >= cutoff:
            return decision
        if any(not c for c in costs):  # a configuration without a cost: the metric alone decides
            decision.rule, decision.why = "stopped", "below the rung's top 1/eta by the metric"
            return decision
        points = np.column_stack([means, [np.mean(c) for c in costs]])
        eps = self.tolerance * float(np.ptp(means))
        front = np.array(pareto_front(points, eps))
        if not front[me]:
            better = [
                i
                for i in range(len(names))
                if points[i, 0] >= points[me, 0] + eps and points[i, 1] <= points[me, 1] and i != me
            ]
            best = max(better, key=lambda i: (points[i, 0], -points[i, 1]))
            decision.rule, decision.dominated_by = "stopped", names[best]
            decision.dominated_by_trials = sorted(k for c, _, _, k in recorded.values() if c == names[best])
            decision.dominated_by_point = (float(points[best, 0]), float(points[best, 1]))
            return decision
        # On the front: promoted while the rung's share for the front rule lasts, the candidates
        # (front configurations the metric does not keep) ranked by crowding distance.
        slots = max(1, math.floor(self.front_fraction * len(names)))
        used = {d_config for d_config in self._front_kept(rung) if d_config != mine}
        extra = [i for i in np.flatnonzero(front) if means[i] < cutoff and names[i] not in used]
        spread = crowding_distance(points[front])
        where = {i: k for k, i in enumerate(np.flatnonzero(front))}
        ranked = sorted(extra, key=lambda i: (-spread[where[i]], -points[i, 0], points[i, 1]))
        if me in ranked[: max(0, slots - len(used))]:
            decision.rule = "front"
            return decision
        decision.rule = "stopped"
        decision.why = (
            f"on the front, but the front rule promotes at most {slots} of the rung's "
            f"{len(names)} configurations ({len(used)} already), and others have more room around them"
        )
        return decision

    def _front_kept(self, rung: float) -> set[str]:
        """Configurations the front rule promoted at `rung` so far."""
        return {
            d.configuration
            for ds in self.decisions.values()
            for d in ds
            if d.rung == int(rung) and d.rule == "front"
        }

    def debug_string(self) -> str:
        kept = sum(d.rule == "front" for ds in self.decisions.values() for d in ds)
        cut = sum(d.rule == "stopped" for ds in self.decisions.values() for d in ds)
        return f"pareto-asha on {self.cost_metric}: {cut} stopped, {kept} promotions by the front rule"

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def _configuration(trial) -> str:
    return trial.config["trial"]["attention"]


def _key(trial) -> str:
    return trial.config["trial"]["trial_key"]


def _number(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def decisions_text(decisions: list[dict], unit: Unit) -> str:
    """A trial's decisions (as saved, dicts) in one line, for its MLflow tag and the live view."""
    return "; ".join(Decision(**d).describe(unit) for d in decisions)
