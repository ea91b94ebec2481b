"""The cost axes a ranking or report can use, and the MLflow metric each one reads.

Kept free of heavy imports: the CLI builds its `--cost` choices from it at start-up.
"""

COSTS = {
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
        return f"{raw * self.scale:,.{self.digits}f}"


UNITS = {
    "flops": Unit("GFLOPs", 1e-9, 2),
    "attention_flops": Unit("attention GFLOPs", 1e-9, 3),
    "latency": Unit("latency (ms)", 1.0, 1),
    "memory": Unit("peak memory (MB)", 1.0, 0),
    "params": Unit("params (M)", 1e-6, 2),
}
