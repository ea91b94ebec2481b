"""The real public data sets in their published layouts, read from ../shared/datasets (never copied
into git): Multi30k's gzipped raw release and SegNet's CamVid, layout detection and its errors, and
one short `attnlab train` run on each that logs the task metric (per-class IoU by name) and costs."""

import os
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from repo import ROOT, run_attnlab

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.data.camvid import CLASS_NAMES, CamVidDataModule
from attnlab.pipeline.data.translation import read_parallel
from attnlab.pipeline.tasks.registry import detect_layout

DATASETS = Path(os.environ.get("ATTNLAB_DATASETS", ROOT / ".." / "shared" / "datasets")).resolve()


def dataset(name: str) -> Path:
    folder = DATASETS / name
    assert folder.is_dir(), f"the real data set folder {folder} is missing (see ../shared/datasets/README.md)"
    return folder


def test_multi30k_gz_release_reads_directly_with_val_as_validation():
    root = dataset("multi30k")
    assert detect_layout("translation", root).name == "parallel text"
    src, tgt = read_parallel(root, "train", "en", "de")
    assert len(src) == len(tgt) == 29000
    val_src, val_tgt = read_parallel(root, "valid", "en", "de")
    assert len(val_src) == len(val_tgt) == 1014
    assert len(read_parallel(root, "test", "en", "de")[0]) == 1000
    assert all(isinstance(s, str) and s for s in val_src[:20])


def test_camvid_segnet_layout_pairs_by_stem_with_11_named_classes():
    root = dataset("camvid")
    assert detect_layout("segmentation", root).name == "CamVid"
    dm = CamVidDataModule(root, batch_size=2, crop_size=64, resize=90)
    assert len(dm.split_pairs["train"]) == 367 and len(dm.split_pairs["val"]) == 101
    assert all(img.stem == label.stem for img, label in dm.split_pairs["val"])
    assert dm.num_classes == 11 and dm.class_names == CLASS_NAMES
    dm.setup()
    image, mask = dm.val_set[0]
    assert image.shape == (3, 90, 120) and mask.shape == (90, 120)
    assert set(mask.unique().tolist()) <= set(range(11)) | {255}
    assert dm.lookup[11] == 255 and torch.equal(dm.lookup[:11].long(), torch.arange(11))


def test_a_folder_of_no_known_layout_names_every_layout_tried(tmp_path):
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ConfigError) as err:
        detect_layout("segmentation", tmp_path)
    assert "Cityscapes: leftImg8bit" in str(err.value) and "CamVid: train/, trainannot/" in str(err.value)
    with pytest.raises(ConfigError, match="datasets: .*parallel text: train.en"):
        detect_layout("translation", tmp_path)
    with pytest.raises(ConfigError, match="COCO: annotations"):
        detect_layout("detection", tmp_path)


def _train(tmp_path, task: str, data: Path, config: str):
    (tmp_path / "short.yaml").write_text(config)
    args = ["train", "--task", task, "--data", str(data), "--preset", "tiny", "--max-epochs", "1"]
    proc = run_attnlab([*args, "--config", "short.yaml", "--no-progress"], tmp_path, 900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("attnlab").experiment_id])[0]
    return proc.stdout, run


@pytest.mark.slow
def test_one_epoch_on_camvid_logs_per_class_iou_by_name_and_costs(tmp_path):
    out, run = _train(
        tmp_path,
        "segmentation",
        dataset("camvid"),
        "attention: '0010'\nlimit_train_batches: 3\nsegmentation: {resize: 90}\n",
    )
    assert "(CamVid layout)" in out
    assert {f"val/IoU_{n}" for n in ("Road", "Sky", "Building")} <= set(run.data.metrics)
    assert not any(k.startswith("val/IoU_") and k[8:].isdigit() for k in run.data.metrics)
    assert 0 <= run.data.metrics["val/mIoU"] <= 1 and run.data.metrics["cost/attention_flops"] > 0


@pytest.mark.slow
def test_one_epoch_on_multi30k_logs_bleu_and_costs(tmp_path):
    out, run = _train(
        tmp_path,
        "translation",
        dataset("multi30k"),
        "limit_train_batches: 5\ntranslation: {decode: greedy}\n",
    )
    assert "(parallel text layout)" in out
    assert "val/bleu" in run.data.metrics and "val/chrf" in run.data.metrics
    assert run.data.params["data.filtered.valid_kept"] == "1014"
    assert run.data.metrics["cost/flops"] > 0 and run.data.metrics["cost/params"] > 0


def test_a_datasets_folder_is_detected_and_read(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = {"translation": [{"en": "a cat", "de": "eine katze"}, {"en": "a dog", "de": "ein hund"}]}
    DatasetDict({"train": Dataset.from_dict(rows), "validation": Dataset.from_dict(rows)}).save_to_disk(
        tmp_path / "wmt"
    )
    assert detect_layout("translation", tmp_path / "wmt").name == "datasets"
    assert read_parallel(tmp_path / "wmt", "valid", "en", "de") == (
        ["a cat", "a dog"],
        ["eine katze", "ein hund"],
    )
