"""Two sweeps run one after the other in one Python process (`attnlab.sweep()` twice) keep their
trials apart: the second sweep's trial, cut short by Ctrl-C, is interrupted (its run KILLED, its
checkpoints kept for `attnlab resume`), never taken for the first sweep's trial of the same key that
ended. Time budget: about 60 s on 2 cores (one Ray for both sweeps, a 1-batch epoch each)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fault_injection import HOLD_ENV, HOLD_SPEC, held_marker
from repo import HELPERS
from services import clean_env
from store_probe import live_runs

pytestmark = pytest.mark.slow

SWEEP = """
name: {name}
max_epochs: 2
grid:
  - task: segmentation
    specs: ["w/o"]
    preset: tiny
    overrides: {{segmentation: {{crop_size: 64}}, data: {{batch_size: 4}}, limit_train_batches: 1}}
early_stopping: {{policy: none}}
callbacks: ["{hold}"]
"""

SCRIPT = """
import json, attnlab, ray
ray.init(num_cpus=2, include_dashboard=False)  # one Ray for both sweeps: neither starts nor stops it
attnlab.sweep(config="first.yaml")
print(json.dumps(attnlab.sweep(config="second.yaml").to_dict()), flush=True)
"""


def test_a_second_sweep_in_the_same_process_keeps_its_trials_apart(tmp_path):
    for name in ("first", "second"):
        (tmp_path / f"{name}.yaml").write_text(SWEEP.format(name=name, hold=HOLD_SPEC))
    key = "segmentation-wo-s0"
    # Only the second sweep's trial parks (before its second epoch): each sweep has a scratch folder
    # of its own, and the first sweep's trial finds its hold already done.
    first_scratch = tmp_path / "attnlab_runs" / "sweeps" / "first"
    held_marker(first_scratch, key).parent.mkdir(parents=True)
    held_marker(first_scratch, key).write_text("not this one")
    env = clean_env(PYTHONPATH=str(HELPERS), **{HOLD_ENV: f"{key}:1"})
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    parked = held_marker(tmp_path / "attnlab_runs" / "sweeps" / "second", key)
    deadline = time.time() + 300
    while not parked.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.5)
    time.sleep(2)  # the epoch before the hold is checkpointed and reported
    os.kill(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it to the process
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    (trial,) = json.loads(out.strip().splitlines()[-1])["trials"]
    assert (trial["trial"], trial["status"]) == (key, "interrupted"), trial

    first = [
        r for r in live_runs(tmp_path / "mlflow.db", "first") if r["tags"].get("attnlab.kind") == "trial"
    ]
    second = [
        r for r in live_runs(tmp_path / "mlflow.db", "second") if r["tags"].get("attnlab.kind") == "trial"
    ]
    assert [r["status"] for r in first] == ["FINISHED"]
    assert [r["status"] for r in second] == ["KILLED"] and "attnlab.stopped_early" not in second[0]["tags"]
    assert list((tmp_path / "attnlab_runs" / "sweeps" / "second" / key).glob("checkpoint_*")), (
        "checkpoints kept"
    )
