"""`attnlab findings`: the study's five findings, each with a verdict and a 95% interval, from MLflow runs."""

from __future__ import annotations

import argparse
import json

from attnlab import api

from . import EXPERIMENT_HELP, FORMAT_HELP, TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("findings", help="check the study's five findings against an experiment's runs")
    p.add_argument("--experiment", required=True, help=EXPERIMENT_HELP)
    p.add_argument("--format", choices=("table", "json"), default="table", help=FORMAT_HELP)
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=run)


def render(verdicts, fmt: str) -> str:

    from attnlab.pipeline.analysis.findings import as_json, table_rows
    from attnlab.pipeline.costs.attention_table import format_rows

    if fmt == "json":
        return json.dumps(as_json(verdicts), indent=2)
    if not verdicts:
        return "(no runs of a task the findings speak to)"
    return format_rows(table_rows(verdicts))


def run(args: argparse.Namespace) -> int:

    verdicts = api.findings(args.experiment, tracking_uri=args.tracking_uri)
    print(render(verdicts, args.format))
    if args.format == "table" and verdicts.more_seeds:
        print(
            "\n'seeds to decide': the seeds in all that would likely decide an inconclusive verdict "
            "(80% power at the spread observed). A sweep of only the new seeds, into this "
            f"experiment:\n  {verdicts.more_seeds}"
        )
    return 0
