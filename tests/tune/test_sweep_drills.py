"""Fault drills on one sweep (three tiny trials, one at a time), its storage a file:// URI (the code
path of s3://): each drill picks up where the one before left the sweep, so one sweep's training
serves them all.

1. Ctrl-C (SIGINT to `attnlab sweep`'s process group, as a terminal sends it) once the first trial
   has finished: the driver stops within 30 s with exit 130; the trial it cut is KILLED (not taken
   for an early-stopped one), and so is the sweep's parent run.
2. The same command again: it continues the cut trial in its own run. A second driver of the same
   sweep is refused with one line naming the first. The last trial crashes once (injected) and
   retries from its checkpoint; parked (injected) before its last epoch, once Ray's own record
   names two of its checkpoints, the driver is SIGKILLed with everything it started.
3. A torn checkpoint: the newest one of the trial the kill cut is truncated to half.
4. `attnlab resume URI`: takes over the dead driver's lock, restores the cut trial from its older,
   whole checkpoint (and says so), and finishes the sweep: each trial once, every epoch logged,
   trials finished earlier untouched, and everything on the URI storage, nothing on local disk.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from drill_sweep import ATTNLAB, attnlab, drill_sweep, recorded_checkpoints, start_driver, with_faults
from fault_injection import held_marker
from mlflow.tracking import MlflowClient
from services import clean_env
from store_probe import live_runs

from attnlab.pipeline.training.checkpoints import torn

pytestmark = pytest.mark.slow

KEYS = ["segmentation-0001-s0", "segmentation-0010-s0", "segmentation-wo-s0"]


def _trials(workdir: Path) -> dict[str, dict]:
    runs = live_runs(workdir / "mlflow.db", "drill")
    return {r["tags"]["attnlab.trial_key"]: r for r in runs if r["tags"].get("attnlab.kind") == "trial"}


def _wait(what: str, ready, driver: subprocess.Popen, seconds: int = 600) -> None:
    start = time.time()
    while not ready():
        if time.time() > start + seconds or driver.poll() is not None:
            _kill_group(driver)
            pytest.fail(f"{what}: not in time (driver exit {driver.poll()})")
        time.sleep(0.5)
    print(f"{what}: after {time.time() - start:.0f} s")


def _kill_group(driver: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group may have ended by itself
        os.killpg(driver.pid, signal.SIGKILL)


def _ctrl_c(command: list[str], workdir: Path, env: dict) -> str:
    """Drill 1. Returns the run id of the trial Ctrl-C cut."""
    driver = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    state = {}

    def one_finished_one_training() -> bool:
        state.update(_trials(workdir))
        statuses = [r["status"] for r in state.values()]
        return "FINISHED" in statuses and "RUNNING" in statuses

    _wait("one trial finished and the next one training", one_finished_one_training, driver)
    cut = next(k for k, r in state.items() if r["status"] == "RUNNING")
    sent = time.monotonic()
    os.killpg(driver.pid, signal.SIGINT)
    try:
        out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    stopped_in = time.monotonic() - sent
    print(f"Ctrl-C: stopped {stopped_in:.1f} s after SIGINT")
    assert driver.returncode == 130, out[-2000:] + err[-3000:]
    assert stopped_in < 30
    assert "interrupted with 2 of 3 trials unfinished" in err
    assert "`attnlab resume file://" in err and "/bucket/sweeps/drill` continues them" in err, err[-1000:]
    after = _trials(workdir)
    assert after[cut]["status"] == "KILLED" and "attnlab.stopped_early" not in after[cut]["tags"]
    parent = [
        r for r in live_runs(workdir / "mlflow.db", "drill") if r["tags"].get("attnlab.kind") == "sweep"
    ]
    assert [p["status"] for p in parent] == ["KILLED"]
    return after[cut]["run_id"]


def test_ctrl_c_a_second_driver_a_killed_driver_and_a_torn_checkpoint_lose_nothing(tmp_path):
    workdir = tmp_path
    (workdir / "drill.yaml").write_text(drill_sweep("drill", faults=True))
    bucket = workdir / "bucket" / "sweeps"
    command = ["sweep", "--config", "drill.yaml", "--storage", bucket.as_uri()]
    env = with_faults(clean_env(), "segmentation-0001-s0:2", hold="segmentation-0001-s0:2")
    parked = held_marker(workdir / "attnlab_runs" / "scratch" / "drill", "segmentation-0001-s0")

    cut_by_ctrl_c = _ctrl_c([ATTNLAB, *command], workdir, env)

    # Drill 2 (the same command continues), drill 5 (a second driver), the injected crash, a SIGKILL.
    driver = start_driver(command, workdir, env)
    last = bucket / "drill" / "segmentation-0001-s0"  # a one-worker trial: Tune's trial folder
    try:
        _wait("the cut trial finished", lambda: _finished(workdir) == 2, driver)
        second = attnlab(command, workdir, env, timeout=120)
        assert second.returncode == 2 and second.stdout == "", second.stdout + second.stderr
        assert second.stderr.count("\n") == 1 and f"being run by pid {driver.pid} on " in second.stderr
        _wait(
            "the last trial parked with two checkpoints",
            lambda: parked.exists() and len(recorded_checkpoints(last)) >= 2,
            driver,
        )
    finally:
        _kill_group(driver)  # the driver and everything it started
        driver.wait()
    time.sleep(3)

    # Drill 4: the newest checkpoint of the trial the kill cut is torn, as a crash mid-write leaves it.
    older, newest = recorded_checkpoints(last)[-2:]
    with open(newest / "checkpoint.ckpt", "r+b") as f:
        f.truncate((newest / "checkpoint.ckpt").stat().st_size // 2)
    assert torn(newest / "checkpoint.ckpt") and torn(older / "checkpoint.ckpt") is None
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    done_before = {k: r for k, r in _trials(workdir).items() if r["status"] == "FINISHED"}
    assert sorted(done_before) == KEYS[1:]
    before = {
        k: (client.get_run(r["run_id"]).info.end_time, _history(client, r["run_id"], "val/mIoU"))
        for k, r in done_before.items()
    }

    resumed = attnlab(["resume", (bucket / "drill").as_uri()], workdir, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        f"took over the lock of a driver that is gone (pid {driver.pid} on " in resumed.stdout
    )  # stale lock

    final = _trials(workdir)
    assert sorted(final) == KEYS  # exactly once each
    assert final["segmentation-0010-s0"]["run_id"] == cut_by_ctrl_c  # Ctrl-C's cut trial kept its run
    assert [r["tags"]["attnlab.kind"] for r in live_runs(workdir / "mlflow.db", "drill")].count("sweep") == 1
    for key, run in final.items():
        assert run["status"] == "FINISHED"
        assert max(v for _, v in _history(client, run["run_id"], "epoch")) == 2  # 0-based: three epochs
        if key in before:  # finished trials are untouched
            assert (
                client.get_run(run["run_id"]).info.end_time,
                _history(client, run["run_id"], "val/mIoU"),
            ) == (before[key])
    assert (
        workdir / "attnlab_runs" / "scratch" / "drill" / "faults" / "failed-once-segmentation-0001-s0"
    ).exists()
    # The torn checkpoint gave way to the one before, and the trial said so (tag and log line).
    said = final["segmentation-0001-s0"]["tags"]["attnlab.torn_checkpoint"]
    assert f"skipped torn checkpoint(s) {newest} (BadZipFile" in said and f"restoring from {older}" in said
    assert final["segmentation-0001-s0"]["tags"]["attnlab.resumed"].endswith(f" ({older})")
    logs = list((workdir / "attnlab_runs" / "logs").glob("resume-*.log"))
    assert any(said in log.read_text(errors="replace") for log in logs), logs
    # The sweep lives on its URI storage: Tune's experiment, attnlab's state; finished trials keep no
    # checkpoint there, and nothing went to the default local storage.
    names = {p.name for p in (bucket / "drill").iterdir()}
    assert {"attnlab_sweep.json", "tuner.pkl"} <= names and any(
        n.startswith("experiment_state-") for n in names
    )
    assert not list((bucket / "drill").rglob("*.ckpt"))
    assert not (workdir / "attnlab_runs" / "sweeps").exists()


def _finished(workdir: Path) -> int:
    return sum(r["status"] == "FINISHED" for r in _trials(workdir).values())


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
