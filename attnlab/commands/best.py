"""`attnlab best`: rank configurations, mark the accuracy-cost Pareto front, and optionally register
the best in MLflow's Model Registry."""

from __future__ import annotations

import argparse

from attnlab import api
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.costs.axes import COSTS, DEFAULT_COST

from . import COST_HELP, EXPERIMENT_HELP, TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("best", help="rank configurations of an experiment and mark the Pareto front")
    p.add_argument("--experiment", required=True, help=EXPERIMENT_HELP)
    p.add_argument("--task", help="only this task")
    p.add_argument("--metric", help="metric to rank by (default: the task's, e.g. val/bbox_AP)")
    p.add_argument("--cost", default=DEFAULT_COST, choices=tuple(COSTS), help=COST_HELP)
    p.add_argument(
        "--format",
        default="table",
        choices=("table", "json", "csv"),
        help="table: for reading (the default); json: every rung too; csv: a row per configuration and rung",
    )
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

    if args.rank is not None and not args.register:
        raise ConfigError("--rank chooses the row --register registers; add --register NAME")
    if args.register is not None and not args.register.strip():
        raise ConfigError("--register needs a model name, e.g. --register attnlab-best")
    ranking = api.best(
        args.experiment, task=args.task, metric=args.metric, cost=args.cost, tracking_uri=args.tracking_uri
    )
    from attnlab.pipeline.analysis.ranking import render

    if args.register:
        from attnlab.pipeline.export import models  # torch and Lightning: only to register

        models.chosen_rows(ranking, args.rank)  # every choice checked before anything is printed or exported
    print(render(ranking, args.metric, args.cost, args.format, ranking.rungs()))
    if args.register:
        print()
        for done in api.register_best(
            args.experiment, args.register, rank=args.rank, metric=args.metric, ranking=ranking
        ):
            verb = "registered" if done.new else "already registered"
            print(
                f"{done.task} {done.attention} (run {done.run_id}): {verb} as "
                f"models:/{done.name}/{done.version}; load: "
                f"{models.how_to_load(done.name, done.version, done.format)}"
            )
    return 0
