"""What the CLI shows: attnlab's own lines on the terminal, library chatter in a log file.

Lightning, Ray and MLflow print tips, deprecation and `sync_dist` warnings, Ray core-worker
messages and per-trial tables; a user reading a sweep wants the sweep. Each command that trains
writes those to `attnlab_runs/logs/<command>-<time>.log` and prints the path once: the consoles
here are what the CLI hands `attnlab.api` (its `console` argument).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterator, TextIO

from attnlab.pipeline.config.errors import ConfigError

LOG_DIR = Path("attnlab_runs") / "logs"
SUBMITTED_JOB = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set in a submitted Ray job, whose log is its output
LIBRARY_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "mlflow", "ray")


def new_log_file(command: str) -> Path:
    """A fresh log file for this command, under ./attnlab_runs/logs (ignored by git)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return (LOG_DIR / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log").resolve()


def forget_log_file(path: Path) -> None:
    """Bad input writes nothing: remove the log and the folders it alone made (never the cwd)."""
    path.unlink(missing_ok=True)
    for folder in (path.parent, path.parent.parent):
        if folder != Path.cwd().resolve():
            with contextlib.suppress(OSError):  # not empty: something else lives there
                folder.rmdir()


@contextlib.contextmanager
def libraries_to(path: Path) -> Iterator[None]:
    """Python warnings and the libraries' loggers go to `path`; the terminal keeps everything else
    (a progress bar, attnlab's lines). Import the libraries first: each sets its handlers on import."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    saved = {}
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.propagate)
        logger.handlers, logger.propagate = [handler], False
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # each distinct warning once, in the file

        def to_file(message, category, filename, lineno, file=None, line=None):
            handler.stream.write(warnings.formatwarning(message, category, filename, lineno, line))
            handler.stream.flush()

        warnings.showwarning = to_file
        try:
            yield
        finally:
            for name, (handlers, propagate) in saved.items():
                logger = logging.getLogger(name)
                logger.handlers, logger.propagate = handlers, propagate
            handler.close()


@contextlib.contextmanager
def everything_to(path: Path) -> Iterator[TextIO]:
    """Point this process's stdout and stderr (file descriptors 1 and 2, so also what Ray's
    processes and C++ code write there) at `path`; yield a stream to the real terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        terminal.close()


def sweep_console(command: str, verbose: bool = False):
    """A sweep's console: the live view on the terminal, everything the libraries print in a log file
    whose path is said first. `verbose`, or a submitted Ray job, shows it all on the console."""

    @contextlib.contextmanager
    def console(run) -> Iterator[TextIO]:
        if verbose or os.environ.get(SUBMITTED_JOB):
            yield sys.stdout
            return
        log = new_log_file(command)
        most = run.sweep.most_trials()
        plural = "" if most == 1 else "s"
        trials = f"a race of at most {most} trial{plural}" if run.sweep.racing else f"{most} trial{plural}"
        print(
            f"attnlab: sweep {run.sweep.name!r}, {trials}; Ray, Lightning and MLflow output: {log}",
            flush=True,
        )
        with everything_to(log) as terminal:
            try:
                yield terminal
            finally:
                # Ray forwards its workers' output to this process a moment late; disconnect while
                # that output still goes to the log, or its last lines land on the terminal.
                import ray

                ray.shutdown()

    return console


@contextlib.contextmanager
def train_console(checked) -> Iterator[None]:
    """A training run's console: the data it reads and its log file said once (by rank 0), the
    libraries' warnings and messages in that file. Bad input found while reading the data leaves no log."""

    rank0 = os.environ.get("LOCAL_RANK", "0") == "0"
    if rank0:
        print(f"data: {checked.data_root} ({checked.layout} layout)", flush=True)
    log = new_log_file("train")
    if rank0:
        print(f"warnings and library messages: {log}", flush=True)
    try:
        with libraries_to(log):
            yield None
    except (ConfigError, ValueError, FileNotFoundError):
        forget_log_file(log)
        raise
