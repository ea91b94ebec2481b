"""Each task's trained network as a model that takes and gives plain tensors: what attnlab puts in
MLflow as a pytorch-flavour model.

A `Serving` says how to save one: the wrapped network, an example input, which input dimensions
vary, and the format. torch.export's `pt2` is the default because loading it unpickles nothing;
Faster R-CNN cannot be exported (its proposal filtering and NMS have data-dependent shapes), so
detection is saved in MLflow's pickle format, which MLflow loads only when a user allows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

# Torchvision's ImageNet statistics: segmentation data is normalised with them before the network.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Serving:
    """A network ready to save. `inputs` names each input with its dtype and its shape, -1 where a
    dimension varies; `example` holds one tensor per input (batch 2, so the batch stays dynamic)."""

    model: nn.Module
    inputs: tuple[tuple[str, torch.dtype, tuple[int, ...]], ...]
    example: tuple[torch.Tensor, ...]
    output: tuple[str, torch.dtype, tuple[int, ...]]
    format: Literal["pt2", "pickle"] = "pt2"
    describes: str = ""


class SegmentationServing(nn.Module):
    """RGB images in [0, 1], (N, 3, H, W) -> per-class logits (N, C, H, W)."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network((images - self.mean) / self.std)["out"]


class DetectionServing(nn.Module):
    """RGB images in [0, 1], (N, 3, H, W) -> detections (N, D, 6): x1, y1, x2, y2 (pixels), score,
    COCO category id. Rows past an image's detections are zeros with category -1."""

    def __init__(self, network: nn.Module, label_to_cat: dict[int, int], detections: int):
        super().__init__()
        self.network, self.detections = network, detections
        lookup = torch.full((max(label_to_cat, default=0) + 1,), -1.0)
        for label, category in label_to_cat.items():
            lookup[int(label)] = float(category)
        self.register_buffer("categories", lookup)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = images.new_zeros((images.shape[0], self.detections, 6))
        out[..., 5] = -1
        for i, found in enumerate(self.network(list(images))):
            n = min(len(found["scores"]), self.detections)
            out[i, :n, :4] = found["boxes"][:n]
            out[i, :n, 4] = found["scores"][:n]
            out[i, :n, 5] = self.categories[found["labels"][:n]]
        return out


class TranslationServing(nn.Module):
    """Token ids of the shared vocabulary: source (N, S) and target so far, starting with BOS
    (N, T) -> next-token logits at every target position (N, T, V). Decode greedily or by beam
    from them; the vocabulary's sentencepiece model stays with the training's out_dir."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.network(src, tgt_in)
