"""`attnlab report`: a self-contained HTML report with the study's plots and tables."""

from __future__ import annotations

import argparse

from attnlab import api
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.costs.axes import COSTS, DEFAULT_COST

from . import COST_HELP, EXPERIMENT_HELP, TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (PNG plots) of an experiment's runs")
    p.add_argument("--experiment", required=True, help=EXPERIMENT_HELP)
    p.add_argument("--out", help="folder for index.html and the PNGs (required for --format html)")
    p.add_argument(
        "--format",
        choices=("html", "json"),
        default="html",
        help="html: the report page; json: the findings' verdicts on stdout, no files",
    )
    p.add_argument("--cost", default=DEFAULT_COST, choices=tuple(COSTS), help=COST_HELP)
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    if args.format == "html" and not args.out:
        raise ConfigError("--out FOLDER is required for the HTML report (or use --format json)")
    if args.format == "json":
        from .findings import render

        print(render(api.findings(args.experiment, tracking_uri=args.tracking_uri), "json"))
        return 0
    print(f"wrote {api.report(args.experiment, args.out, cost=args.cost, tracking_uri=args.tracking_uri)}")
    return 0
