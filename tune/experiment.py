"""A sweep as a Tune experiment: the trial function with its resources, early stopping, how many
trials run at once, and the Tuner, new or restored from the sweep's folder.

Rerunning a sweep (same name and storage) restores its experiment: finished trials stay finished,
interrupted ones continue from their checkpoints.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import ray
from ray import tune
from ray.tune import PlacementGroupFactory
from ray.tune.logger import LoggerCallback, TBXLoggerCallback

from attnlab.pipeline.config.errors import ConfigError

from .outcomes import SweepEvents, tell
from .race import RaceSearcher
from .schedulers import PerTaskScheduler, TrialSlots, early_stopping
from .storage import SweepStore
from .sweep_config import Resources, SweepConfig
from .trial_entry import trial_function


def concurrency(sweep: SweepConfig) -> int:
    """The sweep's max_concurrent_trials, else as many of its largest trials as the cluster's CPUs
    (and GPUs) fit."""
    if sweep.max_concurrent_trials:
        return sweep.max_concurrent_trials
    res, fits = ray.cluster_resources(), []
    for r in sweep.all_resources():
        fits.append(int(res.get("CPU", 0) // (r.workers_per_trial * r.cpus_per_worker)))
        if r.gpus_per_worker:
            fits.append(int(res.get("GPU", 0) // (r.workers_per_trial * r.gpus_per_worker)))
    return max(1, min(fits))


def trial_bundle(r: Resources) -> PlacementGroupFactory:
    """What one trial's Tune process holds: a one-worker trial trains in it (its CPUs and GPUs); a
    multi-worker trial's function only drives a TorchTrainer whose workers hold the real resources
    (a zero-CPU request needs some resource to be a valid bundle: a little memory)."""
    if r.trains_in_tune:
        return PlacementGroupFactory([{"CPU": r.cpus_per_worker, "GPU": r.gpus_per_worker}])
    return PlacementGroupFactory([{"CPU": 0, "memory": 64 * 2**20}])


def reuse_actors(sweep: SweepConfig) -> bool:
    """Whether a finished trial's process, its imports warm, waits to train the next trial: yes,
    unless the sweep mixes one-worker and multi-worker entries. There a waiting one-worker process
    holds its CPU (or GPU) outside what Ray Train sees, and a multi-worker trial's workers, which
    Tune does not count, can wait for it for ever (issue 38: a race's round that waits for them)."""
    return len({r.trains_in_tune for r in sweep.all_resources()}) == 1


def trainable(sweep: SweepConfig, store: SweepStore, tracking_uri: str, parent_id: str, recover: bool):
    """The trial function with what every trial shares (typed: Ray pickles it once, into its object
    store, and each trial process reads it back as it was) and the resources each trial holds (its
    grid entry's)."""
    fn = tune.with_parameters(
        trial_function,
        sweep=sweep,
        uri=tracking_uri,
        store=store,
        parent_id=parent_id,
        recover=recover,
    )
    return tune.with_resources(fn, lambda config: trial_bundle(sweep.trial_resources(config["trial"])))


def _trial_name(trial) -> str:
    return trial.config["trial"]["trial_key"]


@dataclass
class Search:
    """What chooses and stops a sweep's trials: the early-stopping scheduler, and the search
    algorithm (the grid, or the race's Searcher, `race`), sharing one limit on trials training."""

    scheduler: PerTaskScheduler
    algorithm: Any
    race: RaceSearcher | None = None


def search(sweep: SweepConfig, store: SweepStore | None, history=None) -> Search:
    """The sweep's scheduler and trial source; `history` (tune.race.RaceHistory) rebuilds a race."""
    limit = concurrency(sweep)
    scheduler = early_stopping(sweep, store, limit)
    if sweep.racing:
        race = RaceSearcher(sweep, scheduler, limit, history, partial(tell, "race_round"))
        return Search(scheduler, race, race)
    # The scheduler and the generator share the limit: a trial paused at a rung frees its slot.
    return Search(scheduler, TrialSlots(scheduler, limit))


class NoTensorBoard(TBXLoggerCallback):
    """Stands in for the TensorBoard logger Tune adds to every experiment that names none: a sweep's
    metrics are in MLflow, and importing tensorboardX alone cost each driver about 1.4 CPU-seconds.
    Tune's JSON and CSV logs (result.json, progress.csv), which its own restore reads, stay."""

    def __init__(self) -> None:
        LoggerCallback.__init__(self)  # not TBXLoggerCallback's: that imports tensorboardX

    def log_trial_start(self, trial) -> None:
        pass

    def log_trial_result(self, iteration, trial, result) -> None:
        pass

    def log_trial_end(self, trial, failed: bool = False) -> None:
        pass


def tuner(sweep: SweepConfig, store: SweepStore, fn, restart_errored: bool, parts: Search) -> tune.Tuner:
    """A new Tuner over the grid (or the race), or the sweep's stored one restored with this driver's
    scheduler, search algorithm and callbacks (`experiment.refresh_tune_state`)."""
    # Given to a restore too: where Tune cannot read its own state back it logs that and starts
    # afresh from the param_space it is given (none: trials without a config).
    trials = {} if sweep.racing else {"trial": tune.grid_search([t.param() for t in sweep.trials()])}
    param_space, callbacks = trials, [SweepEvents(), NoTensorBoard()]
    own = {
        "scheduler": parts.scheduler,
        "search_alg": parts.algorithm,
        "max_concurrent_trials": None,
        "reuse_actors": reuse_actors(sweep),
        # A race ends when its Searcher says so.
        "num_samples": -1 if sweep.racing else 1,
    }
    if tune.Tuner.can_restore(*store.tune_path()):
        names = {"trial_name_creator": _trial_name, "trial_dirname_creator": _trial_name}
        refresh_tune_state(store, {**own, **names}, callbacks)
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
            **own,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=tune.RunConfig(
            name=sweep.name,
            storage_path=store.root,
            failure_config=tune.FailureConfig(max_failures=sweep.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
        ),
    )


# Tune's own state in the sweep's folder.


def set_aside_torn_state(store: SweepStore) -> list[str]:
    """When Tune's newest experiment state does not parse (a full disk cut it short), or there
    is none beside its tuner.pkl (the disk filled before Tune first wrote it), rename Tune's
    state (experiment and searcher state, tuner.pkl) to *.torn, so the sweep starts a fresh
    Tune run instead of a restore that Tune would abandon; the names renamed."""
    import pyarrow.fs as pafs

    infos = [
        i
        for i in store.fs.get_file_info(pafs.FileSelector(store.path, allow_not_found=True))
        if i.type == pafs.FileType.File
    ]
    names = {i.base_name for i in infos}
    states = sorted(n for n in names if n.startswith("experiment_state-"))
    if not states and store.TUNER not in names:
        return []  # a new sweep
    if states:
        try:
            json.loads(store.read_bytes(states[-1]) or b"")
            return []
        except ValueError:
            pass
    tune_state = ("experiment_state-", "basic-variant-state-", "search_gen_state-", store.TUNER)
    moved = sorted(i.base_name for i in infos if i.base_name.startswith(tune_state))
    for name in moved:
        store.fs.move(store._file(name), store._file(f"{name}.torn"))
    return moved


def refresh_tune_state(store: SweepStore, tune_config: dict[str, Any], callbacks: Sequence[Any]) -> None:
    """Give a stored Tune experiment this driver's scheduler, trial names and callbacks before it
    is restored (`tune_config`: TuneConfig attributes to set).

    Tune pickles them into tuner.pkl when the sweep starts and restores them as they were: the
    scheduler with the store of the folder the sweep started in (a moved sweep would save its
    rungs there), functions and callbacks by the module paths of the attnlab that started it.
    None of them is state a resume needs (the rungs are read back from the store, outcomes from
    MLflow and Tune's trials), so all are replaced. A class or function this attnlab no longer
    has is read as a placeholder; one left anywhere else in Tune's state is an error naming it.
    """
    from ray import cloudpickle

    data = store.read_bytes(store.TUNER)
    if data is None:
        return
    reader = _TuneStateReader(io.BytesIO(data))
    state = reader.load()
    for name, value in tune_config.items():
        setattr(state["_tune_config"], name, value)
    state["_run_config"].callbacks = list(callbacks)
    data = cloudpickle.dumps(state)
    if _still_gone(data):
        raise ConfigError(
            f"the sweep's Tune state needs {', '.join(sorted(reader.missing))}, which this attnlab no "
            "longer has; resume it with the attnlab version that started it"
        )
    store.write_bytes(store.TUNER, data)


class _Gone:
    """Stands in for a class or function Tune's pickle names and this attnlab lacks, until replaced."""


class _TuneStateReader(pickle.Unpickler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.missing: set[str] = set()

    def find_class(self, module: str, name: str):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            self.missing.add(f"{module}.{name}")
            return type(name, (_Gone,), {})


def _still_gone(data: bytes) -> bool:
    """Whether a placeholder is left in pickled `data` (it names _Gone, its base, when read back)."""

    class Finder(pickle.Unpickler):
        found = False

        def find_class(self, module: str, name: str):
            if (module, name) == (__name__, "_Gone"):
                Finder.found = True
            return super().find_class(module, name)

    Finder(io.BytesIO(data)).load()
    return Finder.found
