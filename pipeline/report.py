"""`attnlab report`: the study's views regenerated from MLflow runs, as one self-contained HTML page.

Plots are PNGs (written beside the page and embedded as data URIs, so the page opens from disk
with no server): accuracy against attention FLOPs per code (the study's Figure 3 view), the
per-term ablation table, deformable/dynamic convolution against E2, and the Pareto front.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lightning_modules.attention import parse_spec  # noqa: E402

from .queries import Row, rank  # noqa: E402
from .tasks import TASKS  # noqa: E402

E2_FAMILY = ["w/o", "0100", "deform", "deform2", "dynamic", "0010", "0010+deform", "0010+dynamic"]


def _scatter(
    rows: list[Row], task: str, metric: str, cost: str, path: Path, front_only: bool = False
) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in rows:
        colour = "tab:red" if r.pareto else "tab:blue"
        ax.errorbar(r.cost, r.metric, yerr=r.half_width or None, fmt="o", color=colour, capsize=3)
        ax.annotate(r.attention, (r.cost, r.metric), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = sorted((r for r in rows if r.pareto), key=lambda r: r.cost)
    if front:
        ax.plot(
            [r.cost for r in front], [r.metric for r in front], "--", color="tab:red", label="Pareto front"
        )
        ax.legend(loc="best")
    ax.set_xlabel(cost.replace("_", " "))
    ax.set_ylabel(metric)
    ax.set_title(f"{task}: {'Pareto front' if front_only else 'accuracy vs cost per mechanism'}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _bars(rows: list[Row], task: str, metric: str, path: Path) -> Path | None:
    chosen = [r for name in E2_FAMILY for r in rows if r.attention == name]
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    ax.bar(
        [r.attention for r in chosen],
        [r.metric for r in chosen],
        yerr=[r.half_width for r in chosen],
        color=[
            "tab:orange" if ("deform" in r.attention or "dynamic" in r.attention) else "tab:blue"
            for r in chosen
        ],
    )
    ax.set_ylabel(metric)
    ax.set_title(f"{task}: deformable / dynamic convolution vs E2")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return "<p>(no runs for this view)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" data-file="{path.name}">'


def _terms(attention: str) -> tuple[bool, bool, bool, bool]:
    """E1..E4 of a spec; per-site translation specs (enc_self=...,...) have no single code."""
    try:
        return parse_spec(attention).terms
    except ValueError:
        return (False, False, False, False)


def _mean_ci(r: Row) -> str:
    return f"{r.metric:.4f}" if r.ci_low is None else f"{r.metric:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}]"


def _ablation_table(rows: list[Row], cost: str) -> str:
    head = (
        "<tr><th>spec</th><th>E1</th><th>E2</th><th>E3</th><th>E4</th><th>metric (mean [95% CI])</th>"
        f"<th>{html.escape(cost)}</th><th>seeds</th><th>Pareto</th></tr>"
    )
    body = []
    for r in rows:  # the ranking's order: by the task's metric, full budgets first
        marks = "".join(f"<td>{'✓' if on else ''}</td>" for on in _terms(r.attention))
        body.append(
            f"<tr><td>{html.escape(r.attention)}</td>{marks}<td>{_mean_ci(r)}</td>"
            f"<td>{r.cost:.4g}</td><td>{r.seeds}</td><td>{'★' if r.pareto else ''}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _findings_section(runs: list) -> str:
    from .findings import findings, table_rows

    rows = table_rows(findings(runs))
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in rows
    )
    return (
        "<h2>The study's findings</h2><p>Each comparison is A - B on the task's metric, paired by seed, "
        f"with a 95% Student-t interval; only runs that trained their full budget count.</p>"
        f"<table>{head and '<tr>' + head + '</tr>'}{body}</table>"
    )


def write_report(runs: list, experiment: str, out: str | Path, cost: str = "attention_flops") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ranking = rank(runs, None, None, cost)
    sections = []
    for task, rows in ranking.items():
        metric = TASKS[task].metric
        fig3 = _scatter(rows, task, metric, cost, out / f"{task}-accuracy-vs-cost.png")
        front = _scatter([r for r in rows if r.pareto], task, metric, cost, out / f"{task}-pareto.png", True)
        bars = _bars(rows, task, metric, out / f"{task}-deform-dynamic-vs-e2.png")
        sections.append(f"""
<h2>{html.escape(task)}</h2>
<h3>Accuracy against {html.escape(cost)} for every mechanism</h3>{_img(fig3, "accuracy vs cost")}
<h3>Per-term ablation</h3>{_ablation_table(rows, cost)}
<h3>Deformable and dynamic convolution against E2</h3>{_img(bars, "deform/dynamic vs E2")}
<h3>Pareto front</h3>{_img(front, "Pareto front")}""")
    title = f"attnlab report: {html.escape(experiment)}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:center}}img{{max-width:100%}}</style></head>
<body><h1>attnlab report: {html.escape(experiment)}</h1>
<p>{len(runs)} runs. Metrics are means over seeds of each run's last evaluation;
cost is {html.escape(cost)}.</p>
{_findings_section(runs)}
{"".join(sections) or "<p>No runs with metrics yet.</p>"}</body></html>"""
    index = out / "index.html"
    index.write_text(page)
    return index
