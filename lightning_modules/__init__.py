"""Attention factory, networks and one LightningModule per task."""
