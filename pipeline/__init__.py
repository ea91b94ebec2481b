"""attnlab's pipeline: typed configs, the task registry, data, training, tracking, efficiency,
rankings, findings, reports and model export."""
