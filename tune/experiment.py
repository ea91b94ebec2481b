"""A sweep as a Tune experiment: the trial function with its resources, early stopping, how many
trials run at once, and the Tuner, new or restored from the sweep's folder.

Rerunning a sweep (same name and storage) restores its experiment: finished trials stay finished,
interrupted ones continue from their checkpoints.
"""

from __future__ import annotations

import ray
from ray import tune

from .outcomes import SweepEvents
from .schedulers import early_stopping
from .storage import SweepStore
from .sweep_config import SweepConfig
from .trial_entry import trial_function


def concurrency(sweep: SweepConfig) -> int:
    """The sweep's max_concurrent_trials, else as many trials as the cluster's CPUs (and GPUs) fit."""
    if sweep.max_concurrent_trials:
        return sweep.max_concurrent_trials
    res, r = ray.cluster_resources(), sweep.resources
    fits = [int(res.get("CPU", 0) // (r.workers_per_trial * r.cpus_per_worker))]
    if r.gpus_per_worker:
        fits.append(int(res.get("GPU", 0) // (r.workers_per_trial * r.gpus_per_worker)))
    return max(1, min(fits))


def trainable(sweep: SweepConfig, store: SweepStore, tracking_uri: str, parent_id: str, recover: bool):
    """The trial function with what every trial shares (typed: Ray pickles it once, into its object
    store, and each trial process reads it back as it was) and the resources one trial holds."""
    fn = tune.with_parameters(
        trial_function,
        sweep=sweep,
        uri=tracking_uri,
        store=store,
        parent_id=parent_id,
        recover=recover,
    )
    r = sweep.resources
    if r.workers_per_trial == 1:  # the trial trains in its own (reused) process: it holds the resources
        return tune.with_resources(fn, {"cpu": r.cpus_per_worker, "gpu": r.gpus_per_worker})
    # The trial function only drives a TorchTrainer; its workers hold the real resources.
    # A zero-CPU request needs some resource to be a valid bundle: a little memory.
    return tune.with_resources(fn, {"cpu": 0, "memory": 64 * 2**20})


def _trial_name(trial) -> str:
    return trial.config["trial"]["trial_key"]


def tuner(sweep: SweepConfig, store: SweepStore, fn, restart_errored: bool) -> tune.Tuner:
    """A new Tuner over the grid, or the sweep's stored one restored with this driver's scheduler and
    callbacks (`SweepStore.refresh_tune_state`)."""
    # Given to a restore too: where Tune cannot read its own state back it logs that and starts
    # afresh from the param_space it is given (none: trials without a config).
    param_space = {"trial": tune.grid_search([t.param() for t in sweep.trials()])}
    scheduler, callbacks = early_stopping(sweep, store), [SweepEvents()]
    if tune.Tuner.can_restore(*store.tune_path()):
        names = {"trial_name_creator": _trial_name, "trial_dirname_creator": _trial_name}
        store.refresh_tune_state({"scheduler": scheduler, **names}, callbacks)
        path, fs = store.tune_path()
        return tune.Tuner.restore(
            path,
            fn,
            param_space=param_space,
            resume_errored=not restart_errored,
            restart_errored=restart_errored,
            storage_filesystem=fs,
        )
    return tune.Tuner(
        fn,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=scheduler,
            max_concurrent_trials=concurrency(sweep),
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            # A one-worker trial's process, its imports warm, trains the next trial too.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=sweep.name,
            storage_path=store.root,
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        ),
    )
