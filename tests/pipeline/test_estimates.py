"""The estimates under rankings and racing: many fronts at once equal moocore's one at a time; the
pooled variance is one-way ANOVA's residual mean square; a race settles a clearly dominated
configuration at its first seeds, keeps an uncertain one open, and decides the same from the same
seeds whatever order they came in."""

import numpy as np
import pytest

from attnlab.pipeline.analysis.estimates import fronts, pareto_front, pooled_variance
from attnlab.pipeline.analysis.racing import RaceRules, standings, wanted


def test_many_fronts_at_once_equal_moocores_one_at_a_time():
    rng = np.random.default_rng(0)
    accuracies = rng.integers(0, 4, size=(500, 7)).astype(float)  # many ties, of accuracy and cost
    costs = rng.integers(0, 3, size=7).astype(float)
    expected = np.array([pareto_front(list(zip(row, costs))) for row in accuracies])
    assert (fronts(accuracies, costs) == expected).all()


def test_pooled_variance_is_the_residual_mean_square():
    groups = [[1.0, 2.0], [3.0, 5.0], [4.0]]
    variance, df = pooled_variance(groups)
    assert df == 2 and variance == pytest.approx((0.5 + 2.0) / 2)
    assert pooled_variance([[1.0], [2.0]]) == (pytest.approx(float("nan"), nan_ok=True), 0)


COSTS = {"w/o": 0.0, "0010": 0.3, "0100": 0.5, "1111": 2.5}


def test_a_clearly_dominated_configuration_is_settled_at_two_seeds_and_an_uncertain_one_stays_open():
    values = {
        "w/o": [0.300, 0.310],
        "0010": [0.350, 0.362],  # cheap and good
        "0100": [0.200, 0.214],  # costs more than 0010 and is far worse: dominated
        "1111": [0.352, 0.366],  # within the seed spread of 0010, dearer: open
    }
    rules = RaceRules()
    after = standings(values, COSTS, {}, rules)
    assert after["0100"].state == "dominated" and after["0100"].dominated_by in {"w/o", "0010"}
    assert after["0100"].describe().startswith("settled: dominated by ")
    assert after["1111"].state == "open" and after["1111"].describe() == "open at 2 seeds"
    assert after["w/o"].state == "open"  # the cheapest is on the front, but two seeds never settle it
    assert "0100" not in wanted(after, rules) and "1111" in wanted(after, rules)
    # settled is final: a later round with seeds that would acquit it keeps the verdict
    later = standings({**values, "0100": [0.200, 0.214, 0.9, 0.9]}, COSTS, {"0100": after["0100"]}, rules)
    assert later["0100"] == after["0100"]


def test_a_race_decides_the_same_whatever_order_the_seeds_came_in():
    values = {
        "w/o": [0.300, 0.310, 0.305, 0.298],
        "0010": [0.350, 0.362, 0.341, 0.355],
        "0100": [0.200, 0.214, 0.190, 0.205],
        "1111": [0.352, 0.366, 0.349, 0.360],
    }
    reversed_order = {c: v[::-1] for c, v in reversed(values.items())}
    rules = RaceRules()
    assert standings(values, COSTS, {}, rules) == standings(reversed_order, COSTS, {}, rules)
    assert standings(values, COSTS, {}, rules)["w/o"].state == "front"  # four seeds: P(front) 1.00
