"""`attnlab sweep` and `attnlab resume`: the ablation grid as one Ray Tune sweep."""

from __future__ import annotations

import argparse
import json
import sys

from attnlab import api

from ..console import sweep_console
from . import TRACKING_URI_HELP


def add_format(p) -> None:
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="how it ends: table (the ranking, the report's path and the MLflow UI line; default) or "
        "json (every trial's outcome: the sweep's summary, for scripts)",
    )


def _common(p) -> None:
    add_format(p)
    p.add_argument("--storage", help="Ray storage path or URI (default ./attnlab_runs/sweeps)")
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.add_argument(
        "--ray-address", help="running Ray cluster (default: RAY_ADDRESS or an embedded local Ray)"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's, Lightning's and MLflow's own output here instead of in a log file",
    )


def _seed_list(text: str) -> list[int]:
    """'3,4' or '3-5' (or both, '0,3-5') -> [3, 4, 5]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            seeds += list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, e.g. 3,4 or 3-5") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct seeds >= 0, e.g. 3,4 or 3-5")
    return seeds


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run (or continue) a sweep over tasks x specs x seeds")
    p.add_argument(
        "--preset",
        help="smoke | paper-detection | paper-segmentation | paper-translation | paper | "
        "mini-translation | mini-segmentation | mini",
    )
    p.add_argument(
        "--size",
        choices=("cpu", "gpu"),
        help="the mini presets' size (default: gpu where this machine has a GPU, else cpu; "
        "needed with RAY_ADDRESS)",
    )
    p.add_argument("--config", help="sweep YAML file")
    p.add_argument(
        "--config-json", help=argparse.SUPPRESS
    )  # the validated config, inline: what `submit` sends
    p.add_argument("--name", help="sweep name = MLflow experiment name (default: the preset's)")
    p.add_argument(
        "--seeds",
        type=_seed_list,
        help="seeds for every grid entry, e.g. 3,4 or 3-5 (instead of the config's)",
    )
    p.add_argument(
        "--experiment",
        help="log to this MLflow experiment instead of one named after the sweep: a new sweep of "
        "more seeds joins a finished one, whose rankings, effects and findings then count both",
    )
    p.add_argument(
        "--no-system-metrics",
        action="store_true",
        help="do not record MLflow system metrics (CPU, memory, GPU) for the trials",
    )
    _common(p)
    p.set_defaults(func=run_sweep_cmd)
    r = sub.add_parser("resume", help="continue an interrupted sweep; finished trials are not retrained")
    r.add_argument("sweep", help="sweep name (under --storage) or the sweep's folder")
    r.add_argument(
        "--restart-errored",
        action="store_true",
        help="restart errored trials from scratch (default: resume them from their checkpoints)",
    )
    _common(r)
    r.set_defaults(func=run_resume_cmd)


def finish(summary, fmt: str = "table") -> int:
    """How `sweep`, `resume` and `run` end: the ranking table (or the JSON summary), then the exit
    status. An interrupted sweep prints no ranking that would read as its answer."""
    if fmt == "json":
        print(json.dumps(summary.to_dict(), indent=2))
    elif not summary.unfinished:
        _ranking(summary)
    return exit_status(summary)


def _ranking(summary) -> None:
    from mlflow.tracking import MlflowClient

    from attnlab.pipeline.analysis.ranking import render
    from attnlab.pipeline.config.errors import ConfigError
    from attnlab.pipeline.costs.axes import DEFAULT_COST
    from attnlab.pipeline.tracking.store import experiment_url

    uri, experiment = summary.tracking_uri, summary.sweep.experiment_name
    try:
        print(render(api.best(experiment, cost=DEFAULT_COST, tracking_uri=uri), None, DEFAULT_COST, "table"))
    except ConfigError as exc:  # nothing finished to rank (every trial failed)
        print(f"attnlab: no ranking: {exc}")
    n, policy = len(summary.trials), summary.sweep.early_stopping.policy
    stopped = "" if policy == "none" else f" ({len(summary.stopped)} stopped early by {policy})"
    print(f"\n{n} trial{'' if n == 1 else 's'}{stopped}; report: {summary.report}")
    exp = MlflowClient(uri).get_experiment_by_name(experiment).experiment_id
    print(f"MLflow UI: mlflow ui --backend-store-uri {uri}, then open {experiment_url(uri, exp)}")


def exit_status(summary) -> int:
    """0 only if every trial finished or early stopping ended it; 1 with a line per failed trial;
    130 when the driver was interrupted (Ctrl-C) with trials unfinished."""
    failed, total = summary.failed, len(summary.trials)
    for trial in failed:
        print(
            f"attnlab: trial {trial.trial} failed ({trial.error or 'error'}); log: {trial.log}",
            file=sys.stderr,
        )
    if failed:
        print(
            f"attnlab: {len(failed)} of {total} trials failed; fix the cause, then "
            "`attnlab resume` continues them from their checkpoints",
            file=sys.stderr,
        )
    unfinished = summary.interrupted
    if unfinished:
        print(
            f"attnlab: interrupted with {len(unfinished)} of {total} trials unfinished "
            f"(their runs are KILLED, their checkpoints kept); `{summary.resume}` continues them",
            file=sys.stderr,
        )
        return 130
    if summary.race_open and not failed:
        print(
            "attnlab: interrupted between the race's rounds (every trial it gave has ended); "
            f"`{summary.resume}` goes on with the next round",
            file=sys.stderr,
        )
        return 130
    return 1 if failed else 0


def run_sweep_cmd(args: argparse.Namespace) -> int:
    summary = api.sweep(
        args.preset,
        config=args.config,
        config_json=args.config_json,
        name=args.name,
        size=args.size,
        seeds=args.seeds,
        experiment=args.experiment,
        system_metrics=False if args.no_system_metrics else None,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        ray_address=args.ray_address,
        origin=f"preset {args.preset}" if args.preset else f"config {args.config or '(submitted)'}",
        console=sweep_console("sweep", args.verbose),
    )
    return finish(summary, args.format)


def run_resume_cmd(args: argparse.Namespace) -> int:
    summary = api.resume(
        args.sweep,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        ray_address=args.ray_address,
        restart_errored=args.restart_errored,
        console=sweep_console("resume", args.verbose),
    )
    return finish(summary, args.format)
