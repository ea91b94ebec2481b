"""Generalized attention at the study's res4 setting: ours vs mmcv's GeneralizedAttention.

Forward + backward time (median of --reps after a warm-up; CUDA events on a GPU) and peak
memory, same process, same weights (ours is built with from_mmcv) and same inputs. Prints a
table of ratios: against mmcv, and against 1000 (content only: torch's fused SDPA) when it is
timed. Without mmcv installed, ours alone.

    python benchmarks/attention.py                         # CPU, res4: 2 x 256 x 50 x 84
    python benchmarks/attention.py --device cuda --codes all   # GPU, every code
"""

from __future__ import annotations

import argparse
import importlib.util
import platform

import torch

from attnlab.lightning_modules.attention import GeneralizedAttention2d, all_codes, from_mmcv
from attnlab.pipeline.costs.attention_table import format_rows
from attnlab.pipeline.costs.timing import median_seconds, peak_memory_bytes

MMCV_CODES = ["1111", "1000", "0010", "0001"]
OURS_ONLY = ["0100"]  # mmcv is wrong for E2 without E4 (docs/study.md)
HAVE_MMCV = importlib.util.find_spec("mmcv") is not None


def _step(module, x):
    module.zero_grad(set_to_none=True)
    x.grad = None
    module(x).square().mean().backward()


def _measure(module, x, reps, device):
    seconds = median_seconds(lambda: _step(module, x), device, reps, warmup=1)
    peak = peak_memory_bytes(lambda: _step(module, x), device, [module])
    return seconds, peak


def _modules(code: str, args, device):
    """(ours, mmcv or None) with identical weights and gamma = 1 so every term matters."""
    kw = dict(num_heads=args.heads, kv_stride=args.kv_stride)
    if code not in MMCV_CODES or not HAVE_MMCV:
        ours, theirs = GeneralizedAttention2d(args.channels, code, **kw), None
    else:
        from mmcv.cnn import GeneralizedAttention

        theirs = GeneralizedAttention(args.channels, attention_type=code, **kw)
        ours = from_mmcv(theirs)
    for m in (ours, theirs):
        if m is not None:
            with torch.no_grad():
                m.gamma.fill_(1.0)
    return ours.to(device), (theirs.to(device) if theirs is not None else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--codes", nargs="+", default=MMCV_CODES + OURS_ONLY, help="codes, or 'all'")
    parser.add_argument("--shape", type=int, nargs=4, default=(2, 256, 50, 84))
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-stride", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    args.channels = args.shape[1]
    codes = all_codes() if args.codes == ["all"] else args.codes
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(*args.shape, device=device, requires_grad=True)
    rows = []
    for code in codes:
        ours, theirs = _modules(code, args, device)
        t_ours, m_ours = _measure(ours, x, args.reps, device)
        row = {"code": code, "ours_s": t_ours, "ours_MiB": m_ours / 2**20}
        if theirs is not None:
            t_mmcv, m_mmcv = _measure(theirs, x, args.reps, device)
            row.update(
                mmcv_s=t_mmcv, mmcv_MiB=m_mmcv / 2**20, speedup=t_mmcv / t_ours, memory_ratio=m_ours / m_mmcv
            )
        else:
            row.update(mmcv_s="-", mmcv_MiB="-", speedup="-", memory_ratio="-")
        rows.append(row)
        del ours, theirs
    sdpa = next((r["ours_s"] for r in rows if r["code"] == "1000"), None)
    for r in rows:
        r["vs_1000"] = r["ours_s"] / sdpa if sdpa else "-"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(
        f"res4 {tuple(args.shape)}, {args.heads} heads, kv_stride {args.kv_stride}, fwd+bwd, "
        f"median of {args.reps}; device {device} ({name}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}{'' if HAVE_MMCV else '; mmcv not installed: ours only'}"
    )
    print(format_rows(rows))


if __name__ == "__main__":
    main()
