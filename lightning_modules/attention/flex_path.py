"""The fused path for the table codes: logits q.k + Tx[q, kx] + Ty[q, ky] in one FlexAttention
kernel, its `score_mod` reading the per-axis tables (so gradients reach them through the
kernel), the (L, Hk*Wk) energy never in memory.

On CUDA it is what `impl="auto"` runs, compiled once per shape (FlexAttention is a template
that torch.compile fills in). Its forward also runs on a CPU, uncompiled, which is how CI checks
it against the direct form; its backward is CUDA's only, so training on a CPU takes the chunked
kernel of table_attention.py.
"""

from __future__ import annotations

import functools

import torch
from torch.nn.attention.flex_attention import flex_attention

from .options import require


@functools.cache
def _compiled_flex():
    return torch.compile(flex_attention)  # static first; a new shape recompiles it dynamic


def _flex(device: torch.device):
    return _compiled_flex() if device.type == "cuda" else flex_attention


def flex_table_attention(q, k, v, tx, ty):
    """softmax(q k^T + Tx + Ty) v, with table_attention's contract: q (B, L, d) or None (no content
    term), k (B, Hk*Wk, d) or None, v (B, Hk*Wk, dv), tx (B, L, Wk), ty (B, L, Hk); keys row-major
    over (Hk, Wk). Returns (B, L, dv) in v's dtype."""
    require(
        v.device.type == "cuda" or not (torch.is_grad_enabled() and _needs_grad(q, k, v, tx, ty)),
        "impl='flex' trains on CUDA only (FlexAttention has no CPU backward); "
        "on a CPU use impl='auto' (the chunked table kernel) or run under torch.no_grad()",
    )
    wk = tx.shape[-1]
    if q is None:  # position terms only: the q.k score is zero, the tables are the whole logit
        q = v.new_zeros(v.shape[0], tx.shape[1], v.shape[-1])
        k = v.new_zeros(v.shape[0], v.shape[1], v.shape[-1])
    q, k = q.to(v.dtype), k.to(v.dtype)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + tx[b, q_idx, kv_idx % wk] + ty[b, q_idx, kv_idx // wk]

    four_d = lambda t: t.unsqueeze(1)  # noqa: E731  (B, 1 head, ., .): each problem is its own batch
    out = _flex(v.device)(four_d(q), four_d(k), four_d(v), score_mod=score_mod, scale=1.0)
    return out.squeeze(1)


def _needs_grad(*tensors) -> bool:
    return any(t is not None and t.requires_grad for t in tensors)
