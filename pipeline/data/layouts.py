"""The data layouts' light checks: finding a layout's files, pairing them, reading annotation and
text files, with nothing heavier than the standard library imported, so a bad folder is answered
before Lightning, torch or MLflow load (pipeline/data/preflight.py runs them; the data modules
reuse them)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from attnlab.pipeline.config.errors import ConfigError

FIX_IMAGE = "re-download or re-export it, or remove it (with its label map)"


def unreadable(path: Path, error: BaseException) -> ConfigError:
    """The error for an image that fails to decode mid-training (the preflight found it whole)."""
    return ConfigError(f"{path} cannot be decoded ({type(error).__name__}: {error}); {FIX_IMAGE}")


# CamVid as prepared for SegNet (pipeline/data/camvid.py): 11 classes, 11 (Unlabelled) ignored.
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


# Cityscapes (pipeline/data/cityscapes.py).


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


# COCO 2017 (pipeline/data/coco.py).


def check_coco_layout(root: str | Path, split: str) -> tuple[Path, Path]:
    """(annotation file, image folder) of `split`, or a ConfigError naming what is missing or malformed."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"COCO data folder {root} does not exist; pass a folder with annotations/ and "
            f"{split}2017/, or --data tiny (after `attnlab data make-tiny --task detection DIR`)"
        )
    ann, images = root / "annotations" / f"instances_{split}2017.json", root / f"{split}2017"
    if not ann.is_file():
        raise ConfigError(
            f"COCO annotation file {ann} is missing; expected the COCO 2017 layout "
            f"(annotations/instances_{split}2017.json)"
        )
    if not images.is_dir():
        raise ConfigError(f"COCO image folder {images} is missing; expected {split}2017/ beside annotations/")
    try:
        doc = json.loads(ann.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"COCO annotation file {ann} is malformed JSON ({exc}); re-export or re-download it"
        ) from None
    missing_keys = [
        k for k in ("images", "annotations", "categories") if not isinstance(doc, dict) or k not in doc
    ]
    if missing_keys:
        raise ConfigError(
            f"COCO annotation file {ann} lacks {', '.join(missing_keys)}; it is not an instances file"
        )
    try:
        bad = [a.get("id") for a in doc["annotations"] if len(a["bbox"]) != 4 or a["category_id"] is None]
        absent = [im["file_name"] for im in doc["images"] if not (images / im["file_name"]).is_file()]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"COCO annotation file {ann} is malformed: an entry lacks {exc}") from None
    if bad:
        raise ConfigError(f"COCO annotation file {ann} has malformed boxes (annotation ids {bad[:5]})")
    if absent:
        raise ConfigError(
            f"{len(absent)} image(s) listed in {ann} are missing from {images}, e.g. {absent[:3]}"
        )
    if not doc["images"]:
        raise ConfigError(f"COCO annotation file {ann} lists no images")
    if split == "train" and not any(a.get("iscrowd", 0) == 0 for a in doc["annotations"]):
        raise ConfigError(
            f"no image in {ann} has an annotation: nothing to train on; check that the "
            "annotation file belongs to these images"
        )
    return ann, images


# Parallel text (pipeline/data/translation.py).

SPLIT_NAMES = {"train": ("train",), "valid": ("valid", "val", "dev"), "test": ("test", "test_2016_flickr")}


def _text_file(root: Path, split: str, lang: str) -> Path | None:
    """ROOT/<split>.<lang> or its .gz, under any of the split's usual names (valid, val, dev)."""
    for name in SPLIT_NAMES.get(split, (split,)):
        for path in (root / f"{name}.{lang}", root / f"{name}.{lang}.gz"):
            if path.is_file():
                return path
    return None


def _lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def looks_like_parallel_text(root: Path, src: str = "en", tgt: str = "de") -> bool:
    return all(_text_file(root, split, lang) for split in ("train", "valid") for lang in (src, tgt))


def looks_like_datasets(root: Path) -> bool:
    return (root / "dataset_dict.json").is_file()


def read_text(root: Path, split: str, src: str, tgt: str) -> tuple[list[str], list[str]]:
    paths = [_text_file(root, split, src), _text_file(root, split, tgt)]
    if None in paths:
        names = "/".join(SPLIT_NAMES.get(split, (split,)))
        raise ConfigError(
            f"translation files for split {split!r} are missing in {root}: expected "
            f"{{{names}}}.{src} and .{tgt} (plain or .gz)"
        )
    a, b = (_lines(p) for p in paths)
    if len(a) != len(b):
        raise ConfigError(
            f"{paths[0].name} has {len(a)} lines but {paths[1].name} has {len(b)}; "
            "parallel files must align line by line"
        )
    return a, b
