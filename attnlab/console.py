"""What the CLI shows: attnlab's own lines on the terminal, library chatter in a log file.

Lightning, Ray and MLflow print tips, deprecation and `sync_dist` warnings, Ray core-worker
messages and per-trial tables; a user reading a sweep wants the sweep. Each command that trains
writes those to `attnlab_runs/logs/<command>-<time>.log` and prints the path once.
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

LOG_DIR = Path("attnlab_runs") / "logs"
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
