"""`attnlab effects`: what each term E1-E4 adds to the metric, fitted over every code's runs (the
grid as a 2^4 factorial design), with 95% intervals; terms the codes cannot separate are named."""

from __future__ import annotations

import argparse

from attnlab import api

from . import EXPERIMENT_HELP, FORMAT_HELP, TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser(
        "effects", help="main effects (and interactions) of the terms E1-E4 from an experiment's runs"
    )
    p.add_argument("--experiment", required=True, help=EXPERIMENT_HELP)
    p.add_argument("--task", help="only this task")
    p.add_argument("--metric", help="metric to fit (default: the task's, e.g. val/mIoU)")
    p.add_argument(
        "--epochs",
        type=int,
        help="fit every trial's metric after this many epochs (a rung; stopped trials count) "
        "instead of the full-budget runs' last evaluation",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help=FORMAT_HELP)
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    designs = api.effects(
        args.experiment,
        task=args.task,
        metric=args.metric,
        epochs=args.epochs,
        tracking_uri=args.tracking_uri,
    )
    from attnlab.pipeline.analysis.effects import render

    print(render(designs, args.format))
    return 0
