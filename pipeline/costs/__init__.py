"""What a model costs: FLOPs, parameters, latency and memory, measured, and the cost axes rankings use."""
