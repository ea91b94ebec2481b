"""Where a sweep keeps its trials' Ray checkpoints, and dropping them once nothing resumes them.

Light on purpose (no torch, no Lightning): the driver needs it, and the driver never imports
what trains.
"""

from __future__ import annotations

import contextlib

from .storage import join, remove_checkpoints, remove_tree


def train_storage(storage: str, sweep_name: str) -> str:
    """Where Ray Train keeps the trials' full checkpoints (one folder per trial key)."""
    return join(storage, sweep_name, "train")


def trial_folder(storage: str, sweep_name: str, key: str) -> str:
    """Tune's folder of a trial: a one-worker trial's checkpoints live there."""
    return join(storage, sweep_name, key)


def drop_checkpoints(storage: str, sweep_name: str, key: str) -> None:
    """A trial that finished or was stopped early never resumes: its Ray checkpoints can go (its
    best epoch is already in MLflow), Tune's (one worker) or Ray Train's (several). Best effort: a
    folder still being written is left alone."""
    with contextlib.suppress(OSError):
        remove_tree(join(train_storage(storage, sweep_name), key))
    with contextlib.suppress(OSError):
        remove_checkpoints(trial_folder(storage, sweep_name, key))
