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
from scipy.stats import t


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
