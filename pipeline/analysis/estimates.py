"""The two estimates rankings, findings and early stopping share: the 95% Student-t interval of a
mean over seeds, and the accuracy-cost front.

Sample sizes here are seeds (2-5), where the t quantile matters: 12.7 at 2 seeds against 1.96.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import moocore
import numpy as np
from scipy.stats import bootstrap, t


def t_quantile(df: int) -> float:
    """The two-sided 95% Student-t quantile."""
    return float(t.ppf(0.975, df))


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval of the mean (needs 2 or more values)."""
    mean = statistics.fmean(values)
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def pareto_front(points: Sequence[tuple[float, float]], tolerance: float = 0.0) -> list[bool]:
    """(accuracy, cost) pairs -> on the front: no other point is at least as accurate at no more cost
    and better in one (moocore's non-dominated sorting; equal points are all on it). With
    `tolerance`, another point must be more accurate by more than that to dominate (epsilon-dominance,
    Laumanns et al. 2002: early rungs are noisy)."""
    if len(points) == 0:
        return []
    array = np.asarray(points, dtype=float)
    if tolerance <= 0:
        return [bool(x) for x in moocore.is_nondominated(array, maximise=[True, False], keep_weakly=True)]
    front = []
    for i in range(len(array)):  # each point against the others, shifted down by the tolerance
        shifted = array.copy()
        shifted[np.arange(len(array)) != i, 0] -= tolerance
        front.append(bool(moocore.is_nondominated(shifted, maximise=[True, False], keep_weakly=True)[i]))
    return front


# How sure the front is: P(front), from the seeds.

POOL_BELOW = 4  # a configuration with fewer seeds borrows the task's pooled residual variance
RESAMPLES = 10_000  # enough that the same runs give the same P(front) to the printed two digits
BOOTSTRAP_SEED = 0  # fixed: the same runs always give the same numbers


def pooled_variance(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """(residual variance, its degrees of freedom): the spread of seeds around their own
    configuration's mean, pooled across configurations (one-way OLS, statsmodels);
    df = runs - configurations, 0 when every configuration has one seed."""
    from statsmodels.regression.linear_model import OLS

    y = np.concatenate([np.sort(np.asarray(g, dtype=float)) for g in groups])  # order-free to the bit
    df = len(y) - len(groups)
    if df <= 0:
        return math.nan, 0
    design = np.zeros((len(y), len(groups)))
    row = 0
    for i, g in enumerate(groups):
        design[row : row + len(g), i] = 1.0
        row += len(g)
    fit = OLS(y, design).fit()
    scale = float(fit.scale)
    if scale < 1e-12 * float(np.mean(y**2) + 1e-12):  # an exact fit: float noise, not spread
        scale = 0.0
    return scale, int(fit.df_resid)


def pooled_ci(values: Sequence[float], variance: float, df: int) -> tuple[float, float, float]:
    """(mean, low, high): the 95% interval of a mean from the pooled variance (t with its df)."""
    mean = statistics.fmean(values)
    half = t_quantile(df) * math.sqrt(variance / len(values))
    return mean, mean - half, mean + half


def p_front(groups: Sequence[Sequence[float]], costs: Sequence[float]) -> list[float] | None:
    """Each configuration's probability of being on the accuracy-cost front (at least as accurate at
    no more cost than every other, `pareto_front`), over draws of every configuration's mean:

    - 4 or more seeds: the stratified bootstrap of its mean (scipy.stats.bootstrap over its own
      seeds, each configuration resampled apart);
    - fewer: its mean plus t-distributed noise with the task's pooled residual variance
      (`pooled_variance`), since the bootstrap of 2-3 values is far too narrow (two seeds give
      three distinct means, with variance s^2/4);
    - None when that cannot be estimated: every configuration has one seed.

    `costs` are fixed at each configuration's mean: FLOPs and parameters are exact; a measured
    cost's (latency, memory) run-to-run spread is not modelled. The draws use a fixed seed, so the
    same runs always give the same probabilities."""
    variance, df = pooled_variance(groups)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = np.empty((RESAMPLES, len(groups)))
    for i, values in enumerate(groups):
        values = np.sort(np.asarray(values, dtype=float))  # the seeds' order carries nothing
        if len(values) >= POOL_BELOW and np.ptp(values) > 0:
            result = bootstrap((values,), np.mean, n_resamples=RESAMPLES, rng=rng, method="percentile")
            draws[:, i] = result.bootstrap_distribution
        elif len(values) >= POOL_BELOW:  # every seed equal: no spread to resample
            draws[:, i] = values[0]
        elif df > 0:
            draws[:, i] = values.mean() + math.sqrt(variance / len(values)) * rng.standard_t(df, RESAMPLES)
        else:
            return None
    return [float(x) for x in fronts(draws, np.asarray(costs, dtype=float)).mean(axis=0)]


def fronts(accuracies: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """`pareto_front` of many draws at once: accuracies (draws x configurations) against fixed costs
    -> on the front (same shape). moocore's `is_nondominated_within_sets` gives the same answer
    20 times slower on 10,000 draws of 18 points (0.44 s against 0.02 s), and P(front) is computed
    for every round of a race."""
    other, me = accuracies[:, None, :], accuracies[:, :, None]  # [draw, me, other]
    cheaper_or_equal = (costs[None, :] <= costs[:, None])[None]
    strictly_better = (other > me) | (costs[None, :] < costs[:, None])[None]
    return ~((other >= me) & cheaper_or_equal & strictly_better).any(axis=2)
