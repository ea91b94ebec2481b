"""Sweeps: the study's ablation grid as one Ray Tune sweep of Ray Train (V2) runs, tracked in MLflow."""
