"""`attnlab run`: the main job on embedded defaults (what `make run` runs): the smoke sweep on
generated data, then its ranking, its report and where to see it in MLflow."""

from __future__ import annotations

import argparse

from attnlab import api

from ..console import sweep_console
from .sweep import add_format, finish

HELP = "the main job: the smoke sweep on generated data, its ranking and report"


def register(sub) -> None:
    p = sub.add_parser(
        "run",
        help=HELP,
        description=f"{HELP[0].upper()}{HELP[1:]}: an embedded Ray and a local MLflow store "
        "(./mlflow.db), six attention specs with cost-aware early stopping, about 2 minutes on 2 cores.",
    )
    add_format(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return finish(api.run(console=sweep_console("run")), args.format)
