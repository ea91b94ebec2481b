"""CamVid as prepared for SegNet: 11 classes, label 11 (Unlabelled) ignored.

    ROOT/{train,val}/<stem>.png|.jpg     images
    ROOT/{trainannot,valannot}/<stem>.png label maps, values 0-11

Images and labels are paired by file stem, so JPEG re-encodings of the images work as well.
"""

from __future__ import annotations

from pathlib import Path

import torch

from attnlab.lightning_modules.labels import IGNORE
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.data.segmentation import SegmentationDataModule

CLASS_NAMES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]
UNLABELLED = 11
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
EXPECTS = "train/, trainannot/, val/, valannot/ (SegNet's CamVid: images and label maps paired by file stem)"


def camvid_lookup() -> torch.Tensor:
    """(256,) uint8: labels 0-10 stay, 11 (Unlabelled) and anything else become 255 (ignored)."""
    table = torch.full((256,), IGNORE, dtype=torch.uint8)
    table[: len(CLASS_NAMES)] = torch.arange(len(CLASS_NAMES), dtype=torch.uint8)
    return table


def camvid_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(image, label map) pairs of `split` by file stem; a ConfigError naming what is missing."""
    root = Path(root)
    images, labels = root / split, root / f"{split}annot"
    for folder in (images, labels):
        if not folder.is_dir():
            raise ConfigError(f"CamVid folder {folder} is missing; expected {EXPECTS}")
    found = {p.stem: p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    annots = {p.stem: p for p in sorted(labels.iterdir()) if p.suffix.lower() == ".png"}
    if not found:
        raise ConfigError(f"no .png or .jpg images in {images}")
    missing = sorted(set(found) - set(annots))
    if missing:
        raise ConfigError(
            f"{len(missing)} image(s) in {images} have no label map of the same stem in {labels}, "
            f"e.g. {missing[:3]}"
        )
    return [(found[stem], annots[stem]) for stem in sorted(found)]


class CamVidDataModule(SegmentationDataModule):
    class_names = CLASS_NAMES
    lookup = camvid_lookup()

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        return camvid_pairs(self.root, split)
