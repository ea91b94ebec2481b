"""What became of each trial of a sweep, decided in one place.

Tune tells the driver about trials through callbacks; `SweepEvents` is the one attnlab gives it. It
holds nothing (Tune pickles it with the experiment) and hands each event to the sweep this thread
is driving (`driving`), whose `TrialBook` turns them into typed outcomes:

- finished: trained its whole budget (the trial's own, else the sweep's);
- stopped: Tune ended it before its budget: early stopping cut it;
- failed: it raised after its retries;
- interrupted: the driver stopped (Ctrl-C, a kill) before Tune ended it, or never started it.

The book is the only place that decides between these; the live view shows them and the sweep closes
MLflow runs and checkpoints by them. A trial Tune ended under an earlier driver (a resumed sweep) is
decided by the same rule, from the last result Tune kept.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

from ray import tune

from attnlab.pipeline.tracking import runs as run_life

from .pareto_asha import BUDGET
from .sweep_config import SweepConfig


class Status(StrEnum):
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "error"  # the word the sweep's JSON summary has always used
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class TrialOutcome:
    trial: str
    task: str
    status: Status
    epochs: int = 0
    score: float | None = None
    early_stopping: str | None = None  # what cost-aware early stopping decided, in one line
    error: str | None = None  # the last line of a failed trial's error
    log: str | None = None  # where Tune wrote its traceback

    def to_dict(self) -> dict[str, Any]:
        """The trial's entry in `attnlab sweep`'s JSON summary."""
        entry = {"trial": self.trial, "status": str(self.status), "epochs": self.epochs, "score": self.score}
        for name in ("early_stopping", "error", "log"):
            if getattr(self, name) is not None:
                entry[name] = getattr(self, name)
        return entry


@dataclass
class SweepSummary:
    """What a sweep's driver leaves: every trial's outcome, the parent run and the report."""

    sweep: SweepConfig
    tracking_uri: str  # where its runs are (the store, not the server the driver ran for it)
    parent_run_id: str
    trials: list[TrialOutcome]
    report: str | None = None
    race: dict[str, dict[str, str]] | None = None  # a racing sweep: task -> configuration -> standing
    race_open: bool = False  # the race has rounds to go (`attnlab resume` runs them)
    resume: str = "attnlab resume NAME"  # the command that continues it (tune.storage.SweepStore)

    @property
    def unfinished(self) -> bool:
        """Whether a resume has anything to do: an interrupted trial, or a race's next round."""
        return bool(self.interrupted) or self.race_open

    @property
    def name(self) -> str:
        return self.sweep.name

    def having(self, status: Status) -> list[TrialOutcome]:
        return [t for t in self.trials if t.status == status]

    @property
    def failed(self) -> list[TrialOutcome]:
        return self.having(Status.FAILED)

    @property
    def interrupted(self) -> list[TrialOutcome]:
        """The trials a stopped driver left mid-way (or never started): `attnlab resume` runs them."""
        return self.having(Status.INTERRUPTED)

    @property
    def stopped(self) -> list[TrialOutcome]:
        return self.having(Status.STOPPED)

    def to_dict(self) -> dict[str, Any]:
        """`attnlab sweep`'s JSON: {"trials": [...], "parent_run_id", "report"} (docs/sweeps.md)."""
        out = {
            "trials": [t.to_dict() for t in self.trials],
            "parent_run_id": self.parent_run_id,
            "report": self.report,
        }
        if self.race is not None:
            out["race"] = {"standings": self.race, "open": self.race_open}
        return out


EMPTY: Mapping[str, str] = {}


def _param(trial) -> dict[str, Any]:
    return trial.config["trial"]


def _epochs(result: dict | None) -> int:
    return int((result or {}).get("epoch", 0))


def _score(result: dict | None) -> float | None:
    score = (result or {}).get("score")
    return None if score is None else float(score)


class TrialBook:
    """One sweep's outcomes and latest scores, from Tune's events (and, at the end, its results).

    `keys`: the sweep's trials (None: a race's, known as Tune gets them). `max_epochs`: the sweep's
    budget, for a trial that reports none of its own. `decided` (trial key
    -> what early stopping decided for it, in one line) comes with each call that makes outcomes.
    """

    def __init__(self, keys: list[str] | None, tasks: dict[str, str], max_epochs: int | None):
        self.keys, self.tasks, self.max_epochs = keys, tasks, max_epochs
        self.outcomes: dict[str, TrialOutcome] = {}
        self.retried: set[str] = set()  # trials Tune retried after a failure, in this driver

    def retry(self, trial) -> None:
        """Tune retries the trial after a failure (its result keeps that failure's error)."""
        self.retried.add(_param(trial)["trial_key"])

    def end(self, trial, failed: bool = False, decided: Mapping[str, str] = EMPTY) -> TrialOutcome:
        """The outcome of a trial Tune ended: failed, or finished or stopped by its budget."""
        key, result = _param(trial)["trial_key"], trial.last_result
        epochs = _epochs(result)
        budget = (result or {}).get(BUDGET) or self.max_epochs
        if failed:
            status = Status.FAILED
        elif budget is None or epochs >= int(budget):
            status = Status.FINISHED
        else:
            status = Status.STOPPED
        outcome = TrialOutcome(key, _param(trial)["task"], status, epochs, _score(result), decided.get(key))
        self.outcomes[key] = outcome
        return outcome

    def ended(self, key: str) -> bool:
        return key in self.outcomes

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes.values())

    def best(self) -> dict[str, tuple[float, str]]:
        """task -> (score, trial key) of the best trial that trained its whole budget so far, by its
        last epoch's score: the number `attnlab best` ranks it by (a best epoch's would be biased
        upward by the choice, and a running or stopped trial's is from fewer epochs)."""
        best: dict[str, tuple[float, str]] = {}
        for key, outcome in self.outcomes.items():
            if outcome.status != Status.FINISHED or outcome.score is None:
                continue
            if outcome.task not in best or outcome.score > best[outcome.task][0]:
                best[outcome.task] = (outcome.score, key)
        return best

    def settle(
        self, results, trial_runs: dict[str, Any], decided: Mapping[str, str] = EMPTY
    ) -> list[TrialOutcome]:
        """Every trial's outcome once Tune's fit returned: the book's where Tune ended the trial,
        a failure where Tune's result holds an error, else the trial's MLflow run says whether an
        earlier driver saw it end (`trial_runs`: trial key -> run); otherwise it was interrupted."""
        settled: dict[str, TrialOutcome] = {}
        for result in results:
            trial = (result.config or {}).get("trial")
            if not trial:  # Tune restored the trial and was stopped before it started it
                continue
            key = trial["trial_key"]
            known, run, metrics = self.outcomes.get(key), trial_runs.get(key), result.metrics
            # Tune's result keeps the error of a failure it retried: failed is what the book saw
            # end failed, or an error no retry followed (a trial retried, then cut by the driver's
            # end, was interrupted; one retried, then finished, finished).
            if result.error and (known.status == Status.FAILED if known else key not in self.retried):
                settled[key] = _failed(key, self.tasks[key], result, decided.get(key))
            elif known is not None:
                # with what early stopping decided by now: a multi-worker trial trains on while its
                # rung waits, so it may have ended before its rungs were decided
                settled[key] = replace(known, early_stopping=decided.get(key, known.early_stopping))
            else:
                status = Status.INTERRUPTED
                if run is not None and run.info.status == "FINISHED":
                    status = Status.FINISHED
                elif run is not None and run_life.stopped_early(run):
                    status = Status.STOPPED
                settled[key] = TrialOutcome(
                    key, self.tasks[key], status, _epochs(metrics), _score(metrics), decided.get(key)
                )
        if self.keys is None:  # a race: the trials it gave (the rounds it has not reached are its own)
            return [settled[k] for k in sorted(settled)]
        # Trials Tune never started (an interrupted driver had not reached them) are interrupted too.
        return [settled.get(k) or TrialOutcome(k, self.tasks[k], Status.INTERRUPTED) for k in self.keys]


def _failed(key: str, task: str, result, decided: str | None) -> TrialOutcome:
    text = str(result.error).strip()
    error = text.splitlines()[-1][:300] if text else type(result.error).__name__
    if "No space left on device" in text:
        error = f"disk full, free space before resuming: {error}"
    log = f"{result.path.rstrip('/')}/error.txt" if result.path else "(no trial folder)"
    return TrialOutcome(
        key, task, Status.FAILED, _epochs(result.metrics), _score(result.metrics), decided, error, log
    )


class Driver(Protocol):
    """What a sweep's driver does with Tune's events (tune/sweep_run.py's SweepRun)."""

    def tune_step(self, trials: list) -> None: ...
    def trial_result(self, trial, result: dict, trials: list) -> None: ...
    def trial_ended(self, trial, trials: list, failed: bool) -> None: ...
    def trial_retried(self, trial) -> None: ...
    def race_round(self, task: str, number: int, standing: dict, questions: list) -> None: ...
    def tune_ended(self) -> None: ...


_driving: ContextVar[Driver | None] = ContextVar("attnlab_sweep_driver", default=None)


@contextlib.contextmanager
def driving(driver: Driver) -> Iterator[None]:
    """Tune's events in this thread go to `driver` while inside (Tune calls its callbacks in the
    thread that called `fit`); to nothing after, so a later sweep in this process starts clean."""
    token = _driving.set(driver)
    try:
        yield
    finally:
        _driving.reset(token)


def tell(method: str, *args) -> None:
    """Hand one event to the sweep this thread drives (`driving`), if any. A driver that fails on an
    event is logged and never stops the sweep: the end of the sweep settles every trial again."""
    driver = _driving.get()
    if driver is None:
        return
    try:
        getattr(driver, method)(*args)
    except Exception as error:  # noqa: BLE001 - bookkeeping must never stop the sweep
        logging.getLogger(__name__).warning("acting on Tune's %s failed: %s", method, error)


class SweepEvents(tune.Callback):
    """Hands Tune's events to the sweep being driven. Holds nothing, so it pickles with the experiment
    and a resumed sweep's events reach that resume's driver."""

    def on_step_begin(self, iteration, trials, **info) -> None:
        tell("tune_step", trials)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        tell("trial_result", trial, result, trials)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        tell("trial_ended", trial, trials, False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        tell("trial_ended", trial, trials, True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        tell("trial_retried", trial)

    def on_experiment_end(self, trials, **info) -> None:
        tell("tune_ended")
