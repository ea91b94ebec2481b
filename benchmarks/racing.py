"""Seeds spent where the answer is open: racing against uniform seeds, replayed on a reference set.

The reference set (benchmarks/reference_set.py) holds every configuration's full-budget curve at
several seeds (8 in the CamVid one). Its answers: the configurations the full set settles on the
accuracy-cost front (P(front) at least `sure`) or off it (dominated by the racing test, or P(front)
at most 1 - `sure`), the rest open even at the full set and left out of the front's scores; and the
findings' verdicts on every seed (`attnlab findings`' judge), open ones left out of the verdicts'.

Replayed R times, each with its own random order of the seeds (one order for every configuration,
so seeds still pair across configurations as the findings pair them), without training; or, with
`--simulate S`, each on a new draw of simulated seeds (the measured means S times as far apart,
the measured seed spread; `replays`), where one reference set says too little:

- uniform-k: every configuration's first k seeds; its front is the front of the means;
- race: the product's own race (tune/race.py's `plan`, as `seeds: {policy: race}` runs it):
  `--min` seeds each, then per round the open configurations, and with `--findings` the open
  comparisons' configurations, get the next seed, until `--max` seeds or the budget (trials;
  default uniform-4's). Its front: the settled front members and the open configurations on the
  front of the means; its verdicts: each comparison's first decided one (final), else its last.

Printed per policy: trials and epochs spent (no early stopping: a trial is its whole budget), front
recall and precision against the full set's answer, the verdicts agreeing, disagreeing and open
against the full set's decided ones, and for racing the realised rate of wrong settlements (settled
on the front but off it in the full set, or settled dominated but on it).

    python benchmarks/racing.py benchmarks/reference/camvid-mini-cpu.csv --replays 200 \
        [--findings] [--simulate S]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_set import load  # noqa: E402

from attnlab.pipeline.analysis.estimates import pareto_front, pooled_variance  # noqa: E402
from attnlab.pipeline.analysis.racing import RaceRules, standings  # noqa: E402
from attnlab.pipeline.costs.axes import COSTS  # noqa: E402
from attnlab.tune.race import FindingQuestions, RaceState, plan  # noqa: E402
from attnlab.tune.sweep_config import SeedPolicy  # noqa: E402


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


def race(
    order: dict[str, list[float]],
    costs: dict[str, dict[str, float]],
    policy: SeedPolicy,
    cost: str,
    asked=None,
) -> tuple[set[str], int, RaceState]:
    """(front, trials spent, the race) of the product's race over the seeds in `order` (every seed's
    value known: the race reads only those its rounds reach)."""
    configs = {c: [f"{c}#{i}" for i in range(len(v))] for c, v in order.items()}
    results = {f"{c}#{i}": x for c, v in order.items() for i, x in enumerate(v)}
    state = plan(configs, results, {k: costs[k.split("#")[0]] for k in results}, policy, COSTS[cost], asked)
    used = {c: sum(k.split("#")[0] == c for r in state.rounds for k in r) for c in order}
    settled = {c: s for c, s in state.latest.items() if s.settled}
    dominated = {c for c, s in settled.items() if s.state == "dominated"}
    front = {c for c, s in settled.items() if s.state == "front"}
    means = {c: order[c][: used[c]] for c in order}
    front |= {
        c
        for c in point_front(means, {c: costs[c][COSTS[cost]] for c in order})
        if c not in dominated and c not in settled
    }
    return front, state.spent, state


def race_verdicts(state: RaceState) -> dict[str, str]:
    """Each comparison's verdict in a race: its last round's (a decided one stays as it was decided)."""
    return {q.label: q.verdict for q in (state.questions[-1] if state.questions else [])}


def verdicts(order: dict[str, list[float]], costs, seeds: int, asked) -> dict[str, str]:
    """The findings' verdicts on every configuration's first `seeds` seeds."""
    finished = [(c, i, v[i], costs[c]) for c, v in order.items() for i in range(min(seeds, len(v)))]
    return {q.label: q.verdict for q in asked(finished)}


def agreement(got: dict[str, str], full: dict[str, str]) -> tuple[int, int, int]:
    """(agreeing, disagreeing, open) among the comparisons the full set decides."""
    decided = {k: v for k, v in full.items() if v != "inconclusive"}
    same = sum(got.get(k) == v for k, v in decided.items())
    open_ = sum(got.get(k, "inconclusive") == "inconclusive" for k in decided)
    return same, len(decided) - same - open_, open_


def score(front: set[str], on: set[str], off: set[str]) -> tuple[float, float]:
    """(recall, precision) of `front` on the configurations the full set settles."""
    recall = len(front & on) / len(on) if on else 1.0
    judged = front & (on | off)
    precision = len(judged & on) / len(judged) if judged else 1.0
    return recall, precision


def replays(values, costs, cost: str, rules: RaceRules, asked, count: int, simulate: float | None):
    """Per replay: (the seeds in the order the race meets them, the full set's front answer (on, off)
    and findings' verdicts). From the reference set: its seeds in a random order (one order for every
    configuration, so seeds still pair across configurations). Simulated (`simulate` = S): a new
    draw of as many seeds per configuration, normal around the configuration's measured mean moved S
    times as far from the grand mean (S > 1: configurations further apart than this set's, as
    Multi30k's are), with the seed-to-seed spread pooled from the set; the full set is the draw."""
    static = {c: costs[c][COSTS[cost]] for c in values}
    seeds = min(len(v) for v in values.values())
    if simulate is None:
        on, off = answer(values, static, rules)
        full = verdicts(values, costs, seeds, asked)
        for r in range(count):
            shuffled = random.Random(r).sample(range(seeds), seeds)
            yield {c: [v[i] for i in shuffled] for c, v in values.items()}, on, off, full
        return
    grand = statistics.fmean(x for v in values.values() for x in v)
    sigma = math.sqrt(pooled_variance([values[c] for c in sorted(values)])[0])
    centres = {c: grand + simulate * (statistics.fmean(values[c]) - grand) for c in sorted(values)}
    for r in range(count):
        draw = np.random.default_rng(r)
        order = {
            c: [centre + sigma * e for e in draw.standard_normal(seeds)] for c, centre in centres.items()
        }
        yield order, *answer(order, static, rules), verdicts(order, costs, seeds, asked)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reference", type=Path, help="a reference set CSV (benchmarks/reference_set.py)")
    p.add_argument("--task", default="segmentation")
    p.add_argument("--cost", default="added_flops")
    p.add_argument("--replays", type=int, default=200, help="random seed orders (R)")
    p.add_argument("--min", type=int, default=2, help="racing: seeds every configuration starts with")
    p.add_argument("--max", type=int, default=8, help="racing: seeds at most")
    p.add_argument("--budget", type=int, help="racing: trials at most (default: uniform-4's)")
    p.add_argument("--findings", action="store_true", help="racing: the findings' open comparisons race too")
    p.add_argument(
        "--simulate",
        type=float,
        metavar="S",
        help="replay simulated seeds instead: the measured means S times as far apart, the measured spread",
    )
    args = p.parse_args(argv)
    trials = load(args.reference)
    values, _, epochs = by_configuration(trials, args.task, args.cost)
    costs = {
        t["spec"]: {COSTS[c]: v for c, v in t["costs"].items()}
        for t in trials.values()
        if t["task"] == args.task
    }
    full_seeds = min(len(v) for v in values.values())
    values = {c: v[:full_seeds] for c, v in values.items()}  # every configuration at the same seeds
    uniform = sorted({k for k in (2, 4, full_seeds) if k <= full_seeds})
    policy = SeedPolicy(
        policy="race",
        min=args.min,
        max=min(args.max, full_seeds),
        findings=args.findings,
        budget=args.budget or min(4, full_seeds) * len(values),
    )
    rules = RaceRules(policy.min, policy.max)
    asked = FindingQuestions(args.task)
    rows: dict[str, list[tuple]] = {}
    answers = []
    for order, on, off, full in replays(values, costs, args.cost, rules, asked, args.replays, args.simulate):
        answers.append((len(on), len(off), sum(v != "inconclusive" for v in full.values()), len(full)))
        for k in uniform:
            front = point_front(
                {c: v[:k] for c, v in order.items()}, {c: costs[c][COSTS[args.cost]] for c in order}
            )
            agree = agreement(verdicts(order, costs, k, asked), full)
            rows.setdefault(f"uniform-{k}", []).append(
                (k * len(values), *score(front, on, off), *agree, None)
            )
        front, spent, state = race(order, costs, policy, args.cost, asked if args.findings else None)
        settled = {c: s for c, s in state.latest.items() if s.settled}
        wrong = sum(
            (s.state == "front" and c in off) or (s.state == "dominated" and c in on)
            for c, s in settled.items()
        )
        if args.findings:
            got = race_verdicts(state)
        else:  # a front-only race: the findings on the seeds it ran
            used = {c: sum(k.split("#")[0] == c for rd in state.rounds for k in rd) for c in order}
            finished = [(c, i, order[c][i], costs[c]) for c in order for i in range(used[c])]
            got = {q.label: q.verdict for q in asked(finished)}
        rows.setdefault("race", []).append(
            (spent, *score(front, on, off), *agreement(got, full), wrong / max(1, len(settled)))
        )
    on, off, decided, questions = (statistics.fmean(a[i] for a in answers) for i in range(4))
    source = (
        f"simulated seeds (means {args.simulate:g}x as far apart, the measured seed spread; "
        "a new draw per replay)"
        if args.simulate is not None
        else "random seed orders"
    )
    print(
        f"{args.reference.name}: {args.task}, {len(values)} configurations x {full_seeds} seeds, "
        f"{epochs} epochs a trial; the full set settles {on:.3g} on the front, {off:.3g} off it, "
        f"{len(values) - on - off:.3g} open, and decides {decided:.3g} of {questions:.0f} findings' "
        f"comparisons (means over replays); {args.replays} replays of {source}; cost {args.cost}; "
        f"race findings {'on' if args.findings else 'off'}"
    )
    print(
        f"{'policy':<11} {'trials':>7} {'epochs':>7} {'recall':>7} {'precision':>9} "
        f"{'verdicts agree':>15} {'disagree':>9} {'open':>6} {'wrong settled':>14}"
    )
    for name, got in rows.items():
        mean = [statistics.fmean(g[i] for g in got) for i in range(6)]
        wrong = "" if got[0][6] is None else f"{statistics.fmean(g[6] for g in got):.3f}"
        print(
            f"{name:<11} {mean[0]:>7.1f} {mean[0] * epochs:>7.0f} {mean[1]:>7.3f} {mean[2]:>9.3f} "
            f"{mean[3]:>15.2f} {mean[4]:>9.2f} {mean[5]:>6.2f} {wrong:>14}"
        )


if __name__ == "__main__":
    main()
