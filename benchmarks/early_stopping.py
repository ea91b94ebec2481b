"""Early-stopping policies replayed on real learning curves: how much of the accuracy-cost front
each keeps, and what it trains.

The curves are the MLflow history of a sweep that trained every trial its full budget (early
stopping `none`): each trial's metric after every epoch, and its cost. They are replayed, without
training, through the schedulers' own Tune API (`on_trial_add` / `on_trial_result`, exactly what
Tune calls): `workers` trials run at once, each epoch one time step, trials arriving in a random
order; a trial the scheduler stops trains no further epoch, one it pauses at a rung frees its slot
until the rung is decided (the rungs are synchronous: arrival orders change the epochs' order, not
the decisions). The replay has no Tune controller: a rung is decided when every trial that could
reach it did, as `close_stalled` decides it. Policies: no early stopping, ASHA (the metric's rule
on attnlab's synchronous rungs, per task) and pareto-asha (tune.pareto_asha).

Figure of merit, front recall: the share of the configurations on the full-budget Pareto front
(metric against cost, no early stopping) that the policy trains to its full budget. Cost: the
total epochs trained. Both per policy, mean and range over the arrival orders.

    python benchmarks/early_stopping.py --tracking-uri sqlite:///mlflow.db --experiment curves
    python benchmarks/early_stopping.py --tracking-uri sqlite:///mlflow.db --experiment mini-cpu \
        --task segmentation --seeds 0
"""

from __future__ import annotations

import argparse
import random
import statistics
from types import SimpleNamespace

from mlflow.tracking import MlflowClient
from ray.tune.schedulers import TrialScheduler
from scipy.stats import spearmanr

from attnlab.pipeline.analysis.ranking import fetch_runs, metric_by_epoch, pareto_front
from attnlab.pipeline.config.validation import validate
from attnlab.pipeline.costs.axes import COSTS
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking.tags import ATTENTION, SEED, TASK, TRIAL
from attnlab.tune.pareto_asha import ParetoASHA
from attnlab.tune.schedulers import early_stopping
from attnlab.tune.sweep_config import EarlyStopping, SweepConfig


def curves(
    uri: str, experiment: str, cost: str, task: str | None = None, seeds: list[str] | None = None
) -> dict[str, dict]:
    """trial key -> {task, spec, curve (metric per epoch, 1-based order), cost}; only `task`'s
    trials and `seeds`' when given."""
    client = MlflowClient(uri)
    out = {}
    for run in fetch_runs(uri, experiment):
        tags, metrics = run.data.tags, run.data.metrics
        if (task and tags[TASK] != task) or (seeds and tags.get(SEED, "0") not in seeds):
            continue
        task_of_run = tags[TASK]
        by_epoch = metric_by_epoch(client, run.info.run_id, TASKS[task_of_run].metric)
        if not by_epoch or COSTS[cost] not in metrics:
            continue
        out[tags.get(TRIAL) or f"{task_of_run}-{tags[ATTENTION]}-s{tags.get(SEED, '0')}"] = {
            "task": task_of_run,
            "spec": tags[ATTENTION],
            "curve": [by_epoch[e] for e in sorted(by_epoch)],
            "cost": metrics[COSTS[cost]],
        }
    return out


def replay(policy: str, data: dict, order: list[str], workers: int, early: dict) -> dict[str, int]:
    """Epochs each trial trains under `policy`, trials started in `order`, `workers` at a time."""
    budget = min(len(d["curve"]) for d in data.values())
    sweep = validate(
        SweepConfig,
        {
            "name": "replay",
            "max_epochs": budget,
            "grid": [
                {"task": t, "specs": ["w/o"], "preset": "tiny"}
                for t in sorted({d["task"] for d in data.values()})
            ],
            "early_stopping": {"policy": policy, **early},
        },
        "sweep",
    )
    scheduler = early_stopping(sweep)
    scheduler.set_search_properties("score", "max")
    trials = {
        key: SimpleNamespace(
            trial_id=key,
            config={"trial": {"task": data[key]["task"], "attention": data[key]["spec"], "trial_key": key}},
            status="PENDING",
        )
        for key in order
    }
    waiting, running, paused = list(order), [], []
    trained = {key: 0 for key in order}

    def rungs_of(key):
        return scheduler.scheduler_of(trials[key])

    while waiting or running or paused:
        ready = [k for k in paused if rungs_of(k) is None or not rungs_of(k).holds(trials[k])]
        for key in ready:  # a decided rung: stopped trials end, kept ones queue to go on
            paused.remove(key)
            cut = rungs_of(key).decision(key, _rung_of(rungs_of(key), key))
            if cut is not None and cut.rule == "stopped":
                scheduler.on_trial_remove(None, trials[key])
            else:
                waiting.insert(0, key)
        while waiting and len(running) < workers:
            key = waiting.pop(0)
            if trained[key] == 0:
                scheduler.on_trial_add(None, trials[key])
            running.append(key)
        if not running:  # every trial waits at a rung: what it waits for can no longer come
            rungs_of(paused[0]).close_stalled(None)
            continue
        for key in list(running):  # one epoch each, in turn
            trained[key] += 1
            d = data[key]
            result = {
                "epoch": trained[key],
                "score": d["curve"][trained[key] - 1],
                COSTS[early.get("cost", "added_flops")]: d["cost"],
                "budget": budget,
            }
            action = scheduler.on_trial_result(None, trials[key], result)
            if action == TrialScheduler.PAUSE:
                running.remove(key)
                paused.append(key)
            elif action == TrialScheduler.STOP or trained[key] >= budget:
                scheduler.on_trial_complete(None, trials[key], result)
                running.remove(key)
    return trained


def _rung_of(rungs: ParetoASHA, key: str) -> float:
    """The latest rung `key` reached."""
    return max(r for r, arrived in rungs.rungs.items() if key in arrived)


def front_of(data: dict) -> set[str]:
    """Configurations (task, spec) on the full-budget front, per task."""
    front = set()
    for task in {d["task"] for d in data.values()}:
        configs: dict[str, list] = {}
        for d in data.values():
            if d["task"] == task:
                configs.setdefault(d["spec"], []).append(d)
        names = sorted(configs)
        points = [
            (
                statistics.fmean(x["curve"][-1] for x in configs[n]),
                statistics.fmean(x["cost"] for x in configs[n]),
            )
            for n in names
        ]
        front |= {(task, n) for n, on in zip(names, pareto_front(points)) if on}
    return front


def front_bound(data: dict, front: set[str], grace: int, eta: float) -> int:
    """The fewest epochs that any rule keeping the whole full-budget front can train, if it never
    cuts a configuration at a rung while keeping one that it dominates there (at least as accurate,
    at most as costly): at each rung such a rule keeps every front configuration and every one present
    that dominates a front configuration there. Every trial trains to the first rung; one kept at a
    rung trains to the next (or its budget). Rungs are pareto-asha's; a configuration's score at a
    rung is its mean over seeds; each rung is decided on every configuration (a synchronous bound:
    an asynchronous rule decides on fewer). Epochs are summed over every trial."""
    budget = min(len(d["curve"]) for d in data.values())
    rungs = sorted(ParetoASHA("cost", budget, grace, eta).rungs)
    total = 0
    for task in {d["task"] for d in data.values()}:
        trials: dict[str, list] = {}
        for d in data.values():
            if d["task"] == task:
                trials.setdefault(d["spec"], []).append(d)
        cost = {c: statistics.fmean(t["cost"] for t in ts) for c, ts in trials.items()}
        reach = {c: int(min(rungs[0], budget)) if rungs else budget for c in trials}
        keep = {c for c in trials if (task, c) in front}
        for i, rung in enumerate(rungs):
            here = [c for c in trials if reach[c] >= rung]
            score = {c: statistics.fmean(t["curve"][int(rung) - 1] for t in trials[c]) for c in here}
            needed = {c for c in here if c in keep} | {
                c for c in here for f in keep if f in score and score[c] >= score[f] and cost[c] <= cost[f]
            }
            onward = int(rungs[i + 1]) if i + 1 < len(rungs) else budget
            for c in needed:
                reach[c] = max(reach[c], onward)
        total += sum(reach[c] * len(ts) for c, ts in trials.items())
    return total


def rung_signal(data: dict, grace: int, eta: float) -> dict[str, list[tuple[int, float]]]:
    """Per task, for each of pareto-asha's rungs: Spearman's rank correlation between the
    configurations' scores there and at the budget (means over seeds). It says how much any rule
    deciding at that rung can know of the final ranking: near 0, the rung's order is the final
    one's by chance, and a rule keeps a final front member there only by keeping nearly everything."""
    budget = min(len(d["curve"]) for d in data.values())
    rungs = sorted(int(r) for r in ParetoASHA("cost", budget, grace, eta).rungs)
    out = {}
    for task in sorted({d["task"] for d in data.values()}):
        configs: dict[str, list] = {}
        for d in data.values():
            if d["task"] == task:
                configs.setdefault(d["spec"], []).append(d["curve"])

        def scores(epoch: int) -> list[float]:
            return [statistics.fmean(c[epoch - 1] for c in configs[n]) for n in sorted(configs)]

        final = scores(budget)
        out[task] = [(r, float(spearmanr(scores(r), final).statistic)) for r in rungs]
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--cost", default="added_flops", choices=tuple(COSTS))
    p.add_argument("--task", choices=tuple(TASKS), help="replay one task's trials (tasks' budgets differ)")
    p.add_argument("--seeds", nargs="+", help="only these seeds' trials (0: one curve a configuration)")
    p.add_argument("--orders", type=int, default=20, help="random arrival orders")
    p.add_argument("--workers", type=int, default=4, help="trials running at once")
    defaults = EarlyStopping()  # the sweep config's own defaults
    p.add_argument("--grace-period", type=int, default=defaults.grace_period)
    p.add_argument("--reduction-factor", type=float, default=defaults.reduction_factor)
    p.add_argument("--front-fraction", type=float, default=defaults.front_fraction)
    p.add_argument("--tolerance", type=float, default=defaults.tolerance)
    args = p.parse_args(argv)
    data = curves(args.tracking_uri, args.experiment, args.cost, args.task, args.seeds)
    budget = min(len(d["curve"]) for d in data.values())
    front = front_of(data)
    early = {"grace_period": args.grace_period, "reduction_factor": args.reduction_factor}
    policies = {
        "none": ("none", {}),
        "asha": ("asha", early),
        "pareto-asha": (
            "pareto-asha",
            {**early, "cost": args.cost, "front_fraction": args.front_fraction, "tolerance": args.tolerance},
        ),
    }
    rows = []
    for name, (policy, settings) in policies.items():
        recalls, epochs = [], []
        for seed in range(args.orders):
            order = sorted(data)
            random.Random(seed).shuffle(order)
            trained = replay(policy, data, order, args.workers, settings)
            full = {(data[k]["task"], data[k]["spec"]) for k, e in trained.items() if e >= budget}
            recalls.append(len(front & full) / len(front))
            epochs.append(sum(trained.values()))
        rows.append((name, recalls, epochs))
    asha_epochs = statistics.fmean(next(e for n, _, e in rows if n == "asha"))
    bound = front_bound(data, front, args.grace_period, args.reduction_factor)
    print(
        f"{len(data)} trials of {args.experiment!r}, {budget} epochs each, {len(front)} configurations "
        f"on the full-budget front ({args.cost}); {args.orders} arrival orders, {args.workers} at once; "
        f"grace {args.grace_period}, eta {args.reduction_factor}, front_fraction {args.front_fraction}, "
        f"tolerance {args.tolerance}"
    )
    print(f"{'policy':<12} {'front recall':>20} {'epochs trained':>22} {'x ASHA':>7}")
    for name, recalls, epochs in rows:
        mean = statistics.fmean(epochs)
        print(
            f"{name:<12} {statistics.fmean(recalls):>8.2f} [{min(recalls):.2f}, {max(recalls):.2f}] "
            f"{mean:>10.1f} [{min(epochs)}, {max(epochs)}] {mean / asha_epochs:>7.2f}"
        )
    print(
        f"{'bound':<12} {1.0:>8.2f} {'':>12} {bound:>10} {'':>10} {bound / asha_epochs:>7.2f}   "
        "the fewest epochs of any rule that keeps the whole front and never cuts a configuration "
        "while keeping one it dominates at the rung (`front_bound`)"
    )
    for task, signal in rung_signal(data, args.grace_period, args.reduction_factor).items():
        print(
            f"rank correlation with the final scores ({task}, Spearman over configurations): "
            + ", ".join(f"epoch {r} {rho:+.2f}" for r, rho in signal)
        )


if __name__ == "__main__":
    main()
