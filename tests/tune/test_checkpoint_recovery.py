"""A resumed one-worker trial that Tune hands no checkpoint (its driver died before Tune saved its
record of them: a full disk, a kill within Tune's 10 s save period) goes on from the newest whole
checkpoint in its folder, on a path or a URI, instead of training its epochs again."""

import pytest
import torch

from attnlab.tune.checkpoints import newest_on_disk, restorable
from attnlab.tune.ray_callbacks import CHECKPOINT_NAME


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
