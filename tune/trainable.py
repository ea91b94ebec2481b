"""The Tune trial function and what trains inside it.

A one-worker trial trains right in Tune's trial process (`train_here`): Tune reuses that process
for the next trial, so a warm sweep starts a trial in seconds, not in the 40 s a fresh Ray Train
controller and worker spend importing torch, Lightning and MLflow. Tune keeps its checkpoints and
retries it from them. A multi-worker trial builds one Ray Train V2 TorchTrainer (`worker_loop` on
every worker, Ray's DDP strategy and cluster environment plugged in). Both run exactly
`pipeline.training.run.run_training`. The trial opens its MLflow run once, found by the trial's
key, so retries and resumed sweeps continue the same run; training logs into it. Typed configs cross
into the trial as they are (Ray pickles them once, at its boundary): nothing is validated twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import ray.train
import ray.tune
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from attnlab.pipeline.analysis.ranking import epochs_trained
from attnlab.pipeline.config.train import TrainConfig
from attnlab.pipeline.tasks.registry import TASKS
from attnlab.pipeline.tracking import runs, tags
from attnlab.pipeline.tracking.runs import RunRole
from attnlab.pipeline.tracking.store import flatten, set_tags
from attnlab.pipeline.training.run import run_tags, run_training
from attnlab.pipeline.training.run_lines import SayResumed

from .checkpoints import going_on_from, restorable
from .pareto_asha import BUDGET, kept_at
from .ray_callbacks import CHECKPOINT_NAME, RESULT_NAME, ReportEpoch
from .storage import SweepStore, join
from .sweep_config import SweepConfig, trial_train_config
from .trial_process import StartupTime, isolated, rerun_command, trial_started_at


def _train(config: dict, latest, rank0: bool, in_tune: bool, started: float, **run_options) -> None:
    """One trial's training, from `latest` (Ray's newest checkpoint, or None) where it is whole;
    `started`: when Tune started the trial (for `trial/startup_s`)."""
    cfg: TrainConfig = config["train"]
    callbacks = [
        ReportEpoch(TASKS[cfg.task].metric, config["staging"], in_tune),
        StartupTime(started),
    ]
    checkpoint, skipped = restorable(latest)

    def say(tag: str, line: str) -> None:  # a line in the sweep's log and a tag on the trial's run
        print(f"attnlab: trial {config['trial_key']}: {line}", file=sys.stderr, flush=True)
        set_tags(cfg.tracking.tracking_uri, config["run_id"], {tag: line})

    if skipped and rank0:
        say(tags.TORN_CHECKPOINT, skipped)
    if checkpoint is not None:
        decided = set(config.get("rungs_passed", ()))
        _report_again(checkpoint, decided, in_tune)

        def resumed(epoch: int) -> None:  # a pause at a decided rung is not a fault
            if epoch in decided:
                say(
                    tags.CONTINUED, f"continued after epoch {epoch}, once its early-stopping rung was decided"
                )
            else:
                say(tags.RESUMED, f"resumed after epoch {epoch} ({checkpoint.path})")

        callbacks.append(SayResumed(resumed))
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as folder:
        run_training(
            cfg,
            role=RunRole.trial(config["run_id"]),
            tracking_uri=cfg.tracking.tracking_uri,  # the driver's server, checked by the driver
            ckpt_path=f"{folder}/{CHECKPOINT_NAME}" if folder else None,
            callbacks=callbacks,
            progress_bar=False,
            callback_context={"trial_key": config["trial_key"], "scratch_dir": config["scratch"]},
            **run_options,
        )


def worker_loop(config: dict) -> None:
    """Runs on every Ray Train worker of a multi-worker trial, with the trial's thread count (a
    worker inherits the driver's OMP_NUM_THREADS, which Ray leaves as it finds it: the trial's
    numbers, and its rerun command's, must not depend on the shell that started the sweep)."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    torch.set_num_threads(config["threads"])
    latest = going_on_from(ray.train.get_checkpoint(), config["train_folder"], config["recover"])

    trainer_kwargs = {"strategy": RayDDPStrategy(), "plugins": [RayLightningEnvironment()], "devices": "auto"}
    rank0 = ray.train.get_context().get_world_rank() == 0
    _train(
        config,
        latest,
        rank0,
        False,
        config["started"],
        trainer_kwargs=trainer_kwargs,
        prepare=prepare_trainer,
    )


def _report_again(checkpoint, decided: set[int], in_tune: bool) -> None:
    """A trial restored from epoch k's checkpoint that early stopping has no decision for at k
    (its driver died, or was stopped, between the trial's report there and the scheduler saving it)
    reports epoch k's result again before it trains on: a rung at k is then decided on epoch k's
    score, as without the fault, and the trial waits there (or stops) as it would have."""
    with checkpoint.as_directory() as folder:
        saved = Path(folder, RESULT_NAME)
        result = json.loads(saved.read_text()) if saved.exists() else None
    if result is None or int(result["epoch"]) in decided or result["epoch"] >= result.get(BUDGET, 0):
        return
    (ray.tune.report if in_tune else ray.train.report)(result)


def train_here(config: dict, threads: int, folder: str, recover: bool) -> None:
    """A one-worker trial in this (Tune's, reused) process, isolated from the trials before it.
    `folder`: the trial's folder in the sweep's storage; with `recover`, a trial restores from the
    newer of the checkpoint Tune hands it and the newest whole one there (Tune's record of the
    trial's last checkpoints can be lost with its driver)."""
    started = trial_started_at(config["started"])
    cfg: TrainConfig = config["train"]
    set_tags(
        cfg.tracking.tracking_uri, config["run_id"], {tags.PROCESS: f"{socket.gethostname()}:{os.getpid()}"}
    )
    latest = going_on_from(ray.tune.get_checkpoint(), folder, recover)
    reported = ReportEpoch.reports
    with isolated(threads):
        _train(config, latest, True, True, started, trainer_kwargs={"devices": 1})
    if ReportEpoch.reports == reported:
        # Restored from its last epoch's checkpoint (its driver died before the run was closed):
        # nothing was left to train, and Tune still needs the trial's final result.
        from mlflow.tracking import MlflowClient

        _report_logged(MlflowClient(cfg.tracking.tracking_uri).get_run(config["run_id"]), cfg)


def _report_logged(run, cfg: TrainConfig) -> None:
    """Report to Tune what the trial's MLflow run logged, for a trial that trains nothing more."""
    metrics = run.data.metrics
    ray.tune.report(
        {
            **metrics,
            "epoch": epochs_trained(run),
            "score": metrics.get(TASKS[cfg.task].metric, 0.0),
            BUDGET: cfg.max_epochs,
        }
    )


def trial_tags(cfg: TrainConfig, sweep_name: str, key: str) -> dict[str, str]:
    return {**run_tags(cfg, tags.KIND_TRIAL), tags.SWEEP: sweep_name, tags.TRIAL: key}


def run_trial(
    config: dict,
    *,
    sweep: SweepConfig,
    uri: str,
    store: SweepStore,
    parent_id: str,
    entered: float,
    recover: bool = True,
) -> None:
    """One Tune trial: trained here (one worker) or by a TorchTrainer over `workers_per_trial`
    workers. `store` is the sweep's store as the driver resolved it: Tune runs a trial in a working
    folder of its own Ray session, so a relative scratch folder would change with every driver
    (losing a resumed trial's spool). `recover` False (`--restart-errored`): a trial never restores
    from checkpoints Tune did not hand it."""
    param = config["trial"]
    key = param["trial_key"]
    cfg = trial_train_config(param, sweep, uri, store.scratch("runs"))
    run_id, ended = runs.open_trial(
        uri,
        sweep.experiment_name,
        sweep=sweep.name,
        key=key,
        params=flatten(cfg.own_settings()),
        tags=trial_tags(cfg, sweep.name, key),
        parent_run_id=parent_id,
    )
    if ended is not None:  # a resumed sweep never retrains a finished or early-stopped trial
        _report_logged(ended, cfg)
        return
    r = sweep.trial_resources(param)
    threads = max(1, int(r.cpus_per_worker))
    set_tags(uri, run_id, {tags.RERUN: rerun_command(cfg, threads, r.workers_per_trial)})
    loop_config = {
        "train": cfg,
        "run_id": run_id,
        "trial_key": key,
        "scratch": store.scratch(),
        "staging": store.staging(key),
        "started": entered,
        "threads": threads,
        "recover": recover,
        "train_folder": join(store.train_storage, key),
        # the rungs early stopping kept it at: a trial restored there was paused, not faulted
        "rungs_passed": kept_at(store.decisions().get(key, [])),
    }
    if r.trains_in_tune:
        folder = store.trial_folder(key)
        train_here(loop_config, threads=threads, folder=folder, recover=recover)
    else:
        TorchTrainer(
            worker_loop,
            train_loop_config=loop_config,
            scaling_config=ScalingConfig(
                num_workers=r.workers_per_trial,
                use_gpu=r.gpus_per_worker > 0,
                resources_per_worker={"CPU": r.cpus_per_worker, "GPU": r.gpus_per_worker},
            ),
            run_config=RunConfig(
                name=key,
                storage_path=store.train_storage,
                failure_config=FailureConfig(max_failures=sweep.max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                callbacks=[TuneReportCallback()],
            ),
        ).fit()
    runs.finish_run(uri, run_id, "FINISHED")
    store.drop_checkpoints(key)
