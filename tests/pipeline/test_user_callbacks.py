"""Users' own Lightning callbacks (`callbacks: ["package.module:Class"]`): checked before anything
starts, built once per run with the context their __init__ asks for."""

import json
import subprocess

import pytest
from repo import ATTNLAB

from attnlab.pipeline.config.errors import ConfigError
from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.training.user_callbacks import build, check
from attnlab.tune.sweep_config import SweepConfig, trial_train_config

RECORDER = """
import json, os
import lightning as L

class Recorder(L.Callback):
    def __init__(self, run_id, scratch_dir):
        self.run_id, self.scratch_dir = run_id, scratch_dir

    def on_train_epoch_end(self, trainer, pl_module):
        with open(os.path.join(self.scratch_dir, "recorded.json"), "w") as f:
            json.dump({"run_id": self.run_id, "epoch": trainer.current_epoch + 1}, f)
"""


def test_bad_entries_are_one_clear_error():
    with pytest.raises(ValueError, match="package.module:Class"):
        build_train_config({"task": "segmentation", "callbacks": ["no_colon_here"]})
    with pytest.raises(ConfigError, match="cannot import 'not_a_module_anywhere'"):
        check(["not_a_module_anywhere:Thing"])
    with pytest.raises(ConfigError, match="no Lightning Callback class 'Path'"):
        check(["pathlib:Path"])


def test_each_callback_gets_the_context_it_names():
    (made,) = build(["lightning.pytorch.callbacks:LearningRateMonitor"], run_id="r", scratch_dir="/x")
    assert type(made).__name__ == "LearningRateMonitor"


def test_a_sweep_passes_its_callbacks_to_every_trial():
    sweep = SweepConfig.model_validate(
        {
            "name": "s",
            "callbacks": ["lightning.pytorch.callbacks:LearningRateMonitor"],
            "grid": [{"task": "segmentation", "specs": ["w/o"], "preset": "tiny"}],
        }
    )
    cfg = trial_train_config(sweep.trials()[0].param(), sweep, None, "runs")
    assert cfg.callbacks == ["lightning.pytorch.callbacks:LearningRateMonitor"]


def test_train_runs_a_users_callback_and_refuses_a_missing_one_before_anything(tmp_path):
    (tmp_path / "mine.py").write_text(RECORDER)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "CUDA_VISIBLE_DEVICES": ""}

    def train(config_json: str) -> subprocess.CompletedProcess:
        argv = [ATTNLAB, "train", "--task", "segmentation", "--max-epochs", "1", "--no-progress"]
        argv += ["--no-system-metrics", "--out-dir", str(tmp_path), "--config-json", config_json]
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    missing = train('{"callbacks": ["mine:Nope"]}')
    assert missing.returncode == 2 and "no Lightning Callback class 'Nope'" in missing.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing written
    ran = train('{"callbacks": ["mine:Recorder"], "limit_train_batches": 2}')
    assert ran.returncode == 0, ran.stderr[-3000:]
    recorded = json.loads((tmp_path / "recorded.json").read_text())
    assert recorded["epoch"] == 1 and recorded["run_id"] in ran.stdout
