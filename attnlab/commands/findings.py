"""`attnlab findings`: the study's five findings, each with a verdict and a 95% interval, from MLflow runs."""

from __future__ import annotations

import argparse

from . import TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser("findings", help="check the study's five findings against an experiment's runs")
    p.add_argument("--experiment", required=True)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.set_defaults(func=run)


def render(verdicts, fmt: str) -> str:
    import json

    from attnlab.pipeline.analysis.findings import as_json, table_rows
    from attnlab.pipeline.costs.attention_table import format_rows

    if fmt == "json":
        return json.dumps(as_json(verdicts), indent=2)
    if not verdicts:
        return "(no runs of a task the findings speak to)"
    return format_rows(table_rows(verdicts))


def run(args: argparse.Namespace) -> int:
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, read_only=True)  # before MLflow is imported
    from attnlab.pipeline.analysis.findings import findings, more_seeds_command
    from attnlab.pipeline.analysis.ranking import fetch_runs
    from attnlab.pipeline.tracking.store import find_runs
    from attnlab.pipeline.tracking.tags import KIND, KIND_SWEEP, SEED, SOURCE

    runs = fetch_runs(uri, args.experiment)
    verdicts = findings(runs)
    print(render(verdicts, args.format))
    if args.format == "table":
        sources = [r.data.tags.get(SOURCE) for r in find_runs(uri, args.experiment, {KIND: KIND_SWEEP})]
        seeds = sorted({int(r.data.tags[SEED]) for r in runs if r.data.tags.get(SEED, "").isdigit()})
        command = more_seeds_command(verdicts, args.experiment, next(filter(None, sources), None), seeds)
        if command:
            print(
                "\n'seeds to decide': the seeds in all that would likely decide an inconclusive verdict "
                "(80% power at the spread observed). A sweep of only the new seeds, into this "
                f"experiment:\n  {command}"
            )
    return 0
