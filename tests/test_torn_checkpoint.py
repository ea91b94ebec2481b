"""Fault drill: a trial's newest checkpoint is torn (truncated, as a crash mid-write leaves a file).

The sweep's driver is SIGKILLed mid-trial and the checkpoint Ray would restore from is cut in half.
`attnlab resume` then restores the trial from the checkpoint before it, says so (a line in the
sweep's log and a tag on the trial's run) and finishes it: one run, every epoch's metrics."""

import os
import re
import signal
import time
from pathlib import Path

import pytest
from drill_sweep import attnlab, drill_sweep, start_driver
from mlflow.tracking import MlflowClient
from services import clean_env

from tune.checkpoints import torn

pytestmark = pytest.mark.slow

KEY = "segmentation-wo-s0"


def _registered(trial_dir: Path) -> list[Path]:
    """The checkpoints Ray's own record of the trial names (the ones it would restore from)."""
    snapshot = trial_dir / "checkpoint_manager_snapshot.json"
    names = (
        set(re.findall(r"checkpoint_[0-9][0-9_.\-]*[0-9]", snapshot.read_text())) if snapshot.exists() else ()
    )
    return sorted(trial_dir / n for n in names if (trial_dir / n / "checkpoint.ckpt").is_file())


def test_a_torn_newest_checkpoint_gives_way_to_the_one_before_and_the_trial_finishes(tmp_path):
    (tmp_path / "torn.yaml").write_text(drill_sweep("torn", specs='"w/o"', max_epochs=3))
    env = clean_env()
    driver = start_driver(["sweep", "--config", "torn.yaml"], tmp_path, env)
    trial_dir = tmp_path / "attnlab_runs" / "sweeps" / "torn" / "train" / KEY
    try:
        deadline = time.time() + 600
        while len(_registered(trial_dir)) < 2:  # two epochs checkpointed, one to go
            assert time.time() < deadline and driver.poll() is None, "no two checkpoints in time"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    time.sleep(2)
    older, newest = _registered(trial_dir)[-2:]
    ckpt = newest / "checkpoint.ckpt"
    with open(ckpt, "r+b") as f:
        f.truncate(ckpt.stat().st_size // 2)
    assert torn(ckpt) and torn(older / "checkpoint.ckpt") is None

    started = time.monotonic()
    proc = attnlab(["resume", "torn"], tmp_path, env)
    print(f"resumed and finished in {time.monotonic() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("torn")
    trials = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("attnlab.kind") == "trial"
    ]
    assert len(trials) == 1 and trials[0].info.status == "FINISHED"  # one run, not a second
    run = trials[0]
    said = run.data.tags["attnlab.torn_checkpoint"]
    assert f"skipped torn checkpoint(s) {newest} (BadZipFile" in said, said
    assert f"restoring from {older}" in said, said
    logs = list((tmp_path / "attnlab_runs" / "logs").glob("resume-*.log"))
    assert any(said in log.read_text(errors="replace") for log in logs), logs
    assert run.data.metrics["epochs_done"] == 3
    evaluated = sorted({int(m.value) for m in client.get_metric_history(run.info.run_id, "epochs_done")})
    assert evaluated == [1, 2, 3]  # no epoch's metrics missing
