"""A data folder checked whole before a run or sweep spends anything: each layout's files paired and
present (pipeline/data/layouts.py), every image and label map whole (a file cut short lacks its
format's end marker: PNG's IEND chunk, JPEG's EOI), each label map the size of its image, and its
values among the data set's classes, parallel text aligned line by line.

Nothing here imports Lightning, torch, Ray or MLflow: a bad folder is one `attnlab: error:` line,
naming the file and the fix, in about a second. The cheap checks (pairing, end markers, sizes from
the headers) run every time; the label values need every label map decoded (CamVid's 468: 0.4 s;
Cityscapes' 3,475 full-size maps: seconds), so that scan's success is remembered by the folder's
digest (every file's path, size and modification time) under ATTNLAB_CACHE (default
~/.cache/attnlab) and runs once per data set.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.data.layouts import (
    FIX_IMAGE,
    UNLABELLED,
    camvid_pairs,
    check_coco_layout,
    cityscapes_pairs,
    looks_like_datasets,
    read_text,
)

CITYSCAPES_IDS = range(34)  # labelIds maps hold the 34 label ids (torchvision's Cityscapes table)


def cache_folder() -> Path:
    return Path(os.environ.get("ATTNLAB_CACHE") or Path.home() / ".cache" / "attnlab") / "preflight"


def whole(path: Path) -> None:
    """A ConfigError when `path` (PNG or JPEG) lacks its end marker: cut short by a copy or download."""
    with path.open("rb") as f:
        start = f.read(8)
        f.seek(max(0, path.stat().st_size - 64))
        end = f.read().rstrip(b"\x00")
    if start.startswith(b"\x89PNG"):
        ok = b"IEND" in end[-12:]
    elif start.startswith(b"\xff\xd8"):
        ok = end.endswith(b"\xff\xd9")
    else:
        raise ConfigError(f"{path} is neither a PNG nor a JPEG image; {FIX_IMAGE}")
    if not ok:
        raise ConfigError(f"{path} is truncated (its last bytes are not the image's end); {FIX_IMAGE}")


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise ConfigError(f"{path} cannot be read as an image ({exc}); {FIX_IMAGE}") from None


def digest(paths: Iterable[Path], salt: str) -> str:
    """What a scan's result depends on: each file's path, size and modification time."""
    h = hashlib.sha256(salt.encode())
    for path in sorted(paths):
        stat = path.stat()
        h.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def once(key: str, scan: Callable[[], None]) -> None:
    """Run `scan` unless it passed before on the same files (`key`: their digest)."""
    marker = cache_folder() / key
    if marker.is_file():
        return
    scan()
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("passed\n")
    except OSError:
        pass  # an unwritable cache only means the scan runs again next time


def check_pairs(pairs: list[tuple[Path, Path]], classes: Iterable[int], what: str) -> None:
    """Every image and label map whole, each label map its image's size, its values in `classes`."""
    for image, label in pairs:
        whole(image)
        whole(label)
        (iw, ih), (lw, lh) = _size(image), _size(label)
        if (iw, ih) != (lw, lh):
            raise ConfigError(
                f"label map {label} is {lw}x{lh} but its image {image} is {iw}x{ih}: a label map must "
                "match its image pixel for pixel; re-export it at the image's size"
            )
    allowed = set(classes)

    def values() -> None:
        import numpy as np
        from PIL import Image

        for _, label in pairs:
            with Image.open(label) as lab:
                found = set(np.unique(np.asarray(lab)).tolist())
            if found - allowed:
                raise ConfigError(
                    f"label map {label} holds values {sorted(found - allowed)[:5]} outside {what}; it is "
                    "not a label map of this data set (a colour rendering?), re-export its class ids"
                )

    once(digest([p for pair in pairs for p in pair], f"labels:{sorted(allowed)}"), values)


def check_camvid(root: Path) -> None:
    for split in ("train", "val"):
        check_pairs(camvid_pairs(root, split), range(UNLABELLED + 1), f"CamVid's classes 0-{UNLABELLED}")


def check_cityscapes(root: Path) -> None:
    for split in ("train", "val"):
        check_pairs(cityscapes_pairs(root, split), CITYSCAPES_IDS, "Cityscapes' label ids 0-33")


def check_coco(root: Path) -> None:
    import json

    for split in ("train", "val"):
        ann, images = check_coco_layout(root, split)
        files = [images / im["file_name"] for im in json.loads(ann.read_text())["images"]]
        once(digest([ann, *files], "coco"), lambda files=files: [whole(f) for f in files])


def check_translation(root: Path) -> None:
    if looks_like_datasets(root):
        return  # a datasets folder is read (and checked) by the datasets library
    for split in ("train", "valid"):
        read_text(root, split, "en", "de")  # both sides present, aligned line by line
