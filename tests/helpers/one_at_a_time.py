"""A Tuner over planted trials, one at a time, as a sweep runs them: with attnlab's scheduler, its
`TrialSlots` limit (a trial paused at a rung frees its slot); with any other scheduler, Tune's own."""

from __future__ import annotations

from ray import tune

from attnlab.tune.schedulers import PerTaskScheduler, TrialSlots


def one_at_a_time(trainable, trials: list[dict], scheduler, storage: str, name: str) -> list:
    """Tune's results of `trainable` over `trials` (each one trial's `config["trial"]`)."""
    ours = isinstance(scheduler, PerTaskScheduler)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(
            metric="score",
            mode="max",
            scheduler=scheduler,
            search_alg=TrialSlots(scheduler, 1) if ours else None,
            max_concurrent_trials=None if ours else 1,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=storage, name=name, verbose=0),
    )
    return list(tuner.fit())
