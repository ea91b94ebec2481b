"""Generated data sets in the real layouts, small enough for a CPU, cluttered enough that a model
must learn (shapes on textured backgrounds):

- detection, exactly COCO 2017's layout: OUT/annotations/instances_{train,val}2017.json and image
  folders OUT/{train,val}2017/*.jpg; category ids deliberately non-contiguous, as in COCO;
- segmentation, exactly Cityscapes': OUT/leftImg8bit/{train,val}/<city>/..._leftImg8bit.png and
  OUT/gtFine/{train,val}/<city>/..._gtFine_labelIds.png, label *ids* (not train ids), so the real
  loader's id -> train-id mapping runs on every test;
- translation, attnlab's parallel text (one sentence a line, aligned by line number):
  OUT/{train,valid,test}.{en,de}. The "German" side translates each word through a fixed dictionary
  and swaps every adjacent pair of words, so a model must look at its neighbours.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


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


SPLITS = {"train": 1200, "valid": 60, "test": 60}


def _vocabulary(rng) -> tuple[list[str], list[str]]:
    letters = list("abcdefghiklmnoprstuvw")

    def word():
        return "".join(rng.choice(letters, size=int(rng.integers(2, 6))))

    src = sorted({word() for _ in range(80)})[:48]
    tgt = [w[::-1] + "en" for w in src]
    return src, tgt


def _translate(words: list[str], table: dict[str, str]) -> list[str]:
    out = [table[w] for w in words]
    for i in range(0, len(out) - 1, 2):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def make_tiny_translation(out: str | Path, seed: int = 0, src_lang: str = "en", tgt_lang: str = "de") -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    src_words, tgt_words = _vocabulary(rng)
    table = dict(zip(src_words, tgt_words))
    for split, count in SPLITS.items():
        src_lines, tgt_lines = [], []
        for _ in range(count):
            words = list(rng.choice(src_words, size=int(rng.integers(3, 9))))
            src_lines.append(" ".join(words))
            tgt_lines.append(" ".join(_translate(words, table)))
        (out / f"{split}.{src_lang}").write_text("\n".join(src_lines) + "\n")
        (out / f"{split}.{tgt_lang}").write_text("\n".join(tgt_lines) + "\n")
    return out
