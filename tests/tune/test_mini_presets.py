"""The mini-study presets: sizes, the specs each finding needs, real data paths checked before Ray."""

import pytest

from attnlab.lightning_modules.attention import all_codes
from attnlab.pipeline.analysis.findings import comparisons, enc_dec, self_sites
from attnlab.pipeline.config.errors import ConfigError
from attnlab.tune.presets import PRESETS
from attnlab.tune.sweep_config import check_data, load_sweep


@pytest.mark.parametrize("size", ["cpu", "gpu"])
def test_mini_races_from_two_seeds_and_has_every_spec_the_findings_compare(size, monkeypatch):
    sweep = load_sweep("mini", None, None, size=size)
    assert sweep.name == f"mini-{size}" and sweep.early_stopping.policy == "none"
    tasks = {g.task: g for g in sweep.grid}
    assert set(tasks) == {"segmentation", "translation"}
    assert all(g.seeds == [0, 1] for g in sweep.grid)
    # A race from the grid's two seeds up to 8, within 1.5x the two-seed grid's trials, each
    # task's share in proportion to its configurations.
    assert sweep.racing and (sweep.seeds.min, sweep.seeds.max, sweep.seeds.findings) == (2, 8, True)
    configurations = {t: len(g.specs) for t, g in tasks.items()}
    assert sweep.seeds.budget == 3 * sum(configurations.values())
    assert {t: sweep.race_budget(t) for t in tasks} == {t: 3 * n for t, n in configurations.items()}
    # The whole factorial design, so findings 1-3 read term effects: every code and w/o, in
    # segmentation, at both translation self-attention sites together, and encoder-decoder codes.
    codes = ["w/o", *all_codes()]
    assert set(codes) <= set(tasks["segmentation"].specs)
    assert {self_sites(c) for c in codes} <= set(tasks["translation"].specs)
    assert {enc_dec(c) for c in all_codes()} <= set(tasks["translation"].specs)
    for c in comparisons():
        if c.task in tasks:
            specs = set(tasks[c.task].specs)
            assert set(c.a) <= specs, (c.label, c.a)
            assert specs & set(c.b), (c.label, c.b)
    assert tasks["segmentation"].data.endswith("camvid") and tasks["translation"].data.endswith("multi30k")


def test_cpu_size_trains_in_fp32_and_gpu_size_in_bf16_on_the_same_grid():
    cpu, gpu = load_sweep("mini", None, None, size="cpu"), load_sweep("mini", None, None, size="gpu")
    assert all(g.overrides["precision"] == "32-true" for g in cpu.grid)
    assert all(g.overrides["precision"] == "bf16-mixed" for g in gpu.grid)
    assert [t.trial_key for t in cpu.trials()] == [t.trial_key for t in gpu.trials()]
    assert load_sweep("mini-translation", None, None, size="cpu").grid[0].task == "translation"


def test_size_errors_are_clear():
    with pytest.raises(ConfigError, match="preset 'smoke' has no sizes; --size applies to mini"):
        load_sweep("smoke", None, None, size="cpu")
    with pytest.raises(ConfigError, match="unknown --size 'tpu'"):
        load_sweep("mini", None, None, size="tpu")
    assert all(getattr(PRESETS[n], "sized", False) for n in ("mini", "mini-translation", "mini-segmentation"))


def test_a_missing_data_folder_is_named_before_ray_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTNLAB_DATASETS", str(tmp_path / "nowhere"))
    sweep = load_sweep("mini-segmentation", None, None, size="cpu")
    with pytest.raises(ConfigError, match="segmentation grid: .*nowhere/camvid does not exist"):
        check_data(sweep)
