"""Generate a tiny COCO-layout detection set: shapes on textured backgrounds.

Layout (exactly COCO 2017's): OUT/annotations/instances_{train,val}2017.json and image folders
OUT/{train,val}2017/*.jpg. Category ids are deliberately non-contiguous, as in COCO.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from attnlab.pipeline.data.textures import textured_background

CATEGORIES = [
    {"id": 1, "name": "square", "supercategory": "shape"},
    {"id": 3, "name": "disc", "supercategory": "shape"},
    {"id": 7, "name": "triangle", "supercategory": "shape"},
]


def _polygon(kind: str, x: float, y: float, w: float, h: float) -> list[float]:
    if kind == "square":
        pts = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    elif kind == "triangle":
        pts = [(x + w / 2, y), (x + w, y + h), (x, y + h)]
    else:
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        pts = list(zip(x + w / 2 + w / 2 * np.cos(t), y + h / 2 + h / 2 * np.sin(t)))
    return [float(round(c, 2)) for p in pts for c in p]


def _draw_image(rng, size: int, image_id: int, ann_id: int):
    img = Image.fromarray(textured_background(rng, size, size))
    draw = ImageDraw.Draw(img)
    anns, boxes = [], []
    for _ in range(int(rng.integers(1, 4))):
        cat = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        for _try in range(20):
            w, h = rng.uniform(0.18, 0.4, size=2) * size
            x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
            if all(x + w < bx or bx + bw < x or y + h < by or by + bh < y for bx, by, bw, bh in boxes):
                break
        else:
            continue
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        poly = _polygon(cat["name"], x, y, w, h)
        if cat["name"] == "disc":
            draw.ellipse([x, y, x + w, y + h], fill=colour, outline=(0, 0, 0))
        else:
            draw.polygon(poly, fill=colour, outline=(0, 0, 0))
        boxes.append((x, y, w, h))
        area = w * h * {"square": 1.0, "disc": np.pi / 4, "triangle": 0.5}[cat["name"]]
        anns.append(
            {
                "id": ann_id + len(anns),
                "image_id": image_id,
                "category_id": cat["id"],
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                "area": round(area, 2),
                "iscrowd": 0,
                "segmentation": [poly],
            }
        )
    return img, anns


def make_tiny_detection(
    out: str | Path, n_train: int = 48, n_val: int = 16, size: int = 128, seed: int = 0
) -> Path:
    """Write the data set under `out` (created) and return it."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    ann_id, image_id = 1, 1
    for split, count in (("train", n_train), ("val", n_val)):
        folder = out / f"{split}2017"
        folder.mkdir(exist_ok=True)
        images, annotations = [], []
        for _ in range(count):
            img, anns = _draw_image(rng, size, image_id, ann_id)
            name = f"{image_id:012d}.jpg"
            img.save(folder / name, quality=95)
            images.append({"id": image_id, "file_name": name, "height": size, "width": size})
            annotations += anns
            ann_id += len(anns)
            image_id += 1
        doc = {
            "info": {"description": "attnlab tiny shapes (generated)"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": CATEGORIES,
        }
        (out / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(doc))
    return out
