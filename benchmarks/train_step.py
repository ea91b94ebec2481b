"""One training step (forward, backward, optimiser step) of each task's paper model, per
attention spec: median time and peak memory, and both as ratios to `w/o`.

The models are the ones `attnlab train` builds (the task registry's LightningModule, its
`training_step`, the paper preset), fed synthetic batches of the study's sizes: Faster R-CNN
R50-FPN on two 800x1333 images, DeepLab on two 512x1024 crops, Transformer base on 4096 target
tokens. On CUDA the step runs under bf16 autocast and is timed with CUDA events; the optimiser is
plain SGD with momentum for every task, so the step's cost is the model's.

    python benchmarks/train_step.py --device cuda                # the table for RESULTS.md
    python benchmarks/train_step.py --dry-run                     # tiny sizes on a CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import warnings
from pathlib import Path

import torch

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.costs.attention_table import format_rows
from attnlab.pipeline.costs.timing import median_seconds, peak_memory_bytes
from attnlab.pipeline.tasks.registry import TASKS

SPECS = ["w/o", "1111", "0010", "deform", "0010+deform", "1111+deform"]
VOCAB = 32000
# Each task's synthetic batch: (images or token grid) at the study's size and at the dry run's.
SIZES = {
    "detection": {"paper": (2, 800, 1333), "tiny": (2, 128, 160)},
    "segmentation": {"paper": (2, 512, 1024), "tiny": (2, 64, 96)},
    "translation": {"paper": (128, 32), "tiny": (4, 12)},  # sentences x tokens: 4096 in the paper size
}
NUM_CLASSES = {"detection": 80, "segmentation": 19}


def _module(task: str, spec: str, preset: str):
    """The LightningModule `attnlab train` builds for `task`/`spec` at `preset`, without data."""
    flags = {"task": task, "attention": spec}
    cfg = build_train_config(flags, preset=preset)
    cls = TASKS[task].module_class()
    if task == "detection":
        return cls(cfg, NUM_CLASSES[task], {i: i for i in range(1, NUM_CLASSES[task] + 1)})
    if task == "segmentation":
        return cls(cfg, [f"class{i}" for i in range(NUM_CLASSES[task])])
    return cls(cfg, VOCAB)


def specs_of(task: str, specs: list[str]) -> list[str]:
    """The specs that apply to `task`: translation has no deformable 2-D convolution."""
    if task == "translation":
        return [s for s in specs if "deform" not in s]
    return specs


def _batch(task: str, size: tuple[int, ...], device: torch.device, generator: torch.Generator):
    if task == "detection":
        n, h, w = size
        images = torch.rand(n, 3, h, w, generator=generator).to(device)
        targets = []
        for _ in range(n):
            xy = torch.rand(8, 2, generator=generator) * torch.tensor([w * 0.7, h * 0.7])
            wh = 16 + torch.rand(8, 2, generator=generator) * torch.tensor([w * 0.3, h * 0.3])
            boxes = torch.cat([xy, xy + wh], 1).to(device)
            labels = torch.randint(1, NUM_CLASSES[task] + 1, (8,), generator=generator).to(device)
            targets.append({"boxes": boxes, "labels": labels})
        return images, targets
    if task == "segmentation":
        n, h, w = size
        images = torch.rand(n, 3, h, w, generator=generator).to(device)
        masks = torch.randint(0, NUM_CLASSES[task], (n, h, w), generator=generator).to(device)
        return images, masks
    n, t = size
    tokens = lambda: torch.randint(4, VOCAB, (n, t), generator=generator).to(device)  # noqa: E731
    return tokens(), tokens(), tokens(), None


def measure(task: str, spec: str, args, device: torch.device) -> dict:
    torch.manual_seed(0)
    module = _module(task, spec, args.preset).to(device)
    if args.channels_last and task != "translation":
        module = module.to(memory_format=torch.channels_last)
    module.train()
    batch = _batch(task, SIZES[task][args.preset], device, torch.Generator().manual_seed(0))
    optimiser = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=1e-4, momentum=0.9)
    amp = device.type == "cuda" and args.precision == "bf16"

    def step():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = module.training_step(batch, 0)
        loss.backward()
        optimiser.step()

    seconds = median_seconds(step, device, args.reps, args.warmup)
    peak = peak_memory_bytes(step, device, [module])
    return {"task": task, "spec": spec, "step_ms": seconds * 1000, "peak_MiB": peak / 2**20}


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row's step time and memory over its task's w/o row."""
    base = {r["task"]: r for r in rows if r["spec"] == "w/o"}
    for r in rows:
        ref = base.get(r["task"])
        r["time_vs_wo"] = r["step_ms"] / ref["step_ms"] if ref else "-"
        r["memory_vs_wo"] = r["peak_MiB"] / ref["peak_MiB"] if ref else "-"
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tasks", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--specs", nargs="+", default=SPECS)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16", help="on CUDA")
    parser.add_argument("--channels-last", action="store_true", help="vision models in channels_last")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="tiny models and inputs, one step each")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    args.preset = "tiny" if args.dry_run else "paper"
    if args.dry_run:
        args.reps, args.warmup = 1, 0
    device = torch.device(args.device)
    warnings.filterwarnings("ignore", message=".*self.log.*")  # training_step logs; no Trainer here
    rows = []
    for task in args.tasks:
        for spec in specs_of(task, args.specs):
            rows.append(measure(task, spec, args, device))
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the model is gone; the next one starts from a clean cache
            print(f"{task} {spec}: {rows[-1]['step_ms']:.1f} ms, {rows[-1]['peak_MiB']:.0f} MiB", flush=True)
            if args.json:  # row by row: a step cut off by its time cap keeps what it measured
                args.json.write_text(json.dumps(with_ratios(rows), indent=2))
    rows = with_ratios(rows)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    precision = args.precision if device.type == "cuda" else "fp32"
    print(
        f"train step ({args.preset} sizes), median of {args.reps} after {args.warmup} warm-up; "
        f"device {device} ({name}), {precision}{', channels_last' if args.channels_last else ''}, "
        f"torch {torch.__version__}"
    )
    print(format_rows(rows))
    return rows


if __name__ == "__main__":
    main()
