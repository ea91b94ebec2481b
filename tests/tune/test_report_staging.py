"""A trial stages each epoch's checkpoint in its own folder before Ray copies it: a trial killed
while it reports (a preempted node, a paused multi-worker trial's other ranks, a killed driver's
Ray) leaves a checkpoint-sized copy behind, which must not pile up in the machine's /tmp. The
trial's next start clears it."""

import subprocess
import sys
from pathlib import Path

TRIAL = """
import os, sys
from pathlib import Path
import lightning as L
from lightning.pytorch.demos.boring_classes import BoringModel
from attnlab.tune.ray_callbacks import ReportEpoch

staging, die = sys.argv[1], sys.argv[2] == "die"
report_epoch = ReportEpoch("score", staging, in_tune=True)

def report(metrics, checkpoint=None):
    print(sorted(p.name for p in Path(checkpoint.path).iterdir()), flush=True)
    if die:
        os._exit(9)  # killed while Ray copies the epoch in

report_epoch.report = report
L.Trainer(
    max_epochs=2, limit_train_batches=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
    enable_progress_bar=False, enable_model_summary=False, callbacks=[report_epoch],
).fit(BoringModel())
"""


def _trial(staging: Path, temp: Path, how: str) -> subprocess.CompletedProcess:
    env = {"TMPDIR": str(temp), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", TRIAL, str(staging), how], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_trial_killed_while_it_reports_leaves_its_epoch_in_its_own_folder_until_it_starts_again(
    tmp_path,
):
    staging, temp = tmp_path / "staging" / "trial-a", tmp_path / "temp"
    temp.mkdir()
    killed = _trial(staging, temp, "die")
    assert killed.returncode == 9, killed.stderr[-3000:]
    assert "'checkpoint.ckpt', 'result.json'" in killed.stdout
    assert not list(temp.rglob("*.ckpt")), sorted(temp.rglob("*"))  # nothing in the machine's temp
    assert len(list(staging.rglob("checkpoint.ckpt"))) == 1  # the killed report's copy, in the trial's folder

    again = _trial(staging, temp, "live")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("checkpoint.ckpt") == 2  # both epochs reported
    assert not list(staging.rglob("*.ckpt")), sorted(staging.rglob("*"))  # the leftover is gone, and its own
    assert not list(temp.rglob("*.ckpt"))
