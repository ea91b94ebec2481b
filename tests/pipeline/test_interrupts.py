"""Ctrl-C and SIGTERM end a standalone run as KILLED in MLflow, with the shell's exit codes; a run
that a SIGKILL left RUNNING is named by the commands that read its experiment and marked FAILED by
the next run that logs into it."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fault_injection import INTERRUPT_ENV, INTERRUPT_SPEC
from mlflow.tracking import MlflowClient
from services import clean_env
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


def test_an_interrupted_run_goes_on_with_the_command_it_printed_and_ends_as_if_never_stopped(tmp_path):
    """Ctrl-C at the start of epoch 2 of 3, then the command the interrupt line names: the same run
    goes on from epoch 1's checkpoint and ends FINISHED with exactly the metrics of a run that was
    never stopped, each step logged once (budget: about 60 s here)."""
    (tmp_path / "faults.yaml").write_text(f'callbacks: ["{INTERRUPT_SPEC}"]\n')
    train = ["train", "--task", "translation", "--max-epochs", "3", "--no-progress"]
    env = clean_env(PYTHONPATH=str(Path(__file__).parents[1] / "helpers"), **{INTERRUPT_ENV: "1"})

    def attnlab(args: list[str], folder: Path, env: dict = env) -> subprocess.CompletedProcess:
        folder.mkdir(exist_ok=True)
        uri = ["--tracking-uri", f"sqlite:///{folder / 'mlflow.db'}"] if "--resume" not in args else []
        return subprocess.run(
            [str(BIN / "attnlab"), *args, *uri],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    quiet = {k: v for k, v in env.items() if k != INTERRUPT_ENV}
    whole = attnlab([*train, "--config", str(tmp_path / "faults.yaml")], tmp_path / "whole", quiet)
    stopped = attnlab([*train, "--config", str(tmp_path / "faults.yaml")], tmp_path / "stopped")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    (said,) = [line for line in stopped.stderr.splitlines() if line.startswith("attnlab: interrupted")]
    assert said.startswith("attnlab: interrupted after 1 epoch(s)"), said
    command = said.split("go on with: ", 1)[1]
    (run,) = _runs(f"sqlite:///{tmp_path / 'stopped/mlflow.db'}")
    assert command == f"attnlab train --resume {run.info.run_id}"  # by id: the default out folder

    again = attnlab(shlex.split(command)[1:], tmp_path / "stopped")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"attnlab: run {run.info.run_id} goes on after epoch 1" in again.stdout, again.stdout
    assert [line.split()[1] for line in again.stdout.splitlines() if line.startswith("epoch ")] == [
        "2/3",
        "3/3",
    ]
    client = MlflowClient(f"sqlite:///{tmp_path / 'stopped/mlflow.db'}")
    (resumed,) = _runs(f"sqlite:///{tmp_path / 'stopped/mlflow.db'}")  # the same run, no second one
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    (reference,) = _runs(f"sqlite:///{tmp_path / 'whole/mlflow.db'}")
    val = {k: v for k, v in resumed.data.metrics.items() if k.startswith("val/")}
    assert val and val == {k: v for k, v in reference.data.metrics.items() if k.startswith("val/")}
    for key in ("val/bleu", "train/loss_step"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, steps)  # each step once
    assert len(client.get_metric_history(run.info.run_id, "val/bleu")) == 3

    finished = attnlab(shlex.split(command)[1:], tmp_path / "stopped")  # nothing left to go on with
    assert finished.returncode == 2 and "finished: there is nothing to resume" in finished.stderr, (
        finished.stderr
    )
