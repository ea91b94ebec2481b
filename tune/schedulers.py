"""Early stopping per task: one scheduler per task, so a trial competes only with its own task.

A sweep that mixes tasks reports each task's own metric as `score` (AP, mIoU, BLEU). One shared
ASHA would compare BLEU (0-100) with mIoU (0-1) and stop every trial of the smaller scale at its
first rung. `PerTaskScheduler` routes each trial to the scheduler of its task (made on first use)
and leaves which trial runs next to Tune's FIFO order.
"""
from __future__ import annotations

from typing import Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler


class PerTaskScheduler(FIFOScheduler):
    def __init__(self, make: Callable[[], TrialScheduler]):
        """`make` builds one task's scheduler; it must pickle (a functools.partial, not a lambda),
        since Tune stores the scheduler with the experiment for `attnlab resume`."""
        super().__init__()
        self._make = make
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
            self._schedulers[task] = scheduler
        return self._schedulers[task]

    def on_trial_add(self, tune_controller, trial):
        self.of(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        self.of(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        return self.of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        self.of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self.of(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"{task}: {s.debug_string()}" for task, s in sorted(self._schedulers.items())) or \
            "per-task early stopping (no trial yet)"
