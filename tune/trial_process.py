"""What a reused trial process resets between trials, and the command that reruns a trial alone.

A one-worker trial trains in Tune's own trial process, which Tune reuses for the next trial (its
imports stay warm). Nothing of one trial may reach the next: the environment, torch's thread
count and determinism switches, and any MLflow run left active are put back as they were; seeds
are set by every run anyway. The thread count is the trial's CPUs, set explicitly, so that
`OMP_NUM_THREADS=N MKL_NUM_THREADS=N attnlab train ...` (the rerun command) reproduces the trial's
numbers: `torch.set_num_threads` sets both libraries' counts, and an MKL count inherited from the
shell changes a trial's numbers in the fourth digit after one epoch (measured on `0001`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time

import lightning as L
import psutil
import torch

from attnlab.pipeline.config.train import TrainConfig

STARTUP_METRIC = "trial/startup_s"
_trials_here = 0  # trials this process has started: the first one also paid for the process itself


def trial_started_at(entered: float) -> float:
    """When Tune started this trial: the process's own start for its first trial, else `entered`
    (when the trial function was called in the reused process)."""
    global _trials_here
    _trials_here += 1
    return psutil.Process().create_time() if _trials_here == 1 else entered


class StartupTime(L.Callback):
    """Logs `trial/startup_s`: seconds from Tune starting the trial to its first training batch."""

    def __init__(self, started: float):
        self.started, self.logged = started, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.logged and trainer.is_global_zero:
            self.logged = True
            for logger in trainer.loggers:
                logger.log_metrics({STARTUP_METRIC: time.time() - self.started}, step=trainer.global_step)


RERUN_EXCLUDE = {"tracking_uri", "experiment", "run_name"}  # the rerun tracks where its user says


@contextlib.contextmanager
def isolated(threads: int):
    """Run one trial with `threads` torch threads; afterwards the process is as it was before."""
    import mlflow

    def end_active_runs() -> None:  # a run the fluent API left open, before and after the trial
        while mlflow.active_run() is not None:
            mlflow.end_run()

    env = dict(os.environ)
    saved_threads = torch.get_num_threads()
    saved_deterministic = torch.are_deterministic_algorithms_enabled()
    saved_cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    end_active_runs()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        end_active_runs()
        os.environ.clear()
        os.environ.update(env)
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_deterministic)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved_cudnn


def rerun_command(cfg: TrainConfig, threads: int, devices: int = 1) -> str:
    """One shell command that trains this trial's config standalone, with the trial's thread count
    per process and, for a trial of several workers, as many DDP processes (`--devices`)."""
    config = {k: v for k, v in cfg.own_settings().items() if k not in ("task", "out_dir")}
    config["tracking"] = {k: v for k, v in config["tracking"].items() if k not in RERUN_EXCLUDE}
    argv = [
        "attnlab",
        "train",
        "--task",
        cfg.task,
        "--config-json",
        json.dumps(config, separators=(",", ":")),
        *(["--devices", str(devices)] if devices > 1 else []),
    ]
    return f"OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads} " + shlex.join(argv)
