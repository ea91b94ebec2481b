"""Is P(front) calibrated? A simulation from the measured seed-to-seed spread.

One reference set gives too few configurations to check a probability, so this draws many: a task of
`--configurations` configurations with true mean accuracies spread like the mini-study's CamVid
configurations (normal, sd `--between`) and distinct costs, and seeds that add normal noise of sd
`--sigma` (0.016 mIoU: CamVid's measured seed-to-seed spread at the cpu recipe, RESULTS.md). For each
of `--replications` simulated sweeps and each number of seeds it computes every configuration's
P(front) exactly as `attnlab best` does (pipeline/analysis/estimates.py) and whether the
configuration is truly on the front (of the true means). Calibrated: among configurations given P
about 0.8, about 80% are truly on the front.

It prints, per number of seeds, the reliability table (predicted P binned, mean predicted against the
share truly on the front; and of those given P >= 0.95, what a race settles on, the share truly on
it) and the Brier score (mean squared error of P against 0/1 truth; lower is
better; 0.25 for a coin).

    python benchmarks/p_front_calibration.py --replications 100
"""

from __future__ import annotations

import argparse

import numpy as np

from attnlab.pipeline.analysis.estimates import p_front, pareto_front

BINS = np.linspace(0.0, 1.0, 6)  # five bins of 0.2


def simulate(
    configurations: int, seeds: int, sigma: float, between: float, replication: int
) -> tuple[list, list]:
    """(P(front) per configuration, truly on the front per configuration) for one simulated sweep:
    replication r's task is the same for every number of seeds, its seeds' noise is not."""
    task = np.random.default_rng(replication)
    means = task.normal(0.33, between, configurations)
    costs = np.sort(task.uniform(0.0, 3.0, configurations))
    truth = pareto_front(list(zip(means, costs)))
    noise = np.random.default_rng([replication, seeds])
    groups = [list(m + sigma * noise.standard_normal(seeds)) for m in means]
    return p_front(groups, list(costs)), truth


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--configurations", type=int, default=18, help="the mini grid's segmentation configurations"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--sigma", type=float, default=0.016, help="seed-to-seed sd of the metric")
    p.add_argument("--between", type=float, default=0.012, help="sd of the configurations' true means")
    p.add_argument("--replications", type=int, default=100)
    args = p.parse_args(argv)
    print(
        f"{args.configurations} configurations, true means sd {args.between}, seed noise sd {args.sigma}, "
        f"{args.replications} simulated sweeps per row"
    )
    print(f"{'seeds':>5} {'Brier':>6}  reliability: P bin -> mean predicted / share truly on the front (n)")
    for seeds in args.seeds:
        predicted, truth = [], []
        for replication in range(args.replications):
            ps, on = simulate(args.configurations, seeds, args.sigma, args.between, replication)
            predicted += ps
            truth += on
        predicted, truth = np.array(predicted), np.array(truth, dtype=float)
        brier = float(np.mean((predicted - truth) ** 2))
        cells = []
        for low, high in zip(BINS[:-1], BINS[1:]):
            inside = (predicted >= low) & ((predicted < high) | (high == 1.0))
            if inside.any():
                said, true = predicted[inside].mean(), truth[inside].mean()
                cells.append(f"[{low:.1f},{high:.1f}] {said:.2f}/{true:.2f} ({inside.sum()})")
        sure = predicted >= 0.95  # what settles a configuration on the front in a race
        settles = f"{truth[sure].mean():.3f} of {sure.sum()}" if sure.any() else "none"
        print(f"{seeds:>5} {brier:>6.3f}  " + "; ".join(cells) + f"; P >= 0.95: {settles} truly on it")


if __name__ == "__main__":
    main()
