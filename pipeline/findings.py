"""The study's five findings, checked against whatever runs an experiment holds.

Each finding becomes one or more comparisons: group A against group B on a task's metric (mean
over A's or B's specs, paired by seed), as the difference with a 95% Student-t confidence
interval over seeds. A comparison expects either "A > B" (`greater`) or "A and B on par"
(`on_par`: the difference within +-TOLERANCE of B's mean, an equivalence check). Some also expect
A to cost less: judged on the whole model's FLOPs (`cost/flops`), because `cost/attention_flops`
counts a deformable convolution whole while the plain 3x3 convolution it replaces counts as
backbone, which would overstate deform's cost against an attention module. The verdict:

- reproduced: the interval lies where the study says (above 0; inside the band), cost included;
- contradicted: it lies on the other side (below 0; outside the band), or A costs more;
- inconclusive: too few runs or seeds (fewer than 2 paired seeds), or the interval straddles.

Only runs that trained their full budget count (not those early stopping cut).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from attnlab.lightning_modules.attention import format_sites

from .costs import COSTS
from .tags import ATTENTION, SEED, STOPPED_EARLY, TASK
from .tasks import TASKS

TOLERANCE = 0.05  # "on par": within 5% of the reference's mean metric
COST = COSTS["flops"]
VISION = tuple(name for name, task in TASKS.items() if task.modality == "images")
SEQUENCES = tuple(name for name, task in TASKS.items() if task.modality == "sequences")
NO_E1_CODES = ["0100", "0010", "0001", "0110", "0101", "0011", "0111"]


def self_sites(spec: str) -> str:
    """A translation spec with `spec` at both self-attention sites and 1000 at encoder-decoder."""
    return format_sites({"enc_self": spec, "dec_self": spec, "enc_dec": "1000"})


def enc_dec(code: str) -> str:
    return format_sites({"enc_self": "1000", "dec_self": "1000", "enc_dec": code})


@dataclass(frozen=True)
class Comparison:
    finding: int
    claim: str
    task: str
    a: tuple[str, ...]
    b: tuple[str, ...]
    expect: str  # "greater" | "on_par"
    cheaper: bool = False  # A must also cost less (whole-model FLOPs)
    label: str = ""


def comparisons() -> list[Comparison]:
    """Every comparison the findings make, per task where the study makes it."""
    out: list[Comparison] = []
    for task in TASKS:
        spec = self_sites if TASKS[task].attention_sites else (lambda s: s)
        out += [
            Comparison(
                1,
                "query-independent terms (E3, E4) matter more than query-sensitive ones (E1, E2) "
                "in self-attention",
                task,
                (spec("0011"),),
                (spec("1100"),),
                "greater",
                label="0011 vs 1100",
            ),
            Comparison(
                1,
                "E1 alone is negligible in self-attention",
                task,
                (spec("1000"),),
                (spec("w/o"),),
                "on_par",
                label="1000 vs w/o",
            ),
            Comparison(
                3,
                "E2 and E3 are the most important terms in self-attention",
                task,
                (spec("0110"),),
                (spec("1001"),),
                "greater",
                label="0110 vs 1001",
            ),
        ]
    for task in (name for name, t in TASKS.items() if "enc_dec" in t.attention_sites):
        out.append(
            Comparison(
                2,
                "E1 (query and key content) is vital in encoder-decoder attention",
                task,
                (enc_dec("1000"),),
                tuple(enc_dec(c) for c in NO_E1_CODES),
                "greater",
                label="enc-dec 1000 vs codes without E1",
            )
        )
    for task in VISION:
        out += [
            Comparison(
                4,
                "for images, deformable convolution beats E2 in accuracy and cost",
                task,
                ("deform",),
                ("0100",),
                "greater",
                cheaper=True,
                label="deform vs 0100",
            ),
            Comparison(
                5,
                "0010+deformable is the best accuracy-efficiency trade-off",
                task,
                ("0010+deform",),
                ("1111",),
                "greater",
                cheaper=True,
                label="0010+deform vs 1111",
            ),
        ]
    for task in SEQUENCES:
        out.append(
            Comparison(
                4,
                "for translation, deformable convolution is on par with E2",
                task,
                (self_sites("deform"),),
                (self_sites("0100"),),
                "on_par",
                label="deform vs 0100",
            )
        )
    return sorted(out, key=lambda c: (c.finding, c.task))


@dataclass
class Verdict:
    finding: int
    claim: str
    task: str
    comparison: str
    metric: str
    verdict: str
    reason: str
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    seeds: int = 0
    cost_a: float | None = None
    cost_b: float | None = None


def t_quantile(df: int) -> float:
    """The two-sided 95% Student-t quantile."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval of the mean (needs 2 or more values)."""
    mean = statistics.fmean(values)
    half = t_quantile(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def full_budget(run) -> bool:
    return run.info.status == "FINISHED" and run.data.tags.get(STOPPED_EARLY) != "true"


def _by_seed(runs: list, task: str, specs: tuple[str, ...], metric: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for r in runs:
        tags = r.data.tags
        if tags.get(TASK) == task and tags.get(ATTENTION) in specs and metric in r.data.metrics:
            values.setdefault(tags.get(SEED, "0"), []).append(r.data.metrics[metric])
    return values


def _mean_cost(runs: list, task: str, specs: tuple[str, ...]) -> float | None:
    costs = [
        r.data.metrics[COST]
        for r in runs
        if r.data.tags.get(TASK) == task and r.data.tags.get(ATTENTION) in specs and COST in r.data.metrics
    ]
    return statistics.fmean(costs) if costs else None


def judge(c: Comparison, runs: list) -> Verdict:
    metric = TASKS[c.task].metric
    verdict = Verdict(c.finding, c.claim, c.task, c.label, metric, "inconclusive", "")
    a, b = _by_seed(runs, c.task, c.a, metric), _by_seed(runs, c.task, c.b, metric)
    if not a or not b:
        missing = [", ".join(c.a)] if not a else []
        missing += [", ".join(c.b)] if not b else []
        verdict.reason = f"no finished runs of {' and '.join(missing)}"
        return verdict
    seeds = sorted(set(a) & set(b))
    verdict.seeds = len(seeds)
    verdict.cost_a, verdict.cost_b = _mean_cost(runs, c.task, c.a), _mean_cost(runs, c.task, c.b)
    diffs = [statistics.fmean(a[s]) - statistics.fmean(b[s]) for s in seeds]
    if len(diffs) < 2:
        verdict.difference = diffs[0] if diffs else None
        verdict.reason = f"{len(diffs)} seed(s) run by both sides; an interval needs 2 or more seeds"
        return verdict
    verdict.difference, verdict.ci_low, verdict.ci_high = mean_ci(diffs)
    costlier = c.cheaper and None not in (verdict.cost_a, verdict.cost_b) and verdict.cost_a >= verdict.cost_b
    if c.expect == "greater":
        supported, against = verdict.ci_low > 0, verdict.ci_high < 0
        where = "above 0" if supported else ("below 0" if against else "spans 0")
    else:
        band = TOLERANCE * abs(statistics.fmean(v for s in seeds for v in b[s]))
        supported = -band <= verdict.ci_low and verdict.ci_high <= band
        against = verdict.ci_low > band or verdict.ci_high < -band
        where = (
            f"inside +-{band:.4g}"
            if supported
            else (f"outside +-{band:.4g}" if against else f"crosses the +-{band:.4g} band")
        )
    if costlier:
        verdict.verdict, verdict.reason = "contradicted", "A does not cost less than B"
    elif supported:
        verdict.verdict, verdict.reason = "reproduced", f"the interval lies {where}"
    elif against:
        verdict.verdict, verdict.reason = "contradicted", f"the interval lies {where}"
    else:
        verdict.reason = f"the interval {where}"
    return verdict


def findings(runs: list) -> list[Verdict]:
    """Every comparison for the tasks the runs contain (a task without runs yields nothing)."""
    counted = [r for r in runs if full_budget(r)]
    tasks = {r.data.tags.get(TASK) for r in runs}
    return [judge(c, counted) for c in comparisons() if c.task in tasks]


def as_json(verdicts: list[Verdict]) -> list[dict]:
    return [asdict(v) for v in verdicts]


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:+.4g}"


def table_rows(verdicts: list[Verdict]) -> list[dict]:
    """Plain rows for the console and the report."""
    return [
        {
            "finding": v.finding,
            "task": v.task,
            "comparison": v.comparison,
            "A - B": _fmt(v.difference),
            "95% CI": "" if v.ci_low is None else f"[{v.ci_low:+.4g}, {v.ci_high:+.4g}]",
            "seeds": v.seeds,
            "verdict": v.verdict,
            "why": v.reason,
        }
        for v in verdicts
    ]
