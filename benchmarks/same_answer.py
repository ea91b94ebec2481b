"""Whether two sweeps gave the same answer: every trial's whole metric history and its early-stopping
decisions, run by run.

Training repeats to the last digit on a CPU, so two runs of one sweep (before and after a
restructuring, with and without faults) must log the same numbers at the same steps. What depends on
the clock or the machine's load is left out: system metrics, latency, throughput, the start-up time;
every other metric, the learning rate included, must match.

    python benchmarks/same_answer.py dump --tracking-uri sqlite:///a/mlflow.db --experiment smoke-none \
        --out before.json
    python benchmarks/same_answer.py compare before.json after.json
"""

from __future__ import annotations

import argparse
import json
import sys

from mlflow.tracking import MlflowClient

from attnlab.pipeline.tracking import tags

# Metrics that measure the machine, not the training: they differ run by run by design.
CLOCK_PREFIXES = ("system/", "trial/", "cost/latency", "cost/memory", "cost/peak")


def _clocked(key: str) -> bool:
    return key.startswith(CLOCK_PREFIXES) or "time" in key or "per_second" in key or key.endswith("_s")


def dump(uri: str, experiment: str) -> dict:
    """trial key -> {status, stopped_early, early_stopping, metrics: key -> [[step, value], ...]}."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        sys.exit(f"no experiment {experiment!r} in {uri}")
    out = {}
    where = f"tags.`{tags.KIND}` = '{tags.KIND_TRIAL}'"
    for run in client.search_runs([exp.experiment_id], filter_string=where, max_results=10000):
        history = {}
        for key in sorted(run.data.metrics):
            if _clocked(key):
                continue
            points = client.get_metric_history(run.info.run_id, key)
            history[key] = sorted([p.step, p.value] for p in points)
        out[run.data.tags[tags.TRIAL]] = {
            "status": run.info.status,
            "stopped_early": run.data.tags.get(tags.STOPPED_EARLY) == "true",
            "early_stopping": run.data.tags.get(tags.EARLY_STOPPING),
            "metrics": history,
        }
    return out


def differences(a: dict, b: dict) -> list[str]:
    """What differs between two dumps, one line each; empty when they are the same."""
    lines = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            lines.append(f"{key}: only in {'the second' if key in b else 'the first'}")
            continue
        x, y = a[key], b[key]
        for field in ("status", "stopped_early", "early_stopping"):
            if x[field] != y[field]:
                lines.append(f"{key}: {field} {x[field]!r} != {y[field]!r}")
        for metric in sorted(k for k in set(x["metrics"]) | set(y["metrics"]) if not _clocked(k)):
            hx, hy = x["metrics"].get(metric), y["metrics"].get(metric)
            if hx != hy:
                lines.append(f"{key}: {metric} history differs ({_first_gap(hx, hy)})")
    return lines


def _first_gap(hx, hy) -> str:
    if hx is None or hy is None:
        return "missing in one"
    for (sx, vx), (sy, vy) in zip(hx, hy):
        if (sx, vx) != (sy, vy):
            return f"step {sx}: {vx!r} vs step {sy}: {vy!r}"
    return f"{len(hx)} vs {len(hy)} points"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="write a sweep's trial histories and decisions as JSON")
    d.add_argument("--tracking-uri", required=True)
    d.add_argument("--experiment", required=True)
    d.add_argument("--out", required=True)
    c = sub.add_parser("compare", help="print what differs between two dumps; exit 1 if anything")
    c.add_argument("first")
    c.add_argument("second")
    args = parser.parse_args()
    if args.command == "dump":
        data = dump(args.tracking_uri, args.experiment)
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        points = sum(len(h) for t in data.values() for h in t["metrics"].values())
        print(f"{len(data)} trials, {points} metric points -> {args.out}")
        return 0
    with open(args.first) as f:
        first = json.load(f)
    with open(args.second) as f:
        second = json.load(f)
    lines = differences(first, second)
    points = sum(len(h) for t in first.values() for k, h in t["metrics"].items() if not _clocked(k))
    for line in lines:
        print(line)
    print(
        f"{len(first)} trials, {points} metric points: "
        + ("identical" if not lines else f"{len(lines)} difference(s)")
    )
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
