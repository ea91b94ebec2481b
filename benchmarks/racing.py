"""Seeds spent where the answer is open: racing against uniform seeds, replayed on a reference set.

The reference set (benchmarks/reference_set.py) holds every configuration's full-budget curve at
several seeds (8 in the CamVid one). Its answer: the configurations the full set settles on the
accuracy-cost front (P(front) at least `sure`) or off it (dominated by the racing test, or P(front)
at most 1 - `sure`); the rest are open even at the full set and are left out of the scores below.

Replayed R times, each with its own random order of every configuration's seeds, without training:

- uniform-k: every configuration's first k seeds; its front is the front of the means;
- race: every configuration starts with `--min` seeds; after each round pipeline/analysis/racing.py
  settles configurations (dominated with confidence, or on the front with confidence) and each open
  one gets its next seed, until `--max` seeds or the budget (trials; default uniform-4's) is spent,
  the most uncertain (P(front) nearest 0.5) first when a round does not fit. Its front: the settled
  front members and the open configurations on the front of the means.

Printed per policy: trials and epochs spent (no early stopping: a trial is its whole budget), front
recall and precision against the full set's answer, and for racing the realised rate of wrong
settlements (settled on the front but off it in the full set, or settled dominated but on it).

    python benchmarks/racing.py benchmarks/reference/camvid-mini-cpu.csv --replays 200
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_set import load  # noqa: E402

from attnlab.pipeline.analysis.estimates import pareto_front  # noqa: E402
from attnlab.pipeline.analysis.racing import RaceRules, Standing, standings, wanted  # noqa: E402


def by_configuration(
    trials: dict, task: str, cost: str
) -> tuple[dict[str, list[float]], dict[str, float], int]:
    """(configuration -> final values by seed order, configuration -> cost, epochs per trial)."""
    values: dict[str, list[tuple[int, float]]] = {}
    costs, epochs = {}, set()
    for t in trials.values():
        if t["task"] != task:
            continue
        values.setdefault(t["spec"], []).append((t["seed"], t["curve"][-1]))
        costs[t["spec"]] = t["costs"][cost]
        epochs.add(len(t["curve"]))
    return {c: [v for _, v in sorted(vs)] for c, vs in values.items()}, costs, max(epochs)


def answer(values: dict[str, list[float]], costs: dict[str, float], rules: RaceRules) -> tuple[set, set]:
    """(settled on the front, settled off it) by the full set."""
    full = standings(values, costs, {}, replace(rules, min_front=2))  # the full set settles at any count
    on = {c for c, s in full.items() if s.state == "front"}
    off = {
        c
        for c, s in full.items()
        if s.state == "dominated" or (s.p_front is not None and s.p_front <= 1 - rules.sure)
    }
    return on, off


def point_front(values: dict[str, list[float]], costs: dict[str, float]) -> set[str]:
    names = sorted(values)
    flags = pareto_front([(statistics.fmean(values[n]), costs[n]) for n in names])
    return {n for n, on in zip(names, flags) if on}


def race(order: dict[str, list[float]], costs: dict[str, float], rules: RaceRules, budget: int):
    """(front, trials spent, the settled standings) of one race over seeds in `order`."""
    seeds = {c: rules.min_seeds for c in order}
    settled: dict[str, Standing] = {}
    while True:
        values = {c: order[c][: seeds[c]] for c in order}
        standing = standings(values, costs, settled, rules)
        settled = {c: s for c, s in standing.items() if s.settled}
        more = wanted(standing, rules)
        room = budget - sum(seeds.values())
        if not more or room <= 0:
            break
        more.sort(key=lambda c: (abs((standing[c].p_front or 0.5) - 0.5), c))  # the most uncertain first
        for c in more[:room]:
            seeds[c] += 1
    dominated = {c for c, s in settled.items() if s.state == "dominated"}
    front = {c for c, s in settled.items() if s.state == "front"}
    front |= {c for c in point_front(values, costs) if c not in dominated and c not in settled}
    return front, sum(seeds.values()), settled


def score(front: set[str], on: set[str], off: set[str]) -> tuple[float, float]:
    """(recall, precision) of `front` on the configurations the full set settles."""
    recall = len(front & on) / len(on) if on else 1.0
    judged = front & (on | off)
    precision = len(judged & on) / len(judged) if judged else 1.0
    return recall, precision


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference", type=Path, help="a reference set CSV (benchmarks/reference_set.py)")
    p.add_argument("--task", default="segmentation")
    p.add_argument("--cost", default="added_flops")
    p.add_argument("--replays", type=int, default=200, help="random seed orders (R)")
    p.add_argument("--min", type=int, default=2, help="racing: seeds every configuration starts with")
    p.add_argument("--max", type=int, default=8, help="racing: seeds at most")
    p.add_argument("--budget", type=int, help="racing: trials at most (default: uniform-4's)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--sure", type=float, default=0.95)
    args = p.parse_args(argv)
    values, costs, epochs = by_configuration(load(args.reference), args.task, args.cost)
    full_seeds = min(len(v) for v in values.values())
    values = {c: v[:full_seeds] for c, v in values.items()}  # every configuration at the same seeds
    uniform = sorted({k for k in (2, 4, full_seeds) if k <= full_seeds})
    rules = RaceRules(args.min, min(args.max, full_seeds), args.alpha, args.sure)
    on, off = answer(values, costs, rules)
    budget = args.budget or min(4, full_seeds) * len(values)
    print(
        f"{args.reference.name}: {args.task}, {len(values)} configurations x {full_seeds} seeds, "
        f"{epochs} epochs a trial; the full set settles {len(on)} on the front, {len(off)} off it, "
        f"{len(values) - len(on) - len(off)} open; {args.replays} random seed orders; cost {args.cost}"
    )
    rows: dict[str, list[tuple]] = {}
    for r in range(args.replays):
        rng = random.Random(r)
        order = {c: rng.sample(v, len(v)) for c, v in values.items()}
        for k in uniform:
            front = point_front({c: v[:k] for c, v in order.items()}, costs)
            rows.setdefault(f"uniform-{k}", []).append((k * len(values), *score(front, on, off), None))
        front, trials, settled = race(order, costs, rules, budget)
        wrong = sum(
            (s.state == "front" and c in off) or (s.state == "dominated" and c in on)
            for c, s in settled.items()
        )
        rows.setdefault("race", []).append((trials, *score(front, on, off), wrong / max(1, len(settled))))
    print(f"{'policy':<11} {'trials':>7} {'epochs':>7} {'recall':>7} {'precision':>9} {'wrong settled':>14}")
    for name, got in rows.items():
        trials = statistics.fmean(g[0] for g in got)
        recall, precision = statistics.fmean(g[1] for g in got), statistics.fmean(g[2] for g in got)
        wrong = "" if got[0][3] is None else f"{statistics.fmean(g[3] for g in got):.3f}"
        print(
            f"{name:<11} {trials:>7.1f} {trials * epochs:>7.0f} {recall:>7.2f} {precision:>9.2f} {wrong:>14}"
        )


if __name__ == "__main__":
    main()
