"""The task registry: how each task makes its tiny data, its data module and its LightningModule.

A dict, not an if-chain; `attnlab train`, sweeps and tests all go through it.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import lightning as L

from .train_config import TrainConfig


@dataclass(frozen=True)
class Task:
    make_tiny: Callable[[Path], Path]
    make_data: Callable[[TrainConfig, Path], L.LightningDataModule]
    make_module: Callable[[TrainConfig, L.LightningDataModule], L.LightningModule]
    metric: str


def _detection_tiny(out: Path) -> Path:
    from .data.tiny_detection import make_tiny_detection
    return make_tiny_detection(out)


def _detection_data(cfg: TrainConfig, root: Path):
    from .data.coco import CocoDataModule
    return CocoDataModule(root, cfg.data.batch_size, cfg.data.num_workers, cfg.data.eval_batch_size)


def _detection_module(cfg: TrainConfig, dm):
    from lightning_modules.detection import DetectionModule
    dm.setup()
    return DetectionModule(cfg.model_dump(mode="json"), dm.num_classes, dm.label_to_cat)


def _segmentation_tiny(out: Path) -> Path:
    from .data.tiny_segmentation import make_tiny_segmentation
    return make_tiny_segmentation(out)


def _segmentation_data(cfg: TrainConfig, root: Path):
    from .data.cityscapes import CityscapesDataModule
    s = cfg.segmentation
    return CityscapesDataModule(root, cfg.data.batch_size, cfg.data.num_workers, s.crop_size, s.scale_range,
                                cfg.data.eval_batch_size)


def _segmentation_module(cfg: TrainConfig, dm):
    from lightning_modules.segmentation import SegmentationModule
    return SegmentationModule(cfg.model_dump(mode="json"), dm.num_classes)


def _translation_tiny(out: Path) -> Path:
    from .data.tiny_translation import make_tiny_translation
    return make_tiny_translation(out)


def _translation_data(cfg: TrainConfig, root: Path):
    from .data.translation import TranslationDataModule
    t = cfg.translation
    vocab_dir = Path(cfg.out_dir) / "vocab" / f"{Path(root).resolve().name}-{t.vocab_size}"
    return TranslationDataModule(root, vocab_dir, t.src_lang, t.tgt_lang, t.vocab_size, t.max_tokens, t.max_len,
                                 cfg.seed)


def _translation_module(cfg: TrainConfig, dm):
    from lightning_modules.translation import TranslationModule
    return TranslationModule(cfg.model_dump(mode="json"), dm.vocab)


TASKS: dict[str, Task] = {
    "detection": Task(_detection_tiny, _detection_data, _detection_module, "val/bbox_AP"),
    "segmentation": Task(_segmentation_tiny, _segmentation_data, _segmentation_module, "val/mIoU"),
    "translation": Task(_translation_tiny, _translation_data, _translation_module, "val/bleu"),
}


def make_tiny(task: str, out: str | Path) -> Path:
    """Generate the tiny set for `task` at `out`, atomically: a half-written folder never appears."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        from .errors import ConfigError
        raise ConfigError(f"{out} exists and is not empty; pick a new folder (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        TASKS[task].make_tiny(tmp)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def data_root(cfg: TrainConfig) -> Path:
    """The data folder: `tiny` is generated once under out_dir/data/, anything else is a path."""
    if cfg.data.path != "tiny":
        return Path(cfg.data.path)
    root = Path(cfg.out_dir) / "data" / f"tiny-{cfg.task}"
    if not root.exists():
        try:
            make_tiny(cfg.task, root)
        except OSError:
            if not root.exists():  # another process won the race; theirs is complete (atomic rename)
                raise
    return root
