"""`attnlab report`: the study's views regenerated from MLflow runs, as one self-contained HTML page.

Plots are PNGs (written beside the page and embedded as data URIs, so the page opens from disk
with no server). A section appears only when the runs hold what it compares: accuracy against
attention cost per mechanism (the study's Figure 3 view; for translation, one per attention
site), the per-term table, deformable/dynamic convolution against E2, and the Pareto front.
Plots show trials that trained their full budget; early-stopped ones are in the tables only.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from attnlab.lightning_modules.attention import parse_spec  # noqa: E402
from attnlab.lightning_modules.attention.sites import SITES, parse_sites  # noqa: E402

from .costs import UNITS  # noqa: E402
from .ranking import Row, rank  # noqa: E402
from .tasks import TASKS  # noqa: E402

E2 = "0100"  # query content and relative position: the term the study sets deformable convolution against
CONVS = {"deform": "deformable", "deform2": "deformable", "dynamic": "dynamic"}
MARKERS = "osD^v<>phX*"


def _conv_of(attention: str) -> str | None:
    try:
        return parse_spec(attention).conv
    except ValueError:
        return None


def scatter_figure(rows: list[Row], labels: list[str], title: str, metric: str, cost: str):
    """Metric against cost, one marker per row. Names sit in a legend beside the axes, never on
    the points, so they cannot overlap however close the points are."""
    unit = UNITS[cost]
    fig, ax = plt.subplots(figsize=(8.5, 4.5), dpi=110)
    colours = plt.get_cmap("tab20").colors
    for i, (r, label) in enumerate(zip(rows, labels)):
        ax.errorbar(
            unit.value(r.cost),
            r.metric,
            yerr=r.half_width or None,
            fmt=MARKERS[i % len(MARKERS)],
            color=colours[i % len(colours)],
            markeredgecolor="black" if r.pareto else colours[i % len(colours)],
            markersize=8,
            capsize=3,
            label=f"{label} (Pareto)" if r.pareto else label,
        )
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.cost)
    if len(front) > 1:
        ax.plot([unit.value(r.cost) for r in front], [r.metric for r in front], "--", color="grey", zorder=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    ax.set_xlabel(unit.label)
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def scatter(rows: list[Row], labels: list[str], title: str, metric: str, cost: str, path: Path) -> Path:
    fig = scatter_figure(rows, labels, title, metric, cost)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _bars(rows: list[Row], title: str, metric: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    ax.bar(
        range(len(rows)),
        [r.metric for r in rows],
        yerr=[r.half_width for r in rows],
        color=["tab:orange" if _conv_of(r.attention) else "tab:blue" for r in rows],
        capsize=3,
    )
    ax.set_xticks(range(len(rows)), [r.attention for r in rows], rotation=30, ha="right")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=10)
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
    return f"{r.metric:.4f}" if r.ci_low is None else f"{r.metric:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}]"


def _table(task: str, rows: list[Row], metric: str, cost: str) -> str:
    """The ranking's order: full budgets by the task's metric, then early-stopped trials."""
    sites = bool(TASKS[task].attention_sites)
    spec_heads = "".join(f"<th>{s}</th>" for s in SITES) if sites else "<th>spec</th>"
    term_heads = "" if sites else "<th>E1</th><th>E2</th><th>E3</th><th>E4</th>"
    head = (
        f"<tr><th>rank</th>{spec_heads}{term_heads}<th>{html.escape(metric)} (mean [95% CI])</th>"
        f"<th>{html.escape(UNITS[cost].label)}</th><th>seeds</th><th>epochs</th><th>Pareto</th></tr>"
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
        body.append(
            f"<tr><td>{r.rank or '-'}</td>{spec}{marks}<td>{_mean_ci(r)}</td>"
            f"<td>{UNITS[cost].show(r.cost)}</td><td>{r.seeds}</td><td>{epochs}</td>"
            f"<td>{'★' if r.pareto else ''}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _site_views(rows: list[Row]) -> list[tuple[str, str, list[Row], list[str]]]:
    """Translation's Figure 3 view, one per site: the rows where only that site's spec varies
    (the other two hold their most common setting). (site, held, rows, labels); sites with fewer
    than two such rows are left out."""
    parsed = [(r, p) for r in rows if (p := _sites(r.attention)) is not None]
    views = []
    for site in SITES:
        others = [s for s in SITES if s != site]
        held = Counter(tuple(p[s] for s in others) for _, p in parsed).most_common(1)
        if not held:
            continue
        chosen = [(r, p) for r, p in parsed if tuple(p[s] for s in others) == held[0][0]]
        if len({p[site] for _, p in chosen}) >= 2:
            fixed = ", ".join(f"{s}={v}" for s, v in zip(others, held[0][0]))
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


def _task_section(task: str, rows: list[Row], cost: str, out: Path) -> str:
    metric = TASKS[task].metric
    unit = UNITS[cost].label
    full = [r for r in rows if not r.stopped_early]
    stopped = len(rows) - len(full)
    parts = [f"<h2>{html.escape(task)}</h2>"]
    if stopped:
        parts.append(
            f"<p>{stopped} of {len(rows)} configurations were stopped early; they are listed in the "
            "table after the ranked ones and left out of the plots, which compare equal budgets.</p>"
        )
    if TASKS[task].attention_sites:
        for site, fixed, chosen, labels in _site_views(full):
            path = scatter(
                chosen,
                labels,
                f"{task}, {site} attention: {metric} against {unit} ({fixed})",
                metric,
                cost,
                out / f"{task}-{site}-accuracy-vs-cost.png",
            )
            parts.append(f"<h3>{site} attention: {html.escape(metric)} against {unit}</h3>")
            parts.append(f"<p>Other sites held at {html.escape(fixed)}.</p>{_img(path, site)}")
    elif len(full) >= 2:
        path = scatter(
            full,
            [r.attention for r in full],
            f"{task}: {metric} against {unit} per mechanism",
            metric,
            cost,
            out / f"{task}-accuracy-vs-cost.png",
        )
        parts.append(f"<h3>{html.escape(metric)} against {unit} per mechanism</h3>{_img(path, 'Figure 3')}")
    heading = "Per-site ranking" if TASKS[task].attention_sites else "Per-term ablation"
    parts.append(f"<h3>{heading}, by {html.escape(metric)}</h3>{_table(task, rows, metric, cost)}")
    comparison = _e2_comparison(full)
    if comparison:
        title, chosen = comparison
        path = _bars(chosen, f"{task}: {title}", metric, out / f"{task}-conv-vs-e2.png")
        parts.append(f"<h3>{html.escape(title[0].upper() + title[1:])}</h3>{_img(path, title)}")
    front = [r for r in full if r.pareto]
    if front:
        path = scatter(
            front,
            [r.attention for r in front],
            f"{task}: Pareto front, {metric} against {unit}",
            metric,
            cost,
            out / f"{task}-pareto.png",
        )
        names = ", ".join(html.escape(r.attention) for r in sorted(front, key=lambda r: r.cost))
        parts.append(f"<h3>Pareto front</h3><p>From cheapest: {names}.</p>{_img(path, 'Pareto front')}")
    return "\n".join(parts)


def _findings_section(runs: list) -> str:
    from .findings import findings, table_rows

    every = table_rows(findings(runs))
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


def write_report(runs: list, experiment: str, out: str | Path, cost: str = "attention_flops") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a rerun shows only what these runs hold
        old.unlink()
    ranking = rank(runs, None, None, cost)
    sections = [_task_section(task, rows, cost, out) for task, rows in ranking.items() if rows]
    title = f"attnlab report: {html.escape(experiment)}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:center}}img{{max-width:100%}}</style></head>
<body><h1>attnlab report: {html.escape(experiment)}</h1>
<p>{len(runs)} runs. Metrics are means over seeds of each run's last evaluation; cost is
{html.escape(UNITS[cost].label)}.</p>
{_findings_section(runs)}
{"".join(sections) or "<p>No runs with metrics yet.</p>"}</body></html>"""
    index = out / "index.html"
    index.write_text(page)
    return index
