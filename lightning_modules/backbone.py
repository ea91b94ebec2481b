"""ResNet backbones (18, 50, 101) with an attention spec slotted into their blocks.

Placement follows the study by default: the attention module goes after the 3x3 conv + BN +
ReLU of every block in res4 and res5 (before the last 1x1 conv), and a spec's convolution
(deform, dynamic) replaces that 3x3 conv in res3-res5. The backbone asks the factory for the
parts and never looks at which mechanism it got. Stage names follow the paper: res2..res5 are
torchvision's layer1..layer4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import torch
from torch import nn
from torchvision.models import resnet
from torchvision.ops import FrozenBatchNorm2d

from attnlab.lightning_modules.attention import build_attention_parts, options_for, placed_modules

STAGES = ("res2", "res3", "res4", "res5")
LAYERS = dict(zip(STAGES, ("layer1", "layer2", "layer3", "layer4")))
DEPTHS = {18: resnet.resnet18, 50: resnet.resnet50, 101: resnet.resnet101}
Position = Literal["after_conv2", "after_block"]


def _spatial_width(block: nn.Module) -> int:
    """Channels of the slot's 3x3 conv (conv2 in both block types; read from bn2, since the
    conv itself may have been replaced). A BasicBlock's conv2 is the one that keeps its
    channel count, so a channels -> channels mechanism can replace it."""
    return _channels(block.bn2)


def _channels(norm: nn.Module) -> int:
    """Channels of a BatchNorm2d or a FrozenBatchNorm2d (which has no `num_features`)."""
    return norm.weight.shape[0]


def _bottleneck_forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.attention(self.relu(self.bn2(self.conv2(out))))
    out = self.bn3(self.conv3(out))
    return self.block_attention(self.relu(out + identity))


def _basic_forward(self, x):
    """ResNet-18 has no 3x3 conv + BN + ReLU before a 1x1: the slot follows conv2 + BN."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.attention(self.bn2(self.conv2(out)))
    return self.block_attention(self.relu(out + identity))


class AttentionBottleneck(resnet.Bottleneck):
    """torchvision's Bottleneck with two attention slots (same state-dict keys plus the slots)."""

    forward = _bottleneck_forward


class AttentionBasicBlock(resnet.BasicBlock):
    forward = _basic_forward


_BLOCK_CLASS = {resnet.Bottleneck: AttentionBottleneck, resnet.BasicBlock: AttentionBasicBlock}


def _dilate(layer: nn.Sequential, dilation: int) -> None:
    """Turn a strided stage into a dilated one (output stride kept), for any block type."""
    for block in layer:
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)


def _norm_layer(norm: str):
    return {"bn": nn.BatchNorm2d, "frozen_bn": FrozenBatchNorm2d}[norm]


def stage_channels(model: resnet.ResNet) -> list[int]:
    """Output channels of res2..res5 (what an FPN takes)."""
    last = lambda layer: layer[-1].bn3 if isinstance(layer[-1], resnet.Bottleneck) else layer[-1].bn2  # noqa: E731
    return [_channels(last(getattr(model, LAYERS[s]))) for s in STAGES]


def load_pretrained(model: nn.Module, path: str | Path) -> None:
    """Load a torchvision ResNet state dict from a local file (weights_only: never pickled code).

    Keys of modules the factory placed may be missing (they start from their own init; a
    deformable conv keeps the 3x3 weights, since its weight key is the conv's).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"pretrained weights {p} not found; pass the path of a torchvision ResNet state dict"
        )
    state = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"pretrained weights {p} are not a state dict")
    state = state.get("state_dict", state)
    sites = tuple(f"{name}." for name in placed_modules(model))
    own = model.state_dict()
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith("fc.")
        and (k in own or not k.startswith(sites))
        and (k in own or not k.endswith("num_batches_tracked"))  # frozen BN keeps no such counter
    }
    unexpected = sorted(set(state) - set(own))
    missing = [k for k in own if k not in state and not k.startswith(sites) and not k.startswith("fc.")]
    if unexpected or missing:
        raise ValueError(
            f"pretrained weights {p} do not fit this ResNet (wrong depth?): "
            f"unexpected {unexpected[:3]}, missing {missing[:3]}"
        )
    model.load_state_dict(state, strict=False)


def build_resnet(
    depth: int,
    spec: str = "w/o",
    attention_stages: Sequence[str] = ("res4", "res5"),
    conv_stages: Sequence[str] = ("res3", "res4", "res5"),
    position: Position = "after_conv2",
    attention_options: Mapping[str, Any] | None = None,
    dilate_stages: Sequence[str] = (),
    norm: str = "bn",
    pretrained: str | None = None,
) -> resnet.ResNet:
    """A torchvision ResNet whose blocks carry `spec` as placed by the arguments."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth} is not available; choose one of {sorted(DEPTHS)}")
    model = DEPTHS[depth](weights=None, norm_layer=_norm_layer(norm))
    options = dict(attention_options or {})
    for stage in STAGES:
        layer = getattr(model, LAYERS[stage])
        if stage in dilate_stages:
            _dilate(layer, 2 ** (1 + list(dilate_stages).index(stage)))
        for block in layer:
            block.__class__ = _BLOCK_CLASS[type(block)]
            block.attention, block.block_attention = nn.Identity(), nn.Identity()
            if stage in conv_stages:
                _replace_conv(block, spec, options)
            if stage in attention_stages:
                _insert_attention(block, spec, position, options)
    if pretrained:
        load_pretrained(model, pretrained)
    return model


def _replace_conv(block, spec, options) -> None:
    """The spec's convolution (if any) takes the place of the block's 3x3 conv."""
    old = block.conv2
    shape = {"stride": old.stride[0], "dilation": old.dilation[0]}
    conv, _ = build_attention_parts(
        spec, _spatial_width(block), 2, **options_for(spec, 2, {**options, **shape})
    )
    if conv is not None:
        block.conv2 = conv


def _insert_attention(block, spec, position, options) -> None:
    if position == "after_conv2":
        channels, slot = _spatial_width(block), "attention"
    else:
        last_bn = block.bn3 if isinstance(block, resnet.Bottleneck) else block.bn2
        channels, slot = _channels(last_bn), "block_attention"
    _, attn = build_attention_parts(spec, channels, 2, **options_for(spec, 2, options))
    if attn is not None:
        setattr(block, slot, attn)
