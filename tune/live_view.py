"""A sweep's live view for the terminal: trials done, running and stopped, and the best so far.

It shows what the sweep's `TrialBook` decided (tune/outcomes.py) and decides nothing itself. On a
terminal one status line redraws in place; in a log or a pipe, a line is written per trial that
ends. Without a terminal (the Python API) it shows nothing, and `say` writes to stdout.
"""

from __future__ import annotations

import sys
from typing import TextIO

from attnlab.pipeline.tasks.registry import TASKS

from .outcomes import Status, TrialBook, TrialOutcome


class LiveView:
    def __init__(self, book: TrialBook, terminal: TextIO | None = None):
        self.book, self.terminal = book, terminal

    def say(self, line: str) -> None:
        """One line for the user: on the terminal when there is one, else on stdout."""
        stream = self.terminal or sys.stdout
        stream.write(f"{line}\n")
        stream.flush()

    def status(self, trials) -> str:
        """[done, running, stopped early, failed] and the best score per task so far."""
        book = self.book
        running = sum(
            t.status == "RUNNING" and not book.ended(t.config["trial"]["trial_key"]) for t in trials
        )
        done = f"{len(book.outcomes)}" + ("" if book.keys is None else f"/{len(book.keys)}")
        parts = [
            f"{done} done",
            f"{running} running",
            f"{book.count(Status.STOPPED)} stopped early",
        ]
        if book.count(Status.FAILED):
            parts.append(f"{book.count(Status.FAILED)} failed")
        best = "; ".join(
            f"best {TASKS[task].metric} at full budget {score:.4f} ({key}, last epoch)"
            for task, (score, key) in sorted(book.best().items())
        )
        return f"[{', '.join(parts)}]" + (f" {best}" if best else "")

    def show(self, trials, ended: TrialOutcome | None = None) -> None:
        """Redraw the status line (a terminal), or write the line of a trial that `ended` (a log)."""
        if self.terminal is None:
            return
        line = None
        if ended is not None:
            metric = "" if ended.score is None else f", {TASKS[ended.task].metric} {ended.score:.4f}"
            line = f"{ended.trial}: {ended.status} after epoch {ended.epochs}{metric}"
        status = self.status(trials)
        if self.terminal.isatty():
            self.terminal.write("\r\033[K" + (f"{line}\n" if line else "") + status)
        elif line:
            self.terminal.write(f"{line}  {status}\n")
        self.terminal.flush()

    def close(self) -> None:
        if self.terminal is not None and self.terminal.isatty():
            self.terminal.write("\n")
            self.terminal.flush()
