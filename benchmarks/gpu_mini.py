"""A mini-study without Ray: a sweep preset's trials as concurrent `attnlab train` processes
sharing one GPU, then `attnlab findings` and `attnlab effects` on the store they wrote.

For the GPU machine, where Ray cannot go (its wheel is larger than what a call carries). Each
trial runs the very command a sweep trial records as its standalone rerun (`attnlab.rerun`,
built from the same trial config), so the runs are the sweep's runs, minus Ray's scheduling.
Trials go in seed order (every spec of seed 0, then seed 1, ...), so a deadline that cuts the
grid short leaves whole seeds; a trial that cannot finish by the deadline is not started.
The store, checkpoints and artifacts live in --store (a temp folder by default: a trial's
checkpoints are hundreds of MB); --out gets the logs, the tables and a copy of mlflow.db.

    python benchmarks/gpu_mini.py --preset mini-segmentation --size gpu --max-epochs 4 \\
        --concurrency 4 --deadline-s 240 --out $OUT/mini
    python benchmarks/gpu_mini.py --dry-run --out /tmp/mini     # two tiny trials on a CPU
"""

from __future__ import annotations

import argparse
import concurrent.futures
import copy
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from attnlab.pipeline.tracking.store import ensure_experiment
from attnlab.tune.sweep_config import load_sweep, trial_train_config
from attnlab.tune.trial_process import rerun_command


def shortened(sweep, epochs: int):
    """The sweep at `epochs` epochs, its learning-rate steps following them (as a train config's do
    when it names none) instead of the preset's, which may lie beyond the new end."""
    grid = []
    for g in sweep.grid:
        overrides = copy.deepcopy(g.overrides)
        overrides.get("optim", {}).pop("lr_steps", None)
        grid.append(g.model_copy(update={"overrides": overrides}))
    return sweep.model_copy(update={"max_epochs": epochs, "grid": grid})


def trial_commands(args, uri: str) -> list[tuple[str, list[str]]]:
    """(trial key, argv) for each trial of the preset, seed by seed."""
    sweep = load_sweep(args.preset, None, None, size=args.size, experiment=args.experiment)
    if args.max_epochs:
        sweep = shortened(sweep, args.max_epochs)
    trials = [t for t in sweep.trials() if not args.specs or t.spec in args.specs]
    if args.seeds is not None:
        trials = [t for t in trials if t.seed in args.seeds]
    trials.sort(key=lambda t: t.seed)  # stable: the preset's spec order within a seed
    commands = []
    for trial in trials:
        cfg = trial_train_config(trial.param(), sweep, uri, str(args.store / "runs"))
        argv = shlex.split(rerun_command(cfg, args.threads))  # VAR=value ... attnlab train ...
        argv += ["--tracking-uri", uri, "--experiment", sweep.experiment_name, "--no-progress"]
        argv += ["--out-dir", str(args.store / "runs")]
        commands.append((trial.trial_key, argv))
    return commands


def run_trial(key: str, argv: list[str], deadline: float, logs: Path) -> tuple[str, str, float]:
    """Run one trial to its end or the deadline; (key, outcome, seconds)."""
    settings = [word for word in argv[: argv.index("attnlab")] if "=" in word]  # the thread counts
    command = argv[len(settings) :]
    env = {**os.environ, **dict(word.split("=", 1) for word in settings)}
    left = deadline - time.monotonic()
    if left < 5:
        return key, "not started (deadline)", 0.0
    start = time.monotonic()
    with open(logs / f"{key}.log", "w") as log:
        try:
            proc = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=left)
            outcome = "finished" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        except subprocess.TimeoutExpired:
            outcome = "cut at the deadline"
    return key, outcome, time.monotonic() - start


def report(args, uri: str, experiment: str) -> None:
    for verb in ("findings", "effects"):
        out = subprocess.run(
            ["attnlab", verb, "--experiment", experiment, "--tracking-uri", uri],
            capture_output=True,
            text=True,
        )
        text = out.stdout + (out.stderr[-2000:] if out.returncode else "")
        (args.out / f"{verb}.txt").write_text(text)
        print(f"\n$ attnlab {verb} --experiment {experiment}\n{text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini-segmentation")
    parser.add_argument("--size", default="gpu")
    parser.add_argument("--specs", nargs="+", help="only these specs of the preset")
    parser.add_argument("--seeds", nargs="+", type=int, help="only these seeds of the preset")
    parser.add_argument("--max-epochs", type=int)
    parser.add_argument("--experiment", default="gpu-mini")
    parser.add_argument("--concurrency", type=int, default=4, help="trials sharing the GPU at once")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 4))
    parser.add_argument("--deadline-s", type=float, default=240.0)
    parser.add_argument("--out", type=Path, default=Path("gpu-mini"))
    parser.add_argument(
        "--store", type=Path, help="MLflow store, runs and checkpoints (default: a temp folder)"
    )
    parser.add_argument("--dry-run", action="store_true", help="two tiny trials, 1 epoch, on a CPU")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.size, args.max_epochs, args.seeds = "cpu", 1, [0]
        args.specs, args.concurrency = args.specs or ["w/o", "1000"], 2
    args.out = args.out.resolve()
    args.store = (args.store or Path(tempfile.mkdtemp(prefix="gpu-mini-"))).resolve()
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{args.store / 'mlflow.db'}"
    deadline = time.monotonic() + args.deadline_s
    commands = trial_commands(args, uri)
    # The store and the experiment first: concurrent first writers would race to create the tables.
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its table-creation notices
    ensure_experiment(MlflowClient(uri), args.experiment, uri)
    print(f"{len(commands)} trials, {args.concurrency} at a time, {args.deadline_s:.0f} s; logs in {logs}")
    with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
        futures = [pool.submit(run_trial, key, cmd, deadline, logs) for key, cmd in commands]
        for future in concurrent.futures.as_completed(futures):
            key, outcome, seconds = future.result()
            print(f"{key}: {outcome} in {seconds:.0f} s", flush=True)
    report(args, uri, args.experiment)
    shutil.copy2(args.store / "mlflow.db", args.out / "mlflow.db")  # the runs' metrics, params, tags
    print(f"store: {args.store}; its mlflow.db copied to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
