"""Early stopping in a sweep that mixes tasks: each task's trials compete only with each other.

Real Ray Tune runs a trainable that reports task-scaled scores (BLEU-like 0-100 for translation,
mIoU-like 0-1 for segmentation), one trial at a time, translation first."""

from pathlib import Path

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
    assert sorted(p.name for p in (tmp_path / "state" / "early_stopping").iterdir()) == [
        "decisions.json",
        "segmentation.pkl",
        "translation.pkl",
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


def _fails_until_allowed(config):
    """Reports 4 epochs; trial 'late' raises before its first report until its folder allows it."""
    trial = config["trial"]
    if trial["attention"] == "0010" and not Path(trial["allow"]).exists():
        raise RuntimeError("not yet")
    for epoch in range(1, EPOCHS + 1):
        tune.report({"epoch": epoch, "score": trial["quality"] * epoch / EPOCHS})


def test_a_restored_tune_experiment_does_not_put_the_rungs_back_as_they_were(local_ray, tmp_path):
    """Found by the chaos soak (seed 2): a restored Tune experiment copies the sweep folder's top-level
    *.json and *.pkl files to its driver's staging folder and uploads them back as it saves, so the
    rungs and decisions a resumed driver recorded were put back as they were when it started, and
    the next driver decided its rungs again on later epochs' scores. Driver 1: trial 0010 fails,
    the rung is decided on w/o alone. Driver 2 (Tune restores the experiment): 0010 reports and is
    decided at the rung; what the store holds afterwards must include it."""
    from attnlab.tune.schedulers import TrialSlots

    sweep = validate(
        SweepConfig,
        {
            "name": "late",
            "max_epochs": EPOCHS,
            "grid": [{"task": "segmentation", "specs": ["w/o", "0010"], "preset": "tiny"}],
            "early_stopping": {"policy": "asha", "grace_period": 1, "reduction_factor": 2},
        },
        "sweep",
    )
    store = SweepStore.from_folder(str(tmp_path / "late"))
    allow = tmp_path / "allow"
    trials = [
        {"task": "segmentation", "attention": spec, "trial_key": key, "quality": q, "allow": str(allow)}
        for spec, key, q in (("w/o", "segmentation-wo-s0", 0.9), ("0010", "segmentation-0010-s0", 0.3))
    ]
    scheduler = early_stopping(sweep, store)
    first = tune.Tuner(
        tune.with_resources(_fails_until_allowed, {"cpu": 1}),
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(
            metric="score", mode="max", scheduler=scheduler, search_alg=TrialSlots(scheduler, 1)
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="late", verbose=0),
    )
    first.fit()
    assert "segmentation-0010-s0" not in store.decisions()
    allow.touch()
    tune.Tuner.restore(str(tmp_path / "late"), _fails_until_allowed, resume_errored=True).fit()
    decided = store.decisions()
    assert [d["rung"] for d in decided["segmentation-0010-s0"]] == [1], decided
    assert [d["rung"] for d in decided["segmentation-wo-s0"]] == [1, 2], decided
