"""`attnlab data make-tiny`: generated data sets in the real layouts (COCO, Cityscapes, text)."""

from __future__ import annotations

import argparse

from attnlab.pipeline.tasks.registry import TASK_NAMES, task_help


def register(sub) -> None:
    p = sub.add_parser("data", help="data utilities")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    t = dsub.add_parser("make-tiny", help="write a small generated data set in the task's real layout")
    t.add_argument("--task", required=True, choices=TASK_NAMES, help=task_help())
    t.add_argument("out", help="folder to create (must not exist or be empty)")
    t.set_defaults(func=run_make_tiny)


def run_make_tiny(args: argparse.Namespace) -> int:
    from attnlab.pipeline.tasks.registry import make_tiny

    print(f"wrote tiny {args.task} data to {make_tiny(args.task, args.out)}")
    return 0
