"""attnlab: the study of spatial attention mechanisms as a training pipeline.

One argparse tree; each subcommand lives in pipeline/commands/. Bad input becomes one
`attnlab: error: ...` message (exit status 2) before any compute.
"""
from __future__ import annotations

import argparse
import os
import sys

from .commands import attention, best, data, findings, report, submit, sweep, train
from .errors import ConfigError

COMMANDS = [attention, data, train, sweep, best, report, findings, submit]


def _cmd_run(args: argparse.Namespace) -> int:
    """The main job on embedded defaults: the smoke sweep, its ranking and its report."""
    from tune.sweep import run_sweep
    from tune.sweep_config import load_sweep

    from .queries import fetch_runs, rank, render
    from .report import write_report
    from .tracking import resolve_tracking_uri

    sweep = load_sweep("smoke", None, None)
    from tune.sweep import errored

    summary = run_sweep(sweep)
    runs = fetch_runs(resolve_tracking_uri(None), sweep.name)
    print(render(rank(runs, None, None, "attention_flops"), None, "attention_flops", "table"))
    index = write_report(runs, sweep.name, "attnlab_runs/report")
    stopped = sum(t["status"] == "stopped" for t in summary["trials"])
    print(f"\n{len(summary['trials'])} trials ({stopped} stopped early by ASHA); report: {index}")
    print("MLflow UI: mlflow ui --backend-store-uri sqlite:///mlflow.db  (then open http://127.0.0.1:5000)")
    failed = errored(summary)
    for trial in failed:
        print(f"attnlab: trial {trial['trial']} failed; log: {trial['log']}", file=sys.stderr)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    p = sub.add_parser("run", help="the main job: the smoke sweep on generated data, its ranking and report")
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        if os.environ.get("ATTNLAB_DEBUG"):
            raise
        print(f"attnlab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
