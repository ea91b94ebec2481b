"""What one training run checks before anything heavy is imported: the tracking URI answers, the
callbacks load, the data folder has a layout its task reads and its files are whole
(pipeline/data/preflight.py). `attnlab train` and `attnlab.train()`
both call it, so bad input gets the same one-line answer, in about a second, from either."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attnlab.pipeline.config.train import TrainConfig
from attnlab.pipeline.tracking.uri import check_tracking_uri


@dataclass(frozen=True)
class CheckedRun:
    """A run's config with what checking it found: where it logs and what data it reads."""

    cfg: TrainConfig
    tracking_uri: str
    data_root: Path
    layout: str  # the data layout detected ('CamVid', 'parallel text', ...)


def check_run(cfg: TrainConfig) -> CheckedRun:
    from attnlab.pipeline.tasks.registry import check_data_folder, data_root
    from attnlab.pipeline.training.user_callbacks import check as check_callbacks

    uri = check_tracking_uri(cfg.tracking.tracking_uri)  # a dead server is one line now, not after training
    check_callbacks(cfg.callbacks)  # each importable and a Lightning Callback
    root = data_root(cfg)
    return CheckedRun(cfg, uri, root, check_data_folder(cfg.task, root).name)
