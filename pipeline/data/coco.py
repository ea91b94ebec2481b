"""COCO detection: the standard layout through pycocotools, checked before any compute.

ROOT/annotations/instances_{train,val}2017.json
ROOT/{train,val}2017/<file_name of each image>
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import lightning as L
import torch
from pycocotools.coco import COCO
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from attnlab.pipeline.data.inputs import DataInput, files_digest, split_input
from attnlab.pipeline.data.layouts import check_coco_layout, unreadable
from attnlab.pipeline.data.loaders import eval_sampler, loader_options, train_items

SPLITS = ("train", "val")


def _quiet_coco(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


class CocoDetectionSet(Dataset):
    """(image float tensor (3, H, W) in [0, 1], target dict) pairs with contiguous labels 1..K."""

    def __init__(self, coco: COCO, images: Path, cat_to_label: dict[int, int], train: bool):
        self.coco, self.images, self.cat_to_label = coco, images, cat_to_label
        ids = sorted(coco.getImgIds())
        if train:  # images without a usable box teach the detector nothing (torchvision's recipe)
            ids = [
                i
                for i in ids
                if any(
                    a.get("iscrowd", 0) == 0 and a["bbox"][2] > 1 and a["bbox"][3] > 1
                    for a in coco.imgToAnns[i]
                )
            ]
        self.ids = ids
        flip = [v2.RandomHorizontalFlip(0.5)] if train else []
        self.transform = v2.Compose(
            [*flip, v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes()]
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image_id = self.ids[index]
        info = self.coco.imgs[image_id]
        path = self.images / info["file_name"]
        try:
            image = tv_tensors.Image(decode_image(str(path), mode=ImageReadMode.RGB))
        except (OSError, RuntimeError, ValueError) as error:
            raise unreadable(path, error) from None
        anns = [a for a in self.coco.imgToAnns[image_id] if a.get("iscrowd", 0) == 0]
        boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=image.shape[-2:]),
            "labels": torch.tensor([self.cat_to_label[a["category_id"]] for a in anns], dtype=torch.int64),
            "image_id": image_id,
        }
        image, target = self.transform(image, target)
        return image.as_subclass(torch.Tensor), {**target, "boxes": target["boxes"].as_subclass(torch.Tensor)}


def collate(batch):
    return tuple(zip(*batch))


class CocoDataModule(L.LightningDataModule):
    """Train/val loaders over a COCO-layout folder; `val_coco` is the ground truth for COCOeval."""

    def __init__(
        self,
        root: str | Path,
        batch_size: int = 2,
        num_workers: int = 0,
        eval_batch_size: int | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.root, self.batch_size, self.num_workers, self.seed = Path(root), batch_size, num_workers, seed
        self.eval_batch_size = eval_batch_size or batch_size
        self.paths = {split: check_coco_layout(self.root, split) for split in SPLITS}
        self.train_coco = self.val_coco = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_coco is not None:
            return
        self.train_coco = _quiet_coco(self.paths["train"][0])
        self.val_coco = _quiet_coco(self.paths["val"][0])
        cats = sorted(self.train_coco.getCatIds())
        self.cat_to_label = {c: i + 1 for i, c in enumerate(cats)}
        self.label_to_cat = {i: c for c, i in self.cat_to_label.items()}
        self.train_set = CocoDetectionSet(
            self.train_coco, self.paths["train"][1], self.cat_to_label, train=True
        )
        self.val_set = CocoDetectionSet(self.val_coco, self.paths["val"][1], self.cat_to_label, train=False)

    def data_inputs(self) -> list[DataInput]:
        """Each split's annotation file and image folder, with its image count (after setup)."""
        self.setup()
        sets = {"train": self.train_set, "val": self.val_set}
        return [split_input(self.root, s, files_digest(self.paths[s][:1]), len(sets[s])) for s in SPLITS]

    @property
    def num_classes(self) -> int:
        """Foreground classes (torchvision's detectors add the background class themselves)."""
        self.setup()
        return len(self.cat_to_label)

    def _loader(self, dataset, batch_size: int, sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate,
            **loader_options(self.trainer, self.num_workers),
        )

    def train_dataloader(self) -> DataLoader:
        items, sampler = train_items(self.train_set, self.trainer, self.seed)
        return self._loader(items, self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size, eval_sampler(self.val_set, self.trainer))
