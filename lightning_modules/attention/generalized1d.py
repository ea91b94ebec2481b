"""Generalized attention on (N, T, C) sequences: the four E1-E4 terms with 1-D relative positions.

Every term is folded into one dot product so that torch's fused scaled_dot_product_attention
runs it (causal flag, padding masks, dropout included) without an energy or bias tensor:
E1+E3 is (q + u).k, and because R_{q-k} is sinusoidal, (q + v).W R_{q-k} splits by the angle
difference identities into a query feature times a key feature (positional.augmented_*).
The module returns the attention output; the Transformer layer adds its own residual.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .options import require
from .positional import augmented_key, augmented_query, frequencies, positions, relative_encoding
from .registry import builtin


@builtin("code", kind="attention", dim=1)
class GeneralizedAttention1d(nn.Module):
    """Multi-head attention with logits sum_j beta_j E_j / sqrt(d), optionally causal or windowed."""

    incremental = True  # one query at a time against the cached prefix (query_offset)

    def __init__(
        self,
        channels: int,
        code: str,
        num_heads: int = 8,
        position_embedding_dim: int = -1,
        position_magnitude: float = 1.0,
        wave_length: float = 10000.0,
        causal: bool = False,
        spatial_range: int = -1,
        dropout: float = 0.0,
        impl: str = "auto",
    ):
        super().__init__()
        require(
            num_heads >= 1 and channels % num_heads == 0,
            f"num_heads={num_heads} must divide channels={channels}; pick a divisor of {channels}",
        )
        require(impl in ("auto", "direct"), f"impl must be 'auto' or 'direct', got {impl!r}")
        require(0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got {dropout}")
        self.e1, self.e2, self.e3, self.e4 = (c == "1" for c in code)
        self.code, self.channels, self.num_heads = code, channels, num_heads
        self.head_dim = channels // num_heads
        pos_dim = position_embedding_dim if position_embedding_dim > 0 else self.head_dim
        if self.e2 or self.e4:
            require(pos_dim % 2 == 0, f"position_embedding_dim={pos_dim} must be even (sin and cos)")
        self.position_embedding_dim, self.position_magnitude, self.wave_length = (
            pos_dim,
            position_magnitude,
            wave_length,
        )
        self.causal, self.spatial_range, self.dropout, self.impl = causal, spatial_range, dropout, impl
        # E3 and E4 never look at the query: a module without E1 and E2 reads only the keys/memory.
        self.reads_query = self.e1 or self.e2
        self.query = nn.Linear(channels, channels) if self.reads_query else None
        self.key = nn.Linear(channels, channels) if self.e1 or self.e3 else None
        self.value = nn.Linear(channels, channels)
        # W_h of each head maps the pos_dim encoding to head_dim; stored as (heads, d, pos_dim).
        self.pos_proj = (
            nn.Parameter(torch.empty(num_heads, self.head_dim, pos_dim)) if self.e2 or self.e4 else None
        )
        bound = 1.0 / math.sqrt(self.head_dim)
        self.content_bias = (
            nn.Parameter(torch.empty(num_heads, self.head_dim).uniform_(-bound, bound)) if self.e3 else None
        )
        self.position_bias = (
            nn.Parameter(torch.empty(num_heads, self.head_dim).uniform_(-bound, bound)) if self.e4 else None
        )
        self.out_proj = nn.Linear(channels, channels)
        for m in (self.query, self.key, self.value, self.out_proj):
            if m is not None:
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        if self.pos_proj is not None:
            nn.init.normal_(self.pos_proj, std=1.0 / math.sqrt(pos_dim))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        n, length, _ = t.shape
        return t.view(n, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        query_offset: int = 0,
    ) -> torch.Tensor:
        """x: (N, T, C) queries; memory: (N, S, C) keys/values (default x);
        key_padding_mask: (N, S) bool, True marks padding; query_offset: position of x[:, 0]
        among the keys (incremental decoding). Returns (N, T, C)."""
        kv = x if memory is None else memory
        n, t, _ = x.shape
        s = kv.shape[1]
        if self.causal:
            require(
                memory is None or query_offset + t == s,
                "causal attention needs keys that end at the last query (query_offset + T == S)",
            )
        q = self._split(self.query(x)) if self.query is not None else None
        k = self._split(self.key(kv)) if self.key is not None else None
        v = self._split(self.value(kv))
        mask = self._mask(n, t, s, query_offset, key_padding_mask, x.device)
        qa, ka = self._augmented(q, k, n, t, s, query_offset, v.dtype, x.device)
        if self.impl == "direct":
            out = self._direct(q, k, v, t, s, query_offset, mask)
        else:
            out = F.scaled_dot_product_attention(
                qa,
                ka,
                v,
                attn_mask=mask,
                scale=1.0 / math.sqrt(self.head_dim),
                dropout_p=self.dropout if self.training else 0.0,
            )
        return self.out_proj(out.transpose(1, 2).reshape(n, t, self.channels))

    def _mask(self, n, t, s, offset, key_padding_mask, device):
        """Boolean keep-mask (N or 1, 1, T, S) from causality, window and padding; None if all keep."""
        keep = None
        if self.causal or self.spatial_range >= 0:
            qpos = torch.arange(t, device=device)[:, None] + offset
            kpos = torch.arange(s, device=device)[None, :]
            keep = torch.ones(t, s, dtype=torch.bool, device=device)
            if self.causal:
                keep &= kpos <= qpos
            if self.spatial_range >= 0:
                keep &= (kpos - qpos).abs() <= self.spatial_range
            keep = keep[None, None]
        if key_padding_mask is not None:
            require(
                key_padding_mask.shape == (n, s),
                f"key_padding_mask must be (N, S)=({n}, {s}), got {tuple(key_padding_mask.shape)}",
            )
            pad_keep = ~key_padding_mask.bool()[:, None, None, :]
            keep = pad_keep if keep is None else keep & pad_keep
        return keep

    def _freqs_and_positions(self, t, s, offset, device):
        freqs = frequencies(self.position_embedding_dim // 2, self.wave_length, device)
        qpos = positions(t, 1, self.position_magnitude, device) + offset * self.position_magnitude
        kpos = positions(s, 1, self.position_magnitude, device)
        return freqs, qpos, kpos

    def _augmented(self, q, k, n, t, s, offset, dtype, device):
        """Query and key features whose dot product is the sum of the enabled terms."""
        qs, ks = [], []
        if self.e1:
            qs.append(q if self.content_bias is None else q + self.content_bias[:, None])
            ks.append(k)
        elif self.e3:
            qs.append(self.content_bias[None, :, None].expand(n, -1, t, -1).to(dtype))
            ks.append(k)
        if self.e2 or self.e4:
            if self.e2:
                g = q if self.position_bias is None else q + self.position_bias[:, None]
            else:
                g = self.position_bias[None, :, None].expand(n, -1, t, -1)
            coeff = torch.matmul(g.float(), self.pos_proj.float())  # (N, heads, T, pos_dim)
            freqs, qpos, kpos = self._freqs_and_positions(t, s, offset, device)
            qs.append(augmented_query(coeff, qpos, freqs).to(dtype))
            ks.append(augmented_key(kpos, freqs).to(dtype).expand(n, self.num_heads, s, -1))
        return torch.cat(qs, dim=-1), torch.cat(ks, dim=-1)

    def _direct(self, q, k, v, t, s, offset, keep):
        """Textbook form with the full (T, S) energy and explicit R_{q-k}; reference for tests."""
        n = v.shape[0]
        energy = torch.zeros(n, self.num_heads, t, s, device=v.device)
        if self.e1:
            energy += torch.einsum("nhtd,nhsd->nhts", q, k).float()
        if self.e3:
            energy += torch.einsum("hd,nhsd->nhs", self.content_bias, k).float()[:, :, None]
        if self.e2 or self.e4:
            freqs, qpos, kpos = self._freqs_and_positions(t, s, offset, v.device)
            rel = torch.einsum("tsp,hdp->htsd", relative_encoding(qpos, kpos, freqs), self.pos_proj.float())
            if self.e2:
                energy += torch.einsum("nhtd,htsd->nhts", q.float(), rel)
            if self.e4:
                energy += torch.einsum("hd,htsd->hts", self.position_bias.float(), rel)[None]
        energy = energy / math.sqrt(self.head_dim)
        if keep is not None:
            energy = energy.masked_fill(~keep, float("-inf"))
        return torch.matmul(torch.softmax(energy, dim=-1).to(v.dtype), v)

    def flops(self, shape: tuple[int, ...], memory_length: int | None = None) -> int:
        """Forward FLOPs (2 per MAC) of linears, position coefficients and fused attention."""
        n, t, c = shape
        s = t if memory_length is None else memory_length
        heads, d, p = self.num_heads, self.head_dim, self.position_embedding_dim
        total = 2 * n * s * c * c + 2 * n * t * c * c  # value, out_proj
        total += 2 * n * t * c * c if self.query is not None else 0
        total += 2 * n * s * c * c if self.key is not None else 0
        width = (d if self.e1 or self.e3 else 0) + (p if self.e2 or self.e4 else 0)
        if self.e2 or self.e4:
            total += 2 * n * heads * t * d * p
        return total + 2 * n * heads * t * s * (width + d)
