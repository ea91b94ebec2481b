"""attnlab: the study of spatial attention mechanisms as a training pipeline.

One argparse tree; each subcommand lives in pipeline/commands/. Bad input becomes one
`attnlab: error: ...` message (exit status 2) before any compute.
"""
from __future__ import annotations

import argparse
import os
import sys

from .commands import attention, best, data, report, sweep, train
from .errors import ConfigError

COMMANDS = [attention, data, train, sweep, best, report]


def _cmd_run(args: argparse.Namespace) -> int:
    """The main job on embedded defaults (grows into the smoke sweep)."""
    from .attention_table import AttentionTableConfig, attention_table, format_rows

    print("attnlab: cost of every mechanism of the study at res4 (2 x 256 x 50 x 84)")
    print(format_rows(attention_table(AttentionTableConfig())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    p = sub.add_parser("run", help="the main job on embedded defaults")
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
