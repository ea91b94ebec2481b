"""attnlab's pipeline, one package per job: config, data (and the task registry), training, costs,
tracking, analysis (rankings, findings, effects, reports) and export."""
