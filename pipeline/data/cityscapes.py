"""Cityscapes semantic segmentation in its standard layout:

    ROOT/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/*_gtFine_labelIds.png

Label ids map to the 19 train ids (torchvision's Cityscapes class table); everything else is
255, ignored by loss and metric.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import Cityscapes

from attnlab.lightning_modules.labels import IGNORE
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.data.segmentation import SegmentationDataModule

TRAIN_CLASS_NAMES = [
    c.name
    for c in sorted((c for c in Cityscapes.classes if 0 <= c.train_id < IGNORE), key=lambda c: c.train_id)
]
NUM_CLASSES = len(TRAIN_CLASS_NAMES)


def id_to_train_id() -> torch.Tensor:
    """(256,) uint8 lookup: Cityscapes label id -> train id (255 = ignore)."""
    table = torch.full((256,), IGNORE, dtype=torch.uint8)
    for c in Cityscapes.classes:
        if c.id >= 0 and 0 <= c.train_id < IGNORE:
            table[c.id] = c.train_id
    return table


def cityscapes_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label-id map) pairs of `split`; a ConfigError naming what is missing, before any compute."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"Cityscapes data folder {root} does not exist; pass a folder with leftImg8bit/ and gtFine/, "
            "or --data tiny (after `attnlab data make-tiny --task segmentation DIR`)"
        )
    images, labels = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (images, labels):
        if not folder.is_dir():
            raise ConfigError(
                f"Cityscapes folder {folder} is missing; expected leftImg8bit/{split}/<city>/ and "
                f"gtFine/{split}/<city>/"
            )
    pngs = sorted(images.glob("*/*_leftImg8bit.png"))
    if not pngs:
        raise ConfigError(f"no *_leftImg8bit.png images under {images}/<city>/")
    pairs = [
        (p, labels / p.parent.name / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")) for p in pngs
    ]
    missing = [p.name for p, label in pairs if not label.is_file()]
    if missing:
        raise ConfigError(
            f"{len(missing)} image(s) under {images} have no *_gtFine_labelIds.png label, e.g. {missing[:3]}"
        )
    return pairs


class CityscapesDataModule(SegmentationDataModule):
    class_names = TRAIN_CLASS_NAMES
    lookup = id_to_train_id()

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        return cityscapes_pairs(self.root, split)
