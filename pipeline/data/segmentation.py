"""What every semantic-segmentation data set shares: train-id masks with 255 ignored, the
scale-jitter/crop/flip training transform, full-image evaluation, and per-rank sharding.

A data set (Cityscapes, CamVid) supplies its image/label pairs, its label lookup and its class
names; the model takes its number of classes and the per-class metric names from here.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from attnlab.lightning_modules.labels import IGNORE
from attnlab.lightning_modules.serving import IMAGENET_MEAN as MEAN
from attnlab.lightning_modules.serving import IMAGENET_STD as STD
from attnlab.pipeline.data.inputs import DataInput, files_digest, split_input
from attnlab.pipeline.data.layouts import unreadable
from attnlab.pipeline.data.loaders import eval_sampler, loader_options, train_items


class PairedSegmentation(Dataset):
    """(normalised image (3, H, W), train-id mask (H, W) int64) from (image, label map) file pairs."""

    def __init__(self, pairs: list[tuple[Path, Path]], lookup: torch.Tensor, transform: v2.Transform):
        self.pairs, self.lookup, self.transform = pairs, lookup, transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        image_path, label_path = self.pairs[index]
        image, label = (
            _decoded(image_path, lambda: Image.open(image_path).convert("RGB")),
            _decoded(label_path, lambda: Image.open(label_path)),
        )
        image = tv_tensors.Image(v2.functional.pil_to_tensor(image))
        label = v2.functional.pil_to_tensor(label)[0].long()
        image, mask = self.transform(image, tv_tensors.Mask(self.lookup[label]))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def _decoded(path: Path, read):
    """`read()` (a PIL image, decoded now), or one error naming the file that failed to decode."""
    try:
        image = read()
        image.load()
        return image
    except (OSError, ValueError, SyntaxError) as error:
        raise unreadable(path, error) from None


def _resize(size: int | None) -> list[v2.Transform]:
    return [v2.Resize(size, antialias=True)] if size else []


def train_transform(
    crop: int, scale_range: tuple[float, float], base_size: tuple[int, int], resize: int | None = None
) -> v2.Transform:
    return v2.Compose(
        [
            *_resize(resize),
            v2.ScaleJitter(base_size, scale_range=scale_range, antialias=True),
            v2.RandomCrop(crop, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}),
            v2.RandomHorizontalFlip(0.5),
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.uint8}, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )


def eval_transform(resize: int | None = None) -> v2.Transform:
    return v2.Compose(
        [
            *_resize(resize),
            v2.ToDtype({tv_tensors.Image: torch.float32, tv_tensors.Mask: torch.uint8}, scale=True),
            v2.Normalize(MEAN, STD),
        ]
    )


class SegmentationDataModule(L.LightningDataModule):
    """Subclasses set `class_names` and `lookup` and implement `pairs(split)`; the task registry
    (pipeline/tasks/registry.py) recognises their layouts."""

    class_names: list[str] = []
    lookup: torch.Tensor

    def __init__(
        self,
        root: str | Path,
        batch_size: int = 2,
        num_workers: int = 0,
        crop_size: int = 512,
        scale_range: tuple[float, float] = (0.5, 2.0),
        eval_batch_size: int | None = None,
        seed: int = 0,
        resize: int | None = None,
    ):
        super().__init__()
        self.root, self.batch_size, self.num_workers, self.resize = (
            Path(root),
            batch_size,
            num_workers,
            resize,
        )
        self.crop_size, self.scale_range, self.seed = crop_size, tuple(scale_range), seed
        self.eval_batch_size = eval_batch_size or 1
        self.split_pairs = {split: self.pairs(split) for split in ("train", "val")}  # checks the layout first
        self.train_set = self.val_set = None

    def pairs(self, split: str) -> list[tuple[Path, Path]]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def data_inputs(self) -> list[DataInput]:
        """Each split's image/label pairs: digest of their files, count of pairs."""
        return [
            split_input(self.root, split, files_digest(f for pair in pairs for f in pair), len(pairs))
            for split, pairs in self.split_pairs.items()
        ]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        with Image.open(self.split_pairs["val"][0][0]) as probe:
            height, width = probe.height, probe.width
        if self.resize:
            height, width = self.resize, round(width * self.resize / height)
        transform = train_transform(self.crop_size, self.scale_range, (height, width), self.resize)
        self.train_set = PairedSegmentation(self.split_pairs["train"], self.lookup, transform)
        self.val_set = PairedSegmentation(self.split_pairs["val"], self.lookup, eval_transform(self.resize))

    def _loader(self, dataset, batch_size, sampler, drop_last=False):
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            **loader_options(self.trainer, self.num_workers),
        )

    def train_dataloader(self):
        items, sampler = train_items(self.train_set, self.trainer, self.seed)
        return self._loader(items, self.batch_size, sampler, drop_last=len(sampler) > self.batch_size)

    def val_dataloader(self):
        return self._loader(self.val_set, self.eval_batch_size, eval_sampler(self.val_set, self.trainer))
