"""Dynamic convolution (Wu et al. 2019): a per-position kernel predicted from the query's content.

Channels are split into heads that share one kernel; the kernel is softmax-normalised over its
window and regularised by weight dropout (DropConnect on the normalised weights). The 1-D form
follows the paper's block (input projection with GLU, dynamic conv, output projection) and has
a causal variant for decoders; the 2-D form uses a K x K window and a 1x1 output projection so
it can stand in for a 3x3 conv, stride and dilation included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .deformable import conv_output_shape
from .options import reject_memory, require
from .registry import builtin


def _check(channels: int, num_heads: int, kernel_size: int, weight_dropout: float) -> None:
    require(
        num_heads >= 1 and channels % num_heads == 0,
        f"num_heads={num_heads} must divide channels={channels}; pick a divisor of {channels}",
    )
    require(kernel_size >= 1, f"kernel_size must be >= 1, got {kernel_size}")
    require(0.0 <= weight_dropout < 1.0, f"weight_dropout must be in [0, 1), got {weight_dropout}")


@builtin("dynamic", kind="conv", dim=1)
class DynamicConv1d(nn.Module):
    """(N, T, C) -> (N, T, C): GLU input projection, dynamic K-tap conv per head, output projection."""

    def __init__(
        self,
        channels: int,
        num_heads: int = 8,
        kernel_size: int = 7,
        weight_dropout: float = 0.0,
        causal: bool = False,
    ):
        super().__init__()
        _check(channels, num_heads, kernel_size, weight_dropout)
        require(
            causal or kernel_size % 2 == 1,
            f"kernel_size={kernel_size} must be odd for a centred window (or set causal)",
        )
        self.channels, self.num_heads, self.kernel_size = channels, num_heads, kernel_size
        self.weight_dropout, self.causal = weight_dropout, causal
        self.in_proj = nn.Linear(channels, 2 * channels)
        self.kernel = nn.Linear(channels, num_heads * kernel_size)
        self.out_proj = nn.Linear(channels, channels)

    def forward(
        self,
        x: torch.Tensor,
        memory=None,
        key_padding_mask: torch.Tensor | None = None,
        query_offset: int = 0,
    ) -> torch.Tensor:
        reject_memory("dynamic convolution", memory, query_offset)
        n, t, c = x.shape
        h, k = self.num_heads, self.kernel_size
        u = F.glu(self.in_proj(x), dim=-1)
        if key_padding_mask is not None:
            u = u.masked_fill(key_padding_mask[..., None], 0.0)
        weights = torch.softmax(self.kernel(u).view(n, t, h, k).float(), dim=-1).to(u.dtype)
        weights = F.dropout(weights, self.weight_dropout, self.training)
        left = k - 1 if self.causal else k // 2
        windows = F.pad(u, (0, 0, left, k - 1 - left)).unfold(1, k, 1)  # (N, T, C, K)
        out = torch.einsum("nthck,nthk->nthc", windows.reshape(n, t, h, c // h, k), weights)
        return self.out_proj(out.reshape(n, t, c))

    def flops(self, shape: tuple[int, ...]) -> int:
        n, t, c = shape
        h, k = self.num_heads, self.kernel_size
        return 2 * n * t * c * (2 * c + h * k + c) + 2 * n * t * c * k


@builtin("dynamic", kind="conv", dim=2)
class DynamicConv2d(nn.Module):
    """(N, C, H, W) -> (N, C, H', W'): per-position K x K kernels per head, then a 1x1 projection."""

    def __init__(
        self,
        channels: int,
        num_heads: int = 8,
        kernel_size: int = 3,
        weight_dropout: float = 0.0,
        stride: int = 1,
        dilation: int = 1,
    ):
        super().__init__()
        _check(channels, num_heads, kernel_size, weight_dropout)
        require(kernel_size % 2 == 1, f"kernel_size={kernel_size} must be odd for a centred window")
        self.channels, self.num_heads, self.kernel_size = channels, num_heads, kernel_size
        self.weight_dropout, self.stride, self.dilation = weight_dropout, stride, dilation
        self.padding = dilation * (kernel_size - 1) // 2
        self.kernel = nn.Conv2d(channels, num_heads * kernel_size * kernel_size, 1, stride=stride)
        self.out_proj = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        h, kk = self.num_heads, self.kernel_size**2
        logits = self.kernel(x)  # (N, heads*K*K, H', W')
        ho, wo = logits.shape[2:]
        weights = torch.softmax(logits.view(n, h, kk, ho * wo).float(), dim=2).to(x.dtype)
        weights = F.dropout(weights, self.weight_dropout, self.training)
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        cols = cols.view(n, h, c // h, kk, ho * wo)
        out = torch.einsum("nhckl,nhkl->nhcl", cols, weights).reshape(n, c, ho, wo)
        return self.out_proj(out)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return conv_output_shape(shape, self.kernel_size, self.stride, self.padding, self.dilation)

    def flops(self, shape: tuple[int, ...]) -> int:
        n, c, ho, wo = self.output_shape(shape)
        kk = self.kernel_size**2
        return 2 * n * ho * wo * (c * self.num_heads * kk + c * kk + c * c)
