"""Early stopping per task: the sweep's policy (`early_stopping`), one scheduler per task, so a
trial competes only with its own task, and how many trials run at once.

A sweep that mixes tasks reports each task's own metric as `score` (AP, mIoU, BLEU). One shared
ASHA would compare BLEU (0-100) with mIoU (0-1) and stop every trial of the smaller scale at its
first rung. `PerTaskScheduler` routes each trial to the synchronous rungs of its task
(tune.pareto_asha; `asha` is the same rungs with the metric alone deciding) and chooses which
paused trial continues once its rung is decided.

Concurrency: a trial paused at a rung frees its slot. Tune's own `max_concurrent_trials` counts it
as live until it ends, so with every slot paused no trial would start and the rung never fill
(ray#37605); `TrialSlots` is Tune's grid generator with a limit that counts the trials training.

Tune does not save a scheduler's state with the experiment (ray#30838): after a driver crash the
rungs would start empty and let every resumed trial through. With a `store` (the sweep's folder,
local or s3://...), each task's rungs are saved there after every event and restored when the
task is first seen again.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Callable

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator

from attnlab.pipeline.analysis.racing import RaceRules
from attnlab.pipeline.costs.axes import COSTS

from .pareto_asha import Decision, ParetoASHA
from .storage import SweepStore
from .sweep_config import SweepConfig


def early_stopping(
    sweep: SweepConfig, store: SweepStore | None = None, limit: int | None = None
) -> PerTaskScheduler:
    """The sweep's policy: synchronous rungs per task (saved in `store`, for resume), by the metric
    (`asha`) or the metric and the front (`pareto-asha`), or none; at most `limit` trials training."""
    es = sweep.early_stopping
    cohorts: dict[str, list[str]] = {}
    for trial in sweep.trials():
        cohorts.setdefault(trial.task, []).append(trial.trial_key)
    if es.policy == "none":
        return PerTaskScheduler(None, store, cohorts, limit)
    make = partial(
        ParetoASHA,
        COSTS[es.cost] if es.policy == "pareto-asha" else None,
        sweep.max_epochs or 1000,
        es.grace_period,
        es.reduction_factor,
        es.front_fraction,
        es.tolerance,
        pauses=sweep.trains_in_tune,
        # a race's rounds: the interval rule, at the race's own level
        intervals=RaceRules() if sweep.racing else None,
    )
    return PerTaskScheduler(make, store, cohorts, limit)


ROUND, COHORT = "race_round", "race_cohort"  # what a race's Searcher adds to a trial's parameters


def cohort_of(param: dict) -> tuple[str, list[str] | None]:
    """(the rungs a trial shares, their cohort): its task's, whose cohort is the grid; or in a race,
    its task's round's, whose cohort is the round's trials (a rung of round 1 never waits for a
    seed round 2 may add; round 2's rungs decide its own trials, on round 1's values there too)."""
    if ROUND in param:
        return _round_group(param["task"], param[ROUND]), list(param[COHORT])
    return param["task"], None


def _round_group(task: str, round_number: int) -> str:
    return f"{task}-round{round_number}"


class PerTaskScheduler(FIFOScheduler):
    def __init__(
        self,
        make: Callable[..., ParetoASHA] | None,
        store: SweepStore | None = None,
        cohorts: dict[str, list[str]] | None = None,
        limit: int | None = None,
    ):
        """`make(cohort=...)` builds one task's rungs (None: no early stopping); it must pickle (a
        functools.partial, not a lambda), since Tune stores the scheduler with the experiment.
        `cohorts`: each task's trial keys; `limit`: at most this many trials training at once."""
        super().__init__()
        self._make, self._store, self._cohorts, self.limit = make, store, cohorts or {}, limit
        self._schedulers: dict[str, ParetoASHA] = {}
        self._search: tuple | None = None
        self._paused: dict[str, Trial] = {}  # trial id -> a trial told to pause, until it goes on
        self._trials: dict[str, Trial] = {}  # trial id -> every trial Tune holds, restored ones too

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self._search = (metric, mode, spec)
        ok = [s.set_search_properties(metric, mode, **spec) for s in self._schedulers.values()]
        return super().set_search_properties(metric, mode, **spec) and all(ok)

    def scheduler_of(self, trial) -> ParetoASHA | None:
        """The rungs of this trial's group (None without early stopping)."""
        if self._make is None:
            return None
        group, cohort = cohort_of(trial.config["trial"])
        if group not in self._schedulers:
            scheduler = self._make(cohort=self._cohorts.get(group, ()) if cohort is None else cohort)
            if self._search:
                metric, mode, spec = self._search
                scheduler.set_search_properties(metric, mode, **spec)
            self._restore(group, scheduler)
            scheduler.earlier = self._earlier_rounds(trial.config["trial"])
            self._schedulers[group] = scheduler
        return self._schedulers[group]

    def _earlier_rounds(self, param: dict) -> dict[float, dict]:
        """In a race, rung -> the arrivals there of the task's earlier rounds: final, since a round
        starts once the one before has finished. Read from the store where this driver did not run
        them (a resume)."""
        pooled: dict[float, dict] = {}
        for n in range(1, int(param.get(ROUND, 1))):
            group = _round_group(param["task"], n)
            rungs = self._schedulers.get(group)
            if rungs is None:  # read only: its cohort is not known here, so it is not kept
                rungs = self._make(cohort=())
                self._restore(group, rungs)
            for rung, arrived in rungs.rungs.items():
                pooled.setdefault(rung, {}).update(arrived)
        return pooled

    def cut(self, key: str) -> Decision | None:
        """The decision that stopped trial `key` at a rung, if one did."""
        return next((d for s in self._schedulers.values() if (d := s.cut(key)) is not None), None)

    def known_keys(self) -> set[str]:
        """The trial keys of every trial Tune holds (new, restored, ended)."""
        return {t.config["trial"]["trial_key"] for t in self._trials.values()}

    def key_of(self, trial_id: str) -> str | None:
        trial = self._trials.get(trial_id)
        return None if trial is None else trial.config["trial"]["trial_key"]

    def live_count(self) -> int:
        """Trials that hold a slot: not ended, and not paused at an undecided rung."""
        held = self.held_ids()
        return sum(
            t.status not in (Trial.TERMINATED, Trial.ERROR) and tid not in held
            for tid, t in self._trials.items()
        )

    def held_ids(self) -> set[str]:
        """Trial ids paused at a rung that is not decided yet: they hold no slot."""
        return {tid for tid, t in self._paused.items() if self._holds(t)}

    def _holds(self, trial) -> bool:
        rungs = self.scheduler_of(trial)
        return rungs is not None and rungs.holds(trial)

    def _restore(self, group: str, scheduler: ParetoASHA) -> None:
        data = self._store.read_moved(self._store.rungs_file(group)) if self._store else None
        if data is None:
            return
        with tempfile.TemporaryDirectory(prefix="attnlab-asha-") as tmp:
            local = Path(tmp, "state.pkl")
            local.write_bytes(data)
            try:
                scheduler.restore(str(local))
            except Exception as exc:  # noqa: BLE001 - bookkeeping must never block a resume
                warnings.warn(
                    f"could not restore early-stopping state {self._store.rungs_file(group)} from "
                    f"{self._store.location} ({exc}); {group} trials start with empty rungs"
                )

    def _save_rungs(self, trial, answer=None):
        """Save the trial's task rungs into the store (atomically), and every task's decisions
        (for the trials' tags and the live view), then pass `answer`."""
        if self._store and self._make is not None:
            group, _ = cohort_of(trial.config["trial"])
            with tempfile.TemporaryDirectory(prefix="attnlab-asha-") as tmp:
                local = Path(tmp, "state.pkl")
                self.scheduler_of(trial).save(str(local))
                self._store.write_bytes(self._store.rungs_file(group), local.read_bytes())
            made = {
                key: [asdict(d) for d in ds]
                for s in self._schedulers.values()
                for key, ds in s.decisions.items()
            }
            if made:
                self._store.write_decisions(made)
        return answer

    def _forward(self, event: str, tune_controller, trial, *args):
        self._paused.pop(trial.trial_id, None)
        rungs = self.scheduler_of(trial)
        if rungs is None:
            return getattr(super(), event)(tune_controller, trial, *args)
        return self._save_rungs(trial, getattr(rungs, event)(tune_controller, trial, *args))

    def on_trial_add(self, tune_controller, trial):
        self._trials[trial.trial_id] = trial
        self._forward("on_trial_add", tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        self._forward("on_trial_error", tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        answer = self._forward("on_trial_result", tune_controller, trial, result)
        if answer == TrialScheduler.PAUSE:
            self._paused[trial.trial_id] = trial
        return answer

    def on_trial_complete(self, tune_controller, trial, result):
        self._forward("on_trial_complete", tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self._forward("on_trial_remove", tune_controller, trial)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        """A pending trial (Tune starts those anyway), else, while fewer than `limit` train, a
        paused one whose rung is decided. When nothing trains or waits to start and every paused
        trial waits at an undecided rung, the trials its rung waits for can no longer come: the
        rung is decided on those it has."""
        trials = tune_controller.get_trials()
        pending = next((t for t in trials if t.status == Trial.PENDING), None)
        if pending is not None:
            return pending
        training = sum(t.status == Trial.RUNNING for t in trials)
        if self.limit and training >= self.limit:
            return None
        paused = [t for t in trials if t.status == Trial.PAUSED]
        ready = next((t for t in paused if not self._holds(t)), None)
        if ready is not None:
            self._paused.pop(ready.trial_id, None)
            return ready
        if paused and not training:
            for trial in paused:
                rungs = self.scheduler_of(trial)
                if rungs is not None and rungs.close_stalled(tune_controller):
                    self._save_rungs(trial)
                    return self.choose_trial_to_run(tune_controller)
        return None

    def debug_string(self) -> str:
        return (
            "\n".join(f"{task}: {s.debug_string()}" for task, s in sorted(self._schedulers.items()))
            or "per-task early stopping (no trial yet)"
        )


class TrialSlots(BasicVariantGenerator):
    """Tune's grid generator, at most `limit` trials training: trials paused at an undecided rung
    (`scheduler.held_ids`) hold no slot. Tune saves a generator's state with the experiment; the
    scheduler and limit are this driver's, never read back from it."""

    OWN = ("_scheduler", "_limit")

    def __init__(self, scheduler: PerTaskScheduler, limit: int | None):
        super().__init__(max_concurrent=0)
        self._scheduler, self._limit = scheduler, limit

    def next_trial(self):
        if self._limit and len(self._live_trials - self._scheduler.held_ids()) >= self._limit:
            return None
        return super().next_trial()

    def get_state(self):
        state = super().get_state()
        return state and {k: v for k, v in state.items() if k not in self.OWN}

    def set_state(self, state):
        own = {k: getattr(self, k) for k in self.OWN}
        super().set_state({k: v for k, v in state.items() if k not in self.OWN})
        self.__dict__.update(own)
        self.max_concurrent = 0  # a sweep started before TrialSlots saved Tune's own limit here
