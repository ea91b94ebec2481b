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
