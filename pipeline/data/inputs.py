"""What data a run saw, as MLflow records it: one entry per split with its source, a digest and
its size. Runs on different data then differ in MLflow's Dataset column, not only in a param."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass(frozen=True)
class DataInput:
    name: str  # e.g. "camvid/train"
    context: str  # "training" or "validation", MLflow's context tag
    source: str  # a file:// URI of the folder (or file) the split is read from
    digest: str
    items: int  # images, or sentence pairs kept


def files_digest(files: Iterable[Path]) -> str:
    """A digest of the file names and sizes: cheap at COCO scale (no image is read), and it
    changes when files are added, removed, renamed or rewritten with another size."""
    h = hashlib.sha256()
    for path in sorted(Path(f) for f in files):
        h.update(f"{path.name}\0{path.stat().st_size}\n".encode())
    return h.hexdigest()[:12]


def texts_digest(*columns: list[str]) -> str:
    """A digest of the sentences themselves (text corpora are read into memory anyway)."""
    h = hashlib.sha256()
    for column in columns:
        for line in column:
            h.update(line.encode())
            h.update(b"\n")
        h.update(b"\0")
    return h.hexdigest()[:12]


def split_input(root: Path, split: str, digest: str, items: int) -> DataInput:
    context = "training" if split == "train" else "validation"
    return DataInput(f"{root.resolve().name}/{split}", context, root.resolve().as_uri(), digest, items)
