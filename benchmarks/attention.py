"""Generalized attention at the study's res4 setting: ours vs mmcv's GeneralizedAttention.

Forward + backward time (median of --reps after a warm-up) and peak memory, same process,
same weights (ours is built with from_mmcv) and same inputs. Prints a table of ratios.

    python benchmarks/attention.py                    # CPU, res4: 2 x 256 x 50 x 84
    python benchmarks/attention.py --device cuda      # GPU (timed with synchronisation)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from attnlab.lightning_modules.attention import GeneralizedAttention2d, from_mmcv
from attnlab.pipeline.attention_table import format_rows
from attnlab.pipeline.memory import peak_memory_bytes

MMCV_CODES = ["1111", "1000", "0010", "0001"]
OURS_ONLY = ["0100"]  # mmcv is wrong for E2 without E4 (docs/study.md)


def _step(module, x):
    module.zero_grad(set_to_none=True)
    x.grad = None
    module(x).square().mean().backward()


def _time(module, x, reps: int, device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    _step(module, x)
    sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        _step(module, x)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(module, x, reps, device):
    seconds = _time(module, x, reps, device)
    peak = peak_memory_bytes(lambda: _step(module, x), device, [module])
    return seconds, peak


def _modules(code: str, args, device):
    """(ours, mmcv or None) with identical weights and gamma = 1 so every term matters."""
    kw = dict(num_heads=args.heads, kv_stride=args.kv_stride)
    if code in OURS_ONLY:
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
    parser.add_argument("--codes", nargs="+", default=MMCV_CODES + OURS_ONLY)
    parser.add_argument("--shape", type=int, nargs=4, default=(2, 256, 50, 84))
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-stride", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    args.channels = args.shape[1]
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(*args.shape, device=device, requires_grad=True)
    rows = []
    for code in args.codes:
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
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine()
    )
    print(
        f"res4 {tuple(args.shape)}, {args.heads} heads, kv_stride {args.kv_stride}, fwd+bwd, "
        f"median of {args.reps}; device {device} ({name}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}"
    )
    print(format_rows(rows))


if __name__ == "__main__":
    main()
