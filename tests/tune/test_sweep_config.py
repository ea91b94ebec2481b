"""Bad sweep configs fail before Ray starts, with one clear message each."""

import pytest
import torch
import yaml

from attnlab.cli import main
from attnlab.pipeline.config.errors import ConfigError
from attnlab.tune.sweep_config import check_resources, load_sweep


def _write(tmp_path, data):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


BASE = {"name": "t", "grid": [{"task": "detection", "specs": ["w/o", "1111"], "preset": "tiny"}]}


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"grid": [{"task": "classification", "specs": ["1111"]}]}, "grid.0.task"),
        ({"grid": [{"task": "detection", "specs": ["1112"]}]}, "unknown part '1112'"),
        ({"resources": {"workers_per_trial": 64, "cpus_per_worker": 4}}, "needs 256 CPUs"),
        (
            {"resources": {"gpus_per_worker": torch.cuda.device_count() + 1}},
            f"GPUs but this machine has {torch.cuda.device_count()}",
        ),
        ({"name": "bad name!"}, "sweep name"),
        ({"grid": [{"task": "detection", "specs": ["w/o", "W/O"], "preset": "tiny"}]}, "repeats trial"),
        (
            {"grid": [{"task": "detection", "specs": ["1111"], "overrides": {"backbone": {"depth": 7}}}]},
            "trial detection-1111-s0",
        ),
        ({"max_failures": -1}, "max_failures"),
        (
            {"grid": [{"task": "translation", "specs": ["enc_self=1111,enc_dec=w/o"], "preset": "tiny"}]},
            "encoder-decoder attention cannot be 'w/o'",
        ),
    ],
)
def test_bad_sweep_configs_fail_before_ray_starts(tmp_path, monkeypatch, capsys, change, needle):
    monkeypatch.chdir(tmp_path)
    import ray

    path = _write(tmp_path, {**BASE, **change})
    assert main(["sweep", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnlab: error:") and needle in err, err
    assert not ray.is_initialized()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"], "nothing may be written"


def test_preset_and_config_are_exclusive_and_presets_validate():
    with pytest.raises(ValueError, match="exactly one of"):
        load_sweep(None, None, None)
    with pytest.raises(ValueError, match="unknown sweep preset"):
        load_sweep("nope", None, None)
    smoke = load_sweep("smoke", None, "mine")
    assert smoke.name == "mine" and len(smoke.trials()) >= 4
    keys = [t.trial_key for t in smoke.trials()]
    assert len(set(keys)) == len(keys) and "segmentation-wo-s0" in keys
    paper = load_sweep("paper-detection", None, None)
    assert {t.spec for t in paper.trials()} >= {"1111", "0010", "w/o", "deform", "0010+deform", "dynamic"}
    assert len(paper.trials()) == 21  # w/o + 15 codes + deform, dynamic + 3 combinations
    translation = load_sweep("paper-translation", None, None)
    assert len(translation.trials()) == 21 + 14  # self sites over the study's specs, then enc-dec codes
    assert "translation-enc_self-1000_dec_self-1000_enc_dec-0010-s0" in {
        t.trial_key for t in translation.trials()
    }


def test_a_trial_carries_local_paths_absolute_from_where_the_sweep_runs(tmp_path, monkeypatch):
    """A trial trains in its own folder (Tune's trial directory): a relative data folder or weights
    file in the sweep file means the folder `attnlab sweep` ran in, so the driver makes it absolute."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    torch.save({}, tmp_path / "weights/resnet18.pth")
    grid = {
        "task": "segmentation",
        "specs": ["w/o"],
        "data": "../datasets/camvid",
        "overrides": {"backbone": {"pretrained": "weights/resnet18.pth", "depth": 18}},
    }
    other = {"task": "translation", "specs": ["w/o"], "preset": "tiny"}
    sweep = load_sweep(None, _write(tmp_path, {"name": "paths", "grid": [grid, other]}), None, None, None)
    first, second = (t.param() for t in sweep.trials())
    assert first["data"] == str(tmp_path.parent / "datasets" / "camvid")
    weights = str(tmp_path / "weights/resnet18.pth")
    assert first["overrides"]["backbone"] == {"pretrained": weights, "depth": 18}
    assert second["data"] == "tiny" and second["overrides"] == {}


def test_a_grid_entry_can_hold_resources_of_its_own(tmp_path):
    """Two-worker translation beside one-worker segmentation in one sweep: each trial carries its
    entry's resources (Tune's bundle, the rerun's --devices, whether early stopping pauses it)."""
    grid = [
        {"task": "segmentation", "specs": ["w/o"], "preset": "tiny"},
        {"task": "translation", "specs": ["w/o"], "preset": "tiny", "resources": {"workers_per_trial": 2}},
    ]
    sweep = load_sweep(None, _write(tmp_path, {"name": "mixed", "grid": grid}), None, None, None)
    seg, trans = (sweep.trial_resources(t.param()) for t in sweep.trials())
    assert (seg.workers_per_trial, trans.workers_per_trial) == (1, 2)
    assert sweep.trial_resources({}) == sweep.resources  # a trial of an older sweep carries none
    assert len(sweep.all_resources()) == 2
    greedy = [grid[0], {**grid[1], "resources": {"workers_per_trial": 64, "cpus_per_worker": 4}}]
    big = load_sweep(None, _write(tmp_path, {"name": "big", "grid": greedy}), None, None, None)
    with pytest.raises(ConfigError, match="a trial needs 256 CPUs"):
        check_resources(big, None)
