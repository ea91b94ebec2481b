"""Effects of the terms E1-E4: the study's grid read as the 2^4 factorial design it is.

A main effect is what switching a term on adds to the metric: the OLS coefficient of the term's
0/1 indicator in the model `metric ~ E1 + E2 + E3 + E4 + seed`, with one block per seed; `w/o`
is the all-off code. Every run of every code counts, not one pair of codes. Two-way interactions
(`Ei:Ej`, the coefficient of the product of two indicators) are fitted in a second model, only
when the design can estimate all six and leaves residual degrees of freedom for an interval;
main effects are then still read from the main-effects model. Intervals are 95% Student-t ones
from statsmodels' OLS.

Per task, and for translation per attention site (the other two sites held at their most common
setting, as the report's per-site views) and for both self-attention sites set to one code
together (`self`, encoder-decoder attention held), the grid the study's self-attention claims
read. Specs with a convolution (deform, dynamic) are not
points of the design and are left out. A term the codes present cannot separate (its indicator
is a combination of the others) is named, with the codes whose runs would separate it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

from attnlab.lightning_modules.attention import all_codes, parse_spec
from attnlab.lightning_modules.attention.sites import held_at_most_common, parse_sites
from attnlab.pipeline.analysis.ranking import full_budget, metric_by_epoch
from attnlab.pipeline.costs.attention_table import format_rows
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking.tags import ATTENTION, SEED, TASK

TERMS = ("E1", "E2", "E3", "E4")
PAIRS = tuple(f"{a}:{b}" for a, b in combinations(TERMS, 2))
DESIGN_CODES = ("w/o", *all_codes())  # the 16 points of the factorial design
NETWORK = "network"  # the site name of a task with one spec for the whole network
SELF = "self"  # the joint site of a task's self-attention sites set to one spec (Task.self_attention_sites)
MIN_INTERACTION_DF = 2  # residual degrees of freedom the interaction model must leave
DEFINITION = (
    "main effect = what switching the term on adds to the metric: the OLS coefficient of its 0/1 "
    "indicator in metric ~ E1 + E2 + E3 + E4 + seed (one block per seed; w/o is the all-off code); "
    "interactions Ei:Ej from the same model with the six products added; 95% Student-t intervals"
)


@dataclass
class Effect:
    task: str
    site: str
    term: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n_runs: int
    kind: str = "main"  # "main" | "interaction"
    p_value: float | None = None
    would_separate: list[str] = field(default_factory=list)  # a term the codes cannot separate


@dataclass
class Design:
    """One fit: a task's (and site's) runs on the 16 codes, and what it estimates."""

    task: str
    site: str
    metric: str
    epochs: int | None  # None: the full budget
    points: list[tuple[tuple[int, ...], str, float]]  # (E1..E4 indicators, seed, metric value)
    effects: list[Effect] = field(default_factory=list)
    note: str = ""
    x: Any = None  # the main-effects model's design matrix and its OLS fit, once fitted
    result: Any = None

    def contrast(self, weights: dict[str, float]) -> tuple[float, float, float, float] | None:
        """(estimate, low, high, standard error) of the sum of weight * main effect, its interval 95%; None
        when the codes present cannot estimate it or leave no residual degree of freedom."""
        if self.result is None or int(self.result.df_resid) == 0:
            return None
        row = np.zeros(self.x.shape[1])
        for term, weight in weights.items():
            row[1 + TERMS.index(term)] = weight
        if np.linalg.matrix_rank(np.vstack([self.x, row])) != np.linalg.matrix_rank(self.x):
            return None
        test = self.result.t_test(row)
        low, high = test.conf_int(0.05)[0]
        return float(np.squeeze(test.effect)), float(low), float(high), float(np.squeeze(test.sd))

    def mean_where_off(self, term: str) -> float:
        """The mean metric of the runs with `term` off (what an on-par band is a share of)."""
        j = TERMS.index(term)
        return float(np.mean([v for t, _, v in self.points if not t[j]] or [v for _, _, v in self.points]))

    @property
    def codes(self) -> list[str]:
        return sorted({code_of(t) for t, _, _ in self.points}, key=DESIGN_CODES.index)

    @property
    def seeds(self) -> list[str]:
        return sorted({s for _, s, _ in self.points})


def code_of(terms: tuple[int, ...]) -> str:
    return "".join(map(str, terms)) if any(terms) else "w/o"


def terms_of(spec: str) -> tuple[int, ...] | None:
    """E1..E4 of a design point (a code or w/o); None for anything else (a convolution, a typo)."""
    try:
        parsed = parse_spec(spec)
    except ValueError:
        return None
    return None if parsed.conv else tuple(int(t) for t in parsed.terms)


def _points_by_site(task: str, observed: list[tuple[str, str, float]]) -> dict[str, list]:
    """(spec, seed, value) -> per site, the design points; translation's other sites held."""
    sites = TASKS[task].attention_sites
    if not sites:
        return {NETWORK: [(t, s, v) for spec, s, v in observed if (t := terms_of(spec)) is not None]}
    parsed = []
    for spec, seed, value in observed:
        try:
            parsed.append((parse_sites(spec), seed, value))
        except ValueError:
            continue
    joint = TASKS[task].self_attention_sites
    if joint:  # the self-attention sites set together: one more site, the rest as they are
        sites = (*sites, SELF)
        for p, _, _ in parsed:
            p[SELF] = p[joint[0]] if len({p[j] for j in joint}) == 1 else "(apart)"
    out = {}
    for site in sites:
        # Held at their most common setting: every other site but those that move with this one.
        moves_with = joint if site == SELF else ((SELF,) if site in joint else ())
        held_sites = tuple(s for s in sites if s != site and s not in moves_with)
        usable = [(p, s, v) for p, s, v in parsed if terms_of(p[site]) is not None]
        held = held_at_most_common(usable, site, lambda item: item[0], (site, *held_sites))
        if held:
            out[site] = [(terms_of(p[site]), s, v) for p, s, v in held[1]]
    return out


def design_members(task: str, site: str, specs: list[str]) -> set[str]:
    """Which of a task's configurations (`specs`) are points of its `site` design: the ones a new
    seed of every code must reach for the design's contrasts to narrow."""
    # The design keeps each point's value as it is: the value here is the spec's index.
    points = _points_by_site(task, [(spec, "0", i) for i, spec in enumerate(specs)]).get(site, [])
    return {specs[int(i)] for _, _, i in points}


def observations(runs: list, task: str, metric: str, epochs: int | None, uri: str | None) -> list:
    """(spec, seed, value) per run: full-budget runs' last value, or every run's value after `epochs`."""
    out = []
    client = MlflowClient(uri) if epochs is not None else None
    for r in runs:
        if r.data.tags.get(TASK) != task:
            continue
        spec, seed = r.data.tags.get(ATTENTION, ""), r.data.tags.get(SEED, "0")
        if epochs is None:
            if full_budget(r) and metric in r.data.metrics:
                out.append((spec, seed, r.data.metrics[metric]))
        elif (value := metric_by_epoch(client, r.info.run_id, metric).get(epochs)) is not None:
            out.append((spec, seed, value))
    return out


def _matrix(points, seeds: list[str], pairs: bool):
    rows = []
    for terms, seed, _ in points:
        row = [1.0, *map(float, terms)]
        row += [float(seed == s) for s in seeds[1:]]  # one block per seed (the first is the base)
        if pairs:
            row += [float(terms[i] * terms[j]) for i, j in combinations(range(4), 2)]
        rows.append(row)
    return np.array(rows), np.array([v for _, _, v in points])


def _estimable(x, column: int) -> bool:
    """A coefficient is estimable when its column is not a combination of the others."""
    rest = np.delete(x, column, axis=1)
    return np.linalg.matrix_rank(x) == np.linalg.matrix_rank(rest) + 1


def _separating_codes(points, seeds: list[str], term: int) -> list[str]:
    """Codes not yet run whose runs (at the first seed) would make `term` estimable."""
    present = {code_of(t) for t, _, _ in points}
    found = []
    for code in DESIGN_CODES:
        if code in present:
            continue
        extra = (tuple(int(c) for c in code) if code != "w/o" else (0, 0, 0, 0), seeds[0], 0.0)
        x, _ = _matrix([*points, extra], seeds, pairs=False)
        if _estimable(x, 1 + term):
            found.append(code)
    return found


def fit(design: Design) -> Design:
    """Main effects (and interactions where the design allows) with 95% intervals, in place."""
    points, seeds, n = design.points, design.seeds, len(design.points)
    if n < 2 or len(design.codes) < 2:
        design.note = f"{n} run(s) of {len(design.codes)} code(s): nothing to separate"
        return design
    x, y = _matrix(points, seeds, pairs=False)
    with warnings.catch_warnings():  # a rank-deficient design is expected: its terms are named below
        warnings.simplefilter("ignore", SingularMatrixWarning)
        result = OLS(y, x).fit()
    design.x, design.result = x, result
    df = int(result.df_resid)
    low_high = result.conf_int(0.05) if df > 0 else None
    for j, term in enumerate(TERMS):
        col = 1 + j
        if not _estimable(x, col):
            design.effects.append(
                Effect(
                    design.task,
                    design.site,
                    term,
                    None,
                    None,
                    None,
                    n,
                    would_separate=_separating_codes(points, seeds, j),
                )
            )
            continue
        design.effects.append(
            Effect(
                design.task,
                design.site,
                term,
                float(result.params[col]),
                None if low_high is None else float(low_high[col][0]),
                None if low_high is None else float(low_high[col][1]),
                n,
                p_value=None if df == 0 else float(result.pvalues[col]),
            )
        )
    if df == 0:
        design.note = "no residual degrees of freedom: estimates without intervals (add seeds or codes)"
    xi, _ = _matrix(points, seeds, pairs=True)
    rank = int(np.linalg.matrix_rank(xi))
    if rank == xi.shape[1] and n - rank >= MIN_INTERACTION_DF:
        inter = OLS(y, xi).fit()
        bounds = inter.conf_int(0.05)
        start = 1 + len(TERMS) + len(seeds) - 1
        for k, pair in enumerate(PAIRS):
            col = start + k
            design.effects.append(
                Effect(
                    design.task,
                    design.site,
                    pair,
                    float(inter.params[col]),
                    float(bounds[col][0]),
                    float(bounds[col][1]),
                    n,
                    kind="interaction",
                    p_value=float(inter.pvalues[col]),
                )
            )
    else:
        design.note = (design.note + "; " if design.note else "") + (
            f"two-way interactions not fitted: the design leaves {n - rank} residual degree(s) of "
            f"freedom with all six pairs{'' if rank == xi.shape[1] else ', and cannot separate them all'} "
            f"(it needs {MIN_INTERACTION_DF})"
        )
    return design


def effects(
    runs: list,
    task: str | None = None,
    metric: str | None = None,
    epochs: int | None = None,
    uri: str | None = None,
) -> list[Design]:
    """Every task's (and site's) design, fitted."""
    tasks = sorted({r.data.tags.get(TASK) for r in runs if r.data.tags.get(TASK) in TASKS})
    out = []
    for t in [task] if task else tasks:
        key = metric or TASKS[t].metric
        designs = [
            fit(Design(t, site, key, epochs, points))
            for site, points in _points_by_site(t, observations(runs, t, key, epochs, uri)).items()
            if points
        ]
        # A site held at one code beside a site the grid varies (translation's single self sites
        # while the grid sets both together) estimates nothing: shown alone, it says so; beside a
        # design that separates terms, it is noise.
        varied = [d for d in designs if len(d.codes) > 1]
        out += varied or designs
    return out


def as_rows(designs: list[Design]) -> list[dict]:
    """One row per task, site and term (JSON)."""
    return [{**asdict(e), "metric": d.metric, "epochs": d.epochs} for d in designs for e in d.effects]


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:+.4f}"


def table_rows(design: Design) -> list[dict]:
    return [
        {
            "term": e.term,
            "effect": _num(e.estimate) if e.estimate is not None else "cannot separate",
            "95% CI": "" if e.ci_low is None else f"[{e.ci_low:+.4f}, {e.ci_high:+.4f}]",
            "p": "" if e.p_value is None else f"{e.p_value:.3g}",
            "runs": e.n_runs,
            "codes that would separate it": ", ".join(e.would_separate),
        }
        for e in design.effects
    ]


def heading(d: Design) -> str:
    budget = "full budget" if d.epochs is None else f"at {d.epochs} epoch(s)"
    where = "" if d.site == NETWORK else f", {d.site} attention"
    return (
        f"{d.task}{where}: effects on {d.metric} ({budget}; {len(d.points)} runs of {len(d.codes)} "
        f"code(s), {len(d.seeds)} seed(s))"
    )


NOTHING_ESTIMABLE = (
    "(no term can be estimated from these runs: a term's effect needs codes that differ in it, "
    "with more runs than the design has parameters; sweep more codes or seeds)"
)


def render(designs: list[Design], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_rows(designs), indent=2)
    if not designs:
        return "(no runs of a code or w/o: the effects need runs on the E1-E4 grid)"
    parts = [f"Effects of the terms: {DEFINITION}."]
    for d in designs:
        parts.append(heading(d) + (f"\n{d.note}" if d.note else ""))
        rows = table_rows(d)
        parts.append(format_rows(rows) if rows else NOTHING_ESTIMABLE)
    return "\n\n".join(parts)
