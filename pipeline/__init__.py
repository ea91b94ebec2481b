"""attnlab's pipeline: CLI, typed configs, data, tracking, efficiency and queries."""
