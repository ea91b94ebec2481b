"""The typed config of one training run (`attnlab train`, and every trial of a sweep).

Defaults are the study's recipe; `tiny` presets shrink the model and the schedule so a CPU run
on generated data takes a minute. Layering: preset < --config FILE < command-line flags.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from lightning_modules.attention import known_options

from .config import StrictModel, merge, read_yaml, validate

Task = Literal["detection", "segmentation", "translation"]
Stage = Literal["res2", "res3", "res4", "res5"]


class OptimConfig(StrictModel):
    """SGD with linear warm-up and step decay (vision; the study's 1x: 0.02 per 16 images)."""

    base_lr: float = Field(0.02, gt=0)
    base_batch: int = Field(16, ge=1, description="images the base_lr is given for; lr scales linearly")
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_iters: int = Field(500, ge=0)
    warmup_ratio: float = Field(1.0 / 3, gt=0, le=1)
    lr_steps: list[int] = Field(default_factory=lambda: [8, 11], description="epochs at which lr drops 10x")
    grad_clip: float | None = Field(None, gt=0)


class BackboneConfig(StrictModel):
    depth: Literal[18, 50, 101] = 50
    pretrained: str | None = Field(None, description="local torchvision ResNet state dict")
    attention_stages: list[Stage] = Field(default_factory=lambda: ["res4", "res5"])
    conv_stages: list[Stage] = Field(default_factory=lambda: ["res3", "res4", "res5"])
    position: Literal["after_conv2", "after_block"] = "after_conv2"
    attention_options: dict[str, int | float | bool | str] = Field(default_factory=lambda: {"num_heads": 8, "kv_stride": 2})
    norm: Literal["bn", "frozen_bn"] | None = Field(None, description="default: frozen_bn when pretrained, else bn")
    trainable_stages: int = Field(5, ge=0, le=5, description="like torchvision's trainable_layers")

    @model_validator(mode="after")
    def _known_options(self):
        unknown = sorted(set(self.attention_options) - known_options(2))
        if unknown:
            raise ValueError(f"unknown attention option(s) {', '.join(unknown)}; known: {', '.join(sorted(known_options(2)))}")
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ValueError(f"pretrained weights {self.pretrained} not found; give a local torchvision ResNet state dict")
        return self


class DetectionConfig(StrictModel):
    fpn_channels: int = Field(256, ge=8)
    min_size: int = Field(800, ge=32)
    max_size: int = Field(1333, ge=32)
    detections_per_image: int = Field(100, ge=1)
    anchor_sizes: list[int] = Field(default_factory=lambda: [32, 64, 128, 256, 512], min_length=5, max_length=5)


class SegmentationConfig(StrictModel):
    output_stride: Literal[8, 16, 32] = 8
    crop_size: int = Field(512, ge=32, description="training crop (square); evaluation runs on full images")
    scale_range: tuple[float, float] = (0.5, 2.0)
    aux_loss: bool = False
    resize: int | None = Field(None, ge=16, description="scale every image (train and val) so its shorter side "
                                                        "has this many pixels first; None keeps the native size")


class TranslationConfig(StrictModel):
    """Transformer base by default (6+6 layers, d_model 512, 8 heads, FFN 2048, shared embeddings)."""

    encoder_layers: int = Field(6, ge=1)
    decoder_layers: int = Field(6, ge=1)
    d_model: int = Field(512, ge=8)
    heads: int = Field(8, ge=1)
    ffn: int = Field(2048, ge=8)
    dropout: float = Field(0.1, ge=0, lt=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    lr: float = Field(7e-4, gt=0, description="peak lr of the inverse-square-root schedule")
    warmup_steps: int = Field(4000, ge=1)
    betas: tuple[float, float] = (0.9, 0.98)
    max_tokens: int = Field(4096, ge=16, description="padded tokens per batch (token buckets)")
    max_len: int = Field(256, ge=4, description="longer training pairs are filtered (and counted)")
    vocab_size: int = Field(32000, ge=16, description="shared sentencepiece BPE vocabulary")
    src_lang: str = "en"
    tgt_lang: str = "de"
    beam: int = Field(4, ge=1)
    length_penalty: float = Field(0.6, ge=0)
    decode: Literal["beam", "greedy"] = "beam"
    max_decode_extra: int = Field(50, ge=1, description="decode up to source length + this")
    attention_options: dict[str, int | float | bool | str] = Field(default_factory=dict)


class DataConfig(StrictModel):
    path: str = Field("tiny", description="'tiny' (generated on the fly) or the data set's folder")
    batch_size: int = Field(2, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)


class TrackingConfig(StrictModel):
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db here")
    experiment: str = "attnlab"
    run_name: str | None = None


def normalise_attention(task: str | None, text: str) -> str:
    """Vision takes one spec; translation per-site specs (a single spec sets both self sites)."""
    from lightning_modules.attention import parse_spec

    from .site_specs import format_sites, parse_sites

    return format_sites(parse_sites(text)) if task == "translation" else str(parse_spec(text))


class TrainConfig(StrictModel):
    task: Task
    attention: str = Field("w/o", description="a spec; for translation also enc_self=..,dec_self=..,enc_dec=..")
    seed: int = 0
    max_epochs: int = Field(12, ge=1)
    precision: str = Field("32-true", description="Lightning precision, e.g. 16-mixed on GPU")
    accelerator: str = "auto"
    devices: int | str = "auto"
    out_dir: str = Field("attnlab_runs", description="checkpoints and run files go under it")
    limit_train_batches: int | float | None = None
    accumulate_grad_batches: int = Field(1, ge=1, description="gradient accumulation (e.g. for big token batches)")
    data: DataConfig = Field(default_factory=DataConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    translation: TranslationConfig = Field(default_factory=TranslationConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="before")
    @classmethod
    def _normalise_attention(cls, data):
        if isinstance(data, dict) and isinstance(data.get("attention", "w/o"), str):
            task = data.get("task")
            text = data.get("attention", "1000" if task == "translation" else "w/o")
            try:
                data = {**data, "attention": normalise_attention(task, text)}
            except ValueError as exc:
                raise ValueError(f"attention: {exc}") from None
        return data

    @model_validator(mode="after")
    def _schedule_fits(self):
        late = [s for s in self.optim.lr_steps if s >= self.max_epochs or s < 1]
        if late:
            raise ValueError(f"optim.lr_steps {late} must lie in 1..max_epochs-1 (max_epochs={self.max_epochs}); "
                             "drop them or train longer")
        return self


TINY = {
    "detection": {"max_epochs": 12, "backbone": {"depth": 18, "attention_options": {"num_heads": 4, "kv_stride": 2}},
                  "detection": {"fpn_channels": 64, "min_size": 128, "max_size": 128, "detections_per_image": 20,
                                "anchor_sizes": [16, 32, 64, 128, 256]},
                  "optim": {"base_lr": 0.02, "base_batch": 4, "warmup_iters": 20, "lr_steps": [9, 11]},
                  "data": {"batch_size": 4}},
    "segmentation": {"max_epochs": 12, "backbone": {"depth": 18, "attention_options": {"num_heads": 4, "kv_stride": 2}},
                     "segmentation": {"output_stride": 8, "crop_size": 96, "scale_range": [0.75, 1.25]},
                     "optim": {"base_lr": 0.01, "base_batch": 4, "warmup_iters": 10, "lr_steps": [9, 11],
                               "weight_decay": 1e-4},
                     "data": {"batch_size": 4}},
}
TINY["translation"] = {
    "max_epochs": 12, "optim": {"lr_steps": []},
    "translation": {"encoder_layers": 2, "decoder_layers": 2, "d_model": 64, "heads": 4, "ffn": 128,
                    "dropout": 0.1, "lr": 3e-3, "warmup_steps": 60, "max_tokens": 1024, "max_len": 64,
                    "vocab_size": 200, "beam": 4}}
PRESETS = ("tiny", "paper")
PAPER = {
    "detection": {"max_epochs": 12, "data": {"batch_size": 2, "num_workers": 4}},
    "segmentation": {"max_epochs": 60, "optim": {"base_lr": 0.01, "base_batch": 8, "warmup_iters": 200,
                                                 "lr_steps": [40, 55]},
                     "segmentation": {"crop_size": 769}, "data": {"batch_size": 2, "num_workers": 4}},
    "translation": {"max_epochs": 30, "optim": {"lr_steps": []}, "precision": "16-mixed"},
}


def preset_for(task: str, preset: str) -> dict[str, Any]:
    """The preset's defaults for `task` ('tiny': small model and data; 'paper': the study's recipe)."""
    from .errors import ConfigError

    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return {"tiny": TINY, "paper": PAPER}[preset].get(task, {})


def _scaled_steps(base: dict[str, Any], max_epochs: Any) -> dict[str, Any]:
    """A preset's lr steps, stretched to a user-chosen max_epochs (like mmdet's 1x -> 2x).

    Steps that land outside 1..max_epochs-1 vanish: a 1-epoch run has no room for a step.
    """
    default_epochs = base.get("max_epochs", TrainConfig.model_fields["max_epochs"].default)
    steps = base.get("optim", {}).get("lr_steps", OptimConfig().lr_steps)
    if not isinstance(max_epochs, int) or max_epochs < 1 or max_epochs == default_epochs:
        return base
    scaled = sorted({round(s * max_epochs / default_epochs) for s in steps} & set(range(1, max_epochs)))
    return merge(base, {"optim": {"lr_steps": scaled}})


def build_train_config(flags: dict[str, Any], config_file: str | None = None, preset: str | None = None) -> TrainConfig:
    """preset < config file < flags, validated once. Unless lr_steps are given, they follow max_epochs.

    The preset defaults to 'tiny' for generated data (data.path == 'tiny') and 'paper' otherwise.
    """
    from_file = read_yaml(config_file) if config_file else {}
    merged = merge(from_file, flags)
    task = merged.get("task")
    data_path = merged.get("data", {}).get("path", "tiny") if isinstance(merged.get("data"), dict) else "tiny"
    preset = preset or ("tiny" if data_path == "tiny" else "paper")
    base = preset_for(task, preset) if isinstance(task, str) else {}
    optim = merged.get("optim")
    if not (isinstance(optim, dict) and "lr_steps" in optim):
        base = _scaled_steps(base, merged.get("max_epochs"))
    return validate(TrainConfig, merge(base, merged), "train")
