"""Early stopping per task: one scheduler per task, so a trial competes only with its own task.

A sweep that mixes tasks reports each task's own metric as `score` (AP, mIoU, BLEU). One shared
ASHA would compare BLEU (0-100) with mIoU (0-1) and stop every trial of the smaller scale at its
first rung. `PerTaskScheduler` routes each trial to the scheduler of its task (made on first use)
and leaves which trial runs next to Tune's FIFO order.

Tune does not save a scheduler's state with the experiment (ray#30838): after a driver crash ASHA
would start with empty rungs and let every resumed trial through. With `state_dir`, each task's
scheduler is saved there after every decision and restored when the task is first seen again.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler


class PerTaskScheduler(FIFOScheduler):
    def __init__(self, make: Callable[[], TrialScheduler], state_dir: str | None = None):
        """`make` builds one task's scheduler (one with save/restore, such as ASHA); it must pickle
        (a functools.partial, not a lambda), since Tune stores the scheduler with the experiment."""
        super().__init__()
        self._make, self._state_dir = make, state_dir
        self._schedulers: dict[str, TrialScheduler] = {}
        self._search: tuple | None = None

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self._search = (metric, mode, spec)
        ok = [s.set_search_properties(metric, mode, **spec) for s in self._schedulers.values()]
        return super().set_search_properties(metric, mode, **spec) and all(ok)

    def of(self, trial) -> TrialScheduler:
        """The scheduler of this trial's task."""
        task = trial.config["trial"]["task"]
        if task not in self._schedulers:
            scheduler = self._make()
            if self._search:
                metric, mode, spec = self._search
                scheduler.set_search_properties(metric, mode, **spec)
            saved = self._state_file(task)
            if saved and saved.is_file():
                try:
                    scheduler.restore(str(saved))
                except Exception as exc:  # noqa: BLE001 - bookkeeping must never block a resume
                    warnings.warn(f"could not restore early-stopping state from {saved} ({exc}); "
                                  f"{task} trials start with empty rungs")
            self._schedulers[task] = scheduler
        return self._schedulers[task]

    def _state_file(self, task: str) -> Path | None:
        return Path(self._state_dir) / f"early_stopping-{task}.pkl" if self._state_dir else None

    def _saved(self, trial, answer=None):
        """Save the trial's task scheduler (atomically), then pass `answer` through."""
        path = self._state_file(trial.config["trial"]["task"])
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            self.of(trial).save(str(tmp))
            os.replace(tmp, path)
        return answer

    def on_trial_add(self, tune_controller, trial):
        self._saved(trial, self.of(trial).on_trial_add(tune_controller, trial))

    def on_trial_error(self, tune_controller, trial):
        self._saved(trial, self.of(trial).on_trial_error(tune_controller, trial))

    def on_trial_result(self, tune_controller, trial, result) -> str:
        return self._saved(trial, self.of(trial).on_trial_result(tune_controller, trial, result))

    def on_trial_complete(self, tune_controller, trial, result):
        self._saved(trial, self.of(trial).on_trial_complete(tune_controller, trial, result))

    def on_trial_remove(self, tune_controller, trial):
        self._saved(trial, self.of(trial).on_trial_remove(tune_controller, trial))

    def debug_string(self) -> str:
        return "\n".join(f"{task}: {s.debug_string()}" for task, s in sorted(self._schedulers.items())) or \
            "per-task early stopping (no trial yet)"
