"""Sweep presets: `smoke` (minutes on a laptop CPU) and the study's grids per task and in full."""
from __future__ import annotations

from lightning_modules.attention import all_codes

STUDY_SPECS = ["w/o", *all_codes(), "deform", "dynamic", "0010+deform", "1111+deform", "0010+dynamic"]


def smoke() -> dict:
    """Tiny generated Cityscapes-layout data, ResNet-18, six trials, ASHA after epoch 1.

    Segmentation, because its mIoU separates trials from the first epoch on (detection AP on
    tiny data is ~0 for every trial that early, so ASHA would have nothing to compare).
    """
    overrides = {"segmentation": {"crop_size": 64}, "data": {"batch_size": 4}, "limit_train_batches": 6}
    return {"name": "smoke", "max_epochs": 4,
            "grid": [{"task": "segmentation", "specs": ["w/o", "0010", "1111", "0001", "deform", "0010+deform"],
                      "preset": "tiny", "overrides": overrides}],
            "early_stopping": {"policy": "asha", "grace_period": 1, "reduction_factor": 3},
            "resources": {"workers_per_trial": 1, "cpus_per_worker": 1}, "max_failures": 2}


def _paper(task: str) -> dict:
    return {"task": task, "specs": STUDY_SPECS, "seeds": [0], "preset": "paper", "data": f"data/{task}"}


def paper_detection() -> dict:
    return {"name": "paper-detection", "grid": [_paper("detection")], "resources": {"gpus_per_worker": 1, "workers_per_trial": 8, "cpus_per_worker": 4}}


def paper_segmentation() -> dict:
    return {"name": "paper-segmentation", "grid": [_paper("segmentation")], "resources": {"gpus_per_worker": 1, "workers_per_trial": 4, "cpus_per_worker": 4}}


def _paper_translation_grid() -> dict:
    """Self-attention sites over the study's specs (enc-dec 1000), then enc-dec over the 15 codes."""
    specs = [f"enc_self={s},dec_self={s},enc_dec=1000" for s in STUDY_SPECS]
    specs += [f"enc_self=1000,dec_self=1000,enc_dec={c}" for c in all_codes() if c != "1000"]
    return {**_paper("translation"), "specs": specs}


def paper_translation() -> dict:
    return {"name": "paper-translation", "grid": [_paper_translation_grid()],
            "resources": {"gpus_per_worker": 1, "workers_per_trial": 8, "cpus_per_worker": 4}}


def paper() -> dict:
    return {"name": "paper", "grid": [_paper("detection"), _paper("segmentation"), _paper_translation_grid()],
            "resources": {"gpus_per_worker": 1, "workers_per_trial": 8, "cpus_per_worker": 4}}


PRESETS = {"smoke": smoke, "paper-detection": paper_detection, "paper-segmentation": paper_segmentation,
           "paper-translation": paper_translation, "paper": paper}
