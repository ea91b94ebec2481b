"""A resumed one-worker trial that Tune hands no checkpoint, or an older one than its last report
(its driver died before Tune saved its record of them: a full disk, a kill within Tune's 10 s save
period), goes on from the newest whole checkpoint in its folder, on a path or a URI, instead of
training its epochs again; one restored where early stopping never decided says its result there
again."""

import json

import pytest
import ray.tune
import torch

from attnlab.tune.checkpoints import going_on_from, newest_on_disk, restorable
from attnlab.tune.pareto_asha import BUDGET
from attnlab.tune.ray_callbacks import CHECKPOINT_NAME, RESULT_NAME
from attnlab.tune.trainable import _report_again


def _write(folder, name: str, torn: bool = False):
    path = folder / name / CHECKPOINT_NAME
    path.parent.mkdir(parents=True)
    torch.save({"epoch": name}, path)
    if torn:
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    return path.parent


@pytest.fixture(params=["path", "uri"])
def location(request, tmp_path):
    folder = tmp_path / "segmentation-wo-s0"
    folder.mkdir()
    return folder, (str(folder) if request.param == "path" else folder.as_uri())


def test_no_checkpoint_on_disk_means_a_fresh_start(location):
    folder, where = location
    assert newest_on_disk(where) is None
    assert newest_on_disk(where + "-missing") is None
    assert restorable(None) == (None, None)


def test_the_newest_whole_checkpoint_on_disk_is_restored(location):
    folder, where = location
    _write(folder, "checkpoint_000000")
    second = _write(folder, "checkpoint_000001")
    (folder / "checkpoint_tmp_upload").mkdir()  # not one of Ray's numbered checkpoints
    checkpoint, said = restorable(newest_on_disk(where))
    assert checkpoint.path.rstrip("/").endswith(str(second)) and said is None


def test_a_torn_newest_one_gives_way_to_the_one_before(location):
    """The disk filled while the last checkpoint was written: it is torn, the one before is whole."""
    folder, where = location
    first = _write(folder, "checkpoint_000000")
    _write(folder, "checkpoint_000001", torn=True)
    checkpoint, said = restorable(newest_on_disk(where))
    assert checkpoint.path.rstrip("/").endswith(str(first))
    assert "skipped torn checkpoint(s)" in said and "checkpoint_000001" in said


def test_a_checkpoint_newer_than_tunes_record_wins(location):
    """Found by the chaos soak: a trial killed right after its last report was handed the checkpoint
    before it and trained its last epoch again."""
    folder, where = location
    older = _write(folder, "checkpoint_000000")
    _write(folder, "checkpoint_000001")
    tunes = ray.tune.Checkpoint(str(older))
    assert going_on_from(tunes, where, True).path.rstrip("/").endswith("checkpoint_000001")
    assert going_on_from(None, where, True).path.rstrip("/").endswith("checkpoint_000001")
    # A first attempt goes on from what Ray hands it, or nothing (the folder is not looked at).
    assert going_on_from(tunes, where, False) is tunes and going_on_from(None, where, False) is None
    assert going_on_from(None, where + "-missing", True) is None


@pytest.mark.parametrize(
    "epoch, decided, reported",
    [(1, set(), True), (1, {1}, False), (4, set(), False)],  # undecided; decided; its last epoch
)
def test_a_trial_restored_where_early_stopping_never_decided_reports_that_epoch_again(
    tmp_path, monkeypatch, epoch, decided, reported
):
    """Found by the chaos soak: a trial Tune paused at a rung, whose driver was then stopped before
    the scheduler saved its arrival, trained past the rung undecided; the rung was later decided on
    a later epoch's score."""
    folder = tmp_path / "checkpoint_000000"
    folder.mkdir()
    (folder / RESULT_NAME).write_text(json.dumps({"epoch": epoch, "score": 0.5, BUDGET: 4}))
    said = []
    monkeypatch.setattr(ray.tune, "report", said.append)  # the Tune session's call, as it is made
    _report_again(ray.tune.Checkpoint(str(folder)), decided, in_tune=True)
    assert said == ([{"epoch": epoch, "score": 0.5, BUDGET: 4}] if reported else [])


def test_ray_trains_timestamped_checkpoints_are_found_too(location):
    """A multi-worker trial's folder (Ray Train's names), found by the chaos soak: a worker killed
    right after its report left the trial to restart from scratch."""
    folder, where = location
    _write(folder, "checkpoint_2026-12-06_03-12-40.100000")
    newest = _write(folder, "checkpoint_2026-12-06_03-12-44.387911")
    (folder / "checkpoint_tmp_staging").mkdir()
    checkpoint, said = restorable(newest_on_disk(where))
    assert checkpoint.path.rstrip("/").endswith(newest.name) and said is None
