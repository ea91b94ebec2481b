"""Which configurations give the best accuracy for their cost: rankings and Pareto fronts from MLflow.

MLflow's search filters are AND-only, so runs are fetched once per experiment and grouped,
averaged over seeds and compared client-side.
"""
from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass, field

from mlflow.tracking import MlflowClient

from .costs import COSTS
from .errors import ConfigError
from .tasks import TASKS


@dataclass
class Row:
    task: str
    attention: str
    metric: float
    metric_std: float
    cost: float
    seeds: int
    runs: list[str] = field(default_factory=list)
    pareto: bool = False
    rank: int = 0


def fetch_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError(f"no MLflow experiment {experiment!r} at {uri}; experiments there: {names}")
    runs = client.search_runs([exp.experiment_id], max_results=50000)
    return [r for r in runs if r.data.tags.get("attnlab.kind") in ("trial", "train")]


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """(accuracy, cost) pairs -> on the front (no other point is at least as good in both and better in one)."""
    return [not any((a2 >= a and c2 <= c) and (a2 > a or c2 < c) for a2, c2 in points) for a, c in points]


def rank(runs: list, task: str | None, metric: str | None, cost: str) -> dict[str, list[Row]]:
    """Per task: configurations ranked by mean metric over seeds, Pareto front against `cost` marked."""
    if cost not in COSTS:
        raise ConfigError(f"unknown cost {cost!r}; choose one of {', '.join(COSTS)}")
    tasks = sorted({r.data.tags.get("task") for r in runs if r.data.tags.get("task")})
    if task:
        if task not in tasks:
            raise ConfigError(f"no runs of task {task!r} in this experiment; it has: {', '.join(tasks) or 'none'}")
        tasks = [task]
    out: dict[str, list[Row]] = {}
    for t in tasks:
        key = metric or TASKS[t].metric
        groups: dict[str, list] = {}
        for r in runs:
            if r.data.tags.get("task") == t and key in r.data.metrics and COSTS[cost] in r.data.metrics:
                groups.setdefault(r.data.tags.get("attention", "?"), []).append(r)
        rows = []
        for spec, members in groups.items():
            values = [m.data.metrics[key] for m in members]
            rows.append(Row(t, spec, statistics.fmean(values), statistics.pstdev(values),
                            statistics.fmean(m.data.metrics[COSTS[cost]] for m in members),
                            len({m.data.tags.get("seed") for m in members}), [m.info.run_id for m in members]))
        rows.sort(key=lambda r: (-r.metric, r.cost))
        for i, (row, front) in enumerate(zip(rows, pareto_front([(r.metric, r.cost) for r in rows]))):
            row.rank, row.pareto = i + 1, front
        out[t] = rows
    return out


def render(ranking: dict[str, list[Row]], metric: str | None, cost: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps({t: {"metric": metric or TASKS[t].metric, "cost": cost,
                               "ranking": [asdict(r) for r in rows],
                               "pareto_front": [r.attention for r in rows if r.pareto]}
                           for t, rows in ranking.items()}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["task", "rank", "attention", "metric", "metric_std", cost, "seeds", "pareto"])
        for t, rows in ranking.items():
            for r in rows:
                writer.writerow([t, r.rank, r.attention, r.metric, r.metric_std, r.cost, r.seeds, r.pareto])
        return buf.getvalue().rstrip("\n")
    from .attention_table import format_rows

    parts = []
    for t, rows in ranking.items():
        parts.append(f"{t}: ranked by {metric or TASKS[t].metric} (mean over seeds); * = Pareto front vs {cost}")
        parts.append(format_rows([{"rank": r.rank, "attention": r.attention, "metric": r.metric,
                                   "std": r.metric_std, cost: r.cost, "seeds": r.seeds,
                                   "pareto": "*" if r.pareto else ""} for r in rows]) if rows else "(no runs)")
    return "\n\n".join(parts)
