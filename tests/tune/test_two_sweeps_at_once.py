"""Two attnlab sweeps at once on one machine, each with its embedded Ray and a two-worker trial
(Ray Train V2, whose placement-group cleaner queries Ray's State API): both finish, and neither log
mentions the other Ray ("Found multiple active Ray instances", which a lookup by auto-detection
raises; tune/local_services.py's pin_ray_address gives every worker its own cluster's address).
Budget: both within 10 minutes on 2 cores (about 1.5 minutes alone)."""

import subprocess
import time

import pytest
from repo import ATTNLAB
from services import clean_env

pytestmark = pytest.mark.slow

SWEEP = """
name: {name}
max_epochs: 1
grid:
  - task: segmentation
    specs: ["w/o"]
    preset: tiny
    overrides: {{segmentation: {{crop_size: 64}}, data: {{batch_size: 2}}, limit_train_batches: 2}}
resources: {{workers_per_trial: 2, cpus_per_worker: 0.5}}
early_stopping: {{policy: none}}
"""


def test_two_sweeps_at_once_keep_to_their_own_ray(tmp_path):
    drivers = {}
    for name in ("left", "right"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "sweep.yaml").write_text(SWEEP.format(name=name))
        drivers[name] = subprocess.Popen(
            [ATTNLAB, "sweep", "--config", "sweep.yaml", "--format", "json"],
            cwd=folder,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(5)  # the second starts while the first's Ray is up
    for name, driver in drivers.items():
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, (name, out[-2000:], err[-2000:])
        (log,) = (tmp_path / name / "attnlab_runs" / "logs").glob("sweep-*.log")
        text = log.read_text()
        assert '"status": "finished"' in out, (name, out[-2000:])  # its two-worker trial trained
        assert "multiple active Ray instances" not in text, (name, text[-3000:])
