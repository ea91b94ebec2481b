"""Early stopping in a sweep that mixes tasks: each task's trials compete only with each other.

Real Ray Tune runs a trainable that reports task-scaled scores (BLEU-like 0-100 for translation,
mIoU-like 0-1 for segmentation), one trial at a time, translation first."""

import pytest
from one_at_a_time import one_at_a_time
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from attnlab.pipeline.config.validation import validate
from attnlab.tune.schedulers import early_stopping
from attnlab.tune.storage import SweepStore
from attnlab.tune.sweep_config import SweepConfig

EPOCHS = 4
QUALITY = [0.9, 0.3]


def _scored(config):
    trial = config["trial"]
    scale = 100.0 if trial["task"] == "translation" else 1.0
    for epoch in range(1, EPOCHS + 1):
        tune.report({"epoch": epoch, "score": scale * trial["quality"] * epoch / EPOCHS})


def _epochs_by_trial(scheduler, tmp_path, quality: dict | None = None) -> dict:
    """Epochs each trial ran; `quality` maps a trial's name to its quality (default: QUALITY)."""
    quality = quality or {str(q): q for q in QUALITY}
    trials = [
        {
            "task": task,
            "quality": q,
            "key": f"{task}-{name}",
            "trial_key": f"{task}-{name}",
            "attention": name,
        }
        for task in ("translation", "segmentation")
        for name, q in quality.items()
    ]
    results = one_at_a_time(_scored, trials, scheduler, str(tmp_path), "mixed")
    return {r.config["trial"]["key"]: int(r.metrics["epoch"]) for r in results}


def _mixed_sweep() -> SweepConfig:
    return validate(
        SweepConfig,
        {
            "name": "mixed",
            "max_epochs": EPOCHS,
            "grid": [
                {"task": "translation", "specs": ["1000"], "preset": "tiny"},
                {"task": "segmentation", "specs": ["w/o"], "preset": "tiny"},
            ],
            "early_stopping": {"policy": "asha", "grace_period": 1, "reduction_factor": 3},
        },
        "sweep",
    )


def test_one_shared_asha_would_stop_every_trial_of_the_smaller_scale(local_ray, tmp_path):
    """The failure the per-task scheduler exists for (so the next test can fail)."""
    epochs = _epochs_by_trial(
        ASHAScheduler(time_attr="epoch", max_t=EPOCHS + 1, grace_period=1, reduction_factor=3), tmp_path
    )
    assert epochs["translation-0.9"] == EPOCHS
    assert all(epochs[f"segmentation-{q}"] == 1 for q in QUALITY), epochs


def test_sweeps_stop_trials_early_within_each_task(local_ray, tmp_path):
    epochs = _epochs_by_trial(early_stopping(_mixed_sweep()), tmp_path)
    for task in ("translation", "segmentation"):
        assert epochs[f"{task}-0.9"] == EPOCHS, epochs  # the best of each task trains to the end
        assert any(epochs[f"{task}-{q}"] < EPOCHS for q in QUALITY[1:]), epochs  # ASHA still cuts within it


def test_early_stopping_rungs_survive_a_driver_restart(local_ray, tmp_path):
    """A restored sweep gets a fresh scheduler object (Tune does not save its state): with the rungs
    saved beside the sweep, a weak trial after the restart is still compared with the earlier ones."""
    sweep = _mixed_sweep()

    def in_store(folder: str):  # a file:// URI: the code path of s3:// storage, on this disk
        return early_stopping(sweep, SweepStore.from_folder((tmp_path / folder).as_uri()))

    before = {"a": 0.9}
    _epochs_by_trial(in_store("state"), tmp_path / "run1", before)
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        "early_stopping-decisions.json",
        "early_stopping-segmentation.pkl",
        "early_stopping-translation.pkl",
    ]
    weak = {"c": 0.3}
    fresh = _epochs_by_trial(in_store("elsewhere"), tmp_path / "run2", weak)
    restored = _epochs_by_trial(in_store("state"), tmp_path / "run3", weak)
    assert fresh == {"translation-c": EPOCHS, "segmentation-c": EPOCHS}  # alone on empty rungs: never cut
    assert restored == {"translation-c": 1, "segmentation-c": 1}  # compared with the saved rungs: cut


def test_a_corrupt_early_stopping_state_never_blocks_a_resume(tmp_path):
    from types import SimpleNamespace

    from attnlab.tune.pareto_asha import ParetoASHA

    (tmp_path / "early_stopping-segmentation.pkl").write_bytes(b"not a pickle")
    scheduler = early_stopping(_mixed_sweep(), SweepStore.from_folder(str(tmp_path)))
    with pytest.warns(UserWarning, match="start with empty rungs"):
        assert isinstance(
            scheduler.scheduler_of(SimpleNamespace(config={"trial": {"task": "segmentation"}})), ParetoASHA
        )
