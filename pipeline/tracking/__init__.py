"""MLflow: where runs go, a run's life, the tags attnlab writes, and the spool that outlives an outage."""
