"""What a task's LightningModule needs to know: the mechanism and the model and optimiser sections.

Each LightningModule takes a typed `ModuleConfig` and nothing from `pipeline`: pipeline's
TrainConfig extends it with data, trainer and tracking settings, so a run's config is the module's
and is validated once. A checkpoint keeps it as plain data (`saved`), which a module built from a
checkpoint validates (`module_config`). Defaults are the study's recipe (docs/study.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .attention import known_options

Stage = Literal["res2", "res3", "res4", "res5"]


class StrictModel(BaseModel):
    """Base of every config: unknown keys are errors (a typo never silently does nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


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
    attention_options: dict[str, int | float | bool | str] = Field(
        default_factory=lambda: {"num_heads": 8, "kv_stride": 2}
    )
    norm: Literal["bn", "frozen_bn"] | None = Field(
        None, description="default: frozen_bn when pretrained, else bn"
    )
    trainable_stages: int = Field(5, ge=0, le=5, description="like torchvision's trainable_layers")

    @model_validator(mode="after")
    def _known_options(self):
        unknown = sorted(set(self.attention_options) - known_options(2))
        if unknown:
            raise ValueError(
                f"unknown attention option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known_options(2)))}"
            )
        if self.pretrained and not Path(self.pretrained).is_file():
            raise ValueError(
                f"pretrained weights {self.pretrained} not found; give a local torchvision ResNet state dict"
            )
        return self


class DetectionConfig(StrictModel):
    fpn_channels: int = Field(256, ge=8)
    min_size: int = Field(800, ge=32)
    max_size: int = Field(1333, ge=32)
    detections_per_image: int = Field(100, ge=1)
    anchor_sizes: list[int] = Field(
        default_factory=lambda: [32, 64, 128, 256, 512], min_length=5, max_length=5
    )


class SegmentationConfig(StrictModel):
    output_stride: Literal[8, 16, 32] = 8
    crop_size: int = Field(512, ge=32, description="training crop (square); evaluation runs on full images")
    scale_range: tuple[float, float] = (0.5, 2.0)
    aux_loss: bool = False
    resize: int | None = Field(
        None,
        ge=16,
        description="scale every image (train and val) so its shorter side "
        "has this many pixels first; None keeps the native size",
    )


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


class ModuleConfig(StrictModel):
    """The sections one LightningModule reads (pipeline's TrainConfig adds the rest of a run's)."""

    attention: str = Field(
        "w/o", description="a spec; for translation also enc_self=..,dec_self=..,enc_dec=.."
    )
    optim: OptimConfig = Field(default_factory=OptimConfig)
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    segmentation: SegmentationConfig = Field(default_factory=SegmentationConfig)
    translation: TranslationConfig = Field(default_factory=TranslationConfig)

    def saved(self) -> dict:
        """The module's own fields as plain data: what a checkpoint keeps (it loads weights_only)."""
        return self.model_dump(mode="json", include=set(ModuleConfig.model_fields))


def module_config(config: ModuleConfig | dict, batch_size: int | None) -> tuple[ModuleConfig, int]:
    """(the typed config a LightningModule trains with, its per-device batch size): a config as it is,
    or one a checkpoint saved, validated (a checkpoint of attnlab <= 0.1 kept the batch size in it)."""
    if isinstance(config, ModuleConfig):
        return config, batch_size or 2
    config = dict(config)
    saved_batch = config.pop("batch_size", None)
    return ModuleConfig.model_validate(config), batch_size or saved_batch or 2
