"""Fault drill: the disk fills while a trial checkpoints (a 300 MB tmpfs holds the sweep's storage:
two checkpoints of the drill's model fit, the third does not).

The sweep ends with one clear error line and no traceback; the checkpoints written before are
intact; once space is freed, `attnlab resume` finishes the sweep with the trial's one run, going
on from the newest whole checkpoint."""

import json
import subprocess
import time

import pytest
from drill_sweep import attnlab, drill_sweep, recorded_checkpoints
from mlflow.tracking import MlflowClient
from services import clean_env

from attnlab.pipeline.training.checkpoints import torn

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(store)], capture_output=True
    )
    assert mounted.returncode == 0, f"this drill mounts a tmpfs (as root): {mounted.stderr.decode()}"
    yield store
    subprocess.run(["umount", "-l", str(store)], check=False)


def test_a_full_disk_ends_the_sweep_with_one_line_and_resume_finishes_it(tmp_path, small_disk):
    (tmp_path / "full.yaml").write_text(drill_sweep("full", specs='"w/o"', max_epochs=3, max_failures=0))
    env = clean_env()
    first = attnlab(["sweep", "--config", "full.yaml", "--storage", str(small_disk)], tmp_path, env)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-3000:]
    assert "Traceback" not in first.stderr, first.stderr[-3000:]
    errors = [line for line in first.stderr.splitlines() if line.startswith("attnlab: ")]
    assert any("storage is full" in e or "disk full" in e for e in errors), first.stderr[-3000:]
    assert any("attnlab resume" in e for e in errors), errors

    # What was written before the disk filled is intact: Tune's record of the trial's checkpoints
    # (which it saves every 10 s or more, so it may name none yet) and the newest whole one on disk.
    trial = small_disk / "full" / "segmentation-wo-s0"
    assert all(torn(folder / "checkpoint.ckpt") is None for folder in recorded_checkpoints(trial))
    written = sorted(trial.glob("checkpoint_*/checkpoint.ckpt"), reverse=True)
    whole = [ckpt for ckpt in written if torn(ckpt) is None]
    assert whole, f"no whole checkpoint in {[str(p.relative_to(small_disk)) for p in written]}"

    # Space freed: the same file system, grown.
    subprocess.run(["mount", "-o", "remount,size=1g", str(small_disk)], check=True)
    started = time.monotonic()
    resumed = attnlab(["resume", "full", "--storage", str(small_disk), "--format", "json"], tmp_path, env)
    print(f"resumed and finished in {time.monotonic() - started:.1f} s")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    summary = json.JSONDecoder().raw_decode(resumed.stdout[resumed.stdout.index('{\n  "trials"') :])[0]
    assert [(t["trial"], t["status"]) for t in summary["trials"]] == [("segmentation-wo-s0", "finished")]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("full")
    trials = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("attnlab.kind") == "trial"
    ]
    assert len(trials) == 1 and trials[0].info.status == "FINISHED"
    evaluated = {int(m.value) for m in client.get_metric_history(trials[0].info.run_id, "epochs_done")}
    assert evaluated == {1, 2, 3}
    # The resumed trial went on from a checkpoint written before the disk filled, not from epoch 1.
    assert trials[0].data.tags["attnlab.resumed"].startswith("resumed after epoch "), trials[0].data.tags
