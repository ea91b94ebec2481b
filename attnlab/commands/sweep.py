"""`attnlab sweep` and `attnlab resume`: the ablation grid as one Ray Tune sweep."""

from __future__ import annotations

import argparse
import json
import sys

from . import TRACKING_URI_HELP


def _common(p) -> None:
    p.add_argument("--storage", help="Ray storage path or URI (default ./attnlab_runs/sweeps)")
    p.add_argument("--tracking-uri", help=TRACKING_URI_HELP)
    p.add_argument(
        "--ray-address", help="running Ray cluster (default: RAY_ADDRESS or an embedded local Ray)"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's, Lightning's and MLflow's own output here instead of in a log file",
    )


def _seed_list(text: str) -> list[int]:
    """'3,4' or '3-5' (or both, '0,3-5') -> [3, 4, 5]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            seeds += list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seeds are integers, e.g. 3,4 or 3-5") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct seeds >= 0, e.g. 3,4 or 3-5")
    return seeds


def source_flags(args: argparse.Namespace) -> str:
    """The flags that chose the sweep's grid, as typed: what a sweep of more seeds repeats."""
    import shlex

    if args.preset:
        return shlex.join(["--preset", args.preset, *(["--size", args.size] if args.size else [])])
    return shlex.join(["--config", args.config]) if args.config else ""


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run (or continue) a sweep over tasks x specs x seeds")
    p.add_argument(
        "--preset",
        help="smoke | paper-detection | paper-segmentation | paper-translation | paper | "
        "mini-translation | mini-segmentation | mini",
    )
    p.add_argument(
        "--size",
        choices=("cpu", "gpu"),
        help="the mini presets' size (default: gpu where this machine has a GPU, else cpu; "
        "needed with RAY_ADDRESS)",
    )
    p.add_argument("--config", help="sweep YAML file")
    p.add_argument(
        "--config-json", help=argparse.SUPPRESS
    )  # the validated config, inline: what `submit` sends
    p.add_argument("--name", help="sweep name = MLflow experiment name (default: the preset's)")
    p.add_argument(
        "--seeds",
        type=_seed_list,
        help="seeds for every grid entry, e.g. 3,4 or 3-5 (instead of the config's)",
    )
    p.add_argument(
        "--experiment",
        help="log to this MLflow experiment instead of one named after the sweep: a new sweep of "
        "more seeds joins a finished one, whose rankings, effects and findings then count both",
    )
    p.add_argument(
        "--no-system-metrics",
        action="store_true",
        help="do not record MLflow system metrics (CPU, memory, GPU) for the trials",
    )
    _common(p)
    p.set_defaults(func=run_sweep_cmd)
    r = sub.add_parser("resume", help="continue an interrupted sweep; finished trials are not retrained")
    r.add_argument("sweep", help="sweep name (under --storage) or the sweep's folder")
    r.add_argument(
        "--restart-errored",
        action="store_true",
        help="restart errored trials from scratch (default: resume them from their checkpoints)",
    )
    _common(r)
    r.set_defaults(func=run_resume_cmd)


def run_quietly(command: str, sweep, verbose: bool = False, **kwargs) -> dict:
    """`run_sweep` with a live view on the terminal; everything the libraries print goes to a log
    file whose path is printed first. `verbose`, or a submitted Ray job (whose log is the job's
    output), shows it all on the console instead."""
    import os

    from attnlab.tune.live_view import showing
    from attnlab.tune.sweep import preflight, run_sweep

    from ..console import everything_to, new_log_file

    preflight(sweep, kwargs.get("storage"), kwargs.get("ray_address"))  # bad input writes nothing
    if verbose or os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):
        with showing(sys.stdout):
            return run_sweep(sweep, **kwargs)
    log = new_log_file(command)
    trials = len(sweep.trials())
    print(
        f"attnlab: sweep {sweep.name!r}, {trials} trials; Ray, Lightning and MLflow output: {log}", flush=True
    )
    with everything_to(log) as terminal, showing(terminal):
        try:
            return run_sweep(sweep, **kwargs)
        finally:
            # Ray forwards its workers' output to this process a moment late; disconnect while that
            # output still goes to the log, or its last lines land on the terminal.
            import ray

            ray.shutdown()


def _finish(summary: dict) -> int:
    print(json.dumps(summary, indent=2))
    return exit_status(summary)


def exit_status(summary: dict) -> int:
    """0 only if every trial finished or early stopping ended it; 1 with a line per failed trial;
    130 when the driver was interrupted (Ctrl-C) with trials unfinished."""
    from attnlab.tune.sweep import errored, interrupted

    failed = errored(summary)
    for trial in failed:
        print(
            f"attnlab: trial {trial['trial']} failed ({trial.get('error', 'error')}); log: {trial['log']}",
            file=sys.stderr,
        )
    if failed:
        print(
            f"attnlab: {len(failed)} of {len(summary['trials'])} trials failed; fix the cause, then "
            "`attnlab resume` continues them from their checkpoints",
            file=sys.stderr,
        )
    unfinished = interrupted(summary)
    if unfinished:
        print(
            f"attnlab: interrupted with {len(unfinished)} of {len(summary['trials'])} trials unfinished "
            "(their runs are KILLED, their checkpoints kept); `attnlab resume` or the same command "
            "continues them",
            file=sys.stderr,
        )
        return 130
    return 1 if failed else 0


def run_sweep_cmd(args: argparse.Namespace) -> int:
    from attnlab.pipeline.tracking.uri import resolve_tracking_uri
    from attnlab.tune.sweep_config import check_data, load_sweep

    sweep = load_sweep(
        args.preset,
        args.config,
        args.name,
        args.config_json,
        args.size,
        system_metrics=False if args.no_system_metrics else None,
        seeds=args.seeds,
        experiment=args.experiment,
    )
    check_data(sweep)  # every grid's data layout, before Ray is imported or started
    resolve_tracking_uri(args.tracking_uri)
    return _finish(
        run_quietly(
            "sweep",
            sweep,
            args.verbose,
            storage=args.storage,
            tracking_uri=args.tracking_uri,
            ray_address=args.ray_address,
            origin=f"preset {args.preset}" if args.preset else f"config {args.config or '(submitted)'}",
            source=source_flags(args),
        )
    )


def run_resume_cmd(args: argparse.Namespace) -> int:
    from attnlab.pipeline.config.errors import ConfigError
    from attnlab.pipeline.config.validation import validate
    from attnlab.tune.storage import SweepStore
    from attnlab.tune.sweep import STATE_FILE, sweep_store
    from attnlab.tune.sweep_config import SweepConfig

    store = SweepStore.from_folder(args.sweep)  # the sweep's folder, a path or a URI ...
    if not store.exists(STATE_FILE):
        store = sweep_store(args.sweep, args.storage)  # ... or its name under --storage
    saved = store.read_text(STATE_FILE)
    if saved is None:
        raise ConfigError(
            f"no sweep {args.sweep!r} found (looked for {STATE_FILE} in {store.location}); give the "
            "sweep's name with the same --storage it ran with, or its folder"
        )
    state = json.loads(saved)
    sweep = validate(SweepConfig, state["sweep"], "sweep")
    storage = store.root if args.storage is None else args.storage
    return _finish(
        run_quietly(
            "resume",
            sweep,
            args.verbose,
            storage=storage,
            tracking_uri=args.tracking_uri or state["tracking_uri"],
            ray_address=args.ray_address,
            restart_errored=args.restart_errored,
        )
    )
