"""Generalized (Transformer) attention on (N, C, H, W) feature maps: any of the 15 E1-E4 codes.

Three execution paths, picked from the code, never by materialising the full energy:
- no query-dependent term (0010, 0001, 0011): `separable_attention`, O(HW);
- content terms only (1000, 1010): torch's fused scaled_dot_product_attention;
- anything with a position term or a local window: logits q.k + Tx + Ty whose E2/E4 terms are
  per-axis tables of size (L, W_kv) and (L, H_kv), in one FlexAttention kernel on CUDA
  (`flex_path`) and in the chunked kernel of `table_attention` on a CPU.
`impl` picks: "auto" (the above), "tables" or "flex" (that kernel on any device; flex trains on
CUDA only), "direct" (the textbook form with the whole energy, a reference for tests).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .flex_path import flex_table_attention
from .options import require
from .positional import frequencies, positions, relative_encoding
from .registry import builtin
from .table_attention import separable_attention, table_attention

IMPLS = ("auto", "tables", "flex", "direct")


def _subsample(x: torch.Tensor, stride: int) -> torch.Tensor:
    return x if stride == 1 else x[:, :, ::stride, ::stride]


def _kaiming(weight: torch.Tensor) -> None:
    nn.init.kaiming_uniform_(weight, a=1, mode="fan_in", nonlinearity="leaky_relu")


@builtin("code", kind="attention", dim=2)
class GeneralizedAttention2d(nn.Module):
    """y = x + gamma * proj(softmax(sum_j beta_j E_j) V), gamma initialised to 0."""

    def __init__(
        self,
        channels: int,
        code: str,
        num_heads: int = 8,
        kv_stride: int = 2,
        q_stride: int = 1,
        spatial_range: int = -1,
        position_embedding_dim: int = -1,
        position_magnitude: float = 1.0,
        wave_length: float = 1000.0,
        impl: str = "auto",
    ):
        super().__init__()
        require(
            num_heads >= 1 and channels % num_heads == 0,
            f"num_heads={num_heads} must divide channels={channels}; pick a divisor of {channels}",
        )
        require(
            kv_stride >= 1 and q_stride >= 1,
            f"kv_stride and q_stride must be >= 1, got {kv_stride}, {q_stride}",
        )
        require(
            spatial_range < 0 or spatial_range >= kv_stride - 1,
            f"spatial_range={spatial_range} can leave a query with no key at kv_stride={kv_stride}; "
            f"use spatial_range >= {kv_stride - 1} or -1 (no window)",
        )
        require(impl in IMPLS, f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
        pos_dim = position_embedding_dim if position_embedding_dim > 0 else channels
        self.e1, self.e2, self.e3, self.e4 = (c == "1" for c in code)
        if self.e2 or self.e4:
            require(
                pos_dim % 4 == 0,
                f"position_embedding_dim={pos_dim} must be a multiple of 4 (sin and cos for x and y)",
            )
        self.code, self.channels, self.num_heads = code, channels, num_heads
        self.head_dim = channels // num_heads
        self.kv_stride, self.q_stride, self.spatial_range = kv_stride, q_stride, spatial_range
        self.position_embedding_dim, self.position_magnitude, self.wave_length = (
            pos_dim,
            position_magnitude,
            wave_length,
        )
        self.impl = impl
        hd = self.head_dim * num_heads

        conv = lambda c_out, bias=False: nn.Conv2d(channels, c_out, 1, bias=bias)  # noqa: E731
        self.query = conv(hd) if self.e1 or self.e2 else None
        self.key = conv(hd) if self.e1 or self.e3 else None
        self.value = conv(hd)
        self.pos_x = nn.Linear(pos_dim // 2, hd, bias=False) if self.e2 or self.e4 else None
        self.pos_y = nn.Linear(pos_dim // 2, hd, bias=False) if self.e2 or self.e4 else None
        bound = 1.0 / math.sqrt(self.head_dim * 2)
        self.content_bias = nn.Parameter(torch.empty(hd).uniform_(-bound, bound)) if self.e3 else None
        self.position_bias = nn.Parameter(torch.empty(hd).uniform_(-bound, bound)) if self.e4 else None
        self.proj = nn.Conv2d(hd, channels, 1, bias=True)
        self.gamma = nn.Parameter(torch.zeros(1))
        for m in (self.query, self.key, self.value, self.pos_x, self.pos_y, self.proj):
            if m is not None:
                _kaiming(m.weight)
        nn.init.zeros_(self.proj.bias)

    # ----- geometry -------------------------------------------------------------------
    def _grid(self, size: int, q: bool, device) -> torch.Tensor:
        return positions(size, self.q_stride if q else self.kv_stride, 1.0, device)

    def _axis_features(self, linear: nn.Linear, nq: int, nk: int, dtype, device) -> torch.Tensor:
        """Per-axis position features R projected per head: (heads, nq, nk, d), divided by sqrt 2."""
        mag = self.position_magnitude
        freqs = frequencies(self.position_embedding_dim // 4, self.wave_length, device)
        enc = relative_encoding(
            self._grid(nq, True, device) * mag, self._grid(nk, False, device) * mag, freqs
        )
        feat = linear(enc.to(dtype)) / math.sqrt(2)
        return feat.view(nq, nk, self.num_heads, self.head_dim).permute(2, 0, 1, 3)

    def _window(self, nq: int, nk: int, device) -> torch.Tensor:
        """(nq, nk) additive mask: 0 inside |pos_q - pos_k| <= spatial_range, -inf outside."""
        dist = (self._grid(nq, True, device)[:, None] - self._grid(nk, False, device)[None, :]).abs()
        return torch.zeros_like(dist).masked_fill(dist > self.spatial_range, float("-inf"))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(N, heads*d, h, w) -> (N, heads, h*w, d)."""
        n, _, h, w = t.shape
        return t.view(n, self.num_heads, self.head_dim, h * w).transpose(-1, -2)

    def _bias(self, p: nn.Parameter | None) -> torch.Tensor | None:
        return None if p is None else p.view(self.num_heads, 1, self.head_dim)

    # ----- forward --------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, xkv = _subsample(x, self.q_stride), _subsample(x, self.kv_stride)
        n, _, h, w = xq.shape
        hk, wk = xkv.shape[2:]
        q = self._heads(self.query(xq)) if self.query is not None else None
        k = self._heads(self.key(xkv)) if self.key is not None else None
        v = self._heads(self.value(xkv))
        px = py = None
        if self.e2 or self.e4:
            px = self._axis_features(self.pos_x, w, wk, v.dtype, x.device)
            py = self._axis_features(self.pos_y, h, hk, v.dtype, x.device)
        if self.impl == "direct":
            out = self._attend_direct(q, k, v, px, py, (h, w, hk, wk))
        elif not (self.e1 or self.e2):
            out = self._attend_separable(k, v, px, py, (h, w, hk, wk))
        elif not (self.e2 or self.e4) and self.spatial_range < 0:
            qc = q if self.content_bias is None else q + self._bias(self.content_bias)
            # The fused (flash) kernels need a contiguous last dim; otherwise torch falls back
            # to the math path, which materialises the whole energy.
            out = F.scaled_dot_product_attention(qc.contiguous(), k.contiguous(), v.contiguous(), scale=1.0)
        else:
            out = self._attend_tables(q, k, v, px, py, (h, w, hk, wk))
        oh, ow = (h, w) if out.shape[2] > 1 else (1, 1)
        out = self.proj(out.transpose(-1, -2).reshape(n, -1, oh, ow).to(self.proj.weight.dtype))
        if self.q_stride > 1 and (oh, ow) != (1, 1):
            out = F.interpolate(out, size=x.shape[2:], mode="bilinear", align_corners=False)
        return (self.gamma * out + x).to(x.dtype)

    def _position_logits_free(self, px, py, device, sizes):
        """E4 (and window) tables that do not depend on query content: (heads, w, wk), (heads, h, hk)."""
        h, w, hk, wk = sizes
        ax = ay = None
        if self.e4:
            vb = self._bias(self.position_bias)[:, None]  # (heads, 1, 1, d)
            ax = (px * vb).sum(-1)
            ay = (py * vb).sum(-1)
        if self.spatial_range >= 0:
            mx, my = self._window(w, wk, device), self._window(h, hk, device)
            ax = mx.expand(self.num_heads, w, wk) if ax is None else ax + mx
            ay = my.expand(self.num_heads, h, hk) if ay is None else ay + my
        return ax, ay

    def _attend_separable(self, k, v, px, py, sizes):
        h, w, hk, wk = sizes
        n, heads = v.shape[:2]
        ax, ay = self._position_logits_free(px, py, v.device, sizes)
        flat = lambda t, *shape: None if t is None else t.expand(n, heads, *shape).reshape(n * heads, *shape)  # noqa: E731
        c = None
        if self.e3:
            c = torch.matmul(k, self.content_bias.view(heads, self.head_dim, 1)).view(n * heads, hk, wk)
        out = separable_attention(flat(ax, w, wk), flat(ay, h, hk), c, v.reshape(n * heads, hk, wk, -1))
        return out.to(v.dtype).view(n, heads, -1, out.shape[-1])

    def _attend_tables(self, q, k, v, px, py, sizes):
        h, w, hk, wk = sizes
        n, heads, L = v.shape[0], v.shape[1], h * w
        qc = None
        if self.e1:
            qc = q if self.content_bias is None else q + self._bias(self.content_bias)
        elif self.e3:
            qc = self._bias(self.content_bias).expand(n, heads, L, self.head_dim)
        if self.e2:
            g = q if self.position_bias is None else q + self._bias(self.position_bias)
            g = g.view(n, heads, h, w, self.head_dim)
            tx = torch.einsum("nhyxd,hxkd->nhyxk", g, px)
            ty = torch.einsum("nhyxd,hykd->nhyxk", g, py)
            if self.spatial_range >= 0:
                tx = tx + self._window(w, wk, v.device)
                ty = ty + self._window(h, hk, v.device)[:, None]
        else:
            ax, ay = self._position_logits_free(px, py, v.device, sizes)
            zero = v.new_zeros(())
            tx = (zero if ax is None else ax[:, None]).expand(n, heads, h, w, wk)
            ty = (zero if ay is None else ay[:, :, None]).expand(n, heads, h, w, hk)
        B = n * heads
        flat = lambda t, last: None if t is None else t.reshape(B, -1, last)  # noqa: E731
        fused = self.impl == "flex" or (self.impl == "auto" and v.device.type == "cuda")
        out = (flex_table_attention if fused else table_attention)(
            flat(qc, self.head_dim),
            flat(k, self.head_dim),
            flat(v, self.head_dim),
            flat(tx, wk),
            flat(ty, hk),
        )
        return out.view(n, heads, L, -1)

    def _attend_direct(self, q, k, v, px, py, sizes):
        """Textbook form: every term as a full (L, Lk) energy; reference for tests only."""
        h, w, hk, wk = sizes
        n, heads = v.shape[:2]
        energy = v.new_zeros(n, heads, h, w, hk, wk, dtype=torch.float32)
        if self.e2 or self.e4:
            rel = px[:, None, :, None, :, :] + py[:, :, None, :, None, :]  # (heads, h, w, hk, wk, d)
        if self.e1:
            energy += torch.einsum("nhqd,nhkd->nhqk", q, k).float().view_as(energy)
        if self.e2:
            energy += torch.einsum("nhyxd,hyxabd->nhyxab", q.view(n, heads, h, w, -1), rel).float()
        if self.e3:
            energy += (
                torch.einsum("hd,nhkd->nhk", self.content_bias.view(heads, -1), k)
                .float()
                .view(n, heads, 1, 1, hk, wk)
            )
        if self.e4:
            energy += torch.einsum("hd,hyxabd->hyxab", self.position_bias.view(heads, -1), rel).float()[None]
        if self.spatial_range >= 0:
            energy += (
                self._window(h, hk, v.device)[:, None, :, None]
                + self._window(w, wk, v.device)[None, :, None, :]
            )
        attn = torch.softmax(energy.view(n, heads, h * w, hk * wk), dim=-1)
        return torch.matmul(attn.to(v.dtype), v)

    # ----- cost -----------------------------------------------------------------------
    def flops(self, shape: tuple[int, ...]) -> int:
        """Forward multiply-add FLOPs (2 per MAC) of matmuls and convs at input `shape`, as executed."""
        n, c, H, W = shape
        h, w = -(-H // self.q_stride), -(-W // self.q_stride)
        hk, wk = -(-H // self.kv_stride), -(-W // self.kv_stride)
        L, Lk, heads, d = h * w, hk * wk, self.num_heads, self.head_dim
        hd, B = heads * d, n * heads
        total = 2 * n * Lk * c * hd  # value
        total += 2 * n * L * c * hd if self.query is not None else 0
        total += 2 * n * Lk * c * hd if self.key is not None else 0
        if self.e2 or self.e4:
            total += 2 * (w * wk + h * hk) * (self.position_embedding_dim // 2) * hd
        if self.impl == "direct":
            return total + self._direct_flops(n, h, w, hk, wk) + 2 * n * L * hd * c
        if not (self.e1 or self.e2):
            total += 2 * B * Lk * d if self.e3 else 0
            if self.e4 or self.spatial_range >= 0:
                total += 2 * B * (hk * w * wk + h * hk * w) * (d + 1)
                out_positions = L
            else:
                out_positions = 1
            return total + 2 * n * out_positions * hd * c
        if self.e2:
            total += 2 * B * L * (wk + hk) * d
        if self.e1 or self.e3:
            total += 2 * B * L * Lk * d
        total += 2 * B * L * Lk * d  # softmax(...) @ V
        return total + 2 * n * L * hd * c

    def _direct_flops(self, n, h, w, hk, wk):
        heads, d = self.num_heads, self.head_dim
        L, Lk = h * w, hk * wk
        total = 2 * n * heads * L * Lk * d  # attn @ V
        total += 2 * n * heads * L * Lk * d if self.e1 else 0
        total += 2 * n * heads * L * Lk * d if self.e2 else 0
        total += 2 * n * heads * Lk * d if self.e3 else 0
        total += 2 * heads * L * Lk * d if self.e4 else 0
        return total
