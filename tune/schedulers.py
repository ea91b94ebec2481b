"""Early stopping per task: the sweep's policy (`early_stopping`), one scheduler per task, so a
trial competes only with its own task.

A sweep that mixes tasks reports each task's own metric as `score` (AP, mIoU, BLEU). One shared
ASHA would compare BLEU (0-100) with mIoU (0-1) and stop every trial of the smaller scale at its
first rung. `PerTaskScheduler` routes each trial to the scheduler of its task (made on first use)
and leaves which trial runs next to Tune's FIFO order.

Tune does not save a scheduler's state with the experiment (ray#30838): after a driver crash ASHA
would start with empty rungs and let every resumed trial through. With a `store` (the sweep's
folder, local or s3://...), each task's scheduler is saved there after every decision and
restored when the task is first seen again.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from attnlab.pipeline.costs.axes import COSTS

from .pareto_asha import ParetoASHA
from .storage import SweepStore
from .sweep_config import SweepConfig


def early_stopping(sweep: SweepConfig, store: SweepStore | None = None) -> TrialScheduler:
    """The sweep's policy: ASHA or pareto-asha per task (its rungs saved in `store`, for resume), or
    FIFO (none)."""
    es = sweep.early_stopping
    if es.policy == "none":
        return FIFOScheduler()
    budget = sweep.max_epochs or 1000
    if es.policy == "pareto-asha":
        make = partial(
            ParetoASHA,
            COSTS[es.cost],
            budget,
            es.grace_period,
            es.reduction_factor,
            es.front_fraction,
            es.tolerance,
        )
        return PerTaskScheduler(make, store)
    # max_t one past the budget: ASHA never cuts a trial at its last epoch, so a trial that
    # survives every rung ends on its own (final checkpoint and MLflow artifacts included).
    max_t = budget + 1
    make = partial(
        ASHAScheduler,
        time_attr="epoch",
        max_t=max_t,
        grace_period=min(es.grace_period, max_t - 1),
        reduction_factor=es.reduction_factor,
    )
    return PerTaskScheduler(make, store)


class PerTaskScheduler(FIFOScheduler):
    def __init__(self, make: Callable[[], TrialScheduler], store: SweepStore | None = None):
        """`make` builds one task's scheduler (one with save/restore, such as ASHA); it must pickle
        (a functools.partial, not a lambda), since Tune stores the scheduler with the experiment."""
        super().__init__()
        self._make, self._store = make, store
        self._schedulers: dict[str, TrialScheduler] = {}
        self._search: tuple | None = None

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self._search = (metric, mode, spec)
        ok = [s.set_search_properties(metric, mode, **spec) for s in self._schedulers.values()]
        return super().set_search_properties(metric, mode, **spec) and all(ok)

    def scheduler_of(self, trial) -> TrialScheduler:
        """The scheduler of this trial's task."""
        task = trial.config["trial"]["task"]
        if task not in self._schedulers:
            scheduler = self._make()
            if self._search:
                metric, mode, spec = self._search
                scheduler.set_search_properties(metric, mode, **spec)
            self._restore(task, scheduler)
            self._schedulers[task] = scheduler
        return self._schedulers[task]

    def _restore(self, task: str, scheduler: TrialScheduler) -> None:
        data = self._store.read_bytes(self._store.rungs_file(task)) if self._store else None
        if data is None:
            return
        with tempfile.TemporaryDirectory(prefix="attnlab-asha-") as tmp:
            local = Path(tmp, "state.pkl")
            local.write_bytes(data)
            try:
                scheduler.restore(str(local))
            except Exception as exc:  # noqa: BLE001 - bookkeeping must never block a resume
                warnings.warn(
                    f"could not restore early-stopping state {self._store.rungs_file(task)} from "
                    f"{self._store.location} ({exc}); {task} trials start with empty rungs"
                )

    def _save_rungs(self, trial, answer=None):
        """Save the trial's task scheduler into the store (atomically), and the decisions of the
        schedulers that record them (for the trials' tags and the live view), then pass `answer`."""
        if self._store:
            task = trial.config["trial"]["task"]
            with tempfile.TemporaryDirectory(prefix="attnlab-asha-") as tmp:
                local = Path(tmp, "state.pkl")
                self.scheduler_of(trial).save(str(local))
                self._store.write_bytes(self._store.rungs_file(task), local.read_bytes())
            made = {
                key: [asdict(d) for d in ds]
                for s in self._schedulers.values()
                for key, ds in getattr(s, "decisions", {}).items()
            }
            if made:
                self._store.write_decisions(made)
        return answer

    def on_trial_add(self, tune_controller, trial):
        self._save_rungs(trial, self.scheduler_of(trial).on_trial_add(tune_controller, trial))

    def on_trial_error(self, tune_controller, trial):
        self._save_rungs(trial, self.scheduler_of(trial).on_trial_error(tune_controller, trial))

    def on_trial_result(self, tune_controller, trial, result) -> str:
        return self._save_rungs(
            trial, self.scheduler_of(trial).on_trial_result(tune_controller, trial, result)
        )

    def on_trial_complete(self, tune_controller, trial, result):
        self._save_rungs(trial, self.scheduler_of(trial).on_trial_complete(tune_controller, trial, result))

    def on_trial_remove(self, tune_controller, trial):
        self._save_rungs(trial, self.scheduler_of(trial).on_trial_remove(tune_controller, trial))

    def debug_string(self) -> str:
        return (
            "\n".join(f"{task}: {s.debug_string()}" for task, s in sorted(self._schedulers.items()))
            or "per-task early stopping (no trial yet)"
        )
