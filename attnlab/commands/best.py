"""`attnlab best`: rank configurations, mark the accuracy-cost Pareto front, and optionally register
the best in MLflow's Model Registry."""

from __future__ import annotations

import argparse

from attnlab.pipeline.costs.axes import COSTS, DEFAULT_COST

from . import COST_HELP, TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("best", help="rank configurations of an experiment and mark the Pareto front")
    p.add_argument("--experiment", required=True, help="MLflow experiment (a sweep's name)")
    p.add_argument("--task", help="only this task")
    p.add_argument("--metric", help="metric to rank by (default: the task's, e.g. val/bbox_AP)")
    p.add_argument("--cost", default=DEFAULT_COST, choices=tuple(COSTS), help=COST_HELP)
    p.add_argument("--format", default="table", choices=("table", "json", "csv"))
    p.add_argument(
        "--register",
        metavar="NAME",
        help="log the top configuration of each task as an MLflow model and register it as NAME "
        "(NAME-<task> with several tasks); its metric, costs and spec become version tags",
    )
    p.add_argument("--rank", type=int, help="with --register: the row of this rank instead of the top")
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from attnlab.pipeline.config.errors import ConfigError
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri

    if args.rank is not None and not args.register:
        raise ConfigError("--rank chooses the row --register registers; add --register NAME")
    if args.register is not None and not args.register.strip():
        raise ConfigError("--register needs a model name, e.g. --register attnlab-best")
    uri = resolve_tracking_uri(args.tracking_uri, read_only=True)  # before MLflow is imported
    from attnlab.pipeline.analysis.ranking import fetch_runs, rank, render, rungs

    runs = fetch_runs(uri, args.experiment)
    ranking = rank(runs, args.task, args.metric, args.cost)
    if args.register:
        from attnlab.pipeline.export import models

        rows = models.chosen_rows(ranking, args.rank)  # every choice checked before any export
    every_rung = rungs(uri, runs, ranking, args.metric, args.cost)
    print(render(ranking, args.metric, args.cost, args.format, every_rung))
    if args.register:
        print()
        for done in models.register_rows(
            uri, args.experiment, runs, rows, args.register, args.metric, len(ranking)
        ):
            verb = "registered" if done.new else "already registered"
            print(
                f"{done.task} {done.attention} (run {done.run_id}): {verb} as "
                f"models:/{done.name}/{done.version}; load: "
                f"{models.how_to_load(done.name, done.version, done.format)}"
            )
    return 0
