"""One training run: config -> data module + model -> Lightning trainer -> MLflow.

`attnlab train` calls `run_training`; every sweep trial calls the same function (with Ray's
strategy and plugins passed through `trainer_kwargs`), so a sweep reuses exactly this path.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback, LearningRateMonitor
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import move_data_to_device
from mlflow.tracking import MlflowClient

from attnlab.lightning_modules.attention import placed_modules
from attnlab.pipeline.config.train import TrainConfig
from attnlab.pipeline.costs.measure import measure_efficiency
from attnlab.pipeline.tasks.registry import TASKS, data_root
from attnlab.pipeline.tracking import tags
from attnlab.pipeline.tracking.runs import RunRole
from attnlab.pipeline.tracking.spool import Spool, SpooledClient
from attnlab.pipeline.tracking.store import code_version, flatten, log_data_inputs
from attnlab.pipeline.tracking.system_metrics import SystemMetrics
from attnlab.pipeline.tracking.uri import check_tracking_uri, process_uri_kept
from attnlab.pipeline.training import interrupts, resume, user_callbacks
from attnlab.pipeline.training.checkpoints import BestAndLast, BestCheckpointToMlflow
from attnlab.pipeline.training.randomness import SeededSteps
from attnlab.pipeline.training.run_lines import DeviceLine, EpochBar, EpochLine, SayResumed

TRACKING_WAIT_ENV = "ATTNLAB_TRACKING_WAIT_S"  # how long a finished run waits for a server that is down


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger, minus ending the run (pipeline/tracking/runs.py owns a run's
    whole life), with its metrics and params sent through the run's spool, so a tracking outage
    never stops training."""

    def __init__(self, *args, spool: Spool, **kwargs):
        super().__init__(*args, **kwargs)
        self.spool = spool

    @property
    def experiment(self):
        with process_uri_kept():  # Lightning's sets MLflow's process-wide URI as it starts
            client = MLFlowLogger.experiment.fget(self)
        return SpooledClient(client, self.spool) if isinstance(client, MlflowClient) else client

    def finalize(self, status: str) -> None:
        pass


class EfficiencyStats(Callback):
    """Measures cost once per fit, on rank 0, before the first epoch; logs cost/* on a fresh fit
    (a resumed one logged them already). Early stopping reads them too (`measured_costs`)."""

    def __init__(self, datamodule):
        self.datamodule = datamodule
        self.stats: dict[str, float] | None = None

    def on_fit_start(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        net = pl_module.model
        inputs = pl_module.efficiency_input(self.datamodule)
        inputs = move_data_to_device(inputs, pl_module.device)
        items = pl_module.efficiency_items(inputs) if hasattr(pl_module, "efficiency_items") else 1
        self.stats = measure_efficiency(net, inputs, placed_modules(net), items=items)
        if trainer.ckpt_path:
            return
        for logger in trainer.loggers:
            logger.log_metrics({f"cost/{k}": v for k, v in self.stats.items()}, step=0)


def measured_costs(trainer) -> dict[str, float]:
    """The fit's `cost/*` as EfficiencyStats measured them (empty off rank 0)."""
    stats = next((c.stats for c in trainer.callbacks if isinstance(c, EfficiencyStats) and c.stats), {})
    return {f"cost/{k}": v for k, v in stats.items()}


class EpochsDone(Callback):
    """Logs `epochs_done` (1-based) once an epoch has trained and been evaluated. Lightning's own
    `epoch` metric moves on with the first step of the next epoch, so a trial that early stopping
    cuts mid-epoch would otherwise count an epoch it never finished."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics({tags.EPOCHS_DONE: trainer.current_epoch + 1}, step=trainer.global_step)


class LogDataInputs(Callback):
    """Records the splits the run reads as MLflow dataset inputs, once the data module is set up."""

    def __init__(self, uri: str, run_id: str):
        self.uri, self.run_id = uri, run_id

    def on_fit_start(self, trainer, pl_module):
        if trainer.is_global_zero and not trainer.ckpt_path:  # a resumed run logged them already
            log_data_inputs(self.uri, self.run_id, trainer.datamodule.data_inputs())


class StopOnSignal(Callback):
    """Raises again at each batch once Ctrl-C or SIGTERM was recorded (see pipeline.interrupts)."""

    def _check(self) -> None:
        if interrupts.received() is not None:
            raise interrupts.stop_error()

    def on_train_batch_end(self, *args, **kwargs):
        self._check()

    def on_validation_batch_end(self, *args, **kwargs):
        self._check()


def run_tags(cfg: TrainConfig, kind: str = tags.KIND_TRAIN) -> dict[str, str]:
    return {
        tags.TASK: cfg.task,
        tags.ATTENTION: cfg.attention,
        tags.SEED: str(cfg.seed),
        tags.CODE_VERSION: code_version(),
        tags.KIND: kind,
    }


def run_name(cfg: TrainConfig) -> str:
    """A readable, unique name: task, spec and seed, plus a suffix that seeding cannot repeat."""
    spec = cfg.attention.replace("enc_self=", "es").replace("dec_self=", "ds").replace("enc_dec=", "ed")
    return f"{cfg.task}-{spec.replace('/', '').replace(',', '_')}-s{cfg.seed}-{secrets.token_hex(2)}"


def _signal_exit_code(error: BaseException, trainer: L.Trainer | None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (the shell's 128 + signal), whichever layer caught it first.

    Lightning turns Ctrl-C into sys.exit(1) and SIGTERM into its SIGTERMException; the CLI turns a
    SIGTERM outside fit into SystemExit(143).
    """
    if interrupts.received() is not None:
        return 128 + interrupts.received()
    if getattr(trainer, "received_sigterm", False) or getattr(error, "code", None) == 143:
        return 143
    return 130


def _interrupted(error: BaseException) -> bool:
    """Ctrl-C or SIGTERM, whatever exception it surfaced as: a library may wrap the
    KeyboardInterrupt it was in the middle of (MLflow's sqlite store re-raises it as an
    MlflowException), so a recorded signal counts too."""
    return isinstance(error, (KeyboardInterrupt, SystemExit)) or interrupts.received() is not None


def _ending(error: BaseException) -> str:
    return "KILLED" if _interrupted(error) else "FAILED"


def run_training(
    cfg: TrainConfig,
    *,
    role: RunRole = RunRole(),
    ckpt_path: str | None = None,
    trainer_kwargs: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    callback_context: dict[str, Any] | None = None,
    progress_bar: bool = True,
    prepare: Callable[[L.Trainer], L.Trainer] | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Train and evaluate `cfg`; return {'run_id', 'metrics', 'checkpoint_dir', 'efficiency'}.

    Everything that can reject the input (data layout, pretrained path, spec) runs before the
    MLflow run is opened, so bad input leaves nothing behind. `role` says whose run this is
    (pipeline/tracking/runs.py): a standalone run ends here (FINISHED, or FAILED/KILLED with the
    error) and keeps best.ckpt and last.ckpt in `out_dir` and then in MLflow; a sweep's trial
    leaves its run to the trial, its checkpoints to Ray, and sends only the best epoch's weights.
    `tracking_uri`: the config's, already resolved and checked (`check_run`); else it is here.
    """
    L.seed_everything(cfg.seed, workers=True)
    task = TASKS[cfg.task]
    dm = task.make_data(cfg, data_root(cfg))
    module = task.make_module(cfg, dm)
    uri = tracking_uri or check_tracking_uri(cfg.tracking.tracking_uri)
    role = role.here()
    run_id = role.open(
        uri,
        cfg.tracking.experiment,
        name=cfg.tracking.run_name or run_name(cfg),
        params=flatten(cfg.own_settings()),
        tags=run_tags(cfg),
    )
    local_checkpoints = role.keeps_local_checkpoints
    trainer, ckpt_dir, checkpoint = None, None, None
    try:  # from here on the run is open: whatever stops it, it ends with the right status
        out_dir = Path(cfg.out_dir).resolve()
        spool = Spool(uri, out_dir / "spool" / run_id)
        if role.continues_run:  # a retry or resume (from a checkpoint or from scratch) logs
            spool.resuming(run_id)  # into the same run
        logger = RunLogger(
            experiment_name=cfg.tracking.experiment, tracking_uri=uri, run_id=run_id, spool=spool
        )
        if local_checkpoints:
            ckpt_dir = resume.checkpoint_folder(out_dir, run_id)
            checkpoint = BestAndLast(ckpt_dir, task.metric)
            if role.ends_run and not role.continues_run:  # what `attnlab train --resume` goes on with
                resume.save_config(ckpt_dir, cfg, uri)
        else:
            ckpt_dir, checkpoint = None, BestCheckpointToMlflow(task.metric, spool, run_id)
        efficiency = EfficiencyStats(dm)
        default_context = {"run_id": run_id, "trial_key": None, "scratch_dir": str(out_dir)}
        options = dict(
            max_epochs=cfg.max_epochs,
            precision=cfg.precision,
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            logger=logger,
            # A trial's checkpoints are Ray's and its best weights go to MLflow: Lightning's default
            # ModelCheckpoint would write one more full checkpoint per epoch that nothing reads.
            enable_checkpointing=local_checkpoints,
            callbacks=[
                DeviceLine(),
                SeededSteps(cfg.seed),  # a resumed run draws what an uninterrupted one draws (issue 38)
                checkpoint,
                efficiency,
                EpochsDone(),
                LogDataInputs(uri, run_id),
                StopOnSignal(),
                LearningRateMonitor(),
                *([EpochLine(task.metric)] if role.ends_run else []),
                *(
                    [SayResumed(lambda epoch: print(f"attnlab: run {run_id} goes on after epoch {epoch}"))]
                    if role.ends_run and ckpt_path
                    else []
                ),
                *([EpochBar()] if progress_bar else []),
                *([SystemMetrics(run_id, uri)] if cfg.tracking.system_metrics else []),
                *callbacks,
                *user_callbacks.build(cfg.callbacks, **{**default_context, **(callback_context or {})}),
            ],
            limit_train_batches=cfg.limit_train_batches,
            gradient_clip_val=cfg.optim.grad_clip,
            accumulate_grad_batches=cfg.accumulate_grad_batches,
            num_sanity_val_steps=0,
            log_every_n_steps=5,
            enable_progress_bar=progress_bar,
            enable_model_summary=False,
            # Each data module shards itself per rank (pipeline/data/loaders.py): Lightning cannot shard the
            # token buckets, and its evaluation sampler would count padded-in items twice.
            use_distributed_sampler=False,
        )
        trainer = L.Trainer(**{**options, **(trainer_kwargs or {})})
        if prepare is not None:  # e.g. ray.train.lightning.prepare_trainer
            trainer = prepare(trainer)
        with role.shared_with_ranks(run_id):
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    except BaseException as error:
        if trainer is None or trainer.is_global_zero:
            role.end(uri, run_id, _ending(error))
        if role.ends_run and _interrupted(error):
            if trainer is None or trainer.is_global_zero:
                if isinstance(checkpoint, BestAndLast):  # one file where best and last are one epoch
                    checkpoint.one_file()
                saved = ckpt_dir is not None and any(ckpt_dir.glob("*.ckpt"))
                kept = f"; its checkpoints stay in {ckpt_dir}" if saved else ""
                go_on = f"; go on with: {resume.resume_command(ckpt_dir, run_id)}" if ckpt_dir else ""
                epochs = f" after {trainer.current_epoch} epoch(s)" if trainer is not None else ""
                print(
                    f"attnlab: interrupted{epochs}: run {run_id} ended KILLED{kept}{go_on}",
                    file=sys.stderr,
                    flush=True,
                )
            raise SystemExit(_signal_exit_code(error, trainer)) from error
        raise
    if trainer.is_global_zero:
        for name in checkpoint.one_file() if ckpt_dir else ():
            spool.log_artifact(run_id, ckpt_dir / name, "checkpoints")
        if not spool.flush(wait_s=float(os.environ.get(TRACKING_WAIT_ENV, 1800))):
            raise RuntimeError(
                f"the tracking server {uri} stayed unreachable; what this run could not send is kept in "
                f"{spool.file}, and resuming the run sends it"
            )
        role.end(uri, run_id, "FINISHED")
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {
        "run_id": run_id,
        "metrics": metrics,
        "checkpoint_dir": str(ckpt_dir) if ckpt_dir else None,
        "efficiency": efficiency.stats,
        "tracking_uri": uri,
        "global_rank": trainer.global_rank,
    }
