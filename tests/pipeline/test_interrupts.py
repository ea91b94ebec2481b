"""Ctrl-C and SIGTERM end a standalone run as KILLED in MLflow, with the shell's exit codes; a run
that a SIGKILL left RUNNING is named by the commands that read its experiment and marked FAILED by
the next run that logs into it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient
from store_probe import live_runs

BIN = Path(sys.executable).parent


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("attnlab")
    return client.search_runs([exp.experiment_id]) if exp else []


def _start_training(tmp_path: Path, uri: str) -> subprocess.Popen:
    """`attnlab train` on tiny translation, returned once it has logged an epoch."""
    argv = [
        str(BIN / "attnlab"),
        "train",
        "--task",
        "translation",
        "--max-epochs",
        "200",
        "--no-progress",
        "--tracking-uri",
        uri,
        "--out-dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        time.sleep(1)
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read()[-3000:])
        runs = live_runs(tmp_path / "mlflow.db", "attnlab")
        if runs and "train/loss_epoch" in runs[0]["metrics"]:
            return proc
    proc.kill()
    pytest.fail("training never logged an epoch")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_training_ends_the_run_killed(tmp_path, sig, code):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _start_training(tmp_path, uri)
    try:
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, out[-3000:]
    (run,) = _runs(uri)
    assert run.info.status == "KILLED"
    assert "Traceback" not in out, out[-3000:]
    said = [line for line in out.splitlines() if line.startswith("attnlab: interrupted after ")]
    assert len(said) == 1 and f"run {run.info.run_id} ended KILLED" in said[0], out[-3000:]
    # One checkpoint on disk where the best epoch is the last one, as a finished run keeps it.
    folder = tmp_path / "runs" / "checkpoints" / run.info.run_id
    best, last = folder / "best.ckpt", folder / "last.ckpt"
    epochs = [torch.load(f, weights_only=True, map_location="cpu")["global_step"] for f in (best, last)]
    assert (best.stat().st_ino == last.stat().st_ino) == (epochs[0] == epochs[1]), (epochs, out[-2000:])


def test_a_run_a_sigkill_left_running_is_named_by_a_reader_and_marked_failed_by_the_next_run(tmp_path):
    from attnlab.pipeline.tracking.runs import RunRole

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _start_training(tmp_path, uri)
    proc.kill()
    proc.wait(timeout=60)
    assert _runs(uri)[0].info.status == "RUNNING"  # nobody could end it
    out = subprocess.run(
        [str(BIN / "attnlab"), "best", "--experiment", "attnlab", "--tracking-uri", uri],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "which is gone" in out.stderr and str(proc.pid) in out.stderr, out.stderr
    assert _runs(uri)[0].info.status == "RUNNING"  # `best` only reads
    dead = _runs(uri)[0].info.run_id
    RunRole().open(
        uri, "attnlab", name="next", params={}, tags={}
    )  # what the next `attnlab train` does first
    assert MlflowClient(uri).get_run(dead).info.status == "FAILED"


def test_a_signal_a_library_wrapped_in_its_own_exception_still_ends_the_run_killed(tmp_path, monkeypatch):
    """MLflow's sqlite store re-raises a KeyboardInterrupt that lands inside it as an
    MlflowException; the recorded signal makes it an interrupt all the same: KILLED, exit 130."""
    import lightning as L

    from attnlab.pipeline.config.train import build_train_config
    from attnlab.pipeline.training import interrupts
    from attnlab.pipeline.training.run import run_training

    monkeypatch.setattr(interrupts, "_received", None)

    class CtrlCInsideALibrary(L.Callback):
        def on_train_batch_end(self, *args, **kwargs):
            interrupts.record(signal.SIGINT)
            raise RuntimeError("a library's own error, wrapping the KeyboardInterrupt")

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = build_train_config(
        {
            "task": "translation",
            "max_epochs": 1,
            "out_dir": str(tmp_path / "runs"),
            "tracking": {"tracking_uri": uri, "system_metrics": False},
        },
        preset="tiny",
    )
    with pytest.raises(SystemExit) as stop:
        run_training(cfg, callbacks=[CtrlCInsideALibrary()], progress_bar=False)
    assert stop.value.code == 130
    (run,) = _runs(uri)
    assert run.info.status == "KILLED"
