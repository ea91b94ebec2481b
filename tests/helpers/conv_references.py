"""Independent references for the convolutions: deformable convolution as explicit bilinear
sampling (grid_sample, one tap at a time) and dynamic convolution as the formula written out,
tap by tap. Neither calls torchvision's deform_conv2d nor the modules' own forward."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def deform2d(module, x: torch.Tensor) -> torch.Tensor:
    """out[n, o, i, j] = sum_{c, tap} w[o, c, tap] * m * bilinear(x[n, c], p0 + p_tap + (dy, dx)).

    Offsets are laid out (dy, dx) per tap, taps row-major, deform groups outermost; a sample point
    outside the map reads zeros, as in the Deformable ConvNets papers."""
    n, c, h, w = x.shape
    k, s, d, pad, g = module.kernel[0], module.stride, module.dilation, module.padding, module.deform_groups
    raw = module.offset(x)
    ho, wo = raw.shape[2:]
    taps = k * k
    offsets = raw[:, : 2 * g * taps].view(n, g, taps, 2, ho, wo)
    mask = torch.sigmoid(raw[:, 2 * g * taps :]).view(n, g, taps, ho, wo) if module.modulated else None
    base_y = (torch.arange(ho) * s - pad).view(1, ho, 1).float()
    base_x = (torch.arange(wo) * s - pad).view(1, 1, wo).float()
    per_group = c // g
    out = torch.zeros(n, module.weight.shape[0], ho, wo)
    for group in range(g):
        xs = x[:, group * per_group : (group + 1) * per_group]
        for tap in range(taps):
            ki, kj = divmod(tap, k)
            py = base_y + ki * d + offsets[:, group, tap, 0]
            px = base_x + kj * d + offsets[:, group, tap, 1]
            grid = torch.stack((px / (w - 1) * 2 - 1, py / (h - 1) * 2 - 1), dim=-1)
            sampled = F.grid_sample(xs, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            if mask is not None:
                sampled = sampled * mask[:, group, tap][:, None]
            weight = module.weight[:, group * per_group : (group + 1) * per_group, ki, kj]
            out = out + torch.einsum("oc,nchw->nohw", weight, sampled)
    if module.bias is not None:
        out = out + module.bias.view(1, -1, 1, 1)
    return out


def deform1d(module, x: torch.Tensor) -> torch.Tensor:
    """(N, T, C): out[n, t] = sum_j W[:, :, j] @ lerp(x, t - left + j + dx_j), zeros outside;
    causal: left = K - 1 and no tap may move past t."""
    n, t, c = x.shape
    k, g = module.kernel_size, module.deform_groups
    left = k - 1 if module.causal else k // 2
    seq = F.pad(x.transpose(1, 2), (left, k - 1 - left))
    raw = module.offset(seq)
    dx = raw[:, : g * k].view(n, g, k, t)
    if module.causal:
        dx = torch.minimum(dx, torch.arange(k - 1, -1, -1.0).view(1, 1, k, 1))
    mask = torch.sigmoid(raw[:, g * k :]).view(n, g, k, t) if module.modulated else None
    per_group = c // g
    out = torch.zeros(n, module.weight.shape[0], t)
    positions = torch.arange(t).float()
    for group in range(g):
        xs = x[:, :, group * per_group : (group + 1) * per_group]  # (N, T, Cg)
        for j in range(k):
            p = positions - left + j + dx[:, group, j]  # (N, T)
            lo = p.floor()
            frac = p - lo
            sampled = 0
            for corner, share in ((lo, 1 - frac), (lo + 1, frac)):
                inside = (corner >= 0) & (corner <= t - 1)
                idx = corner.clamp(0, t - 1).long()
                vals = torch.gather(xs, 1, idx[..., None].expand(-1, -1, per_group))
                sampled = sampled + vals * (share * inside)[..., None]
            if mask is not None:
                sampled = sampled * mask[:, group, j][..., None]
            weight = module.weight[:, group * per_group : (group + 1) * per_group, 0, j]
            out = out + torch.einsum("oc,ntc->not", weight, sampled)
    if module.bias is not None:
        out = out + module.bias.view(1, -1, 1)
    return out.transpose(1, 2)


def dynamic2d(module, x: torch.Tensor) -> torch.Tensor:
    """out[n, c, i, j] = P @ sum_tap softmax_tap(L[n, head(c), :, i, j])
    * x[n, c, i*s + a*d - pad, j*s + b*d - pad], taps (a, b) row-major; P the 1x1 projection."""
    n, c, h, w = x.shape
    k, s, d, heads = module.kernel_size, module.stride, module.dilation, module.num_heads
    logits = module.kernel(x)
    ho, wo = logits.shape[2:]
    weights = torch.softmax(logits.view(n, heads, k * k, ho, wo), dim=2)
    padded = F.pad(x, (module.padding,) * 4)
    out = torch.zeros(n, c, ho, wo)
    per_head = c // heads
    for tap in range(k * k):
        a, b = divmod(tap, k)
        window = padded[:, :, a * d : a * d + (ho - 1) * s + 1 : s, b * d : b * d + (wo - 1) * s + 1 : s]
        out = out + window * weights[:, :, tap].repeat_interleave(per_head, dim=1)
    return F.conv2d(out, module.out_proj.weight)


def dynamic1d(module, x: torch.Tensor) -> torch.Tensor:
    """u = GLU(W_in x); out[n, t, c] = W_out(sum_j softmax_j(W_k u)[n, t, head(c), j]
    * u[n, t - left + j, c])."""
    n, t, c = x.shape
    k, heads = module.kernel_size, module.num_heads
    left = k - 1 if module.causal else k // 2
    u = F.glu(module.in_proj(x), dim=-1)
    weights = torch.softmax(module.kernel(u).view(n, t, heads, k), dim=-1)
    per_head = c // heads
    out = torch.zeros(n, t, c)
    for step in range(t):
        for j in range(k):
            src = step - left + j
            if 0 <= src < t:
                out[:, step] += u[:, src] * weights[:, step, :, j].repeat_interleave(per_head, dim=1)
    return module.out_proj(out)
