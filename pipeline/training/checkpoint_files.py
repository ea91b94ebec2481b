"""Whether a checkpoint file reads whole. A checkpoint is a zip (torch.save's format): reading it
with its CRCs checked finds one torn by a crash mid-write or mid-upload, a full disk or a storage
fault, before anything tries to load it."""

from __future__ import annotations

import zipfile
from pathlib import Path


def torn(path: str | Path) -> str | None:
    """Why the checkpoint file at `path` cannot be read whole, or None when it can."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"{type(error).__name__}: {error}"
    return None if bad is None else f"{bad} fails its CRC check"
