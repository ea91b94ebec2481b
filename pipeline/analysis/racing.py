"""Racing: which configurations still need seeds, decided from the seeds they have.

F-Race and irace (Birattari et al. 2002; López-Ibáñez et al. 2016) give the surviving candidates more
instances and drop one as soon as a test says it is worse; S-Race (Zhang et al. 2013) does it for
several objectives. Here the objectives are accuracy and a cost, and a configuration is **settled**

- dominated, when a one-sided t-test says another configuration at most as costly is more accurate:
  the difference of the two means over the residual variance pooled across the task's configurations
  (df = runs - configurations; two seeds of their own give one degree of freedom, pooled ones let a
  clearly dominated configuration stop early), the smallest p over its possible dominators, Holm-
  adjusted across the configurations decided in the round (statsmodels), at `alpha`;
- on the front, when P(front) (pipeline/analysis/estimates.py) is at least `sure`, from `min_front`
  seeds on (a bootstrap over fewer seeds is too narrow to trust).

Settled is final, as in F-Race: a later round never reopens it, so the repeated looks at the data
add error; `benchmarks/racing.py` measures how much on replayed seeds. An open configuration gets one
more seed per round until `max_seeds`. Every function here is a pure function of the seeds' values,
so a race rebuilt from finished runs decides exactly as it did (the order the runs came in does not
enter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t

from attnlab.pipeline.analysis.estimates import p_front, pooled_variance


@dataclass(frozen=True)
class RaceRules:
    min_seeds: int = 2
    max_seeds: int = 8
    alpha: float = 0.05  # the dominance test's level, Holm-adjusted within a round
    sure: float = 0.95  # P(front) that settles a configuration on the front
    min_front: int = 4  # seeds before P(front) may settle one


@dataclass(frozen=True)
class Standing:
    """Where one configuration stands after a round."""

    configuration: str
    seeds: int
    state: str  # "dominated", "front" (both settled) or "open"
    p_front: float | None = None
    p_dominated: float | None = None  # Holm-adjusted p of the dominance test
    dominated_by: str | None = None
    stopped_at: int | None = None  # the epoch early stopping cut it at (a race's rung), if it did

    @property
    def settled(self) -> bool:
        return self.state != "open"

    def describe(self) -> str:
        """One line: "settled: dominated by 0010, p = 0.01", "settled: on the front, P = 0.97",
        "open at 8 seeds"."""
        if self.state == "dominated" and self.stopped_at is not None:
            p = "" if self.p_dominated is None else f", p = {self.p_dominated:.2g}"
            return f"settled: stopped at epoch {self.stopped_at}, dominated by {self.dominated_by}{p}"
        if self.state == "dominated":
            return f"settled: dominated by {self.dominated_by}, p = {self.p_dominated:.2g}"
        if self.state == "front":
            return f"settled: on the front, P = {self.p_front:.2f}"
        return f"open at {self.seeds} seed{'s' if self.seeds != 1 else ''}"


def dominance_p(
    values: dict[str, list[float]], costs: dict[str, float]
) -> dict[str, tuple[float, str | None]]:
    """Per configuration, (the smallest one-sided p that a configuration at most as costly is more
    accurate, that configuration), unadjusted; (1.0, None) where nothing is as cheap or no variance
    can be pooled."""
    names = sorted(values)
    values = {n: sorted(values[n]) for n in names}  # the seeds' order carries nothing
    variance, df = pooled_variance([values[n] for n in names])
    out: dict[str, tuple[float, str | None]] = {}
    for me in names:
        best = (1.0, None)
        for other in names if df > 0 and variance > 0 else ():
            if other == me or costs[other] > costs[me]:
                continue
            gap = np.mean(values[other]) - np.mean(values[me])
            se = math.sqrt(variance * (1 / len(values[me]) + 1 / len(values[other])))
            p = float(t.sf(gap / se, df))
            best = min(best, (p, other), key=lambda x: (x[0], x[1] or ""))
        out[me] = best
    return out


def holm_dominance(
    values: dict[str, list[float]], costs: dict[str, float], deciding: list[str], alpha: float
) -> dict[str, tuple[float, str | None]]:
    """Per configuration in `deciding`, (its `dominance_p`, Holm-adjusted across `deciding` at
    `alpha`, the configuration that dominates it): the test a race's rounds and its rungs share."""
    from statsmodels.stats.multitest import multipletests  # 0.6 s of imports: not at every trial's start

    if not deciding:
        return {}
    tests = dominance_p(values, costs)
    adjusted = multipletests([tests[n][0] for n in deciding], alpha, "holm")[1]
    return {n: (float(p), tests[n][1]) for n, p in zip(deciding, adjusted)}


def standings(
    values: dict[str, list[float]], costs: dict[str, float], settled: dict[str, Standing], rules: RaceRules
) -> dict[str, Standing]:
    """Every configuration after a round: those in `settled` as they were, the others decided on all
    the seeds now in `values` (configuration -> its seeds' metric)."""
    names = sorted(values)
    chances = dict(
        zip(names, p_front([values[n] for n in names], [costs[n] for n in names]) or [None] * len(names))
    )
    tested = holm_dominance(values, costs, [n for n in names if n not in settled], rules.alpha)
    out = {}
    for name in names:
        if name in settled:
            out[name] = settled[name]
            continue
        seeds, chance = len(values[name]), chances[name]
        p, by = tested[name]
        if p < rules.alpha:
            out[name] = Standing(name, seeds, "dominated", chance, p, by)
        elif chance is not None and seeds >= rules.min_front and chance >= rules.sure:
            out[name] = Standing(name, seeds, "front", chance, p)
        else:
            out[name] = Standing(name, seeds, "open", chance, p)
    return out


def wanted(standing: dict[str, Standing], rules: RaceRules) -> list[str]:
    """The configurations that get another seed next round: open ones below `max_seeds`, by name."""
    return sorted(n for n, s in standing.items() if not s.settled and s.seeds < rules.max_seeds)
