"""What a sweep costs beyond its training: the same 6 short trials as one sweep and as 6
`attnlab train` processes, one at a time each way.

    python benchmarks/overhead.py            # segmentation, tiny data, 64 px crops, 2 epochs
    python benchmarks/overhead.py --epochs 1 --specs w/o 0010
    python benchmarks/overhead.py --workers 2   # multi-worker trials (Ray Train) against `--devices 2`

Prints both wall times and their ratio, the median per-trial start-up (`trial/startup_s`: from
Tune starting a trial to its first training batch; a trial's first in a fresh process counts the
process's start too) and the sweep's fixed costs: command start to the first trial's start, less
Ray's own start (measured here as a bare `ray.init(address="local")`), and the last trial's end to
the command's exit. Every run goes to a temporary folder, which is removed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from attnlab.pipeline.costs.attention_table import format_rows

ATTNLAB = str(Path(sys.executable).with_name("attnlab"))
SPECS = ["w/o", "0010", "1111", "0100", "deform", "0010+deform"]
OVERRIDES = {"segmentation": {"crop_size": 64}, "data": {"batch_size": 4}, "limit_train_batches": 6}


def _run(argv: list[str], cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS"))}
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - started


def ray_start_s() -> float:
    """Ray's own start on this machine: a bare embedded ray.init and nothing else."""
    code = "import time, ray; t = time.monotonic(); ray.init(address='local'); print(time.monotonic() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def as_sweep(folder: Path, specs: list[str], epochs: int, workers: int) -> dict:
    config = {
        "name": "overhead",
        "max_epochs": epochs,
        "grid": [{"task": "segmentation", "specs": specs, "preset": "tiny", "overrides": OVERRIDES}],
        "early_stopping": {"policy": "none"},
        "max_concurrent_trials": 1,
        "resources": {"workers_per_trial": workers, "cpus_per_worker": 1},
    }
    (folder / "overhead.yaml").write_text(yaml.safe_dump(config))
    started = time.time()
    wall = _run([ATTNLAB, "sweep", "--config", "overhead.yaml"], folder)
    ended = started + wall
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = client.get_experiment_by_name("overhead")
    trials = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("attnlab.kind") == "trial"
    ]
    # When Tune started each trial: its first batch (the metric's timestamp) less its start-up.
    starts = [
        m.timestamp / 1000 - m.value
        for r in trials
        for m in client.get_metric_history(r.info.run_id, "trial/startup_s")[:1]
    ]
    first_start = min(starts)
    last_end = max(r.info.end_time for r in trials) / 1000
    return {
        "wall": wall,
        "startup": statistics.median(r.data.metrics["trial/startup_s"] for r in trials),
        "startups": sorted(round(r.data.metrics["trial/startup_s"], 1) for r in trials),
        "before_first": first_start - started,
        "after_last": ended - last_end,
    }


def as_processes(folder: Path, specs: list[str], epochs: int, workers: int) -> float:
    """The same trials, each its own `attnlab train` over `workers` processes (DDP when more than
    one), with the trial's thread count (1 CPU per worker)."""
    config = {"segmentation": OVERRIDES["segmentation"], "data": OVERRIDES["data"]}
    config["limit_train_batches"] = OVERRIDES["limit_train_batches"]
    (folder / "train.yaml").write_text(yaml.safe_dump(config))
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        return sum(
            _run(
                [ATTNLAB, "train", "--task", "segmentation", "--attention", spec, "--max-epochs", str(epochs)]
                + ["--config", "train.yaml", "--no-progress", "--experiment", "standalone"]
                + (["--devices", str(workers)] if workers > 1 else []),
                folder,
            )
            for spec in specs
        )
    finally:
        os.environ.pop("OMP_NUM_THREADS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=SPECS)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="workers per trial (Ray Train above 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="attnlab-overhead-") as tmp:
        sweep_dir, train_dir = Path(tmp, "sweep"), Path(tmp, "train")
        sweep_dir.mkdir()
        train_dir.mkdir()
        ray_s = ray_start_s()
        sweep = as_sweep(sweep_dir, args.specs, args.epochs, args.workers)
        standalone = as_processes(train_dir, args.specs, args.epochs, args.workers)
    print(
        f"{len(args.specs)} trials (segmentation, tiny, 64 px crops, batch 4, 6 batches, "
        f"{args.epochs} epochs, {args.workers} worker(s) a trial), one at a time; "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    rows = [
        {"what": "one sweep, wall s", "value": round(sweep["wall"], 1)},
        {"what": f"{len(args.specs)} attnlab train, wall s", "value": round(standalone, 1)},
        {"what": "ratio sweep / standalone", "value": round(sweep["wall"] / standalone, 2)},
        {"what": "trial start-up, median s", "value": round(sweep["startup"], 1)},
        {"what": "trial start-ups, s", "value": " ".join(map(str, sweep["startups"]))},
        {"what": "Ray's own start, s", "value": round(ray_s, 1)},
        {
            "what": "command start to first trial, less Ray's start, s",
            "value": round(sweep["before_first"] - ray_s, 1),
        },
        {"what": "last trial's end to exit, s", "value": round(sweep["after_last"], 1)},
    ]
    print(format_rows([{**r, "value": str(r["value"])} for r in rows]))


if __name__ == "__main__":
    main()
