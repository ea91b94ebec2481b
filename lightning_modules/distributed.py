"""Gathering Python lists across DDP ranks (validation results for COCOeval and BLEU)."""

from __future__ import annotations

import torch.distributed as dist


def gather_lists(items: list) -> list:
    """Concatenation of `items` from every rank (the list itself when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(items)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]
