"""The cost axes a ranking or report can use, and the MLflow metric each one reads.

Kept free of heavy imports: the CLI builds its `--cost` choices from it at start-up.

`added_flops` (the default axis) is what a mechanism adds to the whole network's FLOPs over `w/o`
(pipeline.efficiency); `attention_flops` counts the placed modules whole, so a deformable conv
is charged its 3x3 convolution too, which `w/o` also runs.
"""

DEFAULT_COST = "added_flops"


COSTS = {
    "added_flops": "cost/added_flops",
    "flops": "cost/flops",
    "attention_flops": "cost/attention_flops",
    "latency": "cost/latency_ms",
    "memory": "cost/peak_memory_mb",
    "params": "cost/params",
}


class Unit:
    """How a cost is shown to people: GFLOPs, millions of parameters, ms, MB. JSON and CSV keep raw
    numbers (FLOPs, parameters, ms, MB) for programs."""

    def __init__(self, label: str, scale: float, digits: int):
        self.label, self.scale, self.digits = label, scale, digits

    def value(self, raw: float) -> float:
        return raw * self.scale

    def show(self, raw: float) -> str:
        """Fixed decimals, or three significant digits where those would round a nonzero cost away
        (a small Transformer adds MFLOPs: 0.000 GFLOPs beside each other would hide its front)."""
        v = raw * self.scale
        if v and abs(v) < 10 ** (1 - self.digits):
            return f"{v:.3g}"
        return f"{v:,.{self.digits}f}"


UNITS = {
    "added_flops": Unit("GFLOPs added over w/o", 1e-9, 3),
    "flops": Unit("GFLOPs", 1e-9, 2),
    "attention_flops": Unit("attention-module GFLOPs", 1e-9, 3),
    "latency": Unit("latency (ms)", 1.0, 1),
    "memory": Unit("peak memory (MB)", 1.0, 0),
    "params": Unit("params (M)", 1e-6, 2),
}

# What each axis counts, for a page or a plot that names it.
COST_MEANS = {
    "added_flops": " (the whole network's FLOPs per item less those of the same network with w/o: "
    "a deformable conv is charged what it adds to the 3x3 conv it replaces)",
    "attention_flops": " (FLOPs inside the modules the factory placed, counted whole)",
}
