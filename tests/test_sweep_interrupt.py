"""Fault drill: Ctrl-C on `attnlab sweep` (SIGINT to its process group, as a terminal sends it).

It stops within 30 s and exits 130; the trial it cut is KILLED (not taken for an early-stopped
one) and keeps its checkpoints; the same command then finishes the sweep with every trial once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from drill_sweep import drill_sweep
from services import clean_env
from store_probe import live_runs

pytestmark = pytest.mark.slow

ATTNLAB = str(Path(sys.executable).with_name("attnlab"))


def _trials(workdir: Path) -> dict[str, str]:
    runs = live_runs(workdir / "mlflow.db", "ctrlc")
    return {r["tags"]["attnlab.trial_key"]: r for r in runs if r["tags"].get("attnlab.kind") == "trial"}


def test_ctrl_c_stops_the_sweep_keeps_its_work_and_the_same_command_finishes_it(tmp_path):
    (tmp_path / "s.yaml").write_text(drill_sweep("ctrlc"))
    command = [ATTNLAB, "sweep", "--config", "s.yaml"]
    driver = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 600
    while time.time() < deadline:  # one trial done and the next one training
        trials = _trials(tmp_path)
        statuses = [r["status"] for r in trials.values()]
        if "FINISHED" in statuses and "RUNNING" in statuses:
            break
        time.sleep(1)
    else:
        os.killpg(driver.pid, signal.SIGKILL)
        pytest.fail("no trial finished in time")
    cut = next(k for k, r in trials.items() if r["status"] == "RUNNING")
    sent = time.monotonic()
    os.killpg(driver.pid, signal.SIGINT)
    try:
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    stopped_in = time.monotonic() - sent
    print(f"stopped {stopped_in:.1f} s after SIGINT")
    assert driver.returncode == 130, out[-2000:] + err[-3000:]
    assert stopped_in < 30
    assert "interrupted with 2 of 3 trials unfinished" in err
    after = _trials(tmp_path)
    assert after[cut]["status"] == "KILLED" and "attnlab.stopped_early" not in after[cut]["tags"]
    parent = [
        r for r in live_runs(tmp_path / "mlflow.db", "ctrlc") if r["tags"].get("attnlab.kind") == "sweep"
    ]
    assert [p["status"] for p in parent] == ["KILLED"]

    again = subprocess.run(
        command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, again.stderr[-3000:]
    final = _trials(tmp_path)
    assert sorted(final) == [
        "segmentation-0001-s0",
        "segmentation-0010-s0",
        "segmentation-wo-s0",
    ]  # once each
    assert all(r["status"] == "FINISHED" for r in final.values())
    assert final[cut]["run_id"] == after[cut]["run_id"]  # the cut trial continued its own run
    assert not list((tmp_path / "attnlab_runs" / "sweeps" / "ctrlc" / "train").rglob("*.ckpt"))
