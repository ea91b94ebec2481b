"""A sweep's live view for the terminal: trials done, running and stopped, and the best so far.

Tune pickles its callbacks with the experiment (tuner.pkl), so this one holds no stream: it writes
to the terminal this process set with `showing` (the CLI does), and to nothing otherwise. On a
terminal one status line redraws in place; in a log or a pipe, a line is written per trial that ends.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, TextIO

from ray import tune

from attnlab.pipeline.data.tasks import TASKS

from .pareto_asha import BUDGET

_terminal: TextIO | None = None


@contextlib.contextmanager
def showing(stream: TextIO) -> Iterator[None]:
    """Live views in this process write to `stream` while inside; to nothing after."""
    global _terminal
    _terminal = stream
    try:
        yield
    finally:
        _terminal = None


def say(line: str) -> None:
    """One line for the user: on the live view's terminal when there is one, else on stdout."""
    stream = _terminal or sys.stdout
    stream.write(f"{line}\n")
    stream.flush()


class LiveView(tune.Callback):
    def __init__(self, total: int, max_epochs: int | None):
        self.total, self.max_epochs = total, max_epochs
        self._reset()

    def _reset(self) -> None:
        self.ended: dict[str, str] = {}  # trial key -> finished | stopped | error
        self.latest: dict[str, tuple[str, float]] = {}  # trial key -> (task, its latest score)
        self.started = False

    def setup(self, **info) -> None:
        self._reset()

    @staticmethod
    def _key(trial) -> tuple[str, str]:
        param = trial.config["trial"]
        return param["trial_key"], param["task"]

    def _score(self, trial, result: dict | None) -> None:
        key, task = self._key(trial)
        score = (result or {}).get("score")
        if score is not None:
            self.latest[key] = (task, float(score))

    def _best(self) -> dict[str, tuple[float, str]]:
        """task -> (score, trial key) of the trial whose latest score is highest."""
        best: dict[str, tuple[float, str]] = {}
        for key, (task, score) in self.latest.items():
            if task not in best or score > best[task][0]:
                best[task] = (score, key)
        return best

    def _status(self, trials) -> str:
        running = sum(t.status == "RUNNING" and self._key(t)[0] not in self.ended for t in trials)
        done = len(self.ended)
        stopped = sum(v == "stopped" for v in self.ended.values())
        failed = sum(v == "error" for v in self.ended.values())
        best = "; ".join(
            f"best {TASKS[task].metric} {score:.4f} ({key})"
            for task, (score, key) in sorted(self._best().items())
        )
        parts = [f"{done}/{self.total} done", f"{running} running", f"{stopped} stopped early"]
        if failed:
            parts.append(f"{failed} failed")
        return f"[{', '.join(parts)}]" + (f" {best}" if best else "")

    def _write(self, line: str | None, trials) -> None:
        if _terminal is None:
            return
        status = self._status(trials)
        if _terminal.isatty():
            _terminal.write("\r\033[K" + (f"{line}\n" if line else "") + status)
        elif line:
            _terminal.write(f"{line}  {status}\n")
        _terminal.flush()

    def on_step_begin(self, iteration, trials, **info) -> None:
        if not self.started:  # the first step: trials a resumed sweep already ended count as done
            self.started = True
            for trial in trials:
                if trial.status in ("TERMINATED", "ERROR"):
                    self._end(trial, trial.last_result)
            self._write(None, trials)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._score(trial, result)
        self._write(None, trials)

    def _end(self, trial, result: dict | None, error: bool = False) -> str:
        key, task = self._key(trial)
        self._score(trial, result)
        epoch = int((result or {}).get("epoch", 0))
        # The trial's own budget (a grid entry's overrides or its preset may set it), else the sweep's.
        budget = (result or {}).get(BUDGET) or self.max_epochs
        finished = budget is None or epoch >= int(budget)
        self.ended[key] = "error" if error else ("finished" if finished else "stopped")
        score = (result or {}).get("score")
        metric = f", {TASKS[task].metric} {score:.4f}" if score is not None else ""
        return f"{key}: {self.ended[key]} after epoch {epoch}{metric}"

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._write(self._end(trial, trial.last_result), trials)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._write(self._end(trial, trial.last_result, error=True), trials)

    def on_experiment_end(self, trials, **info) -> None:
        if _terminal is not None and _terminal.isatty():
            _terminal.write("\n")
            _terminal.flush()
