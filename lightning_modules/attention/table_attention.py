"""Softmax attention whose logits are  q.k  +  Tx[q, kx]  +  Ty[q, ky]  over a (ky, kx) key grid.

Every 2-D code with a position term (E2 or E4) or a local window has this shape: the
relative-position logits are separable into an x table and a y table (docs/study.md), each only
(L, W_kv) or (L, H_kv). The kernel walks query chunks, so the (L, H_kv*W_kv) energy exists
only one chunk at a time, and its backward recomputes the chunk from the saved log-sum-exp
(the flash-attention recipe) instead of keeping softmax weights for the whole map.
"""

from __future__ import annotations

import torch

# Rows per chunk are picked so one chunk's logits take about this many elements.
CHUNK_ELEMENTS = 1 << 21


def _rows_per_chunk(batch: int, keys: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, batch * keys))


def _chunk_logits(q, k, tx, ty, s, e):
    """fp32 logits of query rows [s, e): (B, e-s, Hk*Wk)."""
    b, wk, hk = tx.shape[0], tx.shape[-1], ty.shape[-1]
    logits = tx[:, s:e, None, :].float() + ty[:, s:e, :, None].float()
    if q is not None:
        logits = logits + torch.bmm(q[:, s:e], k.transpose(1, 2)).float().view(b, e - s, hk, wk)
    return logits.view(b, e - s, hk * wk)


class _TableAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, tx, ty):
        with torch.autocast(v.device.type, enabled=False):
            b, length = tx.shape[:2]
            out = v.new_empty(b, length, v.shape[-1])
            lse = torch.empty(b, length, device=v.device, dtype=torch.float32)
            step = _rows_per_chunk(b, v.shape[1])
            for s in range(0, length, step):
                e = min(length, s + step)
                logits = _chunk_logits(q, k, tx, ty, s, e)
                lse[:, s:e] = torch.logsumexp(logits, dim=-1)
                prob = torch.exp(logits - lse[:, s:e, None])
                out[:, s:e] = torch.bmm(prob.to(v.dtype), v)
        ctx.save_for_backward(q, k, v, tx, ty, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, tx, ty, out, lse = ctx.saved_tensors
        with torch.autocast(v.device.type, enabled=False):
            b, length = tx.shape[:2]
            hk, wk = ty.shape[-1], tx.shape[-1]
            grad_out = grad_out.to(v.dtype)
            delta = (grad_out.float() * out.float()).sum(-1)
            dv = torch.zeros(v.shape, device=v.device, dtype=torch.float32)
            dq = torch.zeros(q.shape, device=q.device, dtype=torch.float32) if q is not None else None
            dk = torch.zeros(k.shape, device=k.device, dtype=torch.float32) if k is not None else None
            dtx = torch.empty(tx.shape, device=tx.device, dtype=torch.float32)
            dty = torch.empty(ty.shape, device=ty.device, dtype=torch.float32)
            step = _rows_per_chunk(b, v.shape[1])
            for s in range(0, length, step):
                e = min(length, s + step)
                prob = torch.exp(_chunk_logits(q, k, tx, ty, s, e) - lse[:, s:e, None])
                g = grad_out[:, s:e]
                dv += torch.bmm(prob.transpose(1, 2).to(v.dtype), g).float()
                dprob = torch.bmm(g, v.transpose(1, 2)).float()
                dlogits = prob * (dprob - delta[:, s:e, None])
                grid = dlogits.view(b, e - s, hk, wk)
                dtx[:, s:e] = grid.sum(2)
                dty[:, s:e] = grid.sum(3)
                if q is not None:
                    dl = dlogits.to(q.dtype)
                    dq[:, s:e] = torch.bmm(dl, k).float()
                    dk += torch.bmm(dl.transpose(1, 2), q[:, s:e]).float()
        cast = lambda g, ref: None if g is None else g.to(ref.dtype)  # noqa: E731
        return cast(dq, q), cast(dk, k), dv.to(v.dtype), dtx.to(tx.dtype), dty.to(ty.dtype)


def table_attention(q, k, v, tx, ty):
    """softmax(q k^T + Tx + Ty) v for B = batch*heads independent problems.

    q: (B, L, d) or None (no content term), k: (B, Hk*Wk, d) or None, v: (B, Hk*Wk, dv),
    tx: (B, L, Wk), ty: (B, L, Hk); keys are laid out row-major over the (Hk, Wk) grid.
    Returns (B, L, dv) in v's dtype; softmax runs in fp32. Under autocast the inputs can arrive
    in mixed precisions (a bf16 conv output plus an fp32 bias), so q and k follow v's dtype.
    """
    same = lambda t: None if t is None else t.to(v.dtype)  # noqa: E731
    return _TableAttention.apply(same(q), same(k), v, tx, ty)


def separable_attention(ax, ay, key_logits, v):
    """Query-content-free attention in O(HW): softmax(ax[qx, kx] + ay[qy, ky] + c[k]) v.

    exp of the logit factorises into exp(ay) exp(ax) exp(c), so the weighted sum is two small
    matmuls over the key grid instead of one over all (query, key) pairs.
    ax: (B, W, Wk) or None, ay: (B, H, Hk) or None, key_logits: (B, Hk, Wk) or None,
    v: (B, Hk, Wk, dv). Returns (B, H, W, dv) in fp32 (broadcast sizes 1 where a table is None).
    """
    v = v.float()
    b, hk, wk, dv = v.shape
    ones = torch.ones(b, hk, wk, 1, device=v.device)
    weighted = torch.cat((v, ones), dim=-1)
    if key_logits is not None:
        c = key_logits.float()
        c = torch.exp(c - c.amax(dim=(1, 2), keepdim=True))
        weighted = weighted * c[..., None]
    if ax is None:
        rows = weighted.sum(2, keepdim=True)  # (B, Hk, 1, dv+1)
    else:
        px = torch.softmax(ax.float(), dim=-1)
        rows = torch.einsum("bxk,byki->byxi", px, weighted)  # (B, Hk, W, dv+1)
    if ay is None:
        total = rows.sum(1, keepdim=True)
    else:
        py = torch.softmax(ay.float(), dim=-1)
        total = torch.einsum("byk,bkxi->byxi", py, rows)  # (B, H, W, dv+1)
    return total[..., :dv] / total[..., dv:].clamp_min(torch.finfo(torch.float32).tiny)
