"""A sweep that mixes one-worker and multi-worker grid entries on a machine its multi-worker trials
fill (issue 38, found by the chaos soak's race variant): Tune kept the actor of a finished
one-worker trial for reuse (`reuse_actors`), and that idle actor held a CPU the waiting trials'
Ray Train workers needed, outside Tune's own accounting, so the sweep hung until Ray Train gave up
on the workers (900 s by default).

The drill: a race's first round, all four trials out at once: two one-worker trials hold the CPUs
while two two-worker trials, which need every CPU of the embedded Ray (it takes every core of the
machine), wait for theirs, and the race proposes nothing more until the round is decided. Ray Train
retries its workers' start for ever (right on a cluster that is scaling up), so a held CPU hangs
the sweep: the drill gives it 5 minutes, then stops everything it started and fails. Budget: about 2
minutes on 2 cores.
"""

import json
import os
import signal
import subprocess

import pytest
from repo import ATTNLAB
from services import clean_env

pytestmark = pytest.mark.slow

OVERRIDES = "{segmentation: {crop_size: 64}, data: {batch_size: 2}, limit_train_batches: 2}"


def _mixed(cpus_per_worker: int) -> str:
    return f"""
name: mixed
max_epochs: 1
grid:
  - task: segmentation
    specs: ["w/o"]
    preset: tiny
    overrides: {OVERRIDES}
  - task: segmentation
    specs: ["0010"]
    preset: tiny
    overrides: {OVERRIDES}
    resources: {{workers_per_trial: 2, cpus_per_worker: {cpus_per_worker}}}
early_stopping: {{policy: none}}
seeds: {{policy: race, min: 2, max: 2}}
max_concurrent_trials: 4
max_failures: 0
"""


def test_multi_worker_trials_get_the_cpus_one_worker_trials_held(tmp_path):
    (tmp_path / "mixed.yaml").write_text(_mixed(max(1, (os.cpu_count() or 2) // 2)))
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        driver = subprocess.Popen(
            [ATTNLAB, "sweep", "--config", "mixed.yaml", "--format", "json"],
            cwd=tmp_path,
            env=clean_env(),
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its Ray and MLflow with it, so a hang can be stopped whole
        )
        try:
            code = driver.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
            pytest.fail(
                "the sweep hung: its two-worker trials never got their CPUs\n" + err.read_text()[-3000:]
            )
    assert code == 0, out.read_text()[-2000:] + err.read_text()[-4000:]
    stdout = out.read_text()
    summary = json.JSONDecoder().raw_decode(stdout[stdout.index('{\n  "trials"') :])[0]
    trials = {t["trial"]: t["status"] for t in summary["trials"]}
    keys = [f"segmentation-{spec}-s{seed}" for spec in ("wo", "0010") for seed in (0, 1)]
    assert trials == dict.fromkeys(keys, "finished"), trials
