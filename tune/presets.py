"""Sweep presets: `smoke` (minutes on a laptop CPU), the study's grids per task and in full, and the
mini-study on real public data (Multi30k, CamVid) in a `cpu` and a `gpu` size."""

from __future__ import annotations

import os
from pathlib import Path

from attnlab.lightning_modules.attention import STUDY_SPECS, all_codes


def smoke() -> dict:
    """Tiny generated Cityscapes-layout data, ResNet-18, six trials, cost-aware early stopping
    (pareto-asha) from epoch 1. Its front rule may promote up to 3/4 of a rung and dominates
    strictly (tolerance 0): replayed on this sweep's own full-budget curves (50 arrival orders, 2 at
    once) that keeps the whole front (1.00) for 1.36x ASHA's epochs, where the sweep defaults
    (front_fraction 0.5, tolerance 0.1) keep 0.72 and ASHA 0.32 (benchmarks/RESULTS.md).

    Segmentation, because its mIoU separates trials from the first epoch on (detection AP on
    tiny data is ~0 for every trial that early, so early stopping would have nothing to compare).
    """
    overrides = {"segmentation": {"crop_size": 64}, "data": {"batch_size": 4}, "limit_train_batches": 6}
    return {
        "name": "smoke",
        "max_epochs": 4,
        "grid": [
            {
                "task": "segmentation",
                "specs": ["w/o", "0010", "1111", "0001", "deform", "0010+deform"],
                "preset": "tiny",
                "overrides": overrides,
            }
        ],
        "early_stopping": {
            "policy": "pareto-asha",
            "grace_period": 1,
            "reduction_factor": 3,
            "front_fraction": 0.75,
            "tolerance": 0.0,
        },
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
        "max_failures": 2,
    }


def _paper(task: str) -> dict:
    return {"task": task, "specs": list(STUDY_SPECS), "seeds": [0], "preset": "paper", "data": f"data/{task}"}


def paper_detection() -> dict:
    return {
        "name": "paper-detection",
        "grid": [_paper("detection")],
        "resources": {"gpus_per_worker": 1, "workers_per_trial": 8, "cpus_per_worker": 4},
    }


def paper_segmentation() -> dict:
    return {
        "name": "paper-segmentation",
        "grid": [_paper("segmentation")],
        "resources": {"gpus_per_worker": 1, "workers_per_trial": 4, "cpus_per_worker": 4},
    }


def _paper_translation_grid() -> dict:
    """Self-attention sites over the study's specs (enc-dec 1000), then enc-dec over the 15 codes."""
    specs = [f"enc_self={s},dec_self={s},enc_dec=1000" for s in STUDY_SPECS]
    specs += [f"enc_self=1000,dec_self=1000,enc_dec={c}" for c in all_codes() if c != "1000"]
    return {**_paper("translation"), "specs": specs}


def paper_translation() -> dict:
    return {
        "name": "paper-translation",
        "grid": [_paper_translation_grid()],
        "resources": {"gpus_per_worker": 1, "workers_per_trial": 8, "cpus_per_worker": 4},
    }


def paper() -> dict:
    return {
        "name": "paper",
        "grid": [_paper("detection"), _paper("segmentation"), _paper_translation_grid()],
        "resources": {"gpus_per_worker": 1, "workers_per_trial": 8, "cpus_per_worker": 4},
    }


# The mini-study: the E1-E4 grid as the 2^4 factorial design it is (the 15 codes and w/o), so the
# term effects of findings 1-3 rest on every run (pipeline/analysis/effects.py), plus the
# convolutions findings 4 and 5 compare. Segmentation: every code, deform and 0010+deform.
# Translation: both self-attention sites set to each code together (encoder-decoder 1000; the
# effects' joint `self` site), deform there, and encoder-decoder attention over the 15 codes
# (self-attention 1000; w/o is no point of it), finding 2's design.
MINI_SEGMENTATION_SPECS = ["w/o", *all_codes(), "deform", "0010+deform"]
MINI_SELF_SPECS = ["w/o", *all_codes(), "deform"]
MINI_ENC_DEC_CODES = all_codes()
MINI_SEEDS = [0, 1]
SIZES = ("cpu", "gpu")


def datasets_root() -> Path:
    """Where the real data sets live: ATTNLAB_DATASETS, else ../shared/datasets from here (absolute)."""
    return Path(os.environ.get("ATTNLAB_DATASETS", "../shared/datasets")).resolve()


def _translation_specs(self_specs: list[str], enc_dec: list[str]) -> list[str]:
    specs = [f"enc_self={s},dec_self={s},enc_dec=1000" for s in self_specs]
    return specs + [f"enc_self=1000,dec_self=1000,enc_dec={c}" for c in enc_dec if c != "1000"]


MINI = {
    # cpu: the two-seed grid in 70 minutes on 2 cores (benchmarks/RESULTS.md): small images and
    # models, fp32 (bf16 autocast is slow on a CPU), 4 CamVid epochs and 6 Multi30k epochs; the
    # seed-to-seed spread measured at these budgets sized it (two seeds: main effects to about
    # +-0.009 mIoU).
    "cpu": {
        "segmentation": {
            "max_epochs": 4,
            "limit_train_batches": 16,
            "precision": "32-true",
            "backbone": {"depth": 18, "attention_options": {"num_heads": 4, "kv_stride": 2}},
            "segmentation": {"output_stride": 16, "crop_size": 96, "resize": 96, "scale_range": [0.75, 1.25]},
            "optim": {"base_lr": 0.02, "base_batch": 8, "warmup_iters": 10, "lr_steps": []},
            "data": {"batch_size": 8, "eval_batch_size": 8},
        },
        # The tiny Transformer (pipeline/tasks/registry.py), on Multi30k's vocabulary, decoded greedily.
        "translation": {
            "preset": "tiny",
            "max_epochs": 6,
            "limit_train_batches": 70,
            "precision": "32-true",
            "translation": {"warmup_steps": 40, "max_tokens": 2048, "vocab_size": 2000, "decode": "greedy"},
        },
        "specs": {
            "segmentation": MINI_SEGMENTATION_SPECS,
            "self": MINI_SELF_SPECS,
            "enc_dec": MINI_ENC_DEC_CODES,
        },
        "seeds": MINI_SEEDS,
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
    },
    # gpu: the same grid on full-size CamVid and a 3+3-layer Transformer, long enough to separate them.
    "gpu": {
        "segmentation": {
            "max_epochs": 40,
            "precision": "bf16-mixed",
            "backbone": {"depth": 18, "attention_options": {"num_heads": 8, "kv_stride": 2}},
            "segmentation": {"output_stride": 8, "crop_size": 320, "scale_range": [0.5, 2.0]},
            "optim": {"base_lr": 0.01, "base_batch": 8, "warmup_iters": 100, "lr_steps": [30, 37]},
            "data": {"batch_size": 8, "eval_batch_size": 4, "num_workers": 4},
        },
        "translation": {
            "max_epochs": 20,
            "precision": "bf16-mixed",
            "optim": {"lr_steps": []},
            "translation": {
                "encoder_layers": 3,
                "decoder_layers": 3,
                "d_model": 256,
                "heads": 4,
                "ffn": 1024,
                "dropout": 0.1,
                "lr": 1e-3,
                "warmup_steps": 1000,
                "max_tokens": 8192,
                "max_len": 128,
                "vocab_size": 8000,
                "beam": 4,
            },
        },
        "specs": {
            "segmentation": MINI_SEGMENTATION_SPECS,
            "self": MINI_SELF_SPECS,
            "enc_dec": MINI_ENC_DEC_CODES,
        },
        "seeds": MINI_SEEDS,
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 2, "gpus_per_worker": 0.25},
    },
}


# Each mini-study task: its specs (from a size's spec lists) and its real data set.
MINI_DATA = {
    "segmentation": lambda specs: (specs["segmentation"], datasets_root() / "camvid"),
    "translation": lambda specs: (
        _translation_specs(specs["self"], specs["enc_dec"]),
        datasets_root() / "multi30k",
    ),
}


def _mini_grid(task: str, size: str) -> dict:
    s = MINI[size]
    specs, data = MINI_DATA[task](s["specs"])
    return {
        "task": task,
        "specs": specs,
        "seeds": s["seeds"],
        "preset": s[task].get("preset", "paper"),
        "data": str(data),
        "overrides": {k: v for k, v in s[task].items() if k != "preset"},
    }


# The mini-study races its seeds (tune/race.py): two each, then more where the front or a finding
# is still open, up to 8, within 1.5x the two-seed grid's trials. Replayed on the CamVid reference
# set it decides more findings' verdicts than two seeds, and than four at the same trials
# (benchmarks/RESULTS.md, "Racing with the findings").
MINI_RACE = {"policy": "race", "min": 2, "max": 8}
MINI_RACE_BUDGET = 3  # trials per configuration on average: 1.5x two seeds


def _mini(name: str, tasks: list[str]):
    def preset(size: str = "cpu") -> dict:
        grid = [_mini_grid(t, size) for t in tasks]
        configurations = sum(len(g["specs"]) for g in grid)
        return {
            "name": f"{name}-{size}",
            "grid": grid,
            "seeds": {**MINI_RACE, "budget": MINI_RACE_BUDGET * configurations},
            "early_stopping": {"policy": "none"},
            "resources": MINI[size]["resources"],
            "max_failures": 1,
        }

    preset.sized = True
    return preset


PRESETS = {
    "smoke": smoke,
    "paper-detection": paper_detection,
    "paper-segmentation": paper_segmentation,
    "paper-translation": paper_translation,
    "paper": paper,
    "mini-translation": _mini("mini-translation", ["translation"]),
    "mini-segmentation": _mini("mini-segmentation", ["segmentation"]),
    "mini": _mini("mini", ["segmentation", "translation"]),
}
