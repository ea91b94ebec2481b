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
from attnlab.pipeline.data.layouts import cityscapes_pairs
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


class CityscapesDataModule(SegmentationDataModule):
    class_names = TRAIN_CLASS_NAMES
    lookup = id_to_train_id()

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        return cityscapes_pairs(self.root, split)
