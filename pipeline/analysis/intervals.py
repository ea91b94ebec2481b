"""95% Student-t intervals: of a mean over seeds, the one statistic rankings and findings share.

Sample sizes here are seeds (2-5), where the t quantile matters: 12.7 at 2 seeds against 1.96.
"""

from __future__ import annotations

import math
import statistics

from scipy.stats import t


def t_quantile(df: int) -> float:
    """The two-sided 95% Student-t quantile."""
    return float(t.ppf(0.975, df))


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval of the mean (needs 2 or more values)."""
    mean = statistics.fmean(values)
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half
