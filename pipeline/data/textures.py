"""Textured backgrounds for generated images: enough clutter that shapes must be learned."""

from __future__ import annotations

import numpy as np


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: a smooth colour gradient, stripes at a random angle, and pixel noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 190, size=3)
    tilt = rng.uniform(-0.3, 0.3, size=(2, 3))
    img = base + yy[..., None] * tilt[0] + xx[..., None] * tilt[1]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 16)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    img += stripes[..., None] * rng.uniform(8, 20)
    img += rng.normal(0, 10, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
