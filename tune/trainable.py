"""The Tune trial function (one Ray Train V2 TorchTrainer per trial) and its per-worker loop.

Each worker runs exactly `pipeline.train.run_training`, with Ray's DDP strategy and cluster
environment plugged in. Train V2 restores a run from its own checkpoints when it is rerun under
the same (storage_path, name), and the MLflow run is looked up by the trial's key, so retries and
resumed sweeps continue the same run.
"""

from __future__ import annotations

import contextlib
import sys

import ray.train
import ray.tune
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from pipeline import tags, tracking
from pipeline.queries import epochs_trained, stopped_early
from pipeline.tasks import TASKS
from pipeline.train import run_tags, run_training
from pipeline.train_config import TrainConfig

from .checkpoints import restorable
from .ray_callbacks import CHECKPOINT_NAME, FailOnce, ReportEpoch, SayResumed
from .storage import join, remove_tree
from .sweep_config import SweepConfig, trial_train_config


def worker_loop(config: dict) -> None:
    """Runs on every Ray Train worker."""
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    cfg = TrainConfig.model_validate(config["train"])
    callbacks = [ReportEpoch(TASKS[cfg.task].metric), FailOnce(config["trial_key"], config["marker_dir"])]
    trainer_kwargs = {"strategy": RayDDPStrategy(), "plugins": [RayLightningEnvironment()], "devices": "auto"}
    # Ray's checkpoint wins over any other on restore; a torn one gives way to the one before it.
    checkpoint, skipped = restorable(ray.train.get_checkpoint())

    def say(tag: str, line: str) -> None:  # a line in the sweep's log and a tag on the trial's run
        print(f"attnlab: trial {config['trial_key']}: {line}", file=sys.stderr, flush=True)
        tracking.set_tags(cfg.tracking.tracking_uri, config["run_id"], {tag: line})

    if skipped and ray.train.get_context().get_world_rank() == 0:
        say(tags.TORN_CHECKPOINT, skipped)
    if checkpoint is not None:
        callbacks.append(SayResumed(lambda line: say(tags.RESUMED, f"{line} ({checkpoint.path})")))
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as folder:
        run_training(
            cfg,
            run_id=config["run_id"],
            ckpt_path=f"{folder}/{CHECKPOINT_NAME}" if folder else None,
            trainer_kwargs=trainer_kwargs,
            callbacks=callbacks,
            prepare=prepare_trainer,
            progress_bar=False,
            extra_tags=trial_tags(cfg, config["sweep_name"], config["trial_key"]),
            finish=False,
            local_checkpoints=False,
        )


def train_storage(storage: str, sweep_name: str) -> str:
    """Where Ray Train keeps the trials' full checkpoints (one folder per trial key)."""
    return join(storage, sweep_name, "train")


def drop_checkpoints(storage: str, sweep_name: str, key: str) -> None:
    """A trial that finished or was stopped early never resumes: its Ray checkpoints can go (its
    best epoch is already in MLflow). Best effort: a folder still being written is left alone."""
    with contextlib.suppress(OSError):
        remove_tree(join(train_storage(storage, sweep_name), key))


def trial_tags(cfg: TrainConfig, sweep_name: str, key: str) -> dict[str, str]:
    return {**run_tags(cfg, tags.KIND_TRIAL), tags.SWEEP: sweep_name, tags.TRIAL: key}


def _trial_run_id(cfg: TrainConfig, uri: str, sweep: SweepConfig, key: str, parent_id: str):
    """(run id, the run when it ended) of this trial's MLflow child run: found by its key, created on
    first use. Ended: finished, or stopped by early stopping; a resumed sweep never retrains it."""
    found = tracking.find_run(uri, sweep.name, {tags.TRIAL: key})
    if found is not None and (found.info.status == "FINISHED" or stopped_early(found)):
        return found.info.run_id, found
    run_id, _ = tracking.open_run(
        uri,
        sweep.name,
        name=key,
        params=tracking.flatten(cfg.model_dump(mode="json")),
        tags=trial_tags(cfg, sweep.name, key),
        run_id=found.info.run_id if found else None,
        parent_run_id=parent_id,
    )
    return run_id, None


def trial_function(
    config: dict, *, sweep: dict, uri: str, storage: str, scratch: str, parent_id: str
) -> None:
    """One Tune trial: a TorchTrainer over `workers_per_trial` workers. `scratch` is the sweep's
    scratch folder as the driver resolved it: Tune runs a trial in a working folder of its own
    Ray session, so a relative one would change with every driver (losing a resumed trial's spool)."""
    param = config["trial"]
    sweep_cfg = SweepConfig.model_validate(sweep)
    key = param["trial_key"]
    cfg = trial_train_config(param, sweep_cfg, uri, join(scratch, "runs"))
    run_id, ended = _trial_run_id(cfg, uri, sweep_cfg, key, parent_id)
    if ended is not None:  # a resumed sweep never retrains a finished or early-stopped trial
        metrics = ended.data.metrics
        ray.tune.report(
            {**metrics, "epoch": epochs_trained(ended), "score": metrics.get(TASKS[cfg.task].metric, 0.0)}
        )
        return
    r = sweep_cfg.resources
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={
            "train": cfg.model_dump(mode="json"),
            "run_id": run_id,
            "trial_key": key,
            "sweep_name": sweep_cfg.name,
            "marker_dir": join(scratch, "faults"),
        },
        scaling_config=ScalingConfig(
            num_workers=r.workers_per_trial,
            use_gpu=r.gpus_per_worker > 0,
            resources_per_worker={"CPU": r.cpus_per_worker, "GPU": r.gpus_per_worker},
        ),
        run_config=RunConfig(
            name=key,
            storage_path=train_storage(storage, sweep_cfg.name),
            failure_config=FailureConfig(max_failures=sweep_cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()
    tracking.finish_run(uri, run_id, "FINISHED")
    drop_checkpoints(storage, sweep_cfg.name, key)
