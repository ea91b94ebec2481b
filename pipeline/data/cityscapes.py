"""Cityscapes semantic segmentation: the standard layout through torchvision's Cityscapes dataset.

    ROOT/leftImg8bit/{train,val}/<city>/*_leftImg8bit.png
    ROOT/gtFine/{train,val}/<city>/*_gtFine_labelIds.png

Label ids map to the 19 train ids; everything else (and unlabeled) is 255, ignored by loss and metric.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.datasets import Cityscapes
from torchvision.transforms import v2

from ..errors import ConfigError

IGNORE = 255
NUM_CLASSES = 19
TRAIN_CLASS_NAMES = [c.name for c in sorted((c for c in Cityscapes.classes if 0 <= c.train_id < IGNORE),
                                            key=lambda c: c.train_id)]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def id_to_train_id() -> torch.Tensor:
    """(256,) uint8 lookup: Cityscapes label id -> train id (255 = ignore)."""
    table = torch.full((256,), IGNORE, dtype=torch.uint8)
    for c in Cityscapes.classes:
        if c.id >= 0 and 0 <= c.train_id < IGNORE:
            table[c.id] = c.train_id
    return table


def check_cityscapes_layout(root: str | Path, split: str) -> None:
    """ConfigError naming what is missing, before any compute."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"Cityscapes data folder {root} does not exist; pass a folder with leftImg8bit/ and gtFine/, "
                          "or --data tiny (after `attnlab data make-tiny --task segmentation DIR`)")
    images, labels = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder in (images, labels):
        if not folder.is_dir():
            raise ConfigError(f"Cityscapes folder {folder} is missing; expected leftImg8bit/{split}/<city>/ and "
                              f"gtFine/{split}/<city>/")
    pngs = sorted(images.glob("*/*_leftImg8bit.png"))
    if not pngs:
        raise ConfigError(f"no *_leftImg8bit.png images under {images}/<city>/")
    missing = [p.name for p in pngs
               if not (labels / p.parent.name / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")).is_file()]
    if missing:
        raise ConfigError(f"{len(missing)} image(s) under {images} have no *_gtFine_labelIds.png label, e.g. {missing[:3]}")


class CityscapesSegmentation(Dataset):
    """(normalised image (3, H, W), train-id mask (H, W) int64) pairs."""

    def __init__(self, root: str | Path, split: str, transform: v2.Transform):
        self.base = Cityscapes(str(root), split=split, mode="fine", target_type="semantic")
        self.transform, self.lookup = transform, id_to_train_id()

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, target = self.base[index]
        image = tv_tensors.Image(v2.functional.pil_to_tensor(image))
        mask = tv_tensors.Mask(self.lookup[v2.functional.pil_to_tensor(target)[0].long()])
        image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def train_transform(crop: int, scale_range: tuple[float, float], base_size: tuple[int, int]) -> v2.Transform:
    return v2.Compose([
        v2.ScaleJitter(base_size, scale_range=scale_range, antialias=True),
        v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}),
        v2.RandomHorizontalFlip(0.5),
        v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.uint8}, scale=True),
        v2.Normalize(MEAN, STD),
    ])


def eval_transform() -> v2.Transform:
    return v2.Compose([v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.uint8}, scale=True),
                       v2.Normalize(MEAN, STD)])


class CityscapesDataModule(L.LightningDataModule):
    num_classes = NUM_CLASSES
    class_names = TRAIN_CLASS_NAMES

    def __init__(self, root: str | Path, batch_size: int = 2, num_workers: int = 0, crop_size: int = 512,
                 scale_range: tuple[float, float] = (0.5, 2.0), eval_batch_size: int | None = None):
        super().__init__()
        self.root, self.batch_size, self.num_workers = Path(root), batch_size, num_workers
        self.crop_size, self.scale_range = crop_size, tuple(scale_range)
        self.eval_batch_size = eval_batch_size or 1
        for split in ("train", "val"):
            check_cityscapes_layout(self.root, split)
        self.train_set = self.val_set = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        probe = Cityscapes(str(self.root), split="val", mode="fine", target_type="semantic")[0][0]
        base_size = (probe.height, probe.width)
        self.train_set = CityscapesSegmentation(self.root, "train",
                                                train_transform(self.crop_size, self.scale_range, base_size))
        self.val_set = CityscapesSegmentation(self.root, "val", eval_transform())

    def _loader(self, dataset, batch_size, shuffle, drop_last=False):
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          drop_last=drop_last, persistent_workers=self.num_workers > 0)

    def train_dataloader(self):
        return self._loader(self.train_set, self.batch_size, True, drop_last=len(self.train_set) > self.batch_size)

    def val_dataloader(self):
        return self._loader(self.val_set, self.eval_batch_size, False)
