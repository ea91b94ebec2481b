"""`attnlab report`: a self-contained HTML report with the study's plots and tables."""

from __future__ import annotations

import argparse

from attnlab.pipeline.costs.axes import COSTS, DEFAULT_COST

from . import COST_HELP, TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("report", help="write an HTML report (PNG plots) of an experiment's runs")
    p.add_argument("--experiment", required=True)
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
    from attnlab.pipeline.config.errors import ConfigError
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri

    if args.format == "html" and not args.out:
        raise ConfigError("--out FOLDER is required for the HTML report (or use --format json)")
    uri = resolve_tracking_uri(args.tracking_uri, read_only=True)  # before MLflow is imported
    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.analysis.report import write_report

    runs = fetch_runs(uri, args.experiment)
    if args.format == "json":
        from attnlab.pipeline.analysis.findings import findings

        from .findings import render

        print(render(findings(runs), "json"))
        return 0
    print(f"wrote {write_report(runs, args.experiment, args.out, args.cost, uri)}")
    return 0
