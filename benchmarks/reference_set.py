"""A reference set anyone can replay: every trial's metric after every epoch, with its static costs,
exported from an MLflow store into one small CSV kept in the repository (benchmarks/reference/).

Replays (benchmarks/early_stopping.py, benchmarks/racing.py) read it instead of a store, so a policy
can be judged on real curves without training: `load` gives trial key -> {task, spec, seed, curve,
costs}. Only static costs are kept (FLOPs, parameters): latency and memory are the machine's.

    python benchmarks/reference_set.py export --tracking-uri sqlite:///ref/mlflow.db \\
        --experiment camvid-reference --out benchmarks/reference/camvid-mini-cpu.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from mlflow.tracking import MlflowClient

from attnlab.pipeline.analysis.ranking import fetch_runs, full_budget, metric_by_epoch
from attnlab.pipeline.costs.axes import COSTS
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking.tags import ATTENTION, SEED, TASK

STATIC = ("added_flops", "flops", "attention_flops", "params")
COLUMNS = ["task", "spec", "seed", "epoch", "metric", "value", *STATIC]


def export(uri: str, experiment: str, out: Path) -> int:
    """Write every full-budget run's curve; the rows written."""
    client = MlflowClient(uri)
    rows = []
    for run in fetch_runs(uri, experiment):
        if not full_budget(run):
            continue
        tags, metrics = run.data.tags, run.data.metrics
        metric = TASKS[tags[TASK]].metric
        costs = [metrics.get(COSTS[c]) for c in STATIC]
        for epoch, value in sorted(metric_by_epoch(client, run.info.run_id, metric).items()):
            rows.append([tags[TASK], tags[ATTENTION], int(tags.get(SEED, 0)), epoch, metric, value, *costs])
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return len(rows)


def load(path: str | Path) -> dict[str, dict]:
    """trial key -> {task, spec, seed, metric, curve (value after each epoch, in order), costs}."""
    trials: dict[str, dict] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            key = f"{row['task']}-{row['spec']}-s{row['seed']}"
            trial = trials.setdefault(
                key,
                {
                    "task": row["task"],
                    "spec": row["spec"],
                    "seed": int(row["seed"]),
                    "metric": row["metric"],
                    "curve": [],
                    "costs": {c: float(row[c]) for c in STATIC if row[c]},
                },
            )
            assert int(row["epoch"]) == len(trial["curve"]) + 1, f"{key}: epochs out of order in {path}"
            trial["curve"].append(float(row["value"]))
    return trials


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="an MLflow experiment's full-budget curves into a CSV")
    e.add_argument("--tracking-uri", required=True)
    e.add_argument("--experiment", required=True)
    e.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows = export(args.tracking_uri, args.experiment, args.out)
    print(f"{rows} rows -> {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
