"""`attnlab data make-tiny`: generated data sets in the real layouts (COCO, Cityscapes, text)."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("data", help="data utilities")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    t = dsub.add_parser("make-tiny", help="write a small generated data set in the task's real layout")
    t.add_argument("--task", required=True, help="detection | segmentation | translation")
    t.add_argument("out", help="folder to create (must not exist or be empty)")
    t.set_defaults(func=run_make_tiny)


def run_make_tiny(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..tasks import TASKS, make_tiny

    if args.task not in TASKS:
        raise ConfigError(f"unknown task {args.task!r}; choose one of {', '.join(TASKS)}")
    print(f"wrote tiny {args.task} data to {make_tiny(args.task, args.out)}")
    return 0
