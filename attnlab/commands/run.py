"""`attnlab run`: the main job on embedded defaults (what `make run` runs): the smoke sweep on
generated data, then its ranking, its report and where to see it in MLflow."""

from __future__ import annotations

import argparse

from attnlab import api

from ..console import sweep_console
from .sweep import exit_status

HELP = "the main job: the smoke sweep on generated data, its ranking and report"


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help=HELP,
        description=f"{HELP[0].upper()}{HELP[1:]}: an embedded Ray and a local MLflow store "
        "(./mlflow.db), six attention specs with cost-aware early stopping, about 2 minutes on 2 cores.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from attnlab.pipeline.analysis.ranking import render
    from attnlab.pipeline.costs.axes import DEFAULT_COST
    from attnlab.pipeline.tracking.store import experiment_url

    summary = api.run(console=sweep_console("run"))
    if summary.unfinished:  # interrupted: no ranking or report that would read as the answer
        return exit_status(summary)
    uri, experiment = summary.tracking_uri, summary.sweep.experiment_name
    print(render(api.best(experiment, cost=DEFAULT_COST, tracking_uri=uri), None, DEFAULT_COST, "table"))
    stopped = f"{len(summary.stopped)} stopped early by {summary.sweep.early_stopping.policy}"
    print(f"\n{len(summary.trials)} trials ({stopped}); report: {summary.report}")
    exp = MlflowClient(uri).get_experiment_by_name(experiment).experiment_id
    print(f"MLflow UI: mlflow ui --backend-store-uri {uri}, then open {experiment_url(uri, exp)}")
    return exit_status(summary)
