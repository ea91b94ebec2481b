"""CamVid as prepared for SegNet: 11 classes, label 11 (Unlabelled) ignored.

    ROOT/{train,val}/<stem>.png|.jpg     images
    ROOT/{trainannot,valannot}/<stem>.png label maps, values 0-11

Images and labels are paired by file stem, so JPEG re-encodings of the images work as well
(pipeline/data/layouts.py pairs them).
"""

from __future__ import annotations

from pathlib import Path

import torch

from attnlab.lightning_modules.labels import IGNORE
from attnlab.pipeline.data.layouts import CLASS_NAMES, UNLABELLED, camvid_pairs
from attnlab.pipeline.data.segmentation import SegmentationDataModule

__all__ = ["CLASS_NAMES", "UNLABELLED", "CamVidDataModule", "camvid_lookup", "camvid_pairs"]


def camvid_lookup() -> torch.Tensor:
    """(256,) uint8: labels 0-10 stay, 11 (Unlabelled) and anything else become 255 (ignored)."""
    table = torch.full((256,), IGNORE, dtype=torch.uint8)
    table[: len(CLASS_NAMES)] = torch.arange(len(CLASS_NAMES), dtype=torch.uint8)
    return table


class CamVidDataModule(SegmentationDataModule):
    class_names = CLASS_NAMES
    lookup = camvid_lookup()

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        return camvid_pairs(self.root, split)
