"""Sinusoidal relative-position encodings R(q-k) (docs/study.md), shared by the 1-D and 2-D modules.

Conventions follow the reference implementation so that converted weights give the same
numbers: the offset is (query position - key position) * magnitude, positions are indices
times the q / kv strides, and a D-dim encoding of one axis is [sin(d*f), cos(d*f)] over
D/2 frequencies f_j = wave_length ** (-2j / D).
"""

from __future__ import annotations

import torch


def frequencies(num_freqs: int, wave_length: float, device, dtype=torch.float32) -> torch.Tensor:
    """f_j = wave_length ** (-j / num_freqs), j < num_freqs (mmcv's dim_mat, inverted)."""
    j = torch.arange(num_freqs, device=device, dtype=torch.float64)
    return (float(wave_length) ** (-j / num_freqs)).to(dtype)


def positions(length: int, stride: int, magnitude: float, device) -> torch.Tensor:
    """Pixel (or token) coordinates of `length` samples taken every `stride`, times magnitude."""
    return torch.arange(length, device=device, dtype=torch.float32) * (stride * magnitude)


def relative_encoding(q_pos: torch.Tensor, k_pos: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """(Lq, Lk, 2F) table [sin((q-k) f), cos((q-k) f)] for one axis."""
    angle = (q_pos[:, None, None] - k_pos[None, :, None]) * freqs
    return torch.cat((angle.sin(), angle.cos()), dim=-1)


def augmented_query(coeff: torch.Tensor, q_pos: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Query half of the factorised position logit.

    With coeff = [g_s, g_c] (the sin and cos coefficients of a logit g . R(q-k)), the angle
    difference identities give g . R(q-k) = augmented_query(g, q) . augmented_key(k), so a
    relative-position term becomes one more slice of an ordinary dot product.
    coeff: (..., Lq, 2F), q_pos: (Lq,), returns (..., Lq, 2F).
    """
    g_s, g_c = coeff.chunk(2, dim=-1)
    angle = q_pos[:, None] * freqs
    sin, cos = angle.sin(), angle.cos()
    return torch.cat((g_s * sin + g_c * cos, g_c * sin - g_s * cos), dim=-1)


def augmented_key(k_pos: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Key half of the factorised position logit: (Lk, 2F) = [cos(k f), sin(k f)]."""
    angle = k_pos[:, None] * freqs
    return torch.cat((angle.cos(), angle.sin()), dim=-1)
