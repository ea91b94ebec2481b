"""A bad data folder is answered before any heavy import (pipeline/data/preflight.py): exit 2, one
`attnlab: error:` line naming the file and the fix, nothing written where the command ran. The
folders are small ones in each real layout, broken the way real downloads break."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_probe import probe
from PIL import Image


def _image(path: Path, size=(48, 32), fmt="JPEG") -> None:
    rng = np.random.default_rng(len(path.name))
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, fmt)


def _label(path: Path, size=(48, 32), value: int = 3) -> None:
    Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint8)).save(path, "PNG")


def camvid(root: Path) -> Path:
    for split, stems in (("train", "ab"), ("val", "c")):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for stem in stems:
            _image(root / split / f"{stem}.jpg")
            _label(root / f"{split}annot" / f"{stem}.png")
    return root


def truncated_jpeg(root: Path) -> tuple[Path, str]:
    bad = camvid(root) / "train" / "b.jpg"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    return bad, "is truncated"


def small_label(root: Path) -> tuple[Path, str]:
    bad = camvid(root) / "trainannot" / "a.png"
    _label(bad, size=(24, 16))
    return bad, "is 24x16 but its image"


def foreign_values(root: Path) -> tuple[Path, str]:
    bad = camvid(root) / "valannot" / "c.png"
    _label(bad, value=200)
    return bad, "holds values [200] outside CamVid's classes 0-11"


def unequal_lines(root: Path) -> tuple[Path, str]:
    root.mkdir()
    for split in ("train", "valid"):
        (root / f"{split}.en").write_text("a cat\na dog\na bird\n")
        (root / f"{split}.de").write_text("eine Katze\nein Hund\nein Vogel\n")
    (root / "train.de").write_text("eine Katze\nein Hund\n")
    return root / "train.en", "train.en has 3 lines but train.de has 2"


def missing_coco_image(root: Path) -> tuple[Path, str]:
    for split in ("train", "val"):
        (root / f"{split}2017").mkdir(parents=True, exist_ok=True)
        names = ["1.jpg", "2.jpg"]
        for name in names:
            _image(root / f"{split}2017" / name)
        doc = {
            "images": [{"id": i, "file_name": n, "width": 48, "height": 32} for i, n in enumerate(names, 1)],
            "annotations": [
                {"id": i, "image_id": i, "bbox": [1, 1, 10, 10], "category_id": 1, "iscrowd": 0, "area": 100}
                for i in (1, 2)
            ],
            "categories": [{"id": 1, "name": "thing"}],
        }
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(doc))
    (root / "val2017" / "2.jpg").unlink()
    return root / "annotations" / "instances_val2017.json", "1 image(s) listed in"


@pytest.mark.parametrize(
    "task, broken",
    [
        ("segmentation", truncated_jpeg),
        ("segmentation", small_label),
        ("segmentation", foreign_values),
        ("translation", unequal_lines),
        ("detection", missing_coco_image),
    ],
)
def test_bad_data_is_one_line_naming_the_file_before_any_heavy_import(tmp_path, task, broken):
    bad, message = broken(tmp_path / "data")
    here = tmp_path / "here"
    here.mkdir()
    result, stderr = probe(here, ["train", "--task", task, "--data", str(tmp_path / "data")])
    assert result["code"] == 2 and message in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnlab: error: ") and str(bad.name) in lines[0], stderr
    assert result["heavy"] == [], f"imported before the error: {result['heavy']}"
    assert list(here.iterdir()) == []  # no store, no log, nothing


def test_a_sweep_checks_its_data_the_same_way_before_ray(tmp_path):
    bad, message = truncated_jpeg(tmp_path / "data")
    sweep = {
        "name": "bad",
        "grid": [
            {"task": "segmentation", "specs": ["w/o"], "preset": "tiny", "data": str(tmp_path / "data")}
        ],
    }
    (tmp_path / "bad.yaml").write_text(json.dumps(sweep))
    here = tmp_path / "here"
    here.mkdir()
    result, stderr = probe(here, ["sweep", "--config", str(tmp_path / "bad.yaml")])
    assert result["code"] == 2 and message in stderr and bad.name in stderr, stderr
    assert "ray" not in result["heavy"] and list(here.iterdir()) == []


def test_a_whole_folder_passes_and_its_label_scan_runs_once(tmp_path, monkeypatch):
    from attnlab.pipeline.data import preflight

    monkeypatch.setenv("ATTNLAB_CACHE", str(tmp_path / "cache"))
    root = camvid(tmp_path / "data")
    preflight.check_camvid(root)
    assert len(list((tmp_path / "cache" / "preflight").iterdir())) == 2  # train's and val's scans
    _label(root / "valannot" / "c.png", value=200)  # a change: a new digest, scanned again
    with pytest.raises(Exception, match="holds values"):
        preflight.check_camvid(root)


def test_an_image_that_fails_to_decode_mid_training_is_named(tmp_path):
    """Whole to the preflight (its end marker is there) but broken inside: the data set names it,
    and the CLI prints that one line even when a DataLoader worker raised it."""
    from attnlab.cli import message
    from attnlab.pipeline.config.errors import ConfigError
    from attnlab.pipeline.data.camvid import camvid_lookup
    from attnlab.pipeline.data.preflight import whole
    from attnlab.pipeline.data.segmentation import PairedSegmentation, eval_transform

    root = camvid(tmp_path / "data")
    bad = root / "train" / "a.png"
    _image(bad, fmt="PNG")
    data = bytearray(bad.read_bytes())
    data[60:120] = bytes(60)  # inside the image data; the IEND chunk at the end stays
    bad.write_bytes(bytes(data))
    whole(bad)  # the preflight cannot see it
    dataset = PairedSegmentation(
        [(bad, root / "trainannot" / "a.png")], camvid_lookup(), eval_transform(None)
    )
    with pytest.raises(
        ConfigError, match=r"a\.png cannot be decoded .*re-download or re-export it"
    ) as caught:
        dataset[0]
    wrapped = ConfigError(
        "Caught ConfigError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        f'  File "x.py", line 1, in f\nattnlab.pipeline.config.errors.ConfigError: {caught.value}'
    )
    assert message(wrapped) == str(caught.value)
