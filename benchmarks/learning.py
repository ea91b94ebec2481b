"""How much a short CPU run learns on the generated data, per task: the task's metric of the freshly
initialised model against the same model after a few epochs (same seed, same data, the tiny preset).

A measurement, not a test: the suite checks only that a model learns (tests/pipeline/
test_vision_training.py: 16 steps of segmentation with deformable convolution), and this table
says how far each task gets in how long.

    python benchmarks/learning.py                       # every task at its default epochs
    python benchmarks/learning.py --task detection --epochs 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.tasks.registry import TASKS, make_tiny
from attnlab.pipeline.training.run import run_training

CASES = {  # task -> (spec, epochs)
    "detection": ("0010", 5),
    "segmentation": ("0010+deform", 4),
    "translation": ("enc_self=0010,dec_self=1000,enc_dec=1000", 4),
}


def untrained_score(cfg, metric: str) -> float:
    """The task metric of the freshly initialised model (same seed, same data)."""
    L.seed_everything(cfg.seed)
    task = TASKS[cfg.task]
    dm = task.make_data(cfg, cfg.data.path)
    module = task.make_module(cfg, dm)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return trainer.validate(module, datamodule=dm, verbose=False)[0][metric]


def measure(task: str, spec: str, epochs: int, folder: Path) -> dict:
    data = make_tiny(task, folder / "data" / task)
    flags = {
        "task": task,
        "attention": spec,
        "max_epochs": epochs,
        "data": {"path": str(data)},
        "out_dir": str(folder / "runs"),
        "tracking": {"tracking_uri": f"sqlite:///{folder / 'mlflow.db'}", "system_metrics": False},
    }
    cfg = build_train_config(flags, preset="tiny")
    metric = TASKS[task].metric
    before = untrained_score(cfg, metric)
    start = time.perf_counter()
    after = run_training(cfg, progress_bar=False)["metrics"][metric]
    return {
        "task": task,
        "spec": spec,
        "epochs": epochs,
        "metric": metric,
        "untrained": before,
        "trained": after,
        "gain": after - before,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=tuple(CASES), help="only this task (default: every task)")
    parser.add_argument("--epochs", type=int, help="epochs to train (default: each task's)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="attnlab-learning-") as tmp:
        for task, (spec, epochs) in CASES.items():
            if args.task in (None, task):
                rows.append(measure(task, spec, args.epochs or epochs, Path(tmp)))
    print("| task | spec | epochs | metric | untrained | trained | gain | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['task']} | {r['spec']} | {r['epochs']} | {r['metric']} | {r['untrained']:.4f} | "
            f"{r['trained']:.4f} | {r['gain']:+.4f} | {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
