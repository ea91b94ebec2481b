"""The public Python API, for notebooks and scripts: what the CLI does, as functions.

    import attnlab
    result = attnlab.train("segmentation", attention="0010+deform", max_epochs=2)
    summary = attnlab.sweep(preset="smoke")          # a SweepSummary; summary.to_dict() is the CLI's JSON
    rows = attnlab.best("smoke")["segmentation"]

Each CLI command parses its flags and calls the function of the same name here; the checks live
below both (pipeline/, tune/). Every call validates its input first: a ConfigError names the problem
and the fix before anything is trained or written.

`console` (train, sweep, resume, run): where output goes while the work runs, a function that takes
what is about to run (a CheckedRun, or a SweepRun) and returns a context manager
yielding the terminal stream for the live view (or None). The CLI's sends the libraries' output to a
log file; the default shows no live view and leaves output where it is.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from typing import TYPE_CHECKING, Any, Callable, ContextManager, TextIO

from attnlab.pipeline.config.errors import ConfigError

if TYPE_CHECKING:
    from attnlab.pipeline.analysis.ranking import Ranking
    from attnlab.tune.outcomes import SweepSummary
    from attnlab.tune.sweep_run import SweepRun

Console = Callable[[Any], ContextManager[TextIO | None]]


def _no_console(_: Any) -> ContextManager[None]:
    return contextlib.nullcontext()


@contextlib.contextmanager
def _libraries_to_log(_: Any):
    """The libraries' messages and warnings (Lightning's tips, MLflow's INFO lines, deprecations) in
    a log file under ./attnlab_runs/logs, as the CLI keeps them; attnlab's own lines stay."""
    from .console import libraries_to, new_log_file

    with libraries_to(new_log_file("train")):
        yield None


def train(
    task: str,
    attention: str | None = None,
    *,
    data: str | None = None,
    preset: str | None = None,
    config: str | None = None,
    config_json: str | None = None,
    progress_bar: bool = False,
    console: Console | None = None,
    verbose: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train and evaluate one task with one spec; returns run id, metrics, checkpoint folder and costs.

    `overrides` are TrainConfig keys, nested as dicts: `max_epochs=2, optim={"base_lr": 0.01}`;
    `data`: 'tiny' (generated; the default unless `config` names a folder) or a data set's folder.
    As quiet as `attnlab train`: the libraries' messages go to a log file under
    ./attnlab_runs/logs; `verbose=True` leaves them where the libraries send them.
    """
    from attnlab.pipeline.config.train import build_train_config
    from attnlab.pipeline.config.validation import merge
    from attnlab.pipeline.training.checks import check_run

    flags = merge({"task": task, **({"data": {"path": data}} if data else {})}, overrides)
    if attention is not None:
        flags["attention"] = attention
    checked = check_run(build_train_config(flags, config, preset, config_json=config_json))
    from attnlab.pipeline.training.run import run_training  # Lightning and MLflow: after the checks

    with (console or (_no_console if verbose else _libraries_to_log))(checked):
        return run_training(checked.cfg, progress_bar=progress_bar, tracking_uri=checked.tracking_uri)


def resume_train(
    run: str,
    *,
    out_dir: str | None = None,
    progress_bar: bool = False,
    console: Console | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Go on with a standalone run that stopped before its last epoch, into the same MLflow run,
    from its last checkpoint; returns what `train` returns. `run`: the run's id (its checkpoints
    under `out_dir`, default ./attnlab_runs) or its checkpoint folder. Its own config is used; a
    finished run, or one still training, is refused before anything trains."""
    from attnlab.pipeline.training import resume
    from attnlab.pipeline.training.checks import check_run

    found = resume.find(run, out_dir)
    checked = check_run(found.cfg)
    resume.check_unfinished(checked.tracking_uri, found)
    from attnlab.pipeline.tracking.runs import RunRole
    from attnlab.pipeline.training.run import run_training

    with (console or (_no_console if verbose else _libraries_to_log))(checked):
        return run_training(
            checked.cfg,
            role=RunRole.resumed(found.run_id),
            ckpt_path=found.ckpt_path,
            progress_bar=progress_bar,
            tracking_uri=checked.tracking_uri,
        )


def _source(preset: str | None, size: str | None, config: str | None) -> str:
    """The flags that chose the grid, as a command line takes them: what a sweep of more seeds repeats."""
    if preset:
        return shlex.join(["--preset", preset, *(["--size", size] if size else [])])
    return shlex.join(["--config", config]) if config else ""


def _drive(run: SweepRun, console: Console | None) -> SweepSummary:
    run.check()  # bad input writes nothing, before the console takes the output
    with (console or _no_console)(run) as terminal:
        return run.run(terminal)


def sweep(
    preset: str | None = None,
    *,
    config: str | None = None,
    config_json: str | None = None,
    name: str | None = None,
    size: str | None = None,
    seeds: list[int] | None = None,
    experiment: str | None = None,
    system_metrics: bool | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    ray_address: str | None = None,
    origin: str | None = None,
    console: Console | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep from a preset, a YAML file or inline JSON; returns its summary.

    `seeds` replaces every grid entry's seeds; `experiment` logs to that MLflow experiment (a sweep of
    more seeds joining a finished one); `origin` is what the parent run's description says the sweep
    came from (default: the preset or file).
    """
    from attnlab.tune.sweep_config import load_sweep
    from attnlab.tune.sweep_run import SweepRun

    cfg = load_sweep(
        preset,
        config,
        name,
        config_json,
        size,
        system_metrics=system_metrics,
        seeds=seeds,
        experiment=experiment,
    )
    if origin is None:
        origin = (f"preset {preset}" if preset else f"config {config or '(inline JSON)'}") + " (Python API)"
    run = SweepRun(
        cfg,
        storage=storage,
        tracking_uri=tracking_uri,
        ray_address=ray_address,
        origin=origin,
        source=_source(preset, size, config),
    )
    return _drive(run, console)


def resume(
    sweep: str,
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    ray_address: str | None = None,
    restart_errored: bool = False,
    console: Console | None = None,
) -> SweepSummary:
    """Continue a stored sweep (its name under `storage`, or its folder) as it was started; finished
    trials are not trained again, interrupted and failed ones continue from their checkpoints
    (`restart_errored`: failed ones start over)."""
    from attnlab.tune.sweep_run import SweepRun

    run = SweepRun.resume(
        sweep,
        storage=storage,
        tracking_uri=tracking_uri,
        ray_address=ray_address,
        restart_errored=restart_errored,
    )
    return _drive(run, console)


def run(*, console: Console | None = None) -> SweepSummary:
    """The main job (`attnlab run`): the smoke sweep on generated data; its summary names its report."""
    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.analysis.report import write_report
    from attnlab.tune.sweep_config import load_sweep
    from attnlab.tune.sweep_run import SweepRun

    smoke = SweepRun(
        load_sweep("smoke", None, None), origin="preset smoke (`attnlab run`)", source="--preset smoke"
    )
    summary = _drive(smoke, console)
    if summary.report is None:  # the sweep's own report failed: write it here, where it can be read
        summary.report = str(
            write_report(
                fetch_runs(smoke.uri, smoke.sweep.name),
                smoke.sweep.name,
                "attnlab_runs/report",
                uri=smoke.uri,
            )
        )
    return summary


def _runs(experiment: str, tracking_uri: str | None) -> tuple[str, list]:
    """(the store's URI, the experiment's training runs), for the commands that only read them: a
    run a dead process left RUNNING is named, not changed (the next `attnlab train` there marks it)."""
    from attnlab.pipeline.tracking.uri import check_tracking_uri

    uri = check_tracking_uri(tracking_uri, read_only=True)  # before MLflow is imported
    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.tracking.runs import stale_runs
    from attnlab.pipeline.tracking.tags import PID

    runs = fetch_runs(uri, experiment)
    for run in stale_runs(uri, experiment):
        print(
            f"attnlab: run {run.info.run_name} ({run.info.run_id}) was left RUNNING by process "
            f"{run.data.tags[PID]}, which is gone: it counts as unfinished, and the next "
            "`attnlab train` into this experiment marks it FAILED",
            file=sys.stderr,
        )
    return uri, runs


def best(
    experiment: str,
    *,
    task: str | None = None,
    metric: str | None = None,
    cost: str = "added_flops",
    tracking_uri: str | None = None,
) -> Ranking:
    """Per task, configurations ranked at equal budget, with the accuracy-cost Pareto front marked
    (a dict: task -> rows; `.rungs()` ranks them again at every epoch count trials reached)."""
    uri, runs = _runs(experiment, tracking_uri)
    from attnlab.pipeline.analysis.ranking import Ranking

    return Ranking.of(uri, runs, task, metric, cost)


def effects(
    experiment: str,
    *,
    task: str | None = None,
    metric: str | None = None,
    epochs: int | None = None,
    tracking_uri: str | None = None,
) -> list:
    """`attnlab effects`: per task (and translation site), the terms' main effects and two-way
    interactions with 95% intervals (each design's `.effects`; `.contrast({"E3": 1, ...})`)."""

    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: a rung is a number of epochs trained, 1 or more")
    uri, runs = _runs(experiment, tracking_uri)
    from attnlab.pipeline.analysis.effects import effects as fit_effects
    from attnlab.pipeline.analysis.ranking import rank

    if task:
        rank(runs, task, metric, "flops")  # names the tasks there if this one is not
    return fit_effects(runs, task, metric, epochs, uri)


def findings(experiment: str, *, tracking_uri: str | None = None):
    """`attnlab findings`: the study's findings decided on the experiment's runs, each a Verdict with a
    95% interval (a list; `.more_seeds` is the sweep that would likely decide the inconclusive ones)."""
    uri, runs = _runs(experiment, tracking_uri)
    from attnlab.pipeline.analysis.findings import Findings

    return Findings.of(uri, experiment, runs)


def report(experiment: str, out: str, *, cost: str = "added_flops", tracking_uri: str | None = None) -> str:
    """`attnlab report`: the experiment's HTML report (plots, tables, findings) in `out`; its index."""
    uri, runs = _runs(experiment, tracking_uri)
    from attnlab.pipeline.analysis.report import write_report

    return str(write_report(runs, experiment, out, cost, uri))


def register_best(
    experiment: str,
    name: str,
    *,
    task: str | None = None,
    rank: int | None = None,
    metric: str | None = None,
    cost: str = "added_flops",
    tracking_uri: str | None = None,
    ranking: Ranking | None = None,
) -> list:
    """`attnlab best --register NAME`: the top configuration of each task (or the row ranked `rank`)
    as an MLflow model in the Model Registry; returns what was registered, with each version.
    `ranking`: one `best` already made (the CLI prints it first)."""
    if not name.strip():
        raise ConfigError("--register needs a model name, e.g. --register attnlab-best")
    ranking = ranking or best(experiment, task=task, metric=metric, cost=cost, tracking_uri=tracking_uri)
    from attnlab.pipeline.export.models import chosen_rows, register_rows

    rows = chosen_rows(ranking, rank)
    return register_rows(ranking.uri, experiment, ranking.runs, rows, name, metric, len(ranking))
