"""The training driver: one run from config to a fitted Lightning trainer, and the callbacks it adds."""
