"""Which trials Tune ended in this driver: finished, or stopped by early stopping. A trial a
Ctrl-C'd (or otherwise interrupted) driver leaves mid-way never shows up here, so the sweep keeps
its checkpoints and does not mistake it for one that early stopping cut."""

from __future__ import annotations

from ray import tune

_ended: set[str] = set()


def ended() -> set[str]:
    return set(_ended)


class EndedTrials(tune.Callback):
    """Records each trial key Tune completes; stateless, so it pickles with the experiment."""

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        _ended.add(trial.config["trial"]["trial_key"])
