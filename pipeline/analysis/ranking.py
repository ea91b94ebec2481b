"""Which configurations give the best accuracy for their cost: rankings and Pareto fronts from MLflow.

MLflow's search filters are AND-only, so runs are fetched once per experiment and grouped,
averaged over seeds and compared client-side.

Two views: the full budget (rows that trained every epoch, ranked; early-stopped ones listed
after), and every rung: at each epoch count several configurations reached, each trial's
metric at that epoch (its MLflow history), so a trial early stopping cut still counts at the
rungs it reached, as ASHA itself compared it.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from mlflow.tracking import MlflowClient

from attnlab.pipeline.analysis.estimates import (
    POOL_BELOW,
    mean_ci,
    pareto_front,
    pooled_ci,
    pooled_variance,
)
from attnlab.pipeline.analysis.racing import RaceRules, standings
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.costs.attention_table import format_rows
from attnlab.pipeline.costs.axes import COSTS, UNITS
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking.runs import stopped_early
from attnlab.pipeline.tracking.tags import (
    ATTENTION,
    EPOCHS_DONE,
    KEPT_BY_FRONT,
    KIND,
    RACE,
    RACE_COST,
    RACE_ROUND,
    RERUN,
    SEED,
    TASK,
    TRAINING_KINDS,
)


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
    attention_flops: float | None = None  # the placed modules' FLOPs, whole (a column beside any cost)
    kept_by_front: bool = False  # cost-aware early stopping's front rule promoted a run of it
    values: list[float] = field(default_factory=list)  # the metric of each run (`runs`)
    ci_pooled: bool = False  # the interval uses the task's pooled residual variance (few seeds)
    p_front: float | None = (
        None  # P(on the full-budget front) (`estimates.p_front`); None: stopped early/unknown
    )
    standing: str | None = None  # what the seeds settle: dominated, on the front, or open (racing's tests)
    race: str | None = None  # what a racing sweep decided for it, at its last decided round

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


def full_budget(run) -> bool:
    return run.info.status == "FINISHED" and not stopped_early(run)


def interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high); no interval from a single value."""
    if len(values) < 2:
        return statistics.fmean(values), None, None
    return mean_ci(values)


def fetch_runs(uri: str, experiment: str) -> list:
    """The runs of `experiment` that trained a model (sweep trials and standalone runs); reads only."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = ", ".join(e.name for e in client.search_experiments()) or "none"
        raise ConfigError(f"no MLflow experiment {experiment!r} at {uri}; experiments there: {names}")
    runs = client.search_runs([exp.experiment_id], max_results=50000)
    return [r for r in runs if r.data.tags.get(KIND) in TRAINING_KINDS]


class Ranking(dict):
    """task -> its rows ranked at equal budget (`rank`), with what made it: the store's `uri`, the
    `runs`, the `metric` (None: each task's) and the `cost` axis, so its rungs can be ranked too."""

    uri: str
    runs: list
    metric: str | None
    cost: str

    @classmethod
    def of(cls, uri: str, runs: list, task: str | None, metric: str | None, cost: str) -> Ranking:
        ranking = cls(rank(runs, task, metric, cost))
        ranking.uri, ranking.runs, ranking.metric, ranking.cost = uri, runs, metric, cost
        return ranking

    def rungs(self) -> dict[str, list[Rung]]:
        """The same tasks ranked at every epoch count two or more configurations reached."""
        return rungs(self.uri, self.runs, self, self.metric, self.cost)


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
        groups: dict[tuple[str, bool], list] = {}
        for r in runs:
            if r.data.tags.get(TASK) == t and key in r.data.metrics and COSTS[cost] in r.data.metrics:
                groups.setdefault((r.data.tags.get(ATTENTION, "?"), stopped_early(r)), []).append(r)
        groups = {k: sorted(members, key=_by_seed) for k, members in groups.items()}
        rows = [
            _row(
                t,
                spec,
                members,
                [m.data.metrics[key] for m in members],
                cost,
                max(map(epochs_trained, members)),
                stopped,
            )
            for (spec, stopped), members in groups.items()
        ]
        # Equal budgets only: full-budget rows are ranked and form the front; early-stopped ones follow.
        full = _ranked([r for r in rows if not r.stopped_early])
        cut = sorted((r for r in rows if r.stopped_early), key=lambda r: (-r.epochs, -r.metric, r.cost))
        out[t] = full + cut
    return out


def _by_seed(run) -> tuple[int, str]:
    """A configuration's runs by seed (then run id): the order MLflow returns them in follows when
    they started, which a resumed sweep changes."""
    seed = run.data.tags.get(SEED, "")
    return (int(seed) if seed.lstrip("-").isdigit() else 0, run.info.run_id)


def _row(
    task: str, spec: str, members: list, values: list[float], cost: str, epochs: int, stopped: bool
) -> Row:
    mean, low, high = interval(values)
    attention = [
        m.data.metrics[COSTS["attention_flops"]]
        for m in members
        if COSTS["attention_flops"] in m.data.metrics
    ]
    return Row(
        task,
        spec,
        mean,
        low,
        high,
        statistics.fmean(m.data.metrics[COSTS[cost]] for m in members),
        len({m.data.tags.get(SEED) for m in members}),
        epochs,
        stopped,
        [m.info.run_id for m in members],
        reruns=[m.data.tags.get(RERUN) for m in members],
        attention_flops=statistics.fmean(attention) if attention else None,
        kept_by_front=any(m.data.tags.get(KEPT_BY_FRONT) == "true" for m in members),
        values=list(values),
        race=_race(members, cost),
    )


def _race(members: list, cost: str) -> str | None:
    """The race's word on a configuration: the tag of its latest decided round among its runs, where
    the race ran on this cost axis."""
    tagged = [m for m in members if m.data.tags.get(RACE) and m.data.tags.get(RACE_COST) == cost]
    if not tagged:
        return None
    latest = max(tagged, key=lambda m: int(m.data.tags.get(RACE_ROUND) or 0))
    return f"{latest.data.tags[RACE]} (race, round {latest.data.tags.get(RACE_ROUND, '?')})"


def how_sure(rows: list[Row]) -> None:
    """Intervals from the pooled residual variance for rows with fewer than POOL_BELOW seeds (a
    2-seed interval of its own has t = 12.7), each row's P(front), and what its seeds settle
    (pipeline/analysis/racing.py: dominated, on the front, or open); rows of one budget."""
    groups = [r.values for r in rows]
    if not rows:
        return
    variance, df = pooled_variance(groups)
    for row in rows:
        if len(row.values) < POOL_BELOW and df > 0:
            row.metric, row.ci_low, row.ci_high = pooled_ci(row.values, variance, df)
            row.ci_pooled = True
    standing = standings(
        {r.attention: r.values for r in rows}, {r.attention: r.cost for r in rows}, {}, RaceRules()
    )
    for row in rows:  # a race's own decision where it made one (settled is final there)
        row.p_front = standing[row.attention].p_front
        row.standing = row.race or standing[row.attention].describe()


def _ranked(rows: list[Row]) -> list[Row]:
    """Rows of one budget, best metric first (cheaper first on ties), ranked, the front marked, how
    sure (`how_sure`)."""
    rows = sorted(rows, key=lambda r: (-r.metric, r.cost))
    for i, (row, front) in enumerate(zip(rows, pareto_front([(r.metric, r.cost) for r in rows]))):
        row.rank, row.pareto = i + 1, front
    how_sure(rows)
    return rows


@dataclass
class Rung:
    epochs: int
    ranking: list[Row]


def metric_by_epoch(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """{epochs trained: the metric evaluated then} from a run's MLflow history. An epoch's
    evaluation is logged just before its `epochs_done` (Lightning logs it a step earlier), so each
    value belongs to the first `epochs_done` logged at or after it; an epoch trained again after a
    restore counts its last value, and an evaluation whose epoch never ended counts for none."""
    done = sorted(client.get_metric_history(run_id, EPOCHS_DONE), key=lambda m: (m.timestamp, m.step))
    values = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.timestamp, m.step))
    out: dict[int, float] = {}
    for value in values:
        mark = next((d for d in done if d.timestamp >= value.timestamp and d.step >= value.step), None)
        if mark is not None:
            out[int(mark.value)] = value.value
    return out


def rungs(uri: str, runs: list, tasks: Iterable[str], metric: str | None, cost: str) -> dict[str, list[Rung]]:
    """Per task of `tasks` (a `rank` result's keys), a ranking at every epoch count that two or
    more configurations reached (fewest epochs first), each trial at its metric after that many
    epochs, stopped trials included."""
    client = MlflowClient(uri)
    out: dict[str, list[Rung]] = {}
    for t in tasks:
        key = metric or TASKS[t].metric
        at: dict[int, dict[str, list[tuple]]] = {}
        for r in sorted(runs, key=_by_seed):  # whatever order the store returned them in
            if r.data.tags.get(TASK) != t or COSTS[cost] not in r.data.metrics:
                continue
            for epochs, value in metric_by_epoch(client, r.info.run_id, key).items():
                at.setdefault(epochs, {}).setdefault(r.data.tags.get(ATTENTION, "?"), []).append((r, value))
        out[t] = [
            Rung(
                epochs,
                _ranked(
                    [
                        _row(
                            t,
                            spec,
                            [r for r, _ in pairs],
                            [v for _, v in pairs],
                            cost,
                            epochs,
                            any(stopped_early(r) for r, _ in pairs),
                        )
                        for spec, pairs in by_spec.items()
                    ]
                ),
            )
            for epochs, by_spec in sorted(at.items())
            if len(by_spec) >= 2
        ]
    return out


def largest_rung(task_rungs: list[Rung], more_than: int) -> Rung | None:
    """The rung with the most epochs among those comparing more than `more_than` configurations."""
    wider = [r for r in task_rungs if len(r.ranking) > more_than]
    return wider[-1] if wider else None


def render(
    ranking: dict[str, list[Row]],
    metric: str | None,
    cost: str,
    fmt: str,
    rung_list: dict[str, list[Rung]] | None = None,
) -> str:
    """The full-budget ranking first, then (given `rung_list`) the rungs: in JSON every rung, in
    CSV every rung's rows (a `rung` column; empty for the full budget), in the table the rungs
    that compare more configurations than the full budget, most epochs first."""
    rung_list = rung_list or {}
    if fmt == "json":
        return json.dumps(
            {
                t: {
                    "metric": metric or TASKS[t].metric,
                    "cost": cost,
                    "cost_counts": UNITS[cost].label,
                    "ranking": [asdict(r) for r in rows],
                    "pareto_front": [r.attention for r in rows if r.pareto],
                    "rungs": [
                        {"epochs": g.epochs, "ranking": [asdict(r) for r in g.ranking]}
                        for g in rung_list.get(t, [])
                    ],
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
                "attention_flops",
                "seeds",
                "epochs",
                "stopped_early",
                "pareto",
                "p_front",
                "standing",
                "rung",
            ]
        )
        for t, rows in ranking.items():
            tables = [("", rows)] + [(g.epochs, g.ranking) for g in rung_list.get(t, [])]
            for rung, table in tables:
                for r in table:
                    writer.writerow(
                        [
                            t,
                            r.rank or "",
                            r.attention,
                            r.metric,
                            _blank(r.ci_low),
                            _blank(r.ci_high),
                            r.cost,
                            _blank(r.attention_flops),
                            r.seeds,
                            r.epochs,
                            r.stopped_early,
                            r.pareto,
                            _blank(r.p_front),
                            r.standing or "",
                            rung,
                        ]
                    )
        return buf.getvalue().rstrip("\n")
    parts = []
    for t, rows in ranking.items():
        name = metric or TASKS[t].metric
        parts.append(
            f"{t}: ranked by {name} at each trial's last epoch (mean over seeds, 95% CI; p: from the "
            f"residual variance pooled over the task's configurations, under {POOL_BELOW} seeds) among "
            f"trials that trained their full budget; * = Pareto front vs {UNITS[cost].label}; P(front): "
            "the probability of being on it (bootstrap over seeds; n/a: one seed everywhere); the seeds "
            "settle: dominated (a one-sided t-test against a configuration at most as costly, Holm) or "
            "on the front (P(front) >= 0.95 from 4 seeds), else open; "
            "early-stopped trials follow, unranked"
        )
        parts.append(_table(rows, name, cost) if rows else "(no runs)")
        ranked = sum(r.rank is not None for r in rows)
        for g in reversed(rung_list.get(t, [])):
            if len(g.ranking) > ranked:
                parts.append(
                    f"{t} at {g.epochs} epoch(s), the rung {len(g.ranking)} configurations reached: "
                    f"each trial's {name} after {g.epochs} epoch(s); * = Pareto front at this rung"
                )
                parts.append(_table(g.ranking, name, cost))
    return "\n\n".join(parts)


def _table(rows: list[Row], name: str, cost: str) -> str:
    whole = UNITS["attention_flops"].label
    return format_rows(
        [
            {
                "rank": r.rank or "-",
                "attention": r.attention,
                name: f"{r.metric:.4f}",
                "95% CI": ""
                if r.ci_low is None
                else f"[{r.ci_low:.4f}, {r.ci_high:.4f}]" + ("p" if r.ci_pooled else ""),
                UNITS[cost].label: UNITS[cost].show(r.cost),
                **(
                    {
                        whole: ""
                        if r.attention_flops is None
                        else UNITS["attention_flops"].show(r.attention_flops)
                    }
                    if cost != "attention_flops"
                    else {}
                ),
                "seeds": r.seeds,
                "epochs": r.epochs,
                "stopped": "early" if r.stopped_early else "",
                "pareto": "*" if r.pareto else "",
                "P(front)": _p(r),
                "the seeds settle": r.standing or "",
                **(
                    {"front rule": "kept" if r.kept_by_front else ""}
                    if any(x.kept_by_front for x in rows)
                    else {}
                ),
            }
            for r in rows
        ]
    )


def _p(row: Row) -> str:
    if row.p_front is not None:
        return f"{row.p_front:.2f}"
    return "stopped" if row.stopped_early else "n/a"


def _blank(value: float | None):
    return "" if value is None else value
