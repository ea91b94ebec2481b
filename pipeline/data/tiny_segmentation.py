"""Generate a tiny Cityscapes-layout set: street-like scenes with exact label-id masks.

Layout (exactly Cityscapes'): OUT/leftImg8bit/{train,val}/<city>/<city>_SSSSSS_FFFFFF_leftImg8bit.png
and OUT/gtFine/{train,val}/<city>/<city>_SSSSSS_FFFFFF_gtFine_labelIds.png, label *ids* (not
train ids), so the real loader's id -> train-id mapping runs on every test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from attnlab.pipeline.data.textures import textured_background

# Cityscapes label ids used here.
UNLABELED, ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = 0, 7, 8, 11, 21, 23, 24, 26
CITIES = {"train": "tinytown", "val": "tinyville"}


def _tint(rng, img: np.ndarray, mask: np.ndarray, colour, strength: float = 0.75) -> None:
    noise = rng.normal(0, 12, size=img.shape)
    mixed = (1 - strength) * img + strength * np.asarray(colour, dtype=np.float32) + noise
    img[mask] = np.clip(mixed, 0, 255)[mask]


def _scene(rng, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    img = textured_background(rng, height, width).astype(np.float32)
    labels = np.full((height, width), UNLABELED, dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    horizon = int(height * rng.uniform(0.35, 0.5))
    sky = yy < horizon
    labels[sky] = SKY
    _tint(rng, img, sky, (110 + rng.integers(-20, 20), 160, 230))
    # buildings: a skyline of blocks reaching into the sky
    x = 0
    while x < width:
        w = int(rng.integers(width // 10, width // 4))
        top = int(rng.integers(height // 10, horizon))
        block = (xx >= x) & (xx < x + w) & (yy >= top) & (yy < horizon + height // 10)
        labels[block] = BUILDING
        _tint(rng, img, block, rng.integers(90, 170, size=3))
        windows = block & ((yy // 4) % 3 == 0) & ((xx // 4) % 3 == 0)
        img[windows] = 40
        x += w + int(rng.integers(0, width // 8))
    # vegetation blobs in front of buildings
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r = (
            rng.integers(0, width),
            horizon + rng.integers(-height // 10, height // 20),
            rng.integers(6, 16),
        )
        blob = (xx - cx) ** 2 + ((yy - cy) * 1.3) ** 2 < r**2
        labels[blob] = VEGETATION
        _tint(rng, img, blob, (50, 140 + rng.integers(-20, 20), 50))
    # sidewalk strip, then road below
    walk_top = horizon + height // 10
    road_top = walk_top + int(height * rng.uniform(0.06, 0.12))
    walk = (yy >= walk_top) & (yy < road_top)
    road = yy >= road_top
    labels[walk], labels[road] = SIDEWALK, ROAD
    _tint(rng, img, walk, (185, 175, 160))
    _tint(rng, img, road, (70, 70, 75))
    img[road & ((xx + yy // 2) % 24 < 2) & (yy % 12 < 6)] = 230  # lane marks stay "road"
    # cars on the road, persons on the sidewalk
    canvas, draw_labels = Image.fromarray(img.astype(np.uint8)), Image.fromarray(labels)
    draw, draw_l = ImageDraw.Draw(canvas), ImageDraw.Draw(draw_labels)
    for _ in range(int(rng.integers(1, 4))):
        w, h = int(rng.integers(width // 8, width // 4)), int(rng.integers(height // 10, height // 6))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(road_top, height - h))
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 256, size=3)))
        draw.rectangle([x0 + 2, y0 + 2, x0 + w - 2, y0 + h // 3], fill=(30, 40, 60))
        draw_l.rectangle([x0, y0, x0 + w, y0 + h], fill=CAR)
    for _ in range(int(rng.integers(1, 4))):
        w, h = int(rng.integers(4, 8)), int(rng.integers(height // 6, height // 4))
        x0, y1 = int(rng.integers(0, width - w)), int(rng.integers(walk_top, road_top + 4))
        colour = tuple(int(c) for c in rng.integers(150, 256, size=3))
        draw.ellipse([x0, y1 - h, x0 + w, y1], fill=colour)
        draw_l.ellipse([x0, y1 - h, x0 + w, y1], fill=PERSON)
    return np.asarray(canvas), np.asarray(draw_labels)


def make_tiny_segmentation(
    out: str | Path, n_train: int = 32, n_val: int = 8, height: int = 128, width: int = 256, seed: int = 0
) -> Path:
    """Write the data set under `out` (created) and return it."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        city = CITIES[split]
        images, labels = out / "leftImg8bit" / split / city, out / "gtFine" / split / city
        images.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img, lab = _scene(rng, height, width)
            stem = f"{city}_{i:06d}_000019"
            Image.fromarray(img).save(images / f"{stem}_leftImg8bit.png")
            Image.fromarray(lab).save(labels / f"{stem}_gtFine_labelIds.png")
    return out
