"""`attnlab report`: the study's views regenerated from MLflow runs, as one self-contained HTML page.

Plots are PNGs (written beside the page and embedded as data URIs, so the page opens from disk
with no server). A section appears only when the runs hold what it compares: accuracy against
cost per mechanism with the Pareto front drawn (the study's Figure 3 view; for translation, one
per attention site), the same view at the largest rung when fewer than three configurations
trained their full budget (early-stopped trials at the epoch they reached), the per-term
table, deformable/dynamic convolution against E2, and the effects of the terms E1-E4 (each with
its interval). No plot shows the same points as another.
"""

from __future__ import annotations

import base64
import html
import logging
import zlib
from pathlib import Path

import matplotlib
from mlflow.tracking import MlflowClient

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnlab.lightning_modules.attention import parse_spec  # noqa: E402
from attnlab.lightning_modules.attention.sites import SITES, held_at_most_common, parse_sites  # noqa: E402
from attnlab.pipeline.analysis.effects import DEFINITION, NETWORK, effects, heading, table_rows  # noqa: E402
from attnlab.pipeline.analysis.findings import findings  # noqa: E402
from attnlab.pipeline.analysis.findings import table_rows as finding_rows  # noqa: E402
from attnlab.pipeline.analysis.ranking import Row, Rung, fetch_runs, largest_rung, rank, rungs  # noqa: E402
from attnlab.pipeline.costs.axes import COST_MEANS, DEFAULT_COST, UNITS  # noqa: E402
from attnlab.pipeline.tasks.registry import TASKS  # noqa: E402
from attnlab.pipeline.tracking.tags import DESCRIPTION, P_FRONT  # noqa: E402

E2 = "0100"  # query content and relative position: the term the study sets deformable convolution against
CONVS = {"deform": "deformable", "deform2": "deformable", "dynamic": "dynamic"}
MARKERS = "osD^v<>phX*"
COLOURS = plt.get_cmap("tab20").colors
# The study's own names first, so each keeps its marker and colour in every plot of every report.
KNOWN = ["w/o", *(format(i, "04b") for i in range(1, 16)), "deform", "dynamic", "0010+deform", "0010+dynamic"]


def style_of(label: str) -> tuple[str, tuple]:
    """(marker, colour) of a spec or site code: the same in every plot (a stable hash for others)."""
    index = KNOWN.index(label) if label in KNOWN else len(KNOWN) + zlib.crc32(label.encode()) % 97
    return MARKERS[index % len(MARKERS)], COLOURS[(index * 7) % len(COLOURS)]


def _y_range(rows: list[Row]) -> tuple[float, float] | None:
    """Limits that show differences at the scale of the seed spread, never magnified beyond it: at
    least four times the widest half interval (with one seed, and so no interval, 5% of the mean)."""
    lows = [r.metric - r.half_width for r in rows]
    highs = [r.metric + r.half_width for r in rows]
    spread = max((r.half_width for r in rows), default=0.0)
    least = 4 * spread if spread > 0 else 0.05 * max(abs(r.metric) for r in rows)
    low, high = min(lows), max(highs)
    if high - low >= least or least == 0:
        return None
    middle = (low + high) / 2
    return middle - least / 2, middle + least / 2


def _conv_of(attention: str) -> str | None:
    try:
        return parse_spec(attention).conv
    except ValueError:
        return None


def scatter_figure(rows: list[Row], labels: list[str], title: str | None, metric: str, cost: str):
    """Metric against cost, one marker per row with its 95% interval, each label in the same marker
    and colour in every plot (`style_of`). Names and each row's P(front) sit in a legend beside the
    axes, never on the points, so they cannot overlap however close the points are. The y axis
    never magnifies differences below the seed spread (`_y_range`); with one seed it says there is
    no interval. `title`: None where a heading above says it."""
    unit = UNITS[cost]
    fig, ax = plt.subplots(figsize=(8.5, 4.5), dpi=110)
    for r, label in zip(rows, labels):
        marker, colour = style_of(label)
        ax.errorbar(
            unit.value(r.cost),
            r.metric,
            yerr=r.half_width or None,
            fmt=marker,
            color=colour,
            markeredgecolor="black" if r.pareto else colour,
            markersize=8,
            capsize=3,
            label=(f"{label} (Pareto)" if r.pareto else label)
            + ("" if r.p_front is None else f", P(front) {r.p_front:.2f}"),
        )
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.cost)
    if len(front) > 1:
        ax.plot([unit.value(r.cost) for r in front], [r.metric for r in front], "--", color="grey", zorder=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel(unit.label)
    ax.set_ylabel(metric)
    if (limits := _y_range(rows)) is not None:
        ax.set_ylim(*limits)
    if not any(r.half_width for r in rows):
        ax.text(0.01, 0.01, "one seed each: no interval", transform=ax.transAxes, fontsize=8, color="grey")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def scatter(
    rows: list[Row], labels: list[str], title: str | None, metric: str, cost: str, path: Path
) -> Path:
    fig = scatter_figure(rows, labels, title, metric, cost)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _bars(rows: list[Row], metric: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    ax.bar(
        range(len(rows)),
        [r.metric for r in rows],
        yerr=[r.half_width for r in rows],
        color=[style_of(r.attention)[1] for r in rows],
        capsize=3,
    )
    ax.set_xticks(range(len(rows)), [r.attention for r in rows], rotation=30, ha="right")
    ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" data-file="{path.name}">'


def _sites(attention: str) -> dict[str, str] | None:
    try:
        return parse_sites(attention)
    except ValueError:
        return None


def _terms(attention: str) -> tuple[bool, bool, bool, bool] | None:
    """E1..E4 of a single spec; None for per-site translation specs (enc_self=...,...)."""
    try:
        return parse_spec(attention).terms
    except ValueError:
        return None


def _mean_ci(r: Row) -> str:
    if r.ci_low is None:
        return f"{r.metric:.4f}"
    pooled = " (pooled)" if r.ci_pooled else ""
    return f"{r.metric:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}]{pooled}"


def _p_front(r: Row) -> str:
    if r.p_front is not None:
        return f"{r.p_front:.2f}"
    return "stopped early: no full-budget value" if r.stopped_early else "n/a: one seed each"


def _table(task: str, rows: list[Row], metric: str, cost: str) -> str:
    """The ranking's order: full budgets by the task's metric, then early-stopped trials."""
    sites = bool(TASKS[task].attention_sites)
    spec_heads = "".join(f"<th>{s}</th>" for s in SITES) if sites else "<th>spec</th>"
    term_heads = "" if sites else "<th>E1</th><th>E2</th><th>E3</th><th>E4</th>"
    head = (
        f"<tr><th>rank</th>{spec_heads}{term_heads}<th>{html.escape(metric)} (mean [95% CI])</th>"
        f"<th>{html.escape(UNITS[cost].label)}</th><th>seeds</th><th>epochs</th><th>Pareto</th>"
        "<th>P(front)</th></tr>"
    )
    body = []
    for r in rows:
        if sites:
            named = _sites(r.attention) or dict.fromkeys(SITES, "?")
            spec = "".join(f"<td>{html.escape(v)}</td>" for v in named.values())
            marks = ""
        else:
            spec = f"<td>{html.escape(r.attention)}</td>"
            marks = "".join(f"<td>{'✓' if on else ''}</td>" for on in _terms(r.attention) or (False,) * 4)
        epochs = f"{r.epochs} (stopped early)" if r.stopped_early else str(r.epochs)
        epochs += " (kept by the front rule)" if r.kept_by_front else ""
        body.append(
            f"<tr><td>{r.rank or '-'}</td>{spec}{marks}<td>{_mean_ci(r)}</td>"
            f"<td>{UNITS[cost].show(r.cost)}</td><td>{r.seeds}</td><td>{epochs}</td>"
            f"<td>{'★' if r.pareto else ''}</td><td>{_p_front(r)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _site_views(rows: list[Row]) -> list[tuple[str, str, list[Row], list[str]]]:
    """Translation's Figure 3 view, one per site: the rows where only that site's spec varies
    (the other two hold their most common setting). (site, held, rows, labels); sites with fewer
    than two such rows are left out."""
    parsed = [(r, p) for r in rows if (p := _sites(r.attention)) is not None]
    views = []
    for site in SITES:
        held = held_at_most_common(parsed, site, lambda item: item[1])
        if held is None:
            continue
        setting, chosen = held
        if len({p[site] for _, p in chosen}) >= 2:
            others = [s for s in SITES if s != site]
            fixed = ", ".join(f"{s}={v}" for s, v in zip(others, setting))
            views.append((site, fixed, [r for r, _ in chosen], [p[site] for _, p in chosen]))
    return views


def _e2_comparison(rows: list[Row]) -> tuple[str, list[Row]] | None:
    """Deformable/dynamic convolution against E2 (0100), when the runs hold both sides."""
    convs = [r for r in rows if _conv_of(r.attention)]
    e2 = [r for r in rows if r.attention == E2]
    if not convs or not e2:
        return None
    kinds = sorted({CONVS.get(_conv_of(r.attention), _conv_of(r.attention)) for r in convs})
    baseline = [r for r in rows if r.attention == "w/o"]
    return f"{' and '.join(kinds)} convolution against E2 ({E2})", baseline + e2 + convs


def _accuracy_vs_cost(task: str, rows: list[Row], cost: str, out: Path, when: str, suffix: str) -> list[str]:
    """The Figure 3 view of `rows` (one budget), front drawn: one per site for translation."""
    metric, unit, parts = TASKS[task].metric, UNITS[cost].label, []
    if TASKS[task].attention_sites:
        for site, fixed, chosen, labels in _site_views(rows):
            path = scatter(
                chosen, labels, None, metric, cost, out / f"{task}-{site}-accuracy-vs-cost{suffix}.png"
            )
            parts.append(f"<h3>{site} attention: {html.escape(metric)} against {unit} {when}</h3>")
            parts.append(f"<p>Other sites held at {html.escape(fixed)}.</p>{_img(path, site)}")
    if not parts and len(rows) >= 2:  # one network, or sites the grid never varies one at a time
        path = scatter(
            rows,
            [r.attention for r in rows],
            None,
            metric,
            cost,
            out / f"{task}-accuracy-vs-cost{suffix}.png",
        )
        parts.append(
            f"<h3>{html.escape(metric)} against {unit} per mechanism {when}</h3>{_img(path, 'Figure 3')}"
        )
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.cost)
    if front:
        names = ", ".join(html.escape(r.attention) for r in front)
        parts.append(
            f"<p>Pareto front {when} (ringed, dashed), from cheapest: {names}. P(front) is each "
            "configuration's probability of being on it: the share of 10,000 draws of every "
            "configuration's mean (its seeds bootstrapped from four seeds on, else its mean with the "
            "task's pooled seed-to-seed variance) in which no other is at least as accurate at no "
            "more cost. Costs count at their mean; a configuration stopped early has no full-budget "
            "value, so none.</p>"
        )
    return parts


def _task_section(task: str, rows: list[Row], rungs: list[Rung], cost: str, out: Path) -> str:
    metric = TASKS[task].metric
    full = [r for r in rows if not r.stopped_early]
    stopped = len(rows) - len(full)
    parts = [f"<h2>{html.escape(task)}</h2>"]
    rung = largest_rung(rungs, len(full)) if len(full) < 3 else None
    if stopped:
        where = f"; the view at {rung.epochs} epoch(s) below compares them where they stopped" if rung else ""
        parts.append(
            f"<p>{stopped} of {len(rows)} configurations were stopped early; they are listed in the "
            f"table after the ranked ones, and the full-budget view leaves them out{where}.</p>"
        )
    parts += _accuracy_vs_cost(task, full, cost, out, "at the full budget", "")
    heading = "Per-site ranking" if TASKS[task].attention_sites else "Per-term ablation"
    parts.append(f"<h3>{heading}, by {html.escape(metric)}</h3>{_table(task, rows, metric, cost)}")
    if rung:
        parts += _accuracy_vs_cost(
            task, rung.ranking, cost, out, f"at {rung.epochs} epoch(s)", f"-rung{rung.epochs}"
        )
        parts.append(
            f"<h3>At {rung.epochs} epoch(s): every configuration that reached it</h3>"
            f"<p>Each trial's {html.escape(metric)} after {rung.epochs} epoch(s), from its MLflow "
            f"history, as the early stopping compared it.</p>{_table(task, rung.ranking, metric, cost)}"
        )
    comparison = _e2_comparison(full)
    if comparison and len(comparison[1]) < len(full):  # bars of the very points above would repeat them
        title, chosen = comparison
        path = _bars(chosen, metric, out / f"{task}-conv-vs-e2.png")
        parts.append(f"<h3>{html.escape(title[0].upper() + title[1:])}</h3>{_img(path, title)}")
    return "\n".join(parts)


def _effects_figure(design, path: Path) -> Path:
    """Each estimable term's effect with its 95% interval as a bar, 0 marked."""
    shown = [e for e in design.effects if e.estimate is not None]
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.35 * len(shown)), dpi=110)
    ys = range(len(shown))
    ax.errorbar(
        [e.estimate for e in shown],
        ys,
        xerr=[
            [e.estimate - e.ci_low if e.ci_low is not None else 0 for e in shown],
            [e.ci_high - e.estimate if e.ci_high is not None else 0 for e in shown],
        ],
        fmt="o",
        capsize=3,
        color="tab:blue",
    )
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(list(ys), [e.term for e in shown])
    ax.invert_yaxis()
    ax.set_xlabel(f"effect on {design.metric} (95% CI)")  # its heading is the section's <h3>
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _effects_section(runs: list, out: Path) -> str:
    parts = []
    for d in effects(runs):
        if not any(e.ci_low is not None for e in d.effects):  # `attnlab effects` lists the rest
            continue
        name = f"{d.task}-effects.png" if d.site == NETWORK else f"{d.task}-{d.site}-effects.png"
        rows = table_rows(d)
        head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
            for row in rows
        )
        note = f"<p>{html.escape(d.note)}</p>" if d.note else ""
        parts.append(
            f"<h3>{html.escape(heading(d))}</h3>{note}{_img(_effects_figure(d, out / name), name)}"
            f"<table><tr>{head}</tr>{body}</table>"
        )
    if not parts:
        return ""
    return (
        "<h2>Effects of the terms E1-E4</h2><p>The grid read as a factorial design: "
        f"{html.escape(DEFINITION)}; runs that trained their full budget (`attnlab effects --epochs N` "
        "fits a rung).</p>" + "".join(parts)
    )


def _findings_section(runs: list) -> str:

    every = finding_rows(findings(runs))
    rows = [row for row in every if row["seeds"]]  # comparisons these runs hold
    if not rows:
        return ""
    missing = len(every) - len(rows)
    lacking = (
        f" {missing} more need runs this experiment lacks; `attnlab findings` lists them." if missing else ""
    )
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return (
        "<h2>The study's findings</h2><p>Each comparison is A - B on the task's metric, paired by seed, "
        f"with a 95% Student-t interval; only runs that trained their full budget count.{lacking}</p>"
        f"<table>{head and '<tr>' + head + '</tr>'}{body}</table>"
    )


def write_report(
    runs: list,
    experiment: str,
    out: str | Path,
    cost: str = DEFAULT_COST,
    uri: str | None = None,
    ranking: dict[str, list[Row]] | None = None,
) -> Path:
    """The page for `runs`; with the store's `uri`, rungs too (they read each run's history).
    `ranking`: `rank(runs, None, None, cost)` when the caller has it already."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a rerun shows only what these runs hold
        old.unlink()
    ranking = ranking if ranking is not None else rank(runs, None, None, cost)
    every_rung = rungs(uri, runs, ranking, None, cost) if uri else {}
    sections = [
        _task_section(task, rows, every_rung.get(task, []), cost, out)
        for task, rows in ranking.items()
        if rows
    ]
    title = f"attnlab report: {html.escape(experiment)}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:center}}img{{max-width:100%}}</style></head>
<body><h1>attnlab report: {html.escape(experiment)}</h1>
<p>{len(runs)} runs. Metrics are means over seeds of each run's last evaluation (at a rung: its
evaluation after that many epochs); cost is {html.escape(UNITS[cost].label + COST_MEANS.get(cost, ""))}.</p>
{_findings_section(runs)}
{_effects_section(runs, out)}
{"".join(sections) or "<p>No runs with metrics yet.</p>"}</body></html>"""
    index = out / "index.html"
    index.write_text(page)
    return index


REPORT_LINE = "Report (HTML, also `attnlab report`):"


def publish_report(uri: str, experiment: str, run_id: str, out: str | Path) -> str | None:
    """Write `experiment`'s report into `out`, attach it to the run `run_id` (a sweep's parent) and
    link it from the run's description. A report that cannot be made never fails what made the runs;
    the reason is logged."""
    try:
        runs = fetch_runs(uri, experiment)
        ranking = rank(runs, None, None, DEFAULT_COST)  # one ranking (its bootstrap) for page and tags
        index = write_report(runs, experiment, out, uri=uri, ranking=ranking)
        client = MlflowClient(uri)
        for rows in ranking.values():  # each trial says how sure its front is
            for row in rows:
                for run_id_of_row in row.runs if row.p_front is not None else ():
                    client.set_tag(run_id_of_row, P_FRONT, f"{row.p_front:.2f} ({DEFAULT_COST})")
        client.log_artifacts(run_id, str(out), "report")
        run = client.get_run(run_id)
        text = run.data.tags.get(DESCRIPTION, "").split(REPORT_LINE)[0].rstrip()
        link = f"#/experiments/{run.info.experiment_id}/runs/{run_id}/artifacts/report/index.html"
        client.set_tag(run_id, DESCRIPTION, f"{text}\n\n{REPORT_LINE} [report/index.html]({link})")
        return str(index)
    except Exception as exc:  # the trials are done; a report is a convenience
        logging.getLogger(__name__).warning("no report for %s: %s", experiment, exc)
        return None
