"""Which Ray checkpoint a trial restores from: the newest whole one.

A trial's Lightning checkpoint is written to a local temporary folder and handed to Ray only once
complete; Ray copies it into storage and records it only after the copy, so attnlab never points a
trial at a half-written checkpoint. A checkpoint can still be torn afterwards (a full disk, a
storage fault, a file truncated by hand): `torn` finds it before Lightning resumes from it. The
trial then restores from the newest older checkpoint that is whole (Ray keeps two), and says so.
"""

from __future__ import annotations

import contextlib
import posixpath
from pathlib import Path

import ray.tune
from pyarrow.fs import FileSelector, FileType

from attnlab.pipeline.training.checkpoints import torn

from .ray_callbacks import CHECKPOINT_NAME
from .storage import checkpoint_folders


def _older(latest):
    """The trial's other checkpoints older than `latest`, newest first (Ray names them by time)."""
    folder, name = posixpath.split(latest.path.rstrip("/"))
    infos = latest.filesystem.get_file_info(FileSelector(folder))
    names = sorted(
        (
            i.base_name
            for i in infos
            if i.type == FileType.Directory and i.base_name.startswith("checkpoint_")
        ),
        reverse=True,
    )
    return [type(latest)(posixpath.join(folder, n), latest.filesystem) for n in names if n < name]


def _why_torn(checkpoint) -> str | None:
    try:
        with checkpoint.as_directory() as folder:
            return torn(Path(folder, CHECKPOINT_NAME))
    except OSError as error:
        return f"{type(error).__name__}: {error}"


def going_on_from(handed, trial_folder: str, recover: bool):
    """The checkpoint a trial goes on from: the one Ray hands it (`handed`, or None), and with
    `recover` (a retried trial, a resumed sweep) the newer of that and the newest in its folder.
    Ray saves its record of a trial's checkpoints later than the checkpoints (Tune every 10 s or
    more; a worker killed right after its report), so a trial can be handed an older checkpoint
    than its folder holds, or none; it goes on from the newer one instead of training its epochs
    again. Checkpoint folders sort by age: Tune's checkpoint_000001, Ray Train's
    checkpoint_2026-12-06_03-12-44.387911."""
    found = [handed, newest_on_disk(trial_folder) if recover else None]
    return max((c for c in found if c is not None), key=_folder_name, default=None)


def _folder_name(checkpoint) -> str:
    return posixpath.basename(checkpoint.path.rstrip("/"))


def newest_on_disk(trial_folder: str):
    """The newest `checkpoint_*` folder in a trial's folder (path or URI: Tune's for a one-worker
    trial, Ray Train's for a multi-worker one) as a checkpoint, or None."""
    with contextlib.suppress(OSError):
        fs, folders = checkpoint_folders(trial_folder)
        # A staging folder (checkpoint_tmp...) is no checkpoint.
        numbered = [f for f in folders if posixpath.basename(f).removeprefix("checkpoint_")[:1].isdigit()]
        if numbered:
            return ray.tune.Checkpoint(numbered[0], fs)
    return None


def restorable(latest):
    """(the checkpoint to restore from, a line saying what was skipped and why, or None), for a
    Ray Train or a Tune checkpoint (`latest`, or None)."""
    if latest is None:
        return None, None
    skipped = []
    candidates = [latest]
    with contextlib.suppress(OSError):
        candidates += _older(latest)
    for checkpoint in candidates:
        why = _why_torn(checkpoint)
        if why is None:
            if not skipped:
                return checkpoint, None
            return (
                checkpoint,
                f"skipped torn checkpoint(s) {'; '.join(skipped)}: restoring from {checkpoint.path}",
            )
        skipped.append(f"{checkpoint.path} ({why})")
    return None, f"every checkpoint is torn ({'; '.join(skipped)}): the trial starts over from epoch 1"
