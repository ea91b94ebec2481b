"""Deformable convolution (v1, and v2 with a modulation mask) via torchvision's deform_conv2d.

Offsets (and masks) come from a zero-initialised conv on the same input, so a fresh module is
exactly the regular convolution (v1) or half of it (v2, sigmoid(0) = 0.5). The 1-D variant runs
the same op on a (N, C, 1, T) view; its causal form left-pads and caps each tap's offset so
that no sample point lies after the current position.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from .options import reject_memory, require
from .registry import builtin


def conv_output_shape(shape, kernel: int, stride: int, padding: int, dilation: int) -> tuple[int, ...]:
    """(N, C, H', W') of a square conv applied to `shape`."""
    n, c, h, w = shape
    size = lambda s: (s + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1  # noqa: E731
    return (n, c, size(h), size(w))


class _DeformBase(nn.Module):
    def __init__(
        self, in_channels: int, kernel: tuple[int, int], modulated: bool, deform_groups: int, bias: bool
    ):
        super().__init__()
        require(kernel[0] >= 1 and kernel[1] >= 1, f"kernel_size must be >= 1, got {kernel}")
        require(
            deform_groups >= 1 and in_channels % deform_groups == 0,
            f"deform_groups={deform_groups} must divide channels={in_channels}",
        )
        self.modulated, self.deform_groups, self.kernel = modulated, deform_groups, kernel
        self.weight = nn.Parameter(torch.empty(in_channels, in_channels, *kernel))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(in_channels)) if bias else None
        self.taps = kernel[0] * kernel[1]

    def _offset_channels(self) -> int:
        return self.deform_groups * self.taps * (3 if self.modulated else 2)

    def _split(self, raw: torch.Tensor):
        """Raw predictor output -> (offsets (N, 2*G*K, ...), mask or None)."""
        n_off = 2 * self.deform_groups * self.taps
        mask = torch.sigmoid(raw[:, n_off:]) if self.modulated else None
        return raw[:, :n_off], mask

    def conv_flops(self, n: int, out_positions: int) -> int:
        c_out, c_in = self.weight.shape[:2]
        return 2 * n * out_positions * c_out * c_in * self.taps


@builtin("deform", kind="conv", dim=2, modulated=False)
@builtin("deform2", kind="conv", dim=2, modulated=True)
class DeformConv2d(_DeformBase):
    """Deformable 3x3 (by default) conv, channels -> channels, stride and dilation as a regular conv."""

    def __init__(
        self,
        channels: int,
        modulated: bool = False,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
    ):
        super().__init__(channels, (kernel_size, kernel_size), modulated, deform_groups, bias)
        self.stride, self.dilation, self.padding = stride, dilation, dilation * (kernel_size - 1) // 2
        self.offset = nn.Conv2d(
            channels,
            self._offset_channels(),
            kernel_size,
            stride=stride,
            padding=self.padding,
            dilation=dilation,
            bias=True,
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset, mask = self._split(self.offset(x))
        with torch.autocast(x.device.type, enabled=False):
            dtype = self.weight.dtype
            return deform_conv2d(
                x.to(dtype),
                offset.to(dtype),
                self.weight,
                self.bias,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                mask=None if mask is None else mask.to(dtype),
            )

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return conv_output_shape(shape, self.kernel[0], self.stride, self.padding, self.dilation)

    def flops(self, shape: tuple[int, ...]) -> int:
        n, c, ho, wo = self.output_shape(shape)
        pred = 2 * n * ho * wo * self.offset.out_channels * c * self.taps
        return pred + self.conv_flops(n, ho * wo)


@builtin("deform", kind="conv", dim=1, modulated=False)
@builtin("deform2", kind="conv", dim=1, modulated=True)
class DeformConv1d(_DeformBase):
    """Deformable conv over (N, T, C) sequences; output (N, T, C). Causal never reads the future."""

    def __init__(
        self,
        channels: int,
        modulated: bool = False,
        kernel_size: int = 3,
        deform_groups: int = 1,
        bias: bool = True,
        causal: bool = False,
    ):
        super().__init__(channels, (1, kernel_size), modulated, deform_groups, bias)
        require(
            causal or kernel_size % 2 == 1,
            f"kernel_size={kernel_size} must be odd for a centred window (or set causal)",
        )
        self.causal, self.kernel_size = causal, kernel_size
        # 1-D predicts only x offsets (G*K) and, for v2, masks (G*K).
        self.offset = nn.Conv1d(
            channels, self.deform_groups * kernel_size * (2 if modulated else 1), kernel_size
        )
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        # Largest forward shift each tap may take under causality: tap j sits K-1-j behind "now".
        self.register_buffer(
            "max_shift", torch.arange(kernel_size - 1, -1, -1, dtype=torch.float32), persistent=False
        )

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        return F.pad(x, (k - 1, 0) if self.causal else (k // 2, k // 2))

    def forward(
        self,
        x: torch.Tensor,
        memory=None,
        key_padding_mask: torch.Tensor | None = None,
        query_offset: int = 0,
    ) -> torch.Tensor:
        reject_memory("deformable convolution", memory, query_offset)
        if key_padding_mask is not None:
            x = x.masked_fill(key_padding_mask[..., None], 0.0)
        seq = self._pad(x.transpose(1, 2))  # (N, C, T + K - 1)
        n, t = x.shape[0], x.shape[1]
        g, k = self.deform_groups, self.kernel_size
        raw = self.offset(seq)  # (N, G*K*(1|2), T)
        dx = raw[:, : g * k].view(n, g, k, t)
        if self.causal:
            dx = torch.minimum(dx, self.max_shift.to(dx.dtype)[None, None, :, None])
        offset = torch.stack((torch.zeros_like(dx), dx), dim=3).view(n, 2 * g * k, 1, t)
        mask = torch.sigmoid(raw[:, g * k :]).view(n, g * k, 1, t) if self.modulated else None
        with torch.autocast(x.device.type, enabled=False):
            dtype = self.weight.dtype
            out = deform_conv2d(
                seq[:, :, None].to(dtype),
                offset.to(dtype),
                self.weight,
                self.bias,
                mask=None if mask is None else mask.to(dtype),
            )
        return out[:, :, 0].transpose(1, 2)

    def flops(self, shape: tuple[int, ...]) -> int:
        n, t, c = shape
        return 2 * n * t * self.offset.out_channels * c * self.kernel_size + self.conv_flops(n, t)
