"""`attnlab attention`: parameters and FLOPs of every mechanism at one input shape.

The cost side of the study's accuracy-efficiency trade-off, without training anything.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from attnlab.lightning_modules.attention import STUDY_SPECS
from attnlab.lightning_modules.attention.options import options_for
from attnlab.lightning_modules.attention.registry import names
from attnlab.pipeline.config.validation import SpecStr, StrictModel


def default_specs() -> list[str]:
    """The study's specs, then every other registered mechanism (e.g. deform2) on its own."""
    return [*STUDY_SPECS, *(n for kind in ("conv", "attention") for n in names(kind) if n not in STUDY_SPECS)]


class AttentionTableConfig(StrictModel):
    """Which specs, at which input shape, with which factory options."""

    specs: list[SpecStr] = Field(default_factory=default_specs, min_length=1)
    dim: Literal[1, 2] = 2
    shape: tuple[int, ...] = (2, 256, 50, 84)
    measure: bool = False
    options: dict[str, int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape_matches_dim(self):
        want = 4 if self.dim == 2 else 3
        if len(self.shape) != want or min(self.shape) < 1:
            layout = "N C H W" if self.dim == 2 else "N T C"
            raise ValueError(
                f"shape {self.shape} must be {want} positive sizes ({layout}) for dim={self.dim}"
            )
        return self

    @model_validator(mode="after")
    def _options_known(self):
        """Each spec's options checked against the registry (torch-free): before torch loads."""
        for spec in self.specs:
            options_for(spec, self.dim, self.options)
        return self

    @property
    def channels(self) -> int:
        return self.shape[1] if self.dim == 2 else self.shape[2]


def _flops(module, shape: tuple[int, ...]) -> float:
    """The analytic count; a registered mechanism without `flops(shape)` is counted by running it."""
    import torch

    from attnlab.lightning_modules.attention import measure_flops

    try:
        return module.flops(shape)
    except AttributeError:
        return measure_flops(module, torch.randn(shape))


MEASURE_REPS, MEASURE_WARMUP = 10, 2


def measuring_device() -> str:
    """Where `measure` times and weighs a module: the GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def attention_table(cfg: AttentionTableConfig) -> list[dict]:
    """One row per spec: params, analytic GFLOPs and, with measure, FlopCounterMode's count, the
    forward pass's latency (median of MEASURE_REPS after MEASURE_WARMUP) and its peak memory
    (pipeline/costs/timing.py) at the input shape, on `measuring_device()`."""
    import torch

    from attnlab.lightning_modules.attention import build_attention, count_parameters, measure_flops

    from .timing import median_seconds, peak_memory_bytes

    rows, device = [], torch.device(measuring_device())
    for spec in cfg.specs:
        module = build_attention(
            spec, cfg.channels, dim=cfg.dim, **options_for(spec, cfg.dim, cfg.options)
        ).eval()
        row = {"spec": spec, "params": count_parameters(module), "gflops": _flops(module, cfg.shape) / 1e9}
        if cfg.measure:
            row["measured_gflops"] = measure_flops(module, torch.randn(cfg.shape)) / 1e9
            module, x = module.to(device), torch.randn(cfg.shape, device=device)
            with torch.no_grad():
                seconds = median_seconds(
                    lambda: module(x), device, MEASURE_REPS, MEASURE_WARMUP, events=False
                )
                peak = peak_memory_bytes(lambda: module(x), device, [module])
            row["latency_ms"], row["peak_memory_mb"] = seconds * 1e3, peak / 2**20
            row["device"] = device.type
        rows.append(row)
    return rows


def format_rows(rows: list[dict]) -> str:
    """A plain fixed-width table (stdout friendly, no extra dependency)."""
    keys = list(rows[0])
    cell = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    widths = {k: max(len(k), *(len(cell(r[k])) for r in rows)) for k in keys}
    head = "  ".join(k.ljust(widths[k]) for k in keys)
    body = ["  ".join(cell(r[k]).ljust(widths[k]) for k in keys) for r in rows]
    return "\n".join([head, "-" * len(head), *body])
