"""`attnlab best`: rank configurations and mark the accuracy-cost Pareto front."""

from __future__ import annotations

import argparse

from pipeline.costs import COSTS

from . import TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("best", help="rank configurations of an experiment and mark the Pareto front")
    p.add_argument("--experiment", required=True, help="MLflow experiment (a sweep's name)")
    p.add_argument("--task", help="only this task")
    p.add_argument("--metric", help="metric to rank by (default: the task's, e.g. val/bbox_AP)")
    p.add_argument("--cost", default="attention_flops", choices=tuple(COSTS))
    p.add_argument("--format", default="table", choices=("table", "json", "csv"))
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.tracking_uri import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, read_only=True)  # before MLflow is imported
    from pipeline.queries import fetch_runs, rank, render

    runs = fetch_runs(uri, args.experiment)
    print(render(rank(runs, args.task, args.metric, args.cost), args.metric, args.cost, args.format))
    return 0
