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

Findings 1-3 are claims about terms, so where the grid's codes estimate them they are judged on
the terms' main effects over every code's runs (pipeline.effects; docs/study.md gives each rule,
e.g. finding 1 as the contrast (E3+E4) - (E1+E2) > 0), with the contrast's 95% interval from the
same OLS fit (translation's on the joint design of both self-attention sites set to one code,
`self`); elsewhere (too few codes) on the pairs above.

Only runs that trained their full budget count (not those early stopping cut).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import asdict, dataclass

from statsmodels.stats.power import TTestPower
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from attnlab.lightning_modules.attention import format_sites
from attnlab.pipeline.analysis.effects import NETWORK, SELF, design_members, effects
from attnlab.pipeline.analysis.estimates import mean_ci
from attnlab.pipeline.analysis.ranking import full_budget
from attnlab.pipeline.costs.axes import COSTS
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking.store import find_runs
from attnlab.pipeline.tracking.tags import ATTENTION, KIND, KIND_SWEEP, SEED, SOURCE, TASK

TOLERANCE = 0.05  # "on par": within 5% of the reference's mean metric
ALPHA, POWER = 0.05, 0.8  # the level of the 95% intervals; the power "seeds to decide" aims for
MAX_SEEDS = 100
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
    # The same claim on the terms' main effects (pipeline.effects): weights per term, and the
    # design (site) they are read from. Judged so when that design estimates the contrast.
    contrast: tuple[tuple[str, float], ...] = ()
    site: str | None = None

    @property
    def contrast_label(self) -> str:
        plus = "+".join(t for t, w in self.contrast if w > 0)
        minus = "+".join(t for t, w in self.contrast if w < 0)
        return f"({plus}) - ({minus})" if minus else plus


def comparisons() -> list[Comparison]:
    """Every comparison the findings make, per task where the study makes it."""
    out: list[Comparison] = []
    for task in TASKS:
        spec = self_sites if TASKS[task].attention_sites else (lambda s: s)
        # The effects these claims read: the whole network's, or the joint design of the task's
        # self-attention sites set to one code together (as these pairs set them).
        sites = TASKS[task]
        site = SELF if sites.self_attention_sites else (None if sites.attention_sites else NETWORK)
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
                contrast=(("E3", 1), ("E4", 1), ("E1", -1), ("E2", -1)),
                site=site,
            ),
            Comparison(
                1,
                "E1 alone is negligible in self-attention",
                task,
                (spec("1000"),),
                (spec("w/o"),),
                "on_par",
                label="1000 vs w/o",
                contrast=(("E1", 1),),
                site=site,
            ),
            Comparison(
                3,
                "E2 and E3 are the most important terms in self-attention",
                task,
                (spec("0110"),),
                (spec("1001"),),
                "greater",
                label="0110 vs 1001",
                contrast=(("E2", 1), ("E3", 1), ("E1", -1), ("E4", -1)),
                site=site,
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
                contrast=(("E1", 1),),
                site="enc_dec",
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
    basis: str = "pairs"  # "pairs" (A - B paired by seed) or "effects" (a contrast of main effects)
    runs: int = 0  # runs the interval rests on
    # Inconclusive: the seeds (in all) that would likely decide it at the observed spread, with
    # POWER; MAX_SEEDS means "that many or more". None: no estimate (no spread yet, or outside the band).
    seeds_needed: int | None = None


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


def judge(c: Comparison, runs: list, designs: dict | None = None) -> Verdict:
    """On the terms' effects where the design estimates the claim's contrast, else on the pairs."""
    design = (designs or {}).get((c.task, c.site)) if c.contrast else None
    estimate = design.contrast(dict(c.contrast)) if design is not None else None
    if estimate is None:
        return _judge_pairs(c, runs)
    verdict = Verdict(c.finding, c.claim, c.task, c.contrast_label, design.metric, "inconclusive", "")
    verdict.basis, verdict.runs, verdict.seeds = "effects", len(design.points), len(design.seeds)
    verdict.difference, verdict.ci_low, verdict.ci_high, error = estimate
    reference = design.mean_where_off([t for t, _ in c.contrast][0])
    _decide(c, verdict, reference)
    if verdict.verdict == "inconclusive":
        # The contrast's error shrinks as 1/sqrt(seeds) when every code gets the new seeds: the
        # same power calculation as a pair's, its spread per seed the error times sqrt(seeds).
        verdict.seeds_needed = _seeds_for(
            c, verdict.difference, reference, error * math.sqrt(len(design.seeds))
        )
    return verdict


def _judge_pairs(c: Comparison, runs: list) -> Verdict:
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
    verdict.runs = sum(len(a[s]) + len(b[s]) for s in seeds)
    verdict.cost_a, verdict.cost_b = _mean_cost(runs, c.task, c.a), _mean_cost(runs, c.task, c.b)
    diffs = [statistics.fmean(a[s]) - statistics.fmean(b[s]) for s in seeds]
    if len(diffs) < 2:
        verdict.difference = diffs[0] if diffs else None
        verdict.reason = f"{len(diffs)} seed(s) run by both sides; an interval needs 2 or more seeds"
        return verdict
    verdict.difference, verdict.ci_low, verdict.ci_high = mean_ci(diffs)
    reference = statistics.fmean(v for s in seeds for v in b[s])
    _decide(c, verdict, reference)
    if verdict.verdict == "inconclusive":
        verdict.seeds_needed = _seeds_for(c, verdict.difference, reference, statistics.stdev(diffs))
    return verdict


def _seeds_for(c: Comparison, difference: float, reference: float, spread: float) -> int | None:
    """Seeds that would likely decide: a paired t-test at the observed spread per seed, with POWER,
    two-sided for "greater", one edge of the band at half the level (as the 95% interval) for
    "on par". None without a spread, or outside the band (more seeds would contradict)."""
    margin = _margin(c, difference, reference)
    if margin <= 0 or spread <= 0:
        return None
    test = {
        "effect_size": margin / spread,
        "alpha": ALPHA if c.expect == "greater" else ALPHA / 2,
        "alternative": "two-sided" if c.expect == "greater" else "larger",
    }
    with warnings.catch_warnings():  # statsmodels warns as it gives up; the fallback below answers
        warnings.simplefilter("ignore", ConvergenceWarning)
        seeds = TTestPower().solve_power(power=POWER, **test)
    if math.isnan(seeds):  # the solver found no root: the margin is huge, or far too small, for the spread
        seeds = 2 if TTestPower().power(nobs=2, **test) >= POWER else MAX_SEEDS
    return _capped(seeds)


def _margin(c: Comparison, difference: float, reference: float) -> float:
    """How far the observed difference is from undecidable: from 0 ("greater"), or from the edge
    of the on-par band (<= 0: outside the band, where more seeds would contradict, not decide)."""
    return abs(difference) if c.expect == "greater" else TOLERANCE * abs(reference) - abs(difference)


def _capped(seeds: float) -> int:
    return min(MAX_SEEDS, max(2, math.ceil(seeds)))


def _decide(c: Comparison, verdict: Verdict, reference: float) -> Verdict:
    """The verdict from the interval: `reference` is the mean an on-par band is a share of."""
    costlier = c.cheaper and None not in (verdict.cost_a, verdict.cost_b) and verdict.cost_a >= verdict.cost_b
    if c.expect == "greater":
        supported, against = verdict.ci_low > 0, verdict.ci_high < 0
        where = "above 0" if supported else ("below 0" if against else "spans 0")
    else:
        band = TOLERANCE * abs(reference)
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


def findings(runs: list, on_effects: bool = True) -> list[Verdict]:
    """Every comparison for the tasks the runs contain (a task without runs yields nothing);
    findings 1-3 on the terms' effects where the design estimates them (unless `on_effects` is
    False: pairs only)."""
    counted = [r for r in runs if full_budget(r)]
    tasks = {r.data.tags.get(TASK) for r in runs}
    designs = {(d.task, d.site): d for d in effects(counted)} if on_effects else {}
    return [judge(c, counted, designs) for c in comparisons() if c.task in tasks]


def comparison_needs(runs: list, specs: dict[str, list[str]]) -> list[tuple[Verdict, set[str]]]:
    """Each comparison `findings` makes on `runs` whose sides are among `specs` (task -> its
    configurations), with the configurations whose next seed narrows it: the two sides of a pair,
    or every code of the design an effects contrast is read from (its error shrinks only when they
    all get the seed)."""
    counted = [r for r in runs if full_budget(r)]
    tasks = {r.data.tags.get(TASK) for r in runs}
    designs = {(d.task, d.site): d for d in effects(counted)}
    out = []
    for c in comparisons():
        if c.task not in tasks or c.task not in specs:
            continue
        verdict = judge(c, counted, designs)
        if verdict.basis == "pairs" and not (set(c.a) & set(specs[c.task]) and set(c.b) & set(specs[c.task])):
            continue  # a pair with a side the sweep does not train: no seed can decide it
        if verdict.basis == "effects":
            members = design_members(c.task, c.site, specs[c.task])
        else:
            members = {s for s in (*c.a, *c.b) if s in specs[c.task]}
        out.append((verdict, members))
    return out


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
            "basis": v.basis if v.basis == "pairs" else f"effects ({v.runs} runs)",
            "verdict": v.verdict,
            "seeds to decide": _seeds_needed(v),
            "why": v.reason,
        }
        for v in verdicts
    ]


def _seeds_needed(v: Verdict) -> str:
    if v.seeds_needed is None:
        return ""
    return f"{v.seeds_needed}+" if v.seeds_needed >= MAX_SEEDS else str(v.seeds_needed)


def more_seeds_command(
    verdicts: list[Verdict], experiment: str, source: str | None, seeds: list[int]
) -> str | None:
    """The command that adds the seeds the most demanding inconclusive verdict needs, as a sweep
    of only the new seeds logging to the same experiment; None when none needs more."""
    wanted = max((v.seeds_needed for v in verdicts if v.seeds_needed), default=0)
    if wanted <= len(seeds):
        return None
    first = max(seeds, default=-1) + 1
    last = first + wanted - len(seeds) - 1
    new = f"{first}-{last}" if last > first else str(first)
    grid = source or "<the sweep's --preset or --config>"
    return f"attnlab sweep {grid} --seeds {new} --name {experiment}-s{new} --experiment {experiment}"


class Findings(list):
    """An experiment's verdicts (`findings`), with `more_seeds`: the sweep of new seeds, into the same
    experiment, that would likely decide the most demanding inconclusive verdict (None: none needs it)."""

    more_seeds: str | None

    @classmethod
    def of(cls, uri: str, experiment: str, runs: list) -> Findings:
        verdicts = cls(findings(runs))
        sources = [r.data.tags.get(SOURCE) for r in find_runs(uri, experiment, {KIND: KIND_SWEEP})]
        seeds = sorted({int(r.data.tags[SEED]) for r in runs if r.data.tags.get(SEED, "").isdigit()})
        source = next(filter(None, sources), None)
        verdicts.more_seeds = more_seeds_command(verdicts, experiment, source, seeds)
        return verdicts
