"""Which trials Tune ended in this driver: finished, or stopped by early stopping. A trial a
Ctrl-C'd (or otherwise interrupted) driver leaves mid-way never shows up here, so the sweep keeps
its checkpoints and does not mistake it for one that early stopping cut."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ray import tune

_ended: set[str] = set()
_on_end: list[Callable[[str], None]] = []


def ended() -> set[str]:
    return set(_ended)


def when_a_trial_ends(action: Callable[[str], None]) -> None:
    """What this driver does with the key of each trial Tune ends. Set by every driver: the
    callback is pickled with the experiment, the action (which holds this driver's tracking
    server) is not."""
    _on_end[:] = [action]


class EndedTrials(tune.Callback):
    """Records each trial key Tune completes and acts on it; stateless, so it pickles with the
    experiment."""

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        key = trial.config["trial"]["trial_key"]
        _ended.add(key)
        for action in _on_end:
            try:
                action(key)
            except Exception as error:  # the sweep's end reconciles it again; never stop the sweep here
                logging.getLogger(__name__).warning("trial %s ended; acting on it failed: %s", key, error)
