"""The typed sweep config: tasks x specs x seeds, resources per trial, early stopping, budget.

Every trial's TrainConfig is built and validated here, before Ray starts, so a bad spec, an
unknown task or impossible resources fail with one clear message and nothing is written.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Literal

from pydantic import Field, model_validator

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.train import TaskName, TrainConfig, build_train_config, normalise_attention
from attnlab.pipeline.config.validation import StrictModel, read_yaml, validate
from attnlab.pipeline.costs.axes import COSTS

from .storage import absolute

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class Resources(StrictModel):
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)

    @property
    def trains_in_tune(self) -> bool:
        """One worker trains in Tune's own trial process; several are Ray Train workers, which Tune
        does not count."""
        return self.workers_per_trial == 1


class TaskGrid(StrictModel):
    """One task's part of the grid: every spec x every seed, with shared overrides."""

    task: TaskName
    specs: list[str] = Field(min_length=1, description="specs; for translation also per-site specs")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    preset: Literal["tiny", "paper"] = "paper"
    data: str = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict, description="any TrainConfig keys")
    resources: Resources | None = Field(
        None, description="this entry's trials' resources (default: the sweep's `resources`)"
    )

    @model_validator(mode="after")
    def _normalise_specs(self):
        """The same normalisation as a single run (so 'W/O' and 'w/o' are one trial)."""
        normal = []
        for spec in self.specs:
            try:
                normal.append(normalise_attention(self.task, spec))
            except ValueError as exc:
                raise ValueError(f"spec {spec!r}: {exc}") from None
        object.__setattr__(self, "specs", normal)
        return self


class EarlyStopping(StrictModel):
    """`asha`: the top 1/reduction_factor by the metric at each rung; `pareto-asha` also keeps the
    rung's accuracy-cost front, at most `front_fraction` of it; `none`. Rungs are synchronous, so the
    decisions do not depend on the trials' order (tune.pareto_asha)."""

    policy: Literal["asha", "pareto-asha", "none"] = "asha"
    grace_period: int = Field(1, ge=1, description="epochs every trial gets before it can be stopped")
    reduction_factor: float = Field(2.0, gt=1)
    cost: str = Field("added_flops", description="pareto-asha's cost axis: any cost attnlab measures")
    front_fraction: float = Field(
        0.5, gt=0, le=1, description="pareto-asha: at most this share of a rung promoted by the front rule"
    )
    tolerance: float = Field(
        0.1,
        ge=0,
        le=1,
        description="pareto-asha: dominating takes more accuracy than this share of the rung's metric range",
    )

    @model_validator(mode="after")
    def _known_cost(self):
        if self.cost not in COSTS:
            raise ValueError(
                f"early_stopping.cost {self.cost!r} is not a cost attnlab measures; "
                f"choose one of {', '.join(COSTS)}"
            )
        return self


class SeedPolicy(StrictModel):
    """How many seeds each configuration gets. `fixed`: the grid's seeds, all of them. `race`: every
    configuration starts with `min` seeds; after each round (once all its trials finished) the ones
    the seeds settle (dominated, or on the front with P(front) >= 0.95) get no more, the open ones one
    more, until `max` or the `budget` (tune/race.py). The seeds are the grid entry's, then the next
    integers after the largest, `max` in all."""

    policy: Literal["fixed", "race"] = "fixed"
    min: int = Field(
        2, ge=2, description="race: seeds every configuration starts with (2: a variance to pool)"
    )
    max: int = Field(8, ge=2, description="race: most seeds a configuration gets")
    budget: int | None = Field(
        None,
        ge=1,
        description="race: most trials in all, shared among the tasks in proportion to their "
        "configurations (default: max x the configurations)",
    )
    findings: bool = Field(
        True, description="race: the findings' open comparisons get seeds too, not only the open front"
    )

    @model_validator(mode="after")
    def _order(self):
        if self.max < self.min:
            raise ValueError(
                f"seeds.max ({self.max}) is below seeds.min ({self.min}); raise max or lower min"
            )
        return self


class SweepConfig(StrictModel):
    name: str
    experiment: str | None = Field(
        None,
        description="MLflow experiment the sweep logs to (default: its name); sweeps that share one "
        "are ranked and decided together, e.g. more seeds of a finished sweep",
    )
    grid: list[TaskGrid] = Field(min_length=1)
    max_epochs: int | None = Field(None, ge=1, description="budget per trial (default: each preset's)")
    seeds: SeedPolicy = Field(default_factory=SeedPolicy)
    resources: Resources = Field(default_factory=Resources)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    max_concurrent_trials: int | None = Field(
        None,
        ge=1,
        description="trials training at once (paused ones hold no slot); default: what the cluster fits",
    )
    max_failures: int = Field(2, ge=0, description="retries of a failed trial, each from its last checkpoint")
    system_metrics: bool = Field(True, description="MLflow system metrics (CPU, memory, GPU) for each trial")
    callbacks: list[str] = Field(
        default_factory=list, description="Lightning callbacks 'package.module:Class' on every trial"
    )

    @model_validator(mode="after")
    def _checks(self):
        if not NAME_RE.match(self.name):
            raise ValueError(
                f"sweep name {self.name!r} must be letters, digits, '_', '.', '-' (it names the "
                "MLflow experiment and the storage folder)"
            )
        if self.experiment is not None and not NAME_RE.match(self.experiment):
            raise ValueError(f"experiment name {self.experiment!r} must be letters, digits, '_', '.', '-'")
        if self.racing:
            self._check_race()
        keys = [t.trial_key for t in self.trials()]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"the grid repeats trial(s) {', '.join(dup)}; list each task/spec/seed once")
        return self

    def _check_race(self) -> None:
        races = self.race_configurations()
        for task, specs in races.items():
            share = self.race_budget(task)
            if share is not None and share < self.seeds.min * len(specs):
                total = sum(map(len, races.values()))
                raise ValueError(
                    f"seeds.budget {self.seeds.budget} gives the {len(specs)} {task} configurations "
                    f"{share} trials, less than {self.seeds.min} seeds each (seeds.min); raise it to at "
                    f"least {self.seeds.min * total}"
                )

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.name

    @property
    def racing(self) -> bool:
        return self.seeds.policy == "race"

    def seed_pool(self, grid: TaskGrid) -> list[int]:
        """The seeds a grid entry's configurations may get: its own, and when racing, the next
        integers after the largest up to `seeds.max` (the race takes them in this order)."""
        if not self.racing:
            return list(grid.seeds)
        pool = list(dict.fromkeys(grid.seeds))[: self.seeds.max]
        while len(pool) < self.seeds.max:
            pool.append(max(pool) + 1)
        return pool

    def trials(self) -> list["Trial"]:
        """Every trial the sweep may run: the grid, or when racing every seed a race may reach."""
        return [
            Trial(g.task, spec, seed, g, self.resources_of(g))
            for g in self.grid
            for spec in g.specs
            for seed in self.seed_pool(g)
        ]

    def resources_of(self, grid: TaskGrid) -> Resources:
        """What each trial of a grid entry holds: the entry's own resources, else the sweep's."""
        return grid.resources or self.resources

    def trial_resources(self, param: dict[str, Any]) -> Resources:
        """What a trial holds, from the parameters Tune carries for it (a trial of a sweep started
        before grid entries had resources carries none: the sweep's)."""
        given = param.get("resources")
        return Resources.model_validate(given) if given else self.resources

    def trains_in_tune(self, param: dict[str, Any]) -> bool:
        """Whether a trial (the parameters Tune carries for it) trains in Tune's own trial process
        (one worker), rather than driving Ray Train workers that Tune does not count."""
        return self.trial_resources(param).trains_in_tune

    def all_resources(self) -> list[Resources]:
        """Each distinct resource request of the sweep's trials."""
        return list({r.model_dump_json(): r for r in map(self.resources_of, self.grid)}.values())

    def race_budget(self, task: str) -> int | None:
        """A task's share of the race's budget, in proportion to its configurations (rounded down;
        a fixed share, so one task's pace never changes another's allocation); None: no budget."""
        if self.seeds.budget is None:
            return None
        races = self.race_configurations()
        return self.seeds.budget * len(races[task]) // sum(map(len, races.values()))

    def most_trials(self) -> int:
        """The most trials the sweep can run: its grid, or a race's seeds within its budget."""
        if not self.racing:
            return len(self.trials())
        races = self.race_configurations()
        seeds = {t: sum(map(len, ts.values())) for t, ts in races.items()}  # every seed a race may reach
        return sum(min(self.race_budget(t) or n, n) for t, n in seeds.items())

    def race_configurations(self) -> dict[str, dict[str, list["Trial"]]]:
        """task -> configuration (spec) -> its trials in the order a race gives them seeds."""
        out: dict[str, dict[str, list[Trial]]] = {}
        for trial in self.trials():
            out.setdefault(trial.task, {}).setdefault(trial.spec, []).append(trial)
        return out

    def describe(self, origin: str) -> str:
        """The parent run's description: where the sweep came from and what its grid holds."""
        grids = "\n".join(
            f"- {g.task}: {len(g.specs)} specs x {len(self.seed_pool(g))} seeds, preset {g.preset}, "
            f"data {g.data}"
            for g in self.grid
        )
        trials = (
            f"a race of {self.seeds.min}-{self.seeds.max} seeds per configuration (at most "
            f"{self.most_trials()} trials)"
            if self.racing
            else f"{len(self.trials())} trials"
        )
        return (
            f"attnlab sweep **{self.name}** from {origin}: {trials}, "
            f"{self.max_epochs or 'preset'} epochs each, early stopping: {self.early_stopping.policy}."
            f"\n\n{grids}"
        )


class Trial:
    """One point of the grid; `trial_key` is its deterministic name (Tune trial, Train run, MLflow tag)."""

    def __init__(self, task: str, spec: str, seed: int, grid: TaskGrid, resources: Resources):
        self.task, self.spec, self.seed, self.grid, self.resources = task, spec, seed, grid, resources

    @property
    def trial_key(self) -> str:
        slug = self.spec.replace("w/o", "wo").replace("+", "_").replace("=", "-").replace(",", "_")
        return f"{self.task}-{slug}-s{self.seed}"

    def param(self) -> dict[str, Any]:
        """What Tune's grid carries for this trial (plain JSON)."""
        return {
            "trial_key": self.trial_key,
            "task": self.task,
            "attention": self.spec,
            "seed": self.seed,
            "preset": self.grid.preset,
            "data": self.grid.data if self.grid.data == "tiny" else absolute(self.grid.data),
            "overrides": _with_absolute_paths(self.grid.overrides),
            "resources": self.resources.model_dump(),
        }


def _with_absolute_paths(overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` with its local file paths (the backbone's pretrained weights) made absolute."""
    backbone = overrides.get("backbone")
    if not isinstance(backbone, dict) or not isinstance(backbone.get("pretrained"), str):
        return overrides
    return {**overrides, "backbone": {**backbone, "pretrained": absolute(backbone["pretrained"])}}


def trial_train_config(
    param: dict[str, Any], sweep: SweepConfig, tracking_uri: str | None, out_dir: str
) -> TrainConfig:
    """The single-run config of one trial: the same builder `attnlab train` uses."""
    flags = {
        "task": param["task"],
        "attention": param["attention"],
        "seed": param["seed"],
        "data": {"path": param["data"]},
        "out_dir": out_dir,
        # A trial trains where its resources say, never on a GPU Ray did not give it.
        "accelerator": "gpu" if sweep.trial_resources(param).gpus_per_worker > 0 else "cpu",
        "tracking": {
            "tracking_uri": tracking_uri,
            "experiment": sweep.experiment_name,
            "run_name": param["trial_key"],
            "system_metrics": sweep.system_metrics,
        },
    }
    if sweep.max_epochs:
        flags["max_epochs"] = sweep.max_epochs
    if sweep.callbacks:
        flags["callbacks"] = sweep.callbacks
    from attnlab.pipeline.config.validation import merge

    return build_train_config(merge(param["overrides"], flags), preset=param["preset"])


def check_resources(sweep: SweepConfig, ray_address: str | None) -> None:
    """On the embedded local Ray, a trial must fit this machine; a remote cluster is checked by Ray."""
    if ray_address:
        return
    from attnlab.pipeline.training.gpus import local_gpu_count

    cpus, gpus = os.cpu_count() or 1, local_gpu_count()
    for r in sweep.all_resources():
        need_cpu, need_gpu = r.workers_per_trial * r.cpus_per_worker, r.workers_per_trial * r.gpus_per_worker
        if need_cpu > cpus:
            raise ConfigError(
                f"a trial needs {need_cpu:g} CPUs ({r.workers_per_trial} workers x {r.cpus_per_worker:g}) "
                f"but this machine has {cpus}; lower resources.workers_per_trial or cpus_per_worker"
            )
        if need_gpu > gpus:
            raise ConfigError(
                f"a trial needs {need_gpu:g} GPUs but this machine has {gpus}; set "
                "resources.gpus_per_worker: 0 or run on a GPU cluster (--ray-address)"
            )


def default_size() -> str:
    """The mini-study's size when none is given: `gpu` where this machine has one, else `cpu`.

    Loading a config starts no Ray: with RAY_ADDRESS (a cluster whose GPUs are not known before
    connecting) the size must be given.
    """
    from attnlab.pipeline.training.gpus import local_gpu_count

    if local_gpu_count() > 0:
        return "gpu"
    if os.environ.get("RAY_ADDRESS"):
        raise ConfigError(
            "--size is needed with RAY_ADDRESS: the cluster's GPUs are not known before connecting "
            "to it; give --size gpu or --size cpu"
        )
    return "cpu"


def load_sweep(
    preset: str | None,
    config_file: str | None,
    name: str | None,
    config_json: str | None = None,
    size: str | None = None,
    system_metrics: bool | None = None,
    seeds: list[int] | None = None,
    experiment: str | None = None,
) -> SweepConfig:
    """Preset (+ its size), YAML file or inline JSON (+ --name, and --seeds for every grid entry,
    --experiment), validated with every trial's TrainConfig."""
    from .presets import PRESETS, SIZES

    if sum(map(bool, (preset, config_file, config_json))) != 1:
        raise ConfigError("give exactly one of --preset NAME or --config FILE")
    if size is not None and size not in SIZES:
        raise ConfigError(f"unknown --size {size!r}; choose one of {', '.join(SIZES)}")
    if preset:
        if preset not in PRESETS:
            raise ConfigError(f"unknown sweep preset {preset!r}; choose one of {', '.join(PRESETS)}")
        sized = getattr(PRESETS[preset], "sized", False)
        if size and not sized:
            sized_names = ", ".join(n for n, f in PRESETS.items() if getattr(f, "sized", False))
            raise ConfigError(f"preset {preset!r} has no sizes; --size applies to {sized_names}")
        data = PRESETS[preset](size or default_size()) if sized else PRESETS[preset]()
    elif config_json:
        try:
            data = json.loads(config_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"--config-json is not valid JSON ({exc}); it is what `attnlab submit` sends, "
                "use --config FILE by hand"
            ) from None
    else:
        data = read_yaml(config_file)
    if name:
        data = {**data, "name": name}
    if system_metrics is not None:
        data = {**data, "system_metrics": system_metrics}
    if seeds is not None:
        data = {**data, "grid": [{**g, "seeds": seeds} for g in data.get("grid", [])]}
    if experiment is not None:
        data = {**data, "experiment": experiment}
    sweep = validate(SweepConfig, data, "sweep")
    for trial in sweep.trials():
        try:
            trial_train_config(trial.param(), sweep, None, "attnlab_runs")
        except ConfigError as exc:
            raise ConfigError(f"trial {trial.trial_key}: {exc}") from None
    return sweep


def check_data(sweep: SweepConfig) -> None:
    """Every data folder the grid names exists, has a layout its task reads and whole files, before
    Ray starts."""
    from attnlab.pipeline.tasks.registry import check_data_folder

    for grid in sweep.grid:
        if grid.data != "tiny":
            try:
                check_data_folder(grid.task, grid.data)
            except ConfigError as exc:
                raise ConfigError(f"{grid.task} grid: {exc}") from None
