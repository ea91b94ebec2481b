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

from .costs import COSTS, UNITS
from .errors import ConfigError
from .tags import ATTENTION, EPOCHS_DONE, KIND, RERUN, SEED, STOPPED_EARLY, TASK, TRAINING_KINDS
from .tasks import TASKS
from .tracking import reap_stale


@dataclass
class Row:
    task: str
    attention: str
    metric: float
    ci_low: float | None  # 95% Student-t interval of the mean over seeds; None with one seed
    ci_high: float | None
    cost: float
    seeds: int
    epochs: int  # epochs trained (the most any seed of the row trained)
    stopped_early: bool
    runs: list[str] = field(default_factory=list)
    pareto: bool = False
    rank: int | None = None  # only rows that trained their full budget are ranked
    # per run (as `runs`): the command that reruns it standalone (a sweep trial's attnlab.rerun tag)
    reruns: list[str | None] = field(default_factory=list)

    @property
    def half_width(self) -> float:
        return 0.0 if self.ci_high is None else (self.ci_high - self.ci_low) / 2


def epochs_trained(run) -> int:
    """Epochs trained and evaluated (`epochs_done`). Runs logged before it existed fall back on
    Lightning's 0-based `epoch`; a run with neither trained 0 epochs."""
    if EPOCHS_DONE in run.data.metrics:
        return int(run.data.metrics[EPOCHS_DONE])
    epoch = run.data.metrics.get("epoch")
    return 0 if epoch is None else int(epoch) + 1


def stopped_early(run) -> bool:
    return run.data.tags.get(STOPPED_EARLY) == "true"


def interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high); no interval from a single value."""
    if len(values) < 2:
        return statistics.fmean(values), None, None
    from .findings import mean_ci

    return mean_ci(values)


def fetch_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError(f"no MLflow experiment {experiment!r} at {uri}; experiments there: {names}")
    reap_stale(uri, experiment)
    runs = client.search_runs([exp.experiment_id], max_results=50000)
    return [r for r in runs if r.data.tags.get(KIND) in TRAINING_KINDS]


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """(accuracy, cost) pairs -> on the front: no other point is at least as good in both, better in one."""
    return [not any((a2 >= a and c2 <= c) and (a2 > a or c2 < c) for a2, c2 in points) for a, c in points]


def rank(runs: list, task: str | None, metric: str | None, cost: str) -> dict[str, list[Row]]:
    """Per task: configurations ranked by mean metric over seeds, Pareto front against `cost` marked."""
    if cost not in COSTS:
        raise ConfigError(f"unknown cost {cost!r}; choose one of {', '.join(COSTS)}")
    tasks = sorted({r.data.tags.get(TASK) for r in runs if r.data.tags.get(TASK)})
    if task:
        if task not in tasks:
            raise ConfigError(
                f"no runs of task {task!r} in this experiment; it has: {', '.join(tasks) or 'none'}"
            )
        tasks = [task]
    out: dict[str, list[Row]] = {}
    for t in tasks:
        key = metric or TASKS[t].metric
        groups: dict[str, list] = {}
        for r in runs:
            if r.data.tags.get(TASK) == t and key in r.data.metrics and COSTS[cost] in r.data.metrics:
                groups.setdefault((r.data.tags.get(ATTENTION, "?"), stopped_early(r)), []).append(r)
        rows = []
        for (spec, stopped), members in groups.items():
            mean, low, high = interval([m.data.metrics[key] for m in members])
            rows.append(
                Row(
                    t,
                    spec,
                    mean,
                    low,
                    high,
                    statistics.fmean(m.data.metrics[COSTS[cost]] for m in members),
                    len({m.data.tags.get(SEED) for m in members}),
                    max(map(epochs_trained, members)),
                    stopped,
                    [m.info.run_id for m in members],
                    reruns=[m.data.tags.get(RERUN) for m in members],
                )
            )
        # Equal budgets only: full-budget rows are ranked and form the front; early-stopped ones follow.
        full = sorted((r for r in rows if not r.stopped_early), key=lambda r: (-r.metric, r.cost))
        cut = sorted((r for r in rows if r.stopped_early), key=lambda r: (-r.epochs, -r.metric, r.cost))
        for i, (row, front) in enumerate(zip(full, pareto_front([(r.metric, r.cost) for r in full]))):
            row.rank, row.pareto = i + 1, front
        rows = full + cut
        out[t] = rows
    return out


def render(ranking: dict[str, list[Row]], metric: str | None, cost: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(
            {
                t: {
                    "metric": metric or TASKS[t].metric,
                    "cost": cost,
                    "ranking": [asdict(r) for r in rows],
                    "pareto_front": [r.attention for r in rows if r.pareto],
                }
                for t, rows in ranking.items()
            },
            indent=2,
        )
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(
            [
                "task",
                "rank",
                "attention",
                "metric",
                "ci_low",
                "ci_high",
                cost,
                "seeds",
                "epochs",
                "stopped_early",
                "pareto",
            ]
        )
        for t, rows in ranking.items():
            for r in rows:
                writer.writerow(
                    [
                        t,
                        r.rank or "",
                        r.attention,
                        r.metric,
                        _blank(r.ci_low),
                        _blank(r.ci_high),
                        r.cost,
                        r.seeds,
                        r.epochs,
                        r.stopped_early,
                        r.pareto,
                    ]
                )
        return buf.getvalue().rstrip("\n")
    from .attention_table import format_rows

    parts = []
    for t, rows in ranking.items():
        name = metric or TASKS[t].metric
        parts.append(
            f"{t}: ranked by {name} (mean over seeds, 95% CI with 2+ seeds) among trials that trained "
            f"their full budget; * = Pareto front vs {UNITS[cost].label}; early-stopped trials follow, "
            "unranked"
        )
        parts.append(
            format_rows(
                [
                    {
                        "rank": r.rank or "-",
                        "attention": r.attention,
                        name: f"{r.metric:.4f}",
                        "95% CI": "" if r.ci_low is None else f"[{r.ci_low:.4f}, {r.ci_high:.4f}]",
                        UNITS[cost].label: UNITS[cost].show(r.cost),
                        "seeds": r.seeds,
                        "epochs": r.epochs,
                        "stopped": "early" if r.stopped_early else "",
                        "pareto": "*" if r.pareto else "",
                    }
                    for r in rows
                ]
            )
            if rows
            else "(no runs)"
        )
    return "\n\n".join(parts)


def _blank(value: float | None):
    return "" if value is None else value
