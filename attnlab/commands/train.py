"""`attnlab train`: one training run of a task with an attention spec, tracked in MLflow."""

from __future__ import annotations

import argparse
import json
import sys

from attnlab import api
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.tasks.registry import TASK_NAMES, task_help

from ..console import train_console
from . import TRACKING_URI_HELP


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train and evaluate one task with one attention spec",
        description="Train and evaluate one task with one attention spec (--task is required), or go on "
        "with a run that stopped before its last epoch (--resume RUN, which takes nothing else but "
        "--out-dir and --no-progress).",
    )
    p.add_argument("--task", choices=TASK_NAMES, help=task_help())
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="go on with an interrupted run, into the same MLflow run, from its last checkpoint: its "
        "id (as the interrupt line printed it) or its checkpoint folder; its own config is used",
    )
    p.add_argument("--attention", help="attention spec (see README), e.g. 1111, 0010+deform, w/o")
    p.add_argument("--data", help="'tiny' (generated, the default) or the data set's folder")
    p.add_argument(
        "--max-epochs", type=int, help="epochs to train (default: the preset's; lr steps follow it)"
    )
    p.add_argument("--batch-size", type=int, help="images (or sentences) per device and step")
    p.add_argument("--seed", type=int, help="the run's seed (default 0)")
    p.add_argument("--devices", type=int, help="processes/GPUs for DDP on this machine (default: auto)")
    p.add_argument(
        "--preset",
        choices=("tiny", "paper"),
        help="defaults: 'tiny' (small model, short schedule; the default for --data tiny) or "
        "'paper' (the study's recipe; the default for a data folder)",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--config", help="YAML file with any TrainConfig keys (flags override it)")
    source.add_argument(
        "--config-json",
        help="the same keys as one JSON object (what a sweep trial's `attnlab.rerun` tag holds)",
    )
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.add_argument("--experiment", help="MLflow experiment name (default attnlab)")
    p.add_argument("--out-dir", help="where checkpoints and generated data go (default attnlab_runs)")
    p.add_argument("--pretrained", help="local torchvision ResNet state dict for the backbone")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument(
        "--no-system-metrics",
        action="store_true",
        help="do not record MLflow system metrics (CPU, memory, GPU)",
    )
    p.set_defaults(func=run)


def flags_to_config(args: argparse.Namespace) -> dict:
    """Only the flags given, shaped like TrainConfig (so a config file's values survive)."""
    flags: dict = {"task": args.task}
    pairs = {
        ("attention",): args.attention,
        ("max_epochs",): args.max_epochs,
        ("seed",): args.seed,
        ("devices",): getattr(args, "devices", None),
        ("out_dir",): args.out_dir,
        ("data", "batch_size"): args.batch_size,
        ("tracking", "tracking_uri"): args.tracking_uri,
        ("tracking", "experiment"): args.experiment,
        ("backbone", "pretrained"): getattr(args, "pretrained", None),
        ("tracking", "system_metrics"): False if getattr(args, "no_system_metrics", False) else None,
    }
    for path, value in pairs.items():
        if value is None:
            continue
        node = flags
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return flags


RESUME_KEEPS = {"resume", "out_dir", "no_progress", "func", "command"}


def run(args: argparse.Namespace) -> int:
    # A bar only on a terminal: piped to a file, its redraws would be fragments between the lines.
    progress_bar = not args.no_progress and sys.stdout.isatty()
    if args.resume:
        given = sorted(
            f"--{k.replace('_', '-')}"
            for k, v in vars(args).items()
            if k not in RESUME_KEEPS and v not in (None, False)
        )
        if given:
            raise ConfigError(
                f"--resume goes on with the run's own config: drop {' '.join(given)} (to train something "
                "else, start a new run without --resume)"
            )
        result = api.resume_train(
            args.resume, out_dir=args.out_dir, progress_bar=progress_bar, console=train_console
        )
    elif args.task is None:
        raise ConfigError("--task is required (or --resume RUN, to go on with an interrupted run)")
    else:
        flags = flags_to_config(args)
        result = api.train(
            flags.pop("task"),
            data=args.data,
            preset=args.preset,
            config=args.config,
            config_json=args.config_json,
            progress_bar=progress_bar,
            console=train_console,
            **flags,
        )
    if result["global_rank"] != 0:
        return 0
    summary = {
        "run_id": result["run_id"],
        "tracking_uri": result["tracking_uri"],
        "metrics": {k: round(v, 4) for k, v in result["metrics"].items() if k.startswith("val/")},
        "efficiency": result["efficiency"],
    }
    print(json.dumps(summary, indent=2))
    return 0
