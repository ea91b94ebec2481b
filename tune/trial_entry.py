"""The function Tune runs for each trial, kept light: the driver pickles it by reference without
importing torch, Lightning or Ray Train (about 4 s of a sweep's start), and a trial's process
imports them once, on its first trial (`trainable.run_trial`)."""

from __future__ import annotations

import time


def trial_function(config: dict, **fixed) -> None:
    entered = time.time()
    from .trainable import run_trial  # heavy: paid once per trial process, which Tune reuses

    run_trial(config, entered=entered, **fixed)
