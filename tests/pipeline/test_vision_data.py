"""Real loaders on generated data in the real layouts; real metrics; clear errors on bad data."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from attnlab.lightning_modules.coco_eval import coco_box_ap
from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.data.cityscapes import CityscapesDataModule, id_to_train_id
from attnlab.pipeline.data.coco import CocoDataModule


def test_coco_loader_reads_boxes_and_maps_categories(tiny_detection):
    dm = CocoDataModule(tiny_detection, batch_size=2)
    dm.setup()
    assert dm.num_classes == 3 and dm.label_to_cat == {1: 1, 2: 3, 3: 7}
    images, targets = next(iter(dm.val_dataloader()))
    ann = dm.val_coco.imgToAnns[targets[0]["image_id"]]
    x, y, w, h = ann[0]["bbox"]
    assert images[0].shape == (3, 128, 128) and 0 <= images[0].min() and images[0].max() <= 1
    torch.testing.assert_close(targets[0]["boxes"][0], torch.tensor([x, y, x + w, y + h]))
    assert targets[0]["labels"][0].item() == dm.cat_to_label[ann[0]["category_id"]]


def test_cocoeval_gives_full_ap_for_ground_truth_and_zero_for_nothing(tiny_detection):
    dm = CocoDataModule(tiny_detection)
    dm.setup()
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in dm.val_coco.dataset["annotations"]
    ]
    assert coco_box_ap(dm.val_coco, perfect)["bbox_AP"] == pytest.approx(1.0)
    wrong_class = [{**p, "category_id": 1 if p["category_id"] != 1 else 3} for p in perfect]
    assert coco_box_ap(dm.val_coco, wrong_class)["bbox_AP"] < 0.5
    assert coco_box_ap(dm.val_coco, [])["bbox_AP"] == 0.0


def test_cityscapes_loader_maps_label_ids_to_train_ids(tiny_segmentation):
    table = id_to_train_id()
    assert table[7] == 0 and table[26] == 13 and table[0] == 255 and table[23] == 10
    dm = CityscapesDataModule(tiny_segmentation, batch_size=2, crop_size=64)
    dm.setup()
    image, mask = dm.val_set[0]
    raw = np.asarray(Image.open(dm.val_set.pairs[0][1]))
    assert dm.val_set.pairs[0][1].name.endswith("_gtFine_labelIds.png")
    assert image.shape == (3, 128, 256) and mask.shape == (128, 256)
    assert torch.equal(mask, table[torch.from_numpy(raw).long()].long())
    images, masks = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 64, 64) and set(masks.unique().tolist()) <= set(range(19)) | {255}


def _copy(src, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(src, dst)
    return dst


def test_missing_folder_and_files(tmp_path, tiny_detection, tiny_segmentation):
    with pytest.raises(ConfigError, match="does not exist"):
        CocoDataModule(tmp_path / "nope")
    coco = _copy(tiny_detection, tmp_path)
    (coco / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(ConfigError, match="instances_val2017.json is missing"):
        CocoDataModule(coco)
    city = _copy(tiny_segmentation, tmp_path / "c")
    next((city / "gtFine" / "val").rglob("*_labelIds.png")).unlink()
    with pytest.raises(ConfigError, match="have no \\*_gtFine_labelIds.png label"):
        CityscapesDataModule(city)


def test_malformed_annotation_file(tmp_path, tiny_detection):
    coco = _copy(tiny_detection, tmp_path)
    (coco / "annotations" / "instances_train2017.json").write_text('{"images": [')
    with pytest.raises(ConfigError, match="malformed JSON"):
        CocoDataModule(coco)


def test_images_without_annotations(tmp_path, tiny_detection):
    coco = _copy(tiny_detection, tmp_path)
    path = coco / "annotations" / "instances_train2017.json"
    doc = json.loads(path.read_text())
    doc["annotations"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="no image in .* has an annotation"):
        CocoDataModule(coco)


def test_annotation_naming_missing_images(tmp_path, tiny_detection):
    coco = _copy(tiny_detection, tmp_path)
    next((coco / "train2017").glob("*.jpg")).unlink()
    with pytest.raises(ConfigError, match="1 image\\(s\\) listed in .* are missing"):
        CocoDataModule(coco)
