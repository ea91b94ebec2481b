"""A trial that dies after its epoch's metrics reached MLflow but before that epoch's checkpoint,
and is retried from the checkpoint before, logs each step of each metric once, and its history
equals an uninterrupted run's (found by the chaos soak, benchmarks/chaos.py: an interrupt and a
driver kill left `val/mIoU` at steps [3, 7, 7]). Budget: about 15 s."""

import lightning as L
import pytest
from mlflow.tracking import MlflowClient

from attnlab.pipeline.config.train import build_train_config
from attnlab.pipeline.tracking import runs, tags
from attnlab.pipeline.tracking.runs import RunRole
from attnlab.pipeline.training.run import run_training


class CheckpointAfter(L.Callback):
    """Writes the whole training state after epoch `epoch`, as a trial's report to Tune does."""

    def __init__(self, epoch: int, path):
        self.epoch, self.path = epoch, path

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            trainer.save_checkpoint(self.path)


class DieAfterValidation(L.Callback):
    """Dies in epoch `epoch` once its validation metrics were logged, before its checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_validation_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epoch:
            raise RuntimeError("injected: the trial's process died")


def _histories(uri: str, run_id: str) -> dict:
    client = MlflowClient(uri)
    keys = [k for k in client.get_run(run_id).data.metrics if k.startswith(("val/", "train/"))]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in sorted(keys)}


def test_a_retried_trial_logs_each_step_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def cfg(name):
        return build_train_config(
            {
                "task": "translation",
                "attention": "enc_self=0010,dec_self=1000,enc_dec=1000",
                "max_epochs": 2,
                "out_dir": str(tmp_path / name),
                "tracking": {"tracking_uri": uri, "experiment": "retry"},
                "data": {"path": "tiny"},
                "limit_train_batches": 6,
            },
            preset="tiny",
        )

    trial_tags = {tags.KIND: tags.KIND_TRIAL, tags.TRIAL: "t-1"}
    trial_run, _ = runs.open_run(uri, "retry", name="t-1", params={}, tags=trial_tags)
    role, checkpoint = RunRole.trial(trial_run), tmp_path / "epoch1.ckpt"
    with pytest.raises(RuntimeError, match="injected"):
        run_training(
            cfg("trial"),
            role=role,
            progress_bar=False,
            callbacks=[CheckpointAfter(1, checkpoint), DieAfterValidation(2)],
        )
    assert len(_histories(uri, trial_run)["val/nll"]) == 2  # the dead attempt logged epoch 2
    run_training(cfg("trial"), role=role, progress_bar=False, ckpt_path=str(checkpoint))
    whole = run_training(cfg("whole"), progress_bar=False)

    retried = _histories(uri, trial_run)
    for key, history in retried.items():
        steps = [step for step, _ in history]
        assert len(steps) == len(set(steps)), (key, steps)
    assert retried == _histories(uri, whole["run_id"])
